package placement

import (
	"fmt"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// srv is a compact way to write a registry record in a table.
func srv(id, region string, load float64, draining bool) schema.Server {
	return schema.Server{ID: id, Region: region, URL: "http://" + id + ".example:80", Load: load, Draining: draining}
}

func snapshot(servers ...schema.Server) *watch.Snapshot {
	return watch.BuildSnapshot(1, servers, nil)
}

func id(e *watch.Entry) string {
	if e == nil {
		return "<nil>"
	}
	return e.ID
}

func TestPlace(t *testing.T) {
	fleet := snapshot(
		srv("eu-1", "eu", 0.5, false),
		srv("eu-2", "eu", 0.2, false),
		srv("eu-3", "eu", 0.0, true), // draining: never placed, even if idle
		srv("us-1", "us", 0.1, false),
		srv("us-2", "us", 0.9, false),
		srv("ap-1", "ap", 0.0, true),
	)
	tests := []struct {
		name   string
		snap   *watch.Snapshot
		region string
		want   string
	}{
		{"least loaded of the region", fleet, "eu", "eu-2"},
		{"other region", fleet, "us", "us-1"},
		{"region with only draining servers falls back anywhere", fleet, "ap", "us-1"},
		{"unknown region falls back anywhere", fleet, "nowhere", "us-1"},
		{"empty region name falls back anywhere", fleet, "", "us-1"},
		{"no servers", snapshot(), "eu", "<nil>"},
		{"only draining servers", snapshot(srv("a", "eu", 0, true), srv("b", "us", 0, true)), "eu", "<nil>"},
		{"nil snapshot", nil, "eu", "<nil>"},
		{"empty snapshot", watch.EmptySnapshot(), "eu", "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for rnd := uint64(0); rnd < 8; rnd++ {
				if got := id((&Edge{Region: tt.region, Hysteresis: 0.05}).Place(tt.snap, rnd)); got != tt.want {
					t.Fatalf("Place(%q, rnd=%d) = %s, want %s", tt.region, rnd, got, tt.want)
				}
			}
		})
	}
}

func TestPlaceSpreadsWithinHysteresis(t *testing.T) {
	snap := snapshot(
		srv("a", "eu", 0.10, false),
		srv("b", "eu", 0.15, false),
		srv("c", "eu", 0.20, false), // exactly at the limit: still a candidate
		srv("d", "eu", 0.21, false), // beyond the limit
		srv("e", "eu", 0.00, true),  // draining
		srv("f", "us", 0.00, false), // other region
	)
	tests := []struct {
		hysteresis float64
		want       []string
	}{
		{0.1, []string{"a", "b", "c"}},
		{0, []string{"a"}},
		{-1, []string{"a"}}, // a bad value degrades to least-loaded only
		{1, []string{"a", "b", "c", "d"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.hysteresis), func(t *testing.T) {
			seen := map[string]bool{}
			for rnd := uint64(0); rnd < 64; rnd++ {
				seen[id((&Edge{Region: "eu", Hysteresis: tt.hysteresis}).Place(snap, rnd))] = true
			}
			if len(seen) != len(tt.want) {
				t.Fatalf("chosen %v, want exactly %v", seen, tt.want)
			}
			for _, w := range tt.want {
				if !seen[w] {
					t.Fatalf("chosen %v, want exactly %v", seen, tt.want)
				}
			}
		})
	}
}

func TestPlaceHugeRandomNumbers(t *testing.T) {
	snap := snapshot(srv("a", "eu", 0, false), srv("b", "eu", 0, false), srv("c", "eu", 0, false))
	for _, rnd := range []uint64{^uint64(0), 1 << 63, 1<<63 + 1} {
		if (&Edge{Region: "eu", Hysteresis: 0.1}).Place(snap, rnd) == nil {
			t.Fatalf("Place(rnd=%d) = nil", rnd)
		}
	}
}

func TestClosest(t *testing.T) {
	snap := snapshot(
		srv("eu-1", "eu", 0.5, false),
		srv("eu-2", "eu", 0.2, false),
		srv("eu-d", "eu", 0.0, true),
		srv("us-1", "us", 0.1, false),
	)
	tests := []struct {
		name, closest, edge, want string
	}{
		{"alive closest wins", "us-1", "eu", "us-1"},
		{"draining closest is still the closest", "eu-d", "us", "eu-d"},
		{"unknown closest falls back to placement", "gone", "eu", "eu-2"},
		{"no closest is placement", "", "eu", "eu-2"},
		{"no closest, edge region empty of servers", "", "ap", "us-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := id((&Edge{Region: tt.edge, Hysteresis: 0.05}).closest(snap, tt.closest, 0)); got != tt.want {
				t.Fatalf("Closest(%q, %q) = %s, want %s", tt.closest, tt.edge, got, tt.want)
			}
		})
	}
	eu := &Edge{Region: "eu", Hysteresis: 0.1}
	if got := eu.closest(snapshot(), "", 0); got != nil {
		t.Fatalf("Closest on empty snapshot = %s, want nil", got.ID)
	}
	if got := eu.closest(nil, "x", 0); got != nil {
		t.Fatalf("Closest on nil snapshot = %s, want nil", got.ID)
	}
}

// Decisions run on every placed request and every refresh; they must not
// allocate.
func TestDecisionsDoNotAllocate(t *testing.T) {
	snap := snapshot(srv("a", "eu", 0.1, false), srv("b", "eu", 0.15, false), srv("c", "us", 0, true))
	req := RefreshRequest{Current: "c", Closest: "a"}
	down := snap.Server("a")
	for _, e := range []*Edge{
		{Region: "eu", Hysteresis: 0.1},
		{Region: "eu", Fallback: []string{"ap", "us"}, Hysteresis: 0.1,
			Reachable: func(s *watch.Entry) bool { return s != down }},
	} {
		n := testing.AllocsPerRun(100, func() {
			e.Place(snap, 7)
			e.closest(snap, "a", 7)
			e.Rebalance(snap, req, 7)
		})
		if n != 0 {
			t.Fatalf("decisions allocate %.1f times", n)
		}
	}
}

// unreachable is an Edge.Reachable for the tables: every server but ids.
func unreachable(ids ...string) func(*watch.Entry) bool {
	down := map[string]bool{}
	for _, id := range ids {
		down[id] = true
	}
	return func(s *watch.Entry) bool { return !down[s.ID] }
}

func TestPlaceFallbackRegions(t *testing.T) {
	fleet := snapshot(
		srv("eu-d", "eu", 0.0, true), // the edge's region only drains
		srv("us-1", "us", 0.7, false),
		srv("us-2", "us", 0.8, false),
		srv("ap-1", "ap", 0.5, false),
		srv("ap-d", "ap", 0.0, true),
		srv("sa-1", "sa", 0.0, false), // least loaded anywhere
		srv("af-d", "af", 0.0, true),
	)
	tests := []struct {
		name     string
		snap     *watch.Snapshot
		region   string
		fallback []string
		down     []string
		want     string
	}{
		{"the edge's region wins over every fallback", fleet, "us", []string{"ap", "sa"}, nil, "us-1"},
		{"empty region: the first fallback, not the least loaded anywhere", fleet, "eu", []string{"us", "ap"}, nil, "us-1"},
		{"order is respected", fleet, "eu", []string{"ap", "us"}, nil, "ap-1"},
		{"a fallback that only drains is skipped", fleet, "eu", []string{"af", "us"}, nil, "us-1"},
		{"an unknown fallback is skipped", fleet, "eu", []string{"nowhere", "ap"}, nil, "ap-1"},
		{"every fallback empty: anywhere", fleet, "eu", []string{"af", "nowhere"}, nil, "sa-1"},
		{"no fallback: anywhere", fleet, "eu", nil, nil, "sa-1"},
		{"unreachable servers of a fallback are skipped", fleet, "eu", []string{"ap", "us"}, []string{"ap-1"}, "us-1"},
		{"within a fallback, an unreachable least loaded gives way", fleet, "eu", []string{"us"}, []string{"us-1"}, "us-2"},
		{"the edge's region unreachable: first fallback", fleet, "us", []string{"ap"}, []string{"us-1", "us-2"}, "ap-1"},
		{"fallbacks unreachable: anywhere reachable", fleet, "eu", []string{"ap", "us"}, []string{"ap-1", "us-1", "us-2"}, "sa-1"},
		{"nothing reachable", fleet, "eu", []string{"ap", "us"}, []string{"ap-1", "us-1", "us-2", "sa-1"}, "<nil>"},
		{"no servers", snapshot(), "eu", []string{"us"}, nil, "<nil>"},
		{"nil snapshot", nil, "eu", []string{"us"}, nil, "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Edge{Region: tt.region, Fallback: tt.fallback, Hysteresis: 0.05, Reachable: unreachable(tt.down...)}
			for rnd := uint64(0); rnd < 8; rnd++ {
				if got := id(e.Place(tt.snap, rnd)); got != tt.want {
					t.Fatalf("Place(rnd=%d) = %s, want %s", rnd, got, tt.want)
				}
				// /closestToMe answers what placement chooses.
				if got := id(e.closest(tt.snap, "", rnd)); got != tt.want {
					t.Fatalf("Closest(rnd=%d) = %s, want %s", rnd, got, tt.want)
				}
			}
		})
	}
}

func TestPlaceSkipsUnreachable(t *testing.T) {
	snap := snapshot(
		srv("a", "eu", 0.10, false),
		srv("b", "eu", 0.15, false),
		srv("c", "eu", 0.20, false),
		srv("d", "eu", 0.26, false),
		srv("e", "eu", 0.40, false),
		srv("f", "us", 0.00, false),
	)
	tests := []struct {
		name string
		down []string
		want []string // chosen over many rnd, exactly
	}{
		{"all reachable", nil, []string{"a", "b", "c"}},
		{"an unreachable candidate is never chosen", []string{"b"}, []string{"a", "c"}},
		{"the least loaded unreachable: the limit follows the least reachable", []string{"a"}, []string{"b", "c"}},
		{"the whole first band unreachable", []string{"a", "b", "c"}, []string{"d"}},
		{"the region unreachable: anywhere", []string{"a", "b", "c", "d", "e"}, []string{"f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Edge{Region: "eu", Hysteresis: 0.1, Reachable: unreachable(tt.down...)}
			seen := map[string]bool{}
			for rnd := uint64(0); rnd < 64; rnd++ {
				seen[id(e.Place(snap, rnd))] = true
			}
			if len(seen) != len(tt.want) {
				t.Fatalf("chosen %v, want exactly %v", seen, tt.want)
			}
			for _, w := range tt.want {
				if !seen[w] {
					t.Fatalf("chosen %v, want exactly %v", seen, tt.want)
				}
			}
		})
	}
}

func TestClosestSkipsUnreachable(t *testing.T) {
	snap := snapshot(srv("eu-1", "eu", 0.5, false), srv("eu-2", "eu", 0.2, false), srv("us-1", "us", 0.1, false))
	e := &Edge{Region: "eu", Hysteresis: 0.05, Reachable: unreachable("us-1", "eu-2")}
	if got := id(e.closest(snap, "us-1", 0)); got != "eu-1" {
		t.Fatalf("Closest(unreachable us-1) = %s, want the edge's placement eu-1", got)
	}
	if got := id(e.closest(snap, "eu-1", 0)); got != "eu-1" {
		t.Fatalf("Closest(eu-1) = %s, want eu-1", got)
	}
}
