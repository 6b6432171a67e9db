package discoverysvc

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecodeDrain(t *testing.T) {
	const dp = "/sessionpin/drain/"
	cases := []struct {
		name, key, value string
		wantErr          string // substring; "" means valid
	}{
		{"valid", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00Z"}`, ""},
		{"with reason and more fields", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00.123+01:00","reason":"kernel update","by":"ops"}`, ""},
		{"not a drain key", "/sessionpin/servers/eu-1", `{}`, "not a drain key"},
		{"nested key", dp + "eu-1/x", `{}`, "not a drain key"},
		{"bad json", dp + "eu-1", `{"id":`, "decode value"},
		{"empty value", dp + "eu-1", ``, "decode value"},
		{"no since", dp + "eu-1", `{"id":"eu-1"}`, "invalid since"},
		{"since not RFC 3339", dp + "eu-1", `{"id":"eu-1","since":"yesterday"}`, "decode value"},
		{"id mismatch", dp + "eu-1", `{"id":"eu-2","since":"2026-11-29T05:00:00Z"}`, `names id "eu-2"`},
		{"bad id", dp + "eu-1", `{"id":"..","since":"2026-11-29T05:00:00Z"}`, "invalid id"},
		{"control character in reason", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00Z","reason":"a\nb"}`, "invalid reason"},
		{"long reason", dp + "eu-1", `{"id":"eu-1","since":"2026-11-29T05:00:00Z","reason":"` + strings.Repeat("x", maxReasonLen+1) + `"}`, "invalid reason"},
		{"huge value", dp + "eu-1", `{"id":"eu-1","pad":"` + strings.Repeat("x", maxValueLen) + `"}`, "over"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeDrain(dp, []byte(tc.key), []byte(tc.value))
			if tc.wantErr == "" {
				if err != nil || d.ID != "eu-1" || d.Since.IsZero() {
					t.Fatalf("got %+v, %v", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzDecodeDrain(f *testing.F) {
	const dp = "/sessionpin/drain/"
	f.Add([]byte(dp+"eu-1"), []byte(`{"id":"eu-1","since":"2026-11-29T05:00:00Z","reason":"roll"}`))
	f.Add([]byte(dp+"eu-1"), []byte(`{"id":"eu-1","since":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(dp+"a/b"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d, err := DecodeDrain(dp, key, value)
		if err != nil {
			return
		}
		if d.Validate() != nil || dp+d.ID != string(key) {
			t.Fatalf("accepted %+v for key %q", d, key)
		}
		// What was accepted survives the registry's own encoding.
		again, err := DecodeDrain(dp, key, []byte(encodeDrain(d)))
		if err != nil || again.ID != d.ID || again.Reason != d.Reason {
			t.Fatalf("re-encoding %+v: %+v, %v", d, again, err)
		}
	})
}

func TestDecodeActivity(t *testing.T) {
	const ep = "/sessionpin/edges/"
	cases := []struct {
		name, key, value string
		wantErr          string
	}{
		{"valid", ep + "edge-a", `{"edge":"edge-a","region":"eu","at":"2026-11-29T05:00:00.000Z","servers":{"eu-1":{"pinned":3,"minute":9,"last":"2026-11-29T05:00:00.000Z"}}}`, ""},
		{"no servers", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{}}`, ""},
		{"not an edge key", "/sessionpin/servers/edge-a", `{}`, "not an edge key"},
		{"edge mismatch", ep + "edge-a", `{"edge":"edge-b","at":"2026-11-29T05:00:00Z"}`, `names edge "edge-b"`},
		{"no at", ep + "edge-a", `{"edge":"edge-a","servers":{}}`, "invalid at"},
		{"bad region", ep + "edge-a", `{"edge":"edge-a","region":"e u","at":"2026-11-29T05:00:00Z"}`, "invalid region"},
		{"negative count", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":-1,"last":"2026-11-29T05:00:00Z"}}}`, "decode value"},
		{"fractional count", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":1.5,"last":"2026-11-29T05:00:00Z"}}}`, "decode value"},
		{"bad server id", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"a/b":{"pinned":1,"last":"2026-11-29T05:00:00Z"}}}`, "invalid servers"},
		{"no last", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":1}}}`, "last is required"},
		{"servers not an object", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":[1]}`, "decode value"},
		{"truncated", ep + "edge-a", `{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":1,`, "decode value"},
		{"huge value", ep + "edge-a", `{"pad":"` + strings.Repeat("x", MaxActivityLen) + `"}`, "over"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := DecodeActivity(ep, []byte(tc.key), []byte(tc.value))
			if tc.wantErr == "" {
				if err != nil || a.Edge != "edge-a" {
					t.Fatalf("got %+v, %v", a, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestActivityEncodingRoundTrips(t *testing.T) {
	at := time.Date(2026, 11, 29, 5, 0, 0, 123_000_000, time.UTC)
	servers := map[string]ServerActivity{
		"eu-2": {Pinned: 0, Last: at.Add(-time.Minute)},
		"eu-1": {Pinned: 7, Minute: 40, Last: at},
	}
	value := AppendActivity(nil, "edge-a", "eu", at, AppendServers(nil, servers))
	want := `{"edge":"edge-a","region":"eu","at":"2026-11-29T05:00:00.123Z","servers":{` +
		`"eu-1":{"pinned":7,"minute":40,"last":"2026-11-29T05:00:00.123Z"},` +
		`"eu-2":{"pinned":0,"last":"2026-11-29T04:59:00.123Z"}}}`
	if string(value) != want {
		t.Fatalf("encoded\n %s\nwant\n %s", value, want)
	}
	a, err := DecodeActivity("/p/edges/", []byte("/p/edges/edge-a"), value)
	if err != nil {
		t.Fatal(err)
	}
	if !a.At.Equal(at) || a.Region != "eu" || len(a.Servers) != 2 || a.Servers["eu-1"].Minute != 40 || !a.Servers["eu-2"].Last.Equal(at.Add(-time.Minute)) {
		t.Fatalf("decoded %+v", a)
	}
}

func FuzzDecodeActivity(f *testing.F) {
	const ep = "/sessionpin/edges/"
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","region":"eu","at":"2026-11-29T05:00:00.000Z","servers":{"eu-1":{"pinned":3,"minute":9,"last":"2026-11-29T05:00:00.000Z"}}}`))
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":18446744073709551615,"last":"2026-11-29T05:00:00Z"}}}`))
	f.Add([]byte(ep+"edge-a"), []byte(`{"edge":"edge-a","at":"2026-11-29T05:00:00Z","servers":null}`))
	f.Add([]byte(ep+"x/y"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		a, err := DecodeActivity(ep, key, value)
		if err != nil {
			if _, err2 := ActivityOf(ep, key, value, "eu-1"); err2 == nil {
				t.Fatalf("ActivityOf accepted what DecodeActivity refused: %v", err)
			}
			return
		}
		if a.Validate() != nil || ep+a.Edge != string(key) {
			t.Fatalf("accepted %+v for key %q", a, key)
		}
		// The edge's own encoding of an accepted value decodes to the same.
		again, err := DecodeActivity(ep, key, AppendActivity(nil, a.Edge, a.Region, a.At, AppendServers(nil, a.Servers)))
		if err != nil || len(again.Servers) != len(a.Servers) {
			t.Fatalf("re-encoding %+v: %+v, %v", a, again, err)
		}
	})
}

func FuzzDecodeDrainRequest(f *testing.F) {
	f.Add([]byte(``))
	f.Add([]byte(`{"reason":"kernel update"}`))
	f.Add([]byte(`{"reason":"a","reason":"b"}`))
	f.Add([]byte(`{"Reason":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		reason, err := DecodeDrainRequest(body)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T %v is not a FieldError", err, err)
			}
			return
		}
		if validateReason(reason) != nil {
			t.Fatalf("accepted reason %q", reason)
		}
	})
}

func TestJudgeDrain(t *testing.T) {
	now := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	quiet := time.Minute
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	drain := func(since time.Duration) *Drain { return &Drain{ID: "eu-1", Since: ago(since)} }
	rec := func(draining bool) *Server {
		return &Server{ID: "eu-1", Region: "eu", URL: "http://h", Draining: draining}
	}
	seen := func(edge string, minute uint64, last time.Duration) ServerReport {
		return ServerReport{Edge: edge, Seen: true, Server: ServerActivity{Minute: minute, Last: ago(last)}}
	}
	unseen := ServerReport{Edge: "quiet-edge"}
	cases := []struct {
		name     string
		drain    *Drain
		srv      *Server
		reports  []ServerReport
		draining bool
		drained  bool
		minute   uint64
	}{
		{"not draining", nil, rec(false), nil, false, false, 0},
		{"drain just began, no traffic", drain(time.Second), rec(false), []ServerReport{unseen}, true, false, 0},
		{"drain old enough, no traffic", drain(2 * time.Minute), rec(false), []ServerReport{unseen}, true, true, 0},
		{"traffic on one of two edges", drain(2 * time.Minute), rec(false), []ServerReport{unseen, seen("b", 4, 10*time.Second)}, true, false, 4},
		{"traffic long ago on both edges", drain(5 * time.Minute), rec(false), []ServerReport{seen("a", 0, 2*time.Minute), seen("b", 0, 3*time.Minute)}, true, true, 0},
		{"latest edge decides", drain(5 * time.Minute), nil, []ServerReport{seen("a", 0, 2*time.Minute), seen("b", 1, 30*time.Second)}, true, false, 1},
		{"exactly quiet", drain(quiet), rec(false), []ServerReport{seen("a", 0, quiet)}, true, true, 0},
		{"record drains itself, quiet", nil, rec(true), []ServerReport{seen("a", 0, 2*time.Minute)}, true, true, 0},
		{"record drains itself, busy", nil, rec(true), []ServerReport{seen("a", 9, time.Second)}, true, false, 9},
		{"drained id not registered", drain(2 * time.Minute), nil, nil, true, true, 0},
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

// BenchmarkDrainStatus10k is discovery's work for one drain status beyond
// the etcd read: decoding 4 edges' activity values of 10,000 servers each
// and judging one server.
func BenchmarkDrainStatus10k(b *testing.B) {
	const ep = "/sessionpin/edges/"
	now := time.Now()
	values := make([][]byte, 4)
	for e := range values {
		servers := map[string]ServerActivity{}
		for i := range 10_000 {
			servers[fmt.Sprintf("srv-%05d", i)] = ServerActivity{Pinned: uint64(i % 50), Minute: uint64(i % 600), Last: now}
		}
		values[e] = AppendActivity(nil, fmt.Sprintf("edge-%d", e), "eu", now, AppendServers(nil, servers))
	}
	b.ReportMetric(float64(len(values[0])), "bytes/value")
	b.ReportAllocs()
	for b.Loop() {
		reports := make([]ServerReport, 0, len(values))
		for e, v := range values {
			rep, err := ActivityOf(ep, []byte(fmt.Sprintf("%sedge-%d", ep, e)), v, "srv-04242")
			if err != nil {
				b.Fatal(err)
			}
			reports = append(reports, rep)
		}
		if st := JudgeDrain("srv-04242", &Drain{ID: "srv-04242", Since: now}, nil, reports, time.Minute, now); st.EdgesReporting != 4 {
			b.Fatalf("%+v", st)
		}
	}
}
