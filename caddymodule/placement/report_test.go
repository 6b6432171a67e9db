package placement

import (
	"math"
	"testing"
	"time"
)

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// A report's Others: the rise of a server's load, in clients, beyond what
// this edge placed itself in the time the rise could include.
func TestReceivedLearnsWhatOthersPlaced(t *testing.T) {
	type report struct {
		at             float64
		load, capacity float64
	}
	tests := []struct {
		name    string
		first   report
		placed  []float64 // this edge's placements, at these times
		second  report
		others  float64
		gap     time.Duration
		whyWant string
	}{
		{"the rise is all this edge's", report{1, 0.5, 10}, []float64{1.5, 2}, report{4, 0.7, 10}, 0, 3 * time.Second,
			"two placed, two more clients"},
		{"others placed the rest", report{1, 0.5, 10}, []float64{1.5}, report{4, 0.8, 10}, 2, 3 * time.Second,
			"one placed here, three more clients"},
		{"a fall is nobody's placement", report{1, 0.5, 10}, nil, report{4, 0.2, 10}, 0, 3 * time.Second,
			"clients left: no others' placements to expect"},
		{"placements just before the report may not be in it", report{1, 0.5, 10}, []float64{3.8}, report{4, 0.6, 10}, 1, 3 * time.Second,
			"placed 0.2 s before the new report: within ReportDelay, so not taken as part of the rise"},
		{"placements just before the last report are in this one", report{1, 0.5, 10}, []float64{0.5}, report{4, 0.6, 10}, 0, 3 * time.Second,
			"placed 0.5 s before the old report: within its ReportDelay, so in the new one"},
		{"reports too far apart tell nothing", report{1, 0.5, 10}, nil, report{1 + PlacedMaxAge.Seconds() + 0.5, 0.9, 10}, 0, PlacedMaxAge + sec(0.5),
			"the tally no longer holds all of this edge's placements between them"},
		{"reports PlacedMaxAge apart still tell", report{1, 0.5, 10}, nil, report{1 + PlacedMaxAge.Seconds(), 0.9, 10}, 4, PlacedMaxAge,
			"the tally still holds this edge's placements between them"},
		{"a changed capacity tells nothing", report{1, 0.5, 10}, nil, report{4, 0.5, 20}, 0, 0,
			"loads of two capacities do not compare"},
		{"no capacity tells nothing", report{1, 0.5, 0}, nil, report{4, 0.9, 0}, 0, 3 * time.Second,
			"a load without a capacity is no count of clients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Placements
			first := p.Received(tt.first.load, tt.first.capacity, sec(tt.first.at))
			if first.Others != 0 || first.Gap != 0 || first.At != sec(tt.first.at) {
				t.Fatalf("first report = %+v, want nothing learnt", first)
			}
			for _, at := range tt.placed {
				p.Add(sec(at))
			}
			r := p.Received(tt.second.load, tt.second.capacity, sec(tt.second.at))
			if math.Abs(r.Others-tt.others) > 1e-9 || r.Gap != tt.gap {
				t.Fatalf("Others, Gap = %v, %v; want %v, %v (%s)", r.Others, r.Gap, tt.others, tt.gap, tt.whyWant)
			}
		})
	}
}

// A record that leaves the load as it was is not a new report: the report
// before stands, with the placements counted against it.
func TestReceivedSameLoadIsNoNewReport(t *testing.T) {
	var p Placements
	r := p.Received(0.5, 10, sec(1))
	p.Add(sec(2))
	p.Add(sec(3))
	again := p.Received(0.5, 10, sec(4))
	if again != r {
		t.Fatalf("same load again = %+v, want the report before, %+v", again, r)
	}
	if r := p.Since(again, sec(4)); r.Placed != 2 {
		t.Fatalf("placed = %d, want the 2 placed since the report", r.Placed)
	}
	if moved := p.Received(0.6, 10, sec(5)); moved.At != sec(5) {
		t.Fatalf("a moved load is a new report, got %+v", moved)
	}
}

// A report received at the clock's origin still counts as received.
func TestReceivedAtTheOrigin(t *testing.T) {
	var p Placements
	if r := p.Received(0.5, 10, 0); r.At <= 0 {
		t.Fatalf("At = %v, want it marked as received", r.At)
	}
	if r := p.Received(0.5, 10, sec(1)); r.At != 1 {
		t.Fatalf("the same load at the origin is still that report, got %+v", r)
	}
}

func TestSince(t *testing.T) {
	report := Report{Load: 0.5, Capacity: 10, At: sec(10), Others: 4, Gap: 2 * time.Second}
	tests := []struct {
		name    string
		placed  []float64
		now     float64
		want    Recent
		whyWant string
	}{
		{"at the report", []float64{9.5}, 10, Recent{Late: 1},
			"a placement within ReportDelay before the report may be missing from it; the others have placed nothing since"},
		{"before ReportDelay", []float64{8.4}, 10, Recent{}, "a placement older than the report's delay is in the report"},
		{"in the first slot of the delay", []float64{9.0}, 10, Recent{Late: 1}, "ReportDelay before the report, to the slot"},
		{"at the end of the gap", nil, 12, Recent{Others: 4}, "as many as last time, all by now"},
		{"just before the end of the gap", nil, 11.9, Recent{Others: 3.8}, "at the pace of last time"},
		{"halfway through the gap", []float64{9.6, 10.5, 10.7}, 11, Recent{Placed: 2, Late: 1, Others: 2}, "the others place at the pace they did"},
		{"after the gap", nil, 13, Recent{Others: 4}, "never more than they placed between the last two reports"},
		{"once the report is old", []float64{10.5}, 10 + PlacedMaxAge.Seconds(), Recent{Placed: 1},
			"the others' expectation is gone; a placement counts for PlacedMaxAge"},
		{"a placement too old to count", []float64{10.5}, 17.1, Recent{}, "older than PlacedMaxAge by a slot"},
		{"a late placement too old to count", []float64{9.5}, 16.1, Recent{}, "PlacedMaxAge holds for the late ones too"},
		{"before the report arrived", nil, 9, Recent{}, "a time before the report expects nothing of the others"},
		{"at the report's arrival", nil, 10, Recent{}, "nothing of the others yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Placements
			for _, at := range tt.placed {
				p.Add(sec(at))
			}
			got := p.Since(report, sec(tt.now))
			if got.Placed != tt.want.Placed || got.Late != tt.want.Late || math.Abs(got.Others-tt.want.Others) > 1e-9 {
				t.Fatalf("Since = %+v, want %+v (%s)", got, tt.want, tt.whyWant)
			}
		})
	}
}

// Two reports at once leave no gap to spread the others' placements over:
// all of them are expected at once, and none is lost to a division by 0.
func TestExpectedOthersWithoutGap(t *testing.T) {
	r := Report{Load: 0.5, Capacity: 10, At: sec(10), Others: 2}
	for _, now := range []float64{10, 12} {
		if got := r.expectedOthers(sec(now)); got != 2 {
			t.Fatalf("at %vs: expected %v, want 2", now, got)
		}
	}
}
