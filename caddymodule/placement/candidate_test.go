package placement

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestCandidateEstimateAndLimit(t *testing.T) {
	tests := []struct {
		name    string
		c       Candidate
		est     float64
		atLimit bool
		special bool
	}{
		{"no capacity: the report alone", Candidate{Load: 0.4, Placed: 500}, 0.4, false, false},
		{"capacity: each placement adds 1/capacity", Candidate{Load: 0.4, Capacity: 1000, Placed: 100}, 0.5, false, true},
		{"nothing placed", Candidate{Load: 0.4, Capacity: 1000}, 0.4, false, true},
		{"limit reached by placements", Candidate{Load: 0.85, Capacity: 1000, Limit: 0.9, Placed: 50}, 0.9, true, true},
		{"limit just not reached", Candidate{Load: 0.85, Capacity: 1000, Limit: 0.9, Placed: 49}, 0.899, false, true},
		{"unseen clients are no part of the estimate", Candidate{Load: 0.4, Capacity: 1000, Placed: 100, Unseen: 50}, 0.5, false, true},
		{"limit reached by the unseen", Candidate{Load: 0.85, Capacity: 1000, Limit: 0.9, Placed: 30, Unseen: 20}, 0.88, true, true},
		{"limit just not reached with the unseen", Candidate{Load: 0.85, Capacity: 1000, Limit: 0.9, Placed: 30, Unseen: 19}, 0.88, false, true},
		{"a negative unseen takes nothing off", Candidate{Load: 0.85, Capacity: 1000, Limit: 0.9, Placed: 50, Unseen: -50}, 0.9, true, true},
		{"no capacity: the unseen do not count either", Candidate{Load: 0.4, Limit: 0.5, Unseen: 1e6}, 0.4, false, true},
		{"the limit is at the report alone too", Candidate{Load: 0.9, Capacity: 1000, Limit: 0.9}, 0.9, true, true},
		{"in slow start", Candidate{Load: 0.1, Ramp: 0.5}, 0.1, false, true},
		{"ramp 1 is established", Candidate{Load: 0.1, Ramp: 1}, 0.1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Estimate(); math.Abs(got-tt.est) > 1e-9 {
				t.Errorf("Estimate() = %v, want %v", got, tt.est)
			}
			if got := tt.c.AtLimit(); got != tt.atLimit {
				t.Errorf("AtLimit() = %v, want %v", got, tt.atLimit)
			}
		})
	}
}

func TestCandidateRampOutOfRangeIsEstablished(t *testing.T) {
	for _, r := range []float64{0, -0.5, 1, 1.5, math.NaN(), math.Inf(1)} {
		if got := (Candidate{Ramp: r}).ramp(); got != 1 {
			t.Errorf("ramp(%v) = %v, want 1", r, got)
		}
	}
	if got := (Candidate{Ramp: 0.25}).ramp(); got != 0.25 {
		t.Errorf("ramp(0.25) = %v", got)
	}
}

func TestSlowStartRamp(t *testing.T) {
	w := 10 * time.Second
	tests := []struct {
		name string
		s    SlowStart
		age  time.Duration
		want float64
	}{
		{"off", SlowStart{}, 0, 1},
		{"off, negative window", SlowStart{Window: -time.Second}, 0, 1},
		{"off, negative age", SlowStart{}, -time.Second, 1},
		{"just joined: the minimum share", SlowStart{Window: w}, 0, DefaultMinShare},
		{"negative age reads as just joined", SlowStart{Window: w}, -time.Hour, DefaultMinShare},
		{"linear by default", SlowStart{Window: w}, 5 * time.Second, 0.5},
		{"below the minimum share", SlowStart{Window: w}, 500 * time.Millisecond, DefaultMinShare},
		{"at the window's end", SlowStart{Window: w}, w, 1},
		{"past the window", SlowStart{Window: w}, time.Hour, 1},
		{"aggression 2: faster at the start", SlowStart{Window: w, Aggression: 2}, 2500 * time.Millisecond, 0.5},
		{"aggression 0.5: slower at the start", SlowStart{Window: w, Aggression: 0.5}, 5 * time.Second, 0.25},
		{"aggression 1 explicitly", SlowStart{Window: w, Aggression: 1}, 5 * time.Second, 0.5},
		{"bad aggression is linear", SlowStart{Window: w, Aggression: -1}, 5 * time.Second, 0.5},
		{"NaN aggression is linear", SlowStart{Window: w, Aggression: math.NaN()}, 5 * time.Second, 0.5},
		{"infinite aggression is linear", SlowStart{Window: w, Aggression: math.Inf(1)}, 5 * time.Second, 0.5},
		{"own minimum share", SlowStart{Window: w, MinShare: 0.3}, 2 * time.Second, 0.3},
		{"minimum share 1: no ramp", SlowStart{Window: w, MinShare: 1}, 0, 1},
		{"minimum share above 1 is the default", SlowStart{Window: w, MinShare: 1.5}, 0, DefaultMinShare},
		{"minimum share 0 is the default", SlowStart{Window: w, MinShare: 0}, 0, DefaultMinShare},
		{"negative minimum share is the default", SlowStart{Window: w, MinShare: -0.2}, 0, DefaultMinShare},
		{"NaN minimum share is the default", SlowStart{Window: w, MinShare: math.NaN()}, 0, DefaultMinShare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Ramp(tt.age); !(math.Abs(got-tt.want) <= 1e-9) { // NaN fails too
				t.Fatalf("Ramp(%v) = %v, want %v", tt.age, got, tt.want)
			}
		})
	}
}

func TestTally(t *testing.T) {
	var x Tally
	at := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	steps := []struct {
		add      int
		at       float64
		from     float64
		want     uint64
		whyWrong string
	}{
		{0, 0, 0, 0, "an empty tally counts nothing"},
		{2, 0.1, 0, 2, "placements of the current slot count"},
		{3, 0.3, 0, 5, "and those of the slots since from"},
		{0, 0.3, 0.25, 3, "from's slot and after only"},
		{0, 0.3, 0.4, 3, "from anywhere in a slot counts the whole slot"},
		{0, 0.3, 0.6, 0, "from a slot after now's counts nothing"},
		{1, 6.9, 0, 6, "the whole ring still counts"},
		{0, 7.0, 0, 4, "slot 0 fell out of the ring: never count further back than it keeps"},
		{0, 7.0, -5, 4, "a time before the origin is slot 0"},
		{4, 7.1, 6.5, 5, "a slot reused by a later number counts only the new number"},
		{0, 30, 0, 0, "after a long idle nothing counts"},
		{1, 30, 30, 1, "and new placements start afresh"},
	}
	for _, s := range steps {
		for range s.add {
			x.Add(at(s.at))
		}
		if got := x.Count(at(s.from), at(s.at)); got != s.want {
			t.Fatalf("at %vs from %vs: Count = %d, want %d (%s)", s.at, s.from, got, s.want, s.whyWrong)
		}
	}
}

func TestTallySaturates(t *testing.T) {
	var x Tally
	x.slots[0].Store(1<<32 - 1) // slot 0, full
	x.Add(0)
	if got := x.Count(0, 0); got != 1<<32-1 {
		t.Fatalf("Count = %d, want it to stay at the maximum", got)
	}
}

// A placement counted at a time the ring has moved past (a caller stalled
// for longer than the ring keeps) is dropped, not let wipe the newer slot
// that lives where its own would.
func TestTallyStaleAddKeepsNewerSlot(t *testing.T) {
	var x Tally
	newer := tallySlots * TallySlot // the slot after the ring's first lap
	x.Add(newer)
	x.Add(newer)
	x.Add(0) // the same word, a lap older
	if got := x.Count(newer, newer); got != 2 {
		t.Fatalf("Count = %d, want the newer slot's 2", got)
	}
}

// Concurrent placements are all counted: Add never loses one to a race.
func TestTallyConcurrent(t *testing.T) {
	var x Tally
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				x.Add(time.Duration(g+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if got := x.Count(0, time.Millisecond); got != 8000 {
		t.Fatalf("Count = %d, want 8000", got)
	}
}
