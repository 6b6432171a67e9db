package placement

import (
	"fmt"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

// srv is a compact way to write a registry record in a table.
func srv(id, region string, load float64, draining bool) discoverysvc.Server {
	return discoverysvc.Server{ID: id, Region: region, URL: "http://" + id + ".example:80", Load: load, Draining: draining}
}

func snapshot(servers ...discoverysvc.Server) *discoverysvc.Snapshot {
	return discoverysvc.BuildSnapshot(1, servers, nil)
}

func id(e *discoverysvc.Entry) string {
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
		snap   *discoverysvc.Snapshot
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
		{"empty snapshot", discoverysvc.EmptySnapshot(), "eu", "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for rnd := uint64(0); rnd < 8; rnd++ {
				if got := id(Place(tt.snap, tt.region, 0.05, rnd)); got != tt.want {
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
				seen[id(Place(snap, "eu", tt.hysteresis, rnd))] = true
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
		if Place(snap, "eu", 0.1, rnd) == nil {
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
			if got := id(Closest(snap, tt.closest, tt.edge, 0.05, 0)); got != tt.want {
				t.Fatalf("Closest(%q, %q) = %s, want %s", tt.closest, tt.edge, got, tt.want)
			}
		})
	}
	if got := Closest(snapshot(), "", "eu", 0.1, 0); got != nil {
		t.Fatalf("Closest on empty snapshot = %s, want nil", got.ID)
	}
	if got := Closest(nil, "x", "eu", 0.1, 0); got != nil {
		t.Fatalf("Closest on nil snapshot = %s, want nil", got.ID)
	}
}

// Decisions run on every placed request and every refresh; they must not
// allocate.
func TestDecisionsDoNotAllocate(t *testing.T) {
	snap := snapshot(srv("a", "eu", 0.1, false), srv("b", "eu", 0.15, false), srv("c", "us", 0, true))
	req := RefreshRequest{Current: "c", Closest: "a"}
	n := testing.AllocsPerRun(100, func() {
		Place(snap, "eu", 0.1, 7)
		Closest(snap, "a", "eu", 0.1, 7)
		Rebalance(snap, req, "eu", 0.1, 7)
	})
	if n != 0 {
		t.Fatalf("decisions allocate %.1f times", n)
	}
}
