package scenario

import (
	"math"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/caddymodule"
	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/lab/stack"
)

// The lab's edges run the root Caddyfile, which sets neither slow_start
// nor hysteresis: the expected shares must use caddymodule's defaults.
func TestEdgeDefaults(t *testing.T) {
	if EdgeSlowStart != caddymodule.DefaultSlowStart {
		t.Errorf("EdgeSlowStart %v, caddymodule's default %v", EdgeSlowStart, caddymodule.DefaultSlowStart)
	}
	if EdgeHysteresis != caddymodule.DefaultHysteresis {
		t.Errorf("EdgeHysteresis %v, caddymodule's default %v", EdgeHysteresis, caddymodule.DefaultHysteresis)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestRampShare(t *testing.T) {
	ss := placement.SlowStart{Window: 15 * time.Second}
	tests := []struct {
		name     string
		age      time.Duration
		capacity float64
		others   []float64
		want     float64
	}{
		{"just back, one peer", 0, 30, []float64{30}, 0.1 / 1.1},
		{"half way", 7500 * time.Millisecond, 30, []float64{30}, 0.5 / 1.5},
		{"window over", 15 * time.Second, 30, []float64{30}, 0.5},
		{"long established", time.Minute, 30, []float64{30}, 0.5},
		{"twice a peer's capacity", time.Minute, 60, []float64{30}, 2.0 / 3},
		{"no capacities weigh alike", time.Minute, 0, []float64{0, 0}, 1.0 / 3},
		{"alone in its region", 0, 30, nil, 1},
		{"a clock step reads as just back", -time.Second, 30, []float64{30}, 0.1 / 1.1},
	}
	for _, tt := range tests {
		if got := RampShare(ss, tt.age, tt.capacity, tt.others); !near(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRuleShare(t *testing.T) {
	tests := []struct {
		name    string
		servers []placement.Candidate
		i       int
		lo, hi  float64
	}{
		// Equal loads and ramps: half each.
		{"two alike", []placement.Candidate{{Load: 0.5, Capacity: 30, Limit: 0.9, Ramp: 1}, {Load: 0.5, Capacity: 30, Limit: 0.9, Ramp: 1}}, 0, 0.45, 0.55},
		// Just back, far below the other: slow start holds it to its
		// ramped weight share, 0.1/1.1.
		{"just back", []placement.Candidate{{Load: 0.8, Capacity: 30, Limit: 0.9, Ramp: 1}, {Load: 0, Capacity: 30, Limit: 0.9, Ramp: 0.1}}, 1, 0.06, 0.12},
		// Established and far below: it takes every new client until
		// it catches up (the band's boost).
		{"established, far below", []placement.Candidate{{Load: 0.8, Capacity: 30, Limit: 0.9, Ramp: 1}, {Load: 0.2, Capacity: 30, Limit: 0.9, Ramp: 1}}, 1, 1, 1},
		// The other at its limit: every new client, ramp or not.
		{"the other at its limit", []placement.Candidate{{Load: 0.95, Capacity: 30, Limit: 0.9, Ramp: 1}, {Load: 0, Capacity: 30, Limit: 0.9, Ramp: 0.1}}, 1, 1, 1},
		// Itself at its limit: none.
		{"at its limit", []placement.Candidate{{Load: 0.2, Capacity: 30, Limit: 0.9, Ramp: 1}, {Load: 0.9, Capacity: 30, Limit: 0.9, Ramp: 1}}, 1, 0, 0},
		// Both at their limit: placement leaves the region, so none.
		{"region full", []placement.Candidate{{Load: 1, Capacity: 30, Limit: 0.9}, {Load: 1, Capacity: 30, Limit: 0.9}}, 0, 0, 0},
		{"not listed", []placement.Candidate{{Load: 0.5}}, -1, 0, 0},
		{"none", nil, 0, 0, 0},
	}
	for _, tt := range tests {
		got := RuleShare(tt.servers, tt.i, EdgeHysteresis)
		if got < tt.lo || got > tt.hi {
			t.Errorf("%s: %v, want within [%v, %v]", tt.name, got, tt.lo, tt.hi)
		}
	}
}

func TestRampOf(t *testing.T) {
	start := time.Unix(1000, 0)
	back := start.Add(20 * time.Second)
	at := func(s float64) time.Time { return back.Add(time.Duration(s * float64(time.Second))) }
	arrivals := []Arrival{
		{at(-1), "us-east", "us-east-1"},   // before the return: not counted
		{at(1), "us-east", "us-east-1"},    // bin 0
		{at(2), "us-east", "us-east-2"},    // bin 0
		{at(3), "us-east", "eu-west-1"},    // bin 0, placed in another region
		{at(4), "us-east", ""},             // bin 0, refused: not a placement
		{at(4.5), "eu-west", "us-east-1"},  // another region's newcomer
		{at(5), "us-east", "us-east-1"},    // bin 1 (its start is in it)
		{at(9.99), "us-east", "us-east-1"}, // bin 1
		{at(10), "us-east", "us-east-2"},   // bin 2: past the last bin asked for
	}
	samples := []FleetSample{{At: back.Add(-time.Second), Servers: []stack.ServerState{
		{ID: "us-east-1", Region: "us-east", Load: 0, Capacity: 30, Limit: 0.9},
		{ID: "us-east-2", Region: "us-east", Load: 0.5, Capacity: 30, Limit: 0.9},
		{ID: "eu-west-1", Region: "eu-west", Load: 0.5, Capacity: 30, Limit: 0.9},
	}}}
	returns := map[string][]time.Time{"us-east-1": {start.Add(-time.Hour), back}}
	r := RampOf("us-east-1", back, start, 5*time.Second, 2, arrivals, samples, returns)
	if r.Server != "us-east-1" || r.Region != "us-east" || r.ReturnedAtS != 20 || len(r.Bins) != 2 {
		t.Fatalf("ramp %+v", r)
	}
	b0, b1 := r.Bins[0], r.Bins[1]
	if b0.FromS != 0 || b0.ToS != 5 || b0.Placements != 3 || b0.OnServer != 1 || !near(b0.Share, 1.0/3) {
		t.Errorf("bin 0 %+v", b0)
	}
	if b1.FromS != 5 || b1.ToS != 10 || b1.Placements != 2 || b1.OnServer != 2 || b1.Share != 1 {
		t.Errorf("bin 1 %+v", b1)
	}
	// Slow start's share at 1, 2 and 3 s: ramps 0.1, 2/15, 0.2.
	want0 := (RampShare(edgeSlowStart, time.Second, 30, []float64{30}) + RampShare(edgeSlowStart, 2*time.Second, 30, []float64{30}) +
		RampShare(edgeSlowStart, 3*time.Second, 30, []float64{30})) / 3
	if !near(b0.RampShare, want0) {
		t.Errorf("bin 0 ramp share %v, want %v", b0.RampShare, want0)
	}
	if !(b1.RampShare > b0.RampShare && b1.RampShare < 0.5) {
		t.Errorf("bin 1 ramp share %v: should rise from %v, below 0.5", b1.RampShare, b0.RampShare)
	}
	// Far below its peer and ramping: the rule gives it about its ramp.
	if !(b0.RuleShare > 0.03 && b0.RuleShare < 0.3) {
		t.Errorf("bin 0 rule share %v", b0.RuleShare)
	}
	// A bin without placements takes its expected shares at its middle.
	empty := RampOf("us-east-1", back.Add(time.Hour), start, 5*time.Second, 1, arrivals, samples, returns)
	if b := empty.Bins[0]; b.Placements != 0 || b.Share != 0 || !near(b.RampShare, RampShare(edgeSlowStart, 2500*time.Millisecond, 30, []float64{30})) {
		t.Errorf("empty bin %+v", b)
	}
}

func TestPeak(t *testing.T) {
	start := time.Unix(1000, 0)
	sv := func(id string, load, limit float64) stack.ServerState {
		return stack.ServerState{ID: id, Region: "us-east", Load: load, Limit: limit}
	}
	if Peak(nil, start) != nil {
		t.Error("a peak without samples")
	}
	p := Peak([]FleetSample{
		{At: start.Add(time.Second), Servers: []stack.ServerState{sv("a", 0.3, 0.9), sv("b", 0.6, 0.9)}},
		{At: start.Add(2 * time.Second), Servers: []stack.ServerState{sv("a", 0.9, 0.9), sv("b", 0.5, 0.9)}},
		{At: start.Add(3 * time.Second), Servers: []stack.ServerState{sv("a", 0.8, 0.9), sv("b", 0.5, 0.9)}},
		{At: start.Add(4 * time.Second), Servers: []stack.ServerState{sv("a", 0.4, 0.9)}},
	}, start)
	if p.Server != "a" || p.Load != 0.9 || p.Limit != 0.9 || !near(p.Ratio, 1) || p.AtS != 2 || p.Samples != 4 || p.AtLimitShare != 0.25 {
		t.Errorf("peak %+v", p)
	}
	// No limit: the highest load.
	p = Peak([]FleetSample{{At: start, Servers: []stack.ServerState{sv("a", 0.3, 0), sv("b", 0.7, 0)}}}, start)
	if p.Server != "b" || p.Load != 0.7 || p.Ratio != 0 || p.AtLimitShare != 0 {
		t.Errorf("peak without limits %+v", p)
	}
}

// The edge's own count: the newcomers its region's edge placed on the
// server since the sample in which its load last changed, within
// placedSpan.
func TestPlaced(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	sample := func(s, load float64) FleetSample {
		return FleetSample{At: at(s), Servers: []stack.ServerState{{ID: "us-east-1", Region: "us-east", Load: load}}}
	}
	samples := []FleetSample{sample(0, 0.1), sample(0.5, 0.2), sample(1, 0.2), sample(1.5, 0.2)}
	arrivals := []Arrival{
		{at(0.4), "us-east", "us-east-1"}, // before the report at 0.5
		{at(0.6), "us-east", "us-east-1"},
		{at(1.2), "us-east", "us-east-1"},
		{at(1.3), "us-east", "us-east-2"}, // another server
		{at(1.4), "eu-west", "us-east-1"}, // another edge's placement
		{at(1.7), "us-east", "us-east-1"}, // after t
	}
	tests := []struct {
		k    int
		t    float64
		id   string
		want uint64
	}{
		{3, 1.6, "us-east-1", 2},
		{0, 0.45, "us-east-1", 1},
		{3, 1.6, "us-east-9", 0},
		// Past placedSpan the edge has forgotten the placements.
		{3, 5.5, "us-east-1", 2},
		{3, 10, "us-east-1", 0},
	}
	for _, tt := range tests {
		if got := placed(samples, tt.k, tt.id, "us-east", at(tt.t), arrivals); got != tt.want {
			t.Errorf("sample %d, at %vs, %s: %d, want %d", tt.k, tt.t, tt.id, got, tt.want)
		}
	}
}

func TestOthersAtLimit(t *testing.T) {
	full := placement.Candidate{Load: 0.9, Limit: 0.9}
	free := placement.Candidate{Load: 0.5, Limit: 0.9}
	tests := []struct {
		cs   []placement.Candidate
		i    int
		want bool
	}{
		{[]placement.Candidate{free, full}, 0, true},
		{[]placement.Candidate{free, free}, 0, false},
		{[]placement.Candidate{full, free, full}, 1, true},
		{[]placement.Candidate{full, free, free}, 1, false},
		{[]placement.Candidate{free}, 0, false},                                                  // alone: no other server
		{[]placement.Candidate{{Load: 0.8, Limit: 0.9, Capacity: 10, Placed: 1}, free}, 1, true}, // by the edge's count
	}
	for _, tt := range tests {
		if got := othersAtLimit(tt.cs, tt.i); got != tt.want {
			t.Errorf("%+v without %d: %v, want %v", tt.cs, tt.i, got, tt.want)
		}
	}
}
