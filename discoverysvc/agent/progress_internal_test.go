package agent

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func TestPostgresLag(t *testing.T) {
	str := func(s string) *string { return &s }
	yes, no := true, false
	secs := func(f float64) *float64 { return &f }
	streaming := pgReading{InRecovery: true, HasReceiver: true, Status: str("streaming")}
	with := func(edit func(*pgReading)) pgReading { r := streaming; edit(&r); return r }
	for _, tc := range []struct {
		name    string
		r       pgReading
		want    float64
		wantErr string
	}{
		{"the primary itself", pgReading{InRecovery: false}, 0, ""},
		{"caught up: since the primary's last message", with(func(r *pgReading) {
			r.ReplayedAll, r.SinceMessage, r.SinceReplay = &yes, secs(0.4), secs(300)
		}), 0.4, ""},
		{"replaying: since the last replayed commit", with(func(r *pgReading) {
			r.ReplayedAll, r.SinceMessage, r.SinceReplay = &no, secs(0.1), secs(12.5)
		}), 12.5, ""},
		{"clocks apart count as caught up", with(func(r *pgReading) { r.ReplayedAll, r.SinceMessage = &yes, secs(-0.3) }), 0, ""},
		{"no WAL receiver", pgReading{InRecovery: true}, 0, "not streaming"},
		{"receiver hidden from the role", pgReading{InRecovery: true, HasReceiver: true}, 0, "pg_read_all_stats"},
		{"receiver starting", with(func(r *pgReading) { r.Status = str("starting") }), 0, "starting, not streaming"},
		{"receiver waiting", with(func(r *pgReading) { r.Status = str("waiting") }), 0, "not streaming"},
		{"nothing received", streaming, 0, "no WAL yet"},
		{"caught up, no message time", with(func(r *pgReading) { r.ReplayedAll = &yes }), 0, "message from the primary"},
		{"replaying, nothing replayed", with(func(r *pgReading) { r.ReplayedAll, r.SinceMessage = &no, secs(0) }), 0, "replayed commit"},
		{"not a number", with(func(r *pgReading) { r.ReplayedAll, r.SinceMessage = &yes, secs(math.NaN()) }), 0, "message from the primary"},
		{"infinite", with(func(r *pgReading) { r.ReplayedAll, r.SinceReplay = &no, secs(math.Inf(1)) }), 0, "replayed commit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.lag()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("lag = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("lag = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestProgressOf(t *testing.T) {
	for _, tc := range []struct {
		secs float64
		want schema.Progress
	}{
		{0, schema.Progress{}},
		{-2, schema.Progress{}},
		{0.0001, schema.Progress{LagMS: 1}},
		{1.5, schema.Progress{LagMS: 1500}},
		{1.5001, schema.Progress{LagMS: 1501}},
		{schema.MaxLag.Seconds(), schema.Progress{LagMS: schema.MaxLag.Milliseconds()}},
		{schema.MaxLag.Seconds() + 0.001, schema.Progress{Unknown: true}},
		{math.Inf(1), schema.Progress{Unknown: true}},
		{math.NaN(), schema.Progress{Unknown: true}},
	} {
		if got := progressOf(tc.secs); got != tc.want {
			t.Errorf("progressOf(%v) = %+v, want %+v", tc.secs, got, tc.want)
		}
	}
}

func TestWorseProgress(t *testing.T) {
	lag := func(ms int64) schema.Progress { return schema.Progress{LagMS: ms} }
	unknown := schema.Progress{Unknown: true}
	for _, tc := range []struct{ a, b, want schema.Progress }{
		{lag(0), lag(0), lag(0)},
		{lag(0), lag(500), lag(500)},
		{lag(500), lag(0), lag(500)},
		{lag(0), unknown, unknown},
		{unknown, lag(0), unknown},
		{unknown, unknown, unknown},
	} {
		if got := worse(tc.a, tc.b); got != tc.want {
			t.Errorf("worse(%+v, %+v) = %+v, want %+v", tc.a, tc.b, got, tc.want)
		}
	}
}

// The largest of an origin's last readings is reported: the top of a lag
// that saws between keepalives is steady; a growing lag is reported at
// once; a shrinking one after lagReadings readings; unknown at once, and
// it starts the readings afresh.
func TestProgressHold(t *testing.T) {
	p := newProgressReader(nil, zap.NewNop())
	step := func(in map[string]schema.Progress) map[string]schema.Progress {
		t.Helper()
		return p.hold(in)
	}
	lag := func(ms int64) map[string]schema.Progress { return map[string]schema.Progress{"eu": {LagMS: ms}} }
	for i, tc := range []struct {
		in   map[string]schema.Progress
		want int64 // -1: unknown
	}{
		{lag(100), 100},
		{lag(900), 900}, // up at once
		{lag(50), 900},
		{lag(700), 900},
		{lag(300), 900},
		{lag(200), 700}, // the 900 is four readings old
		{lag(100), 700},
		{lag(100), 300},
		{lag(100), 200},
		{lag(100), 100},
		{map[string]schema.Progress{"eu": {Unknown: true}}, -1},
		{lag(40), 40}, // nothing held from before the unknown
		{map[string]schema.Progress{}, -2},
		{lag(10), 10}, // nor from before the origin went away
	} {
		got := step(tc.in)
		switch pr, ok := got["eu"]; {
		case tc.want == -2 && ok:
			t.Fatalf("reading %d: %v, want no eu", i, got)
		case tc.want == -1 && !pr.Unknown:
			t.Fatalf("reading %d: %v, want unknown", i, got)
		case tc.want >= 0 && (pr.Unknown || pr.LagMS != tc.want):
			t.Fatalf("reading %d: %v, want %d ms", i, got, tc.want)
		}
	}
}

// More origins than a record holds: the first by name are kept, so the
// heartbeat stays valid, and the rest count as not caught up.
func TestProgressBound(t *testing.T) {
	p := newProgressReader(nil, zap.NewNop())
	m := map[string]schema.Progress{}
	for i := range schema.MaxOrigins + 3 {
		m[fmt.Sprintf("o%02d", i)] = schema.Progress{LagMS: int64(i)}
	}
	got := p.bound(m)
	if len(got) != schema.MaxOrigins {
		t.Fatalf("%d origins kept, want %d", len(got), schema.MaxOrigins)
	}
	if _, ok := got[fmt.Sprintf("o%02d", schema.MaxOrigins)]; ok {
		t.Fatalf("kept %v: not the first by name", got)
	}
	if err := schema.ValidateProgress(schema.Server{Progress: got}); err != nil {
		t.Fatal(err)
	}
}
