package placement

import "testing"

// When some servers of the hysteresis band are unreachable, the draw among
// the rest is exactly even: over every period of rnd, each reachable server
// of the band is chosen equally often, as with the band all reachable. A
// skewed second draw would pile the clients of an unreachable server onto
// one neighbour.
func TestPlaceSpreadsEvenlyAroundUnreachable(t *testing.T) {
	snap := snapshot(
		srv("a", "eu", 0.10, false),
		srv("b", "eu", 0.11, false),
		srv("c", "eu", 0.12, false),
		srv("d", "eu", 0.13, false),
		srv("e", "eu", 0.14, false),
		srv("z", "eu", 0.90, false), // outside the band
	)
	for _, tt := range []struct {
		name string
		down []string
		want []string
	}{
		{"one of five down", []string{"b"}, []string{"a", "c", "d", "e"}},
		{"two of five down", []string{"b", "d"}, []string{"a", "c", "e"}},
		{"the least loaded and another down", []string{"a", "c"}, []string{"b", "d", "e"}},
		// A band of four (b to e) with two reachable: sizes with a common
		// factor, where a draw that reuses the first draw's part of rnd
		// would always land on the same one.
		{"the least loaded and two others down", []string{"a", "c", "d"}, []string{"b", "e"}},
		{"all but one down", []string{"a", "b", "c", "d"}, []string{"e"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &Edge{Region: "eu", Hysteresis: 0.1, Reachable: unreachable(tt.down...)}
			// 3600 is a multiple of every period of the two draws here:
			// the band's size times the reachable servers in it.
			counts := map[string]int{}
			for rnd := range uint64(3600) {
				counts[id(e.Place(snap, rnd))]++
			}
			if len(counts) != len(tt.want) {
				t.Fatalf("chosen %v, want exactly %v", counts, tt.want)
			}
			for _, w := range tt.want {
				if counts[w] != counts[tt.want[0]] {
					t.Fatalf("chosen %v: want each of %v equally often", counts, tt.want)
				}
			}
		})
	}
}
