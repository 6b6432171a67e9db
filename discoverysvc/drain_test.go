package discoverysvc

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func FuzzDecodeDrainRequest(f *testing.F) {
	f.Add([]byte(``))
	f.Add([]byte(`{"reason":"kernel update"}`))
	f.Add([]byte(`{"reason":"a","reason":"b"}`))
	f.Add([]byte(`{"Reason":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		reason, err := DecodeDrainRequest(body)
		if err != nil {
			if _, ok := err.(*schema.FieldError); !ok {
				t.Fatalf("error %T %v is not a FieldError", err, err)
			}
			return
		}
		if schema.ValidateReason(reason) != nil {
			t.Fatalf("accepted reason %q", reason)
		}
	})
}

func TestJudgeDrain(t *testing.T) {
	now := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	quiet := time.Minute
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	drain := func(since time.Duration) *schema.Drain { return &schema.Drain{ID: "eu-1", Since: ago(since)} }
	rec := func(draining bool) *schema.Server {
		return &schema.Server{ID: "eu-1", Region: "eu", URL: "http://h", Draining: draining}
	}
	seen := func(edge string, minute uint64, last time.Duration) schema.ServerReport {
		return schema.ServerReport{Edge: edge, Seen: true, Server: schema.ServerActivity{Minute: minute, Last: ago(last)}}
	}
	unseen := schema.ServerReport{Edge: "quiet-edge"}
	cases := []struct {
		name     string
		drain    *schema.Drain
		srv      *schema.Server
		reports  []schema.ServerReport
		draining bool
		drained  bool
		minute   uint64
	}{
		{"not draining", nil, rec(false), nil, false, false, 0},
		{"drain just began, no traffic", drain(time.Second), rec(false), []schema.ServerReport{unseen}, true, false, 0},
		{"drain old enough, no traffic", drain(2 * time.Minute), rec(false), []schema.ServerReport{unseen}, true, true, 0},
		{"traffic on one of two edges", drain(2 * time.Minute), rec(false), []schema.ServerReport{unseen, seen("b", 4, 10*time.Second)}, true, false, 4},
		{"traffic long ago on both edges", drain(5 * time.Minute), rec(false), []schema.ServerReport{seen("a", 0, 2*time.Minute), seen("b", 0, 3*time.Minute)}, true, true, 0},
		{"latest edge decides", drain(5 * time.Minute), nil, []schema.ServerReport{seen("a", 0, 2*time.Minute), seen("b", 1, 30*time.Second)}, true, false, 1},
		{"exactly quiet", drain(quiet), rec(false), []schema.ServerReport{seen("a", 0, quiet)}, true, true, 0},
		{"record drains itself, quiet", nil, rec(true), []schema.ServerReport{seen("a", 0, 2*time.Minute)}, true, true, 0},
		{"record drains itself, busy", nil, rec(true), []schema.ServerReport{seen("a", 9, time.Second)}, true, false, 9},
		{"drained id not registered", drain(2 * time.Minute), nil, nil, true, true, 0},
		{"quiet for longer than quiet, but not than an edge's interval", drain(5 * time.Minute), rec(false),
			[]schema.ServerReport{{Edge: "slow", Seen: true, Server: schema.ServerActivity{Last: ago(90 * time.Second)}, Interval: 2 * time.Minute}}, true, false, 0},
		{"a slow edge that saw nothing still holds a young drain", drain(90 * time.Second), rec(false),
			[]schema.ServerReport{{Edge: "slow", Interval: 2 * time.Minute}}, true, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := JudgeDrain("eu-1", tc.drain, tc.srv, tc.reports, quiet, now)
			if st.Draining != tc.draining || st.Drained != tc.drained || st.PinnedLastMinute != tc.minute {
				t.Fatalf("got %+v", st)
			}
			if st.EdgesReporting != len(tc.reports) || st.Registered != (tc.srv != nil) || (st.Since == nil) != (tc.drain == nil) {
				t.Fatalf("got %+v", st)
			}
		})
	}
}

// A drain is never judged with a quiet period shorter than an edge needs to
// report the requests of its current interval.
func TestDrainQuiet(t *testing.T) {
	rep := func(interval time.Duration) schema.ServerReport {
		return schema.ServerReport{Edge: "e", Interval: interval}
	}
	tests := []struct {
		name    string
		quiet   time.Duration
		reports []schema.ServerReport
		want    time.Duration
	}{
		{"the default", 0, nil, schema.DefaultQuiet},
		{"a negative quiet is the default", -time.Second, nil, schema.DefaultQuiet},
		{"longer than the edges' intervals: as asked", 10 * time.Second, []schema.ServerReport{rep(5 * time.Second)}, 10 * time.Second},
		{"shorter: the interval plus the slack", 3 * time.Second, []schema.ServerReport{rep(5 * time.Second)}, 6 * time.Second},
		{"exactly the interval plus the slack", 6 * time.Second, []schema.ServerReport{rep(5 * time.Second)}, 6 * time.Second},
		{"the slowest edge decides", 3 * time.Second, []schema.ServerReport{rep(time.Second), rep(8 * time.Second), rep(0)}, 9 * time.Second},
		{"an edge that does not say adds nothing", 3 * time.Second, []schema.ServerReport{rep(0)}, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := drainQuiet(tt.quiet, tt.reports); got != tt.want {
				t.Fatalf("drainQuiet = %v, want %v", got, tt.want)
			}
			st := JudgeDrain("eu-1", &schema.Drain{ID: "eu-1"}, nil, tt.reports, tt.quiet, time.Now())
			if st.Quiet != tt.want.String() {
				t.Fatalf("status quiet = %q, want %v", st.Quiet, tt.want)
			}
		})
	}
}

// BenchmarkDrainStatus10k is discovery's work for one drain status beyond
// the etcd read: decoding 4 edges' activity values of 10,000 servers each
// and judging one server.
func BenchmarkDrainStatus10k(b *testing.B) {
	const ep = "/sessionpin/edges/"
	now := time.Now()
	values := make([][]byte, 4)
	for e := range values {
		servers := map[string]schema.ServerActivity{}
		for i := range 10_000 {
			servers[fmt.Sprintf("srv-%05d", i)] = schema.ServerActivity{Pinned: uint64(i % 50), Minute: uint64(i % 600), Last: now}
		}
		values[e] = schema.AppendActivity(nil, fmt.Sprintf("edge-%d", e), "eu", 0, now, schema.AppendServers(nil, servers))
	}
	b.ReportMetric(float64(len(values[0])), "bytes/value")
	b.ReportAllocs()
	for b.Loop() {
		reports := make([]schema.ServerReport, 0, len(values))
		for e, v := range values {
			rep, err := schema.ActivityOf(ep, []byte(fmt.Sprintf("%sedge-%d", ep, e)), v, "srv-04242")
			if err != nil {
				b.Fatal(err)
			}
			reports = append(reports, rep)
		}
		if st := JudgeDrain("srv-04242", &schema.Drain{ID: "srv-04242", Since: now}, nil, reports, time.Minute, now); st.EdgesReporting != 4 {
			b.Fatalf("%+v", st)
		}
	}
}
