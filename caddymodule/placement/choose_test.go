package placement

import (
	"math"
	"testing"
)

// shares draws n clients with consecutive rnd and returns each index's share
// of them (the key -1 for none).
func shares(c []Candidate, h float64, n int) map[int]float64 {
	counts := map[int]int{}
	for rnd := range uint64(n) {
		counts[Choose(c, h, rnd)]++
	}
	out := map[int]float64{}
	for i, k := range counts {
		out[i] = float64(k) / float64(n)
	}
	return out
}

// near reports whether got is within tol of want.
func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestChooseNone(t *testing.T) {
	tests := []struct {
		name string
		c    []Candidate
	}{
		{"no servers", nil},
		{"every server at its limit", []Candidate{
			{Load: 0.9, Limit: 0.9},
			{Load: 0.5, Capacity: 100, Limit: 0.9, Placed: 40},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for rnd := range uint64(16) {
				if got := Choose(tt.c, 0.1, rnd); got != -1 {
					t.Fatalf("Choose = %d, want -1", got)
				}
			}
		})
	}
}

// Each rule of Choose, by the shares of new clients it gives: drawn over
// 10,000 consecutive rnd, which the draw spreads evenly.
func TestChooseShares(t *testing.T) {
	tests := []struct {
		name string
		c    []Candidate
		h    float64
		want map[int]float64
	}{
		{"no capacity anywhere: uniform over the band, as before",
			[]Candidate{{Load: 0.1}, {Load: 0.15}, {Load: 0.2}, {Load: 0.35}}, 0.1,
			map[int]float64{0: 1.0 / 3, 1: 1.0 / 3, 2: 1.0 / 3}},
		{"no capacity or limit: the band takes every client, even under half of the servers",
			[]Candidate{{Load: 0}, {Load: 0.5}, {Load: 0.5}}, 0.1,
			map[int]float64{0: 1}},
		{"no capacity: the band ignores the edge's placements",
			[]Candidate{{Load: 0.1, Placed: 1000}, {Load: 0.15}}, 0.1,
			map[int]float64{0: 0.5, 1: 0.5}},
		{"capacity is a weight: twice the size, twice the clients",
			[]Candidate{{Load: 0.5, Capacity: 1000}, {Load: 0.5, Capacity: 2000}, {Load: 0.5, Capacity: 1000}}, 0.1,
			map[int]float64{0: 0.25, 1: 0.5, 2: 0.25}},
		{"within the band loads do not matter, only weights",
			[]Candidate{{Load: 0.40, Capacity: 1000}, {Load: 0.45, Capacity: 3000}, {Load: 0.48, Capacity: 1000}}, 0.1,
			map[int]float64{0: 0.2, 1: 0.6, 2: 0.2}},
		{"the edge's placements move a server out of the band",
			// 0.40 + 160/1000 = 0.56 > 0.45 + 0.1.
			[]Candidate{{Load: 0.40, Capacity: 1000, Placed: 160}, {Load: 0.45, Capacity: 1000}, {Load: 0.5, Capacity: 1000}}, 0.1,
			map[int]float64{1: 0.5, 2: 0.5}},
		{"a server at its limit takes nothing, even least loaded",
			[]Candidate{{Load: 0.2, Capacity: 1000, Limit: 0.2}, {Load: 0.5, Capacity: 1000}, {Load: 0.55, Capacity: 1000}}, 0.1,
			map[int]float64{1: 0.5, 2: 0.5}},
		{"a limit without capacity is on the reported load",
			[]Candidate{{Load: 0.5, Limit: 0.5}, {Load: 0.52}, {Load: 0.55}}, 0.1,
			map[int]float64{1: 0.5, 2: 0.5}},
		{"a server without capacity weighs as the mean declared one",
			[]Candidate{{Load: 0.5, Capacity: 1000}, {Load: 0.5, Capacity: 3000}, {Load: 0.5}}, 0.1,
			map[int]float64{0: 1.0 / 6, 1: 0.5, 2: 1.0 / 3}},
		{"a limit alone: weights of 1",
			[]Candidate{{Load: 0.5, Limit: 0.9}, {Load: 0.5}}, 0.1,
			map[int]float64{0: 0.5, 1: 0.5}},
		{"slow start: ramp times an established server's share",
			// Weights 1000*0.1 and 1000: 100/1100 and 1000/1100.
			[]Candidate{{Load: 0.5, Capacity: 1000, Ramp: 0.1}, {Load: 0.5, Capacity: 1000}}, 0.1,
			map[int]float64{0: 1.0 / 11, 1: 10.0 / 11}},
		{"slow start, far below the others: no more than its ramped share",
			// The ramping server is below the band's floor, which only
			// established servers set, so all three are in the band.
			[]Candidate{{Load: 0, Capacity: 1000, Ramp: 0.1}, {Load: 0.5, Capacity: 1000}, {Load: 0.5, Capacity: 1000}}, 0.1,
			map[int]float64{0: 100.0 / 2100, 1: 1000.0 / 2100, 2: 1000.0 / 2100}},
		{"slow start above the band: nothing from the band, its share of the rest",
			// Band {1,2} weighs 2000 of 2100: share 1.
			[]Candidate{{Load: 0.5, Capacity: 1000}, {Load: 0.5, Capacity: 1000}, {Load: 0.9, Capacity: 1000, Ramp: 0.1}}, 0.1,
			map[int]float64{0: 0.5, 1: 0.5}},
		{"everything in slow start: ramps ignored, the band is around the least of all",
			[]Candidate{{Load: 0, Capacity: 1000, Ramp: 0.2}, {Load: 0.05, Capacity: 3000, Ramp: 0.6}, {Load: 0.5, Capacity: 1000, Ramp: 0.2}}, 0.1,
			map[int]float64{0: 0.25, 1: 0.75}},
		{"everything in slow start without capacities: today's rule",
			[]Candidate{{Load: 0, Ramp: 0.2}, {Load: 0.05, Ramp: 0.6}, {Load: 0.5, Ramp: 0.2}}, 0.1,
			map[int]float64{0: 0.5, 1: 0.5}},
		{"one server far below: twice its share from the band, and its share of the rest",
			// Band {0} weighs 1000 of 10,000: it takes 0.2, and the other
			// 0.8 is drawn by weight from all: 0.08 more for it.
			[]Candidate{{Load: 0, Capacity: 1000}, {Load: 0.5, Capacity: 3000}, {Load: 0.5, Capacity: 3000}, {Load: 0.5, Capacity: 3000}}, 0.1,
			map[int]float64{0: 0.28, 1: 0.24, 2: 0.24, 3: 0.24}},
		{"a band of half the weight or more takes every client",
			[]Candidate{{Load: 0, Capacity: 1000}, {Load: 0.5, Capacity: 1000}}, 0.1,
			map[int]float64{0: 1}},
		{"hysteresis 0: least estimate only (with its boost)",
			[]Candidate{{Load: 0.1, Capacity: 1000}, {Load: 0.1, Capacity: 1000}, {Load: 0.2, Capacity: 1000}, {Load: 0.3, Capacity: 1000}}, 0,
			map[int]float64{0: 0.5, 1: 0.5}},
		{"negative hysteresis is 0",
			[]Candidate{{Load: 0.1, Capacity: 1000}, {Load: 0.1, Capacity: 1000}, {Load: 0.2, Capacity: 1000}, {Load: 0.3, Capacity: 1000}}, -1,
			map[int]float64{0: 0.5, 1: 0.5}},
		{"infinite hysteresis: everyone by weight",
			[]Candidate{{Load: 0.1, Capacity: 1000}, {Load: 5, Capacity: 3000}}, math.Inf(1),
			map[int]float64{0: 0.25, 1: 0.75}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shares(tt.c, tt.h, 10000)
			for i, w := range tt.want {
				if !near(got[i], w, 0.005) {
					t.Fatalf("shares %v, want %v", got, tt.want)
				}
			}
			for i, g := range got {
				if _, ok := tt.want[i]; !ok && g > 0 {
					t.Fatalf("shares %v: %d chosen, want only %v", got, i, tt.want)
				}
			}
		})
	}
}

// plain lets the scan stop past the band; for servers that are plain, the
// choice is the same either way.
func TestChoosePlainStopsEarly(t *testing.T) {
	for _, tt := range []struct {
		name     string
		c        []Candidate
		h        float64
		maxCalls int
	}{
		// Pass 1 reads 0, 1 and stops at 2; pass 2 and the draw read 0, 1.
		{"past the band", []Candidate{{Load: 0.1}, {Load: 0.15}, {Load: 0.3}, {Load: 0.4}}, 0.1, 7},
		// Loads exact in binary: 0.25 + 0.25 is 0.5 exactly, so servers 1
		// and 2 are at the band's edge, and in it. Pass 1 reads 0 to 3 and
		// stops at 3; pass 2 and the draw read 0 to 2.
		{"a server exactly at the band's edge is in the band",
			[]Candidate{{Load: 0.25}, {Load: 0.5}, {Load: 0.5}, {Load: 0.75}}, 0.25, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			at := func(i int) (Candidate, bool) { calls++; return tt.c[i], true }
			for rnd := range uint64(64) {
				calls = 0
				got := choose(len(tt.c), at, tt.h, rnd, true)
				if want := Choose(tt.c, tt.h, rnd); got != want {
					t.Fatalf("rnd %d: plain chose %d, full scan %d", rnd, got, want)
				}
				if calls > tt.maxCalls {
					t.Fatalf("rnd %d: %d reads of %d servers, want the scan to stop past the band", rnd, calls, len(tt.c))
				}
			}
		})
	}
}

// A server that at reports unusable is never chosen, and the band's floor
// follows the least usable one.
func TestChooseSkipsUnusable(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    []Candidate
	}{
		{"plain", []Candidate{{Load: 0}, {Load: 0.3}, {Load: 0.35}, {Load: 0.5}}},
		{"weighted", []Candidate{{Load: 0, Capacity: 10}, {Load: 0.3, Capacity: 10}, {Load: 0.35, Capacity: 10}, {Load: 0.5, Capacity: 10}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			at := func(i int) (Candidate, bool) { return tt.c[i], i != 0 }
			seen := map[int]bool{}
			for rnd := range uint64(1000) {
				seen[choose(len(tt.c), at, 0.1, rnd, false)] = true
			}
			if len(seen) != 2 || !seen[1] || !seen[2] {
				t.Fatalf("chosen %v, want exactly 1 and 2", seen)
			}
		})
	}
}

// at reads live state (reachability), which can change between passes: a
// server that was usable a moment ago is chosen rather than none, the least
// loaded of pass 1 (the first of equals).
func TestChooseStateChangesBetweenPasses(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    []Candidate
	}{
		{"plain", []Candidate{{Load: 0.1}, {Load: 0.15}}},
		{"weighted", []Candidate{{Load: 0.1, Capacity: 10}, {Load: 0.15, Capacity: 10}}},
		{"plain, equal loads", []Candidate{{Load: 0.1}, {Load: 0.1}}},
		{"weighted, equal loads", []Candidate{{Load: 0.1, Capacity: 10}, {Load: 0.1, Capacity: 10}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for rnd := range uint64(16) {
				calls := 0
				at := func(i int) (Candidate, bool) {
					calls++
					return tt.c[i], calls <= len(tt.c) // usable in pass 1 only
				}
				if got := choose(len(tt.c), at, 0.1, rnd, false); got != 0 {
					t.Fatalf("rnd %d: chose %d, want the least loaded of pass 1", rnd, got)
				}
			}
		})
	}
}

// Any rnd gives an answer, including those whose draw lands at the very end
// of [0, 1).
func TestChooseEveryRandomNumber(t *testing.T) {
	c := []Candidate{{Load: 0.1, Capacity: 1e9}, {Load: 0.1, Capacity: 1}, {Load: 0.9, Capacity: 3}}
	for _, rnd := range []uint64{0, 1, ^uint64(0), 1 << 63, 0x9e3779b97f4a7c15, 0x61c8864680b583eb, 0x61c8864680b583ea} {
		if got := Choose(c, 0.1, rnd); got < 0 || got > 1 {
			t.Fatalf("Choose(rnd=%#x) = %d", rnd, got)
		}
	}
}

// The draw's boundaries, at draws that are exact in binary. rnd 1<<63 draws
// exactly 0.5: the Weyl step multiplies by an odd constant, which leaves
// 2^63 as it is; rnd 0 draws 0. The band takes the draws in [0, share),
// and each server the draws in [start, start+weight) of its part.
func TestChooseDrawBoundaries(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    []Candidate
		rnd  uint64
		want int
	}{
		{"a draw at the start of the first server's part", []Candidate{{Capacity: 1}, {Capacity: 1}}, 0, 0},
		// The band is both (share 1): 0.5 of a total weight of 2 is 1,
		// the end of server 0's part and the start of server 1's.
		{"a draw exactly at a server's end goes to the next", []Candidate{{Capacity: 1}, {Capacity: 1}}, 1 << 63, 1},
		// Server 0's estimate is 0 + 3/3 = 1, above server 1's 0.5 and
		// out of the band; the band weighs 1 of 4: share 0.5.
		{"a draw in the band's share goes to the band",
			[]Candidate{{Capacity: 3, Placed: 3}, {Load: 0.5, Capacity: 1}}, 0, 1},
		{"a draw exactly at the band's share is drawn from all, from the start",
			[]Candidate{{Capacity: 3, Placed: 3}, {Load: 0.5, Capacity: 1}}, 1 << 63, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Choose(tt.c, 0, tt.rnd); got != tt.want {
				t.Fatalf("Choose(rnd=%#x) = %d, want %d", tt.rnd, got, tt.want)
			}
		})
	}
}
