package schema

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestStepLag(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		published, measured, want time.Duration
	}{
		// Rounded up to a step.
		{"caught up", 0, 0, 0},
		{"a little behind is the first step", 0, 1 * ms, FirstLagStep},
		{"on a step", 0, 250 * ms, 250 * ms},
		{"just over a step", 0, 251 * ms, 500 * ms},
		{"between steps", 0, 3 * time.Second, 4 * time.Second},
		{"negative counts as caught up", 0, -5 * time.Second, 0},
		{"beyond the largest is the largest", 0, 48 * time.Hour, MaxLag},
		{"the last doubling is cut at the largest", 0, 20 * time.Hour, MaxLag},
		// Up at once.
		{"grows by one step", 4 * time.Second, 5 * time.Second, 8 * time.Second},
		{"grows by many", 250 * ms, time.Hour, 4096 * time.Second},
		// Down only two steps at a time.
		{"holds on its step", 4 * time.Second, 3 * time.Second, 4 * time.Second},
		{"holds one step below", 4 * time.Second, 1500 * ms, 4 * time.Second},
		{"falls two steps below", 4 * time.Second, time.Second, time.Second},
		{"falls to caught up", 4 * time.Second, 0, 0},
		{"falls from the first step to caught up", 250 * ms, 0, 0},
		{"holds the first step", 250 * ms, 100 * ms, 250 * ms},
		{"holds one step above caught up", 500 * ms, 200 * ms, 500 * ms},
		{"negative from a lag", time.Second, -time.Second, 0},
		{"stays at the largest", MaxLag, 25 * time.Hour, MaxLag},
		{"falls from the largest", MaxLag, time.Hour, 4096 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StepLag(tc.published, tc.measured); got != tc.want {
				t.Fatalf("StepLag(%s, %s) = %s, want %s", tc.published, tc.measured, got, tc.want)
			}
		})
	}
}

// Every published lag is a step, and never below what was measured (up to
// MaxLag): a bound that is too small would let an edge move a client to a
// copy that lacks its write.
func TestStepLagIsAStepAndABound(t *testing.T) {
	steps := map[time.Duration]bool{0: true, MaxLag: true}
	for s := FirstLagStep; s < MaxLag; s *= 2 {
		steps[s] = true
	}
	published := time.Duration(0)
	for i := range 5000 {
		// A walk up and down over the whole range, in uneven strides.
		measured := time.Duration((i*7919)%100000) * time.Duration(i%13+1) * ms
		published = StepLag(published, measured)
		if !steps[published] {
			t.Fatalf("published %s, not a step", published)
		}
		if published < min(measured, MaxLag) {
			t.Fatalf("published %s below the measured %s", published, measured)
		}
	}
}

// A lag that wavers within a step and the one below does not change what
// is published; one excursion from caught up to T and back changes it
// about 2·log2(T/FirstLagStep) times.
func TestStepLagWritesLittle(t *testing.T) {
	changes := func(measured []time.Duration) int {
		published, n := time.Duration(0), 0
		for _, m := range measured {
			if next := StepLag(published, m); next != published {
				published, n = next, n+1
			}
		}
		return n
	}
	wavering := []time.Duration{1100 * ms, 1900 * ms, 1200 * ms, 900 * ms, 1600 * ms, 1999 * ms, 600 * ms, 1700 * ms}
	if n := changes(wavering); n != 1 {
		t.Fatalf("a lag wavering between 0.6 s and 2 s changed the published lag %d times, want once (to 2s)", n)
	}
	const peak = 64 * time.Second
	var excursion []time.Duration
	for d := time.Duration(0); d <= peak; d += 100 * ms {
		excursion = append(excursion, d)
	}
	for d := peak; d >= 0; d -= 100 * ms {
		excursion = append(excursion, d)
	}
	if n, bound := changes(excursion), 2*8+2; n > bound { // log2(64s/250ms) = 8
		t.Fatalf("an excursion to %s changed the published lag %d times, want at most %d", peak, n, bound)
	}
}

func TestStepProgress(t *testing.T) {
	lag := func(d time.Duration) Progress { return Progress{LagMS: d.Milliseconds()} }
	unknown := Progress{Unknown: true}
	for _, tc := range []struct {
		name             string
		stored, reported map[string]Progress
		want             map[string]Progress
	}{
		{"no progress source", nil, nil, nil},
		{"source gone", map[string]Progress{"eu": lag(0)}, nil, nil},
		{"empty stays empty", nil, map[string]Progress{}, map[string]Progress{}},
		{"first report is rounded up", nil, map[string]Progress{"eu": lag(300 * ms)}, map[string]Progress{"eu": lag(500 * ms)}},
		{"steady lag holds", map[string]Progress{"eu": lag(2 * time.Second)}, map[string]Progress{"eu": lag(1200 * ms)}, map[string]Progress{"eu": lag(2 * time.Second)}},
		{"growing lag at once", map[string]Progress{"eu": lag(2 * time.Second)}, map[string]Progress{"eu": lag(2001 * ms)}, map[string]Progress{"eu": lag(4 * time.Second)}},
		{"caught up again", map[string]Progress{"eu": lag(2 * time.Second)}, map[string]Progress{"eu": lag(0)}, map[string]Progress{"eu": lag(0)}},
		{"unknown at once", map[string]Progress{"eu": lag(0)}, map[string]Progress{"eu": unknown}, map[string]Progress{"eu": unknown}},
		{"unknown drops a lag", nil, map[string]Progress{"eu": {LagMS: 5, Unknown: true}}, map[string]Progress{"eu": unknown}},
		{"known again is rounded up", map[string]Progress{"eu": unknown}, map[string]Progress{"eu": lag(100 * ms)}, map[string]Progress{"eu": lag(250 * ms)}},
		{"new origin beside an old one", map[string]Progress{"eu": lag(time.Second)},
			map[string]Progress{"eu": lag(600 * ms), "us": lag(3 * time.Second)},
			map[string]Progress{"eu": lag(time.Second), "us": lag(4 * time.Second)}},
		{"origin dropped", map[string]Progress{"eu": lag(0), "us": lag(0)}, map[string]Progress{"eu": lag(0)}, map[string]Progress{"eu": lag(0)}},
		{"huge lag is the largest", nil, map[string]Progress{"eu": lag(30 * time.Hour)}, map[string]Progress{"eu": lag(MaxLag)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored, reported := maps.Clone(tc.stored), maps.Clone(tc.reported)
			got := StepProgress(tc.stored, tc.reported)
			if !SameProgress(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("StepProgress(%v, %v) = %v, want %v", tc.stored, tc.reported, got, tc.want)
			}
			if !maps.Equal(stored, tc.stored) || !maps.Equal(reported, tc.reported) {
				t.Fatalf("StepProgress changed its arguments")
			}
		})
	}
}

func TestValidateProgress(t *testing.T) {
	many := map[string]Progress{}
	for i := range MaxOrigins + 1 {
		many[fmt.Sprintf("o%d", i)] = Progress{}
	}
	for _, tc := range []struct {
		name  string
		srv   Server
		field string // "" means valid
	}{
		{"none", Server{}, ""},
		{"origin only", Server{Origin: "eu-west"}, ""},
		{"lags", Server{Origin: "eu", Progress: map[string]Progress{"eu": {LagMS: 0}, "us": {LagMS: MaxLag.Milliseconds()}, "ap": {Unknown: true}}}, ""},
		{"as many origins as allowed", Server{Progress: func() map[string]Progress { m := maps.Clone(many); delete(m, "o0"); return m }()}, ""},
		{"origin with a slash", Server{Origin: "eu/west"}, "origin"},
		{"origin of dots", Server{Origin: ".."}, "origin"},
		{"too many origins", Server{Progress: many}, "progress"},
		{"empty origin name", Server{Progress: map[string]Progress{"": {}}}, "progress"},
		{"origin name with a space", Server{Progress: map[string]Progress{"e u": {}}}, "progress"},
		{"negative lag", Server{Progress: map[string]Progress{"eu": {LagMS: -1}}}, "progress"},
		{"lag over a day", Server{Progress: map[string]Progress{"eu": {LagMS: MaxLag.Milliseconds() + 1}}}, "progress"},
		{"unknown with a lag", Server{Progress: map[string]Progress{"eu": {LagMS: 1, Unknown: true}}}, "progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateProgress(tc.srv)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateProgress: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("ValidateProgress = %v, want an error naming %q", err, tc.field)
			}
		})
	}
}

func TestServerSame(t *testing.T) {
	base := Server{ID: "eu-1", Region: "eu", URL: "http://h", Load: 0.5, Capacity: 10, Limit: 0.9,
		Origin: "eu", Progress: map[string]Progress{"us": {LagMS: 500}}}
	for _, tc := range []struct {
		name string
		edit func(*Server)
		same bool
	}{
		{"itself", func(*Server) {}, true},
		{"a copy of the map", func(s *Server) { s.Progress = map[string]Progress{"us": {LagMS: 500}} }, true},
		{"id", func(s *Server) { s.ID = "eu-2" }, false},
		{"region", func(s *Server) { s.Region = "us" }, false},
		{"url", func(s *Server) { s.URL = "http://g" }, false},
		{"load", func(s *Server) { s.Load = 0.51 }, false},
		{"draining", func(s *Server) { s.Draining = true }, false},
		{"capacity", func(s *Server) { s.Capacity = 11 }, false},
		{"limit", func(s *Server) { s.Limit = 0.8 }, false},
		{"origin", func(s *Server) { s.Origin = "us" }, false},
		{"no origin", func(s *Server) { s.Origin = "" }, false},
		{"lag", func(s *Server) { s.Progress = map[string]Progress{"us": {LagMS: 1000}} }, false},
		{"unknown", func(s *Server) { s.Progress = map[string]Progress{"us": {Unknown: true}} }, false},
		{"another origin", func(s *Server) { s.Progress = map[string]Progress{"ap": {LagMS: 500}} }, false},
		{"one more origin", func(s *Server) { s.Progress = map[string]Progress{"us": {LagMS: 500}, "ap": {}} }, false},
		{"no progress", func(s *Server) { s.Progress = nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.Progress = maps.Clone(base.Progress)
			tc.edit(&o)
			if got := base.Same(o); got != tc.same {
				t.Fatalf("Same = %v, want %v", got, tc.same)
			}
			if got := o.Same(base); got != tc.same {
				t.Fatalf("Same is not symmetric")
			}
		})
	}
	// nil and empty progress say the same: neither is in the record's JSON.
	a, b := Server{ID: "a"}, Server{ID: "a", Progress: map[string]Progress{}}
	if !a.Same(b) {
		t.Fatal("nil and empty progress differ")
	}
}

// A record's progress reads as caught up only when it says so: a null, an
// empty object or a fractional lag is a bad record, not lag 0.
func TestDecodeServerProgress(t *testing.T) {
	const sp = "/sessionpin/servers/"
	rec := func(extra string) string {
		return `{"id":"eu-1","region":"eu","url":"http://h","load":0.3` + extra + `}`
	}
	for _, tc := range []struct {
		name    string
		value   string
		want    map[string]Progress
		origin  string
		wantErr string
	}{
		{"none", rec(""), nil, "", ""},
		{"origin and lags", rec(`,"origin":"eu","progress":{"eu":{"lag_ms":0},"us":{"lag_ms":2000},"ap":{"unknown":true}}`),
			map[string]Progress{"eu": {}, "us": {LagMS: 2000}, "ap": {Unknown: true}}, "eu", ""},
		{"unknown with a zero lag", rec(`,"progress":{"us":{"lag_ms":0,"unknown":true}}`), map[string]Progress{"us": {Unknown: true}}, "", ""},
		{"not unknown", rec(`,"progress":{"us":{"lag_ms":7,"unknown":false}}`), map[string]Progress{"us": {LagMS: 7}}, "", ""},
		{"later fields ignored", rec(`,"progress":{"us":{"lag_ms":7,"lsn":"0/1"}}`), map[string]Progress{"us": {LagMS: 7}}, "", ""},
		{"null progress", rec(`,"progress":null`), nil, "", ""},
		{"null entry", rec(`,"progress":{"us":null}`), nil, "", "invalid progress"},
		{"empty entry", rec(`,"progress":{"us":{}}`), nil, "", "invalid progress"},
		{"not unknown without a lag", rec(`,"progress":{"us":{"unknown":false}}`), nil, "", "invalid progress"},
		{"fractional lag", rec(`,"progress":{"us":{"lag_ms":1.5}}`), nil, "", "invalid progress"},
		{"lag as a string", rec(`,"progress":{"us":{"lag_ms":"5"}}`), nil, "", "invalid progress"},
		{"entry as a number", rec(`,"progress":{"us":5}`), nil, "", "invalid progress"},
		{"progress as a list", rec(`,"progress":[]`), nil, "", "decode value"},
		{"negative lag", rec(`,"progress":{"us":{"lag_ms":-1}}`), nil, "", "invalid progress"},
		{"unknown with a lag", rec(`,"progress":{"us":{"lag_ms":5,"unknown":true}}`), nil, "", "invalid progress"},
		{"bad origin", rec(`,"origin":"eu west"`), nil, "", "invalid origin"},
		{"bad origin in progress", rec(`,"progress":{"e/u":{"lag_ms":0}}`), nil, "", "invalid progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := DecodeServer(sp, []byte(sp+"eu-1"), []byte(tc.value))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeServer = %+v, %v; want an error containing %q", srv, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !SameProgress(srv.Progress, tc.want) || srv.Origin != tc.origin {
				t.Fatalf("decoded origin %q progress %v, want %q %v", srv.Origin, srv.Progress, tc.origin, tc.want)
			}
		})
	}
}
