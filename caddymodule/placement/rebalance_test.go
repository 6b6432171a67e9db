package placement

import (
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

func TestRebalance(t *testing.T) {
	// Loads are spaced by more than the hysteresis (0.1) unless a case is
	// about hysteresis, so every decision below is deterministic.
	fleet := snapshot(
		srv("eu-1", "eu", 0.30, false),
		srv("eu-2", "eu", 0.45, false),
		srv("eu-3", "eu", 0.60, false),
		srv("eu-d", "eu", 0.00, true),
		srv("us-1", "us", 0.10, false),
		srv("us-2", "us", 0.90, false),
		srv("us-d", "us", 0.00, true),
		srv("ap-d", "ap", 0.00, true), // a region that only drains
	)
	const edge = "eu"
	tests := []struct {
		name   string
		snap   *watch.Snapshot
		req    RefreshRequest
		want   string
		reason string
		moved  bool
	}{
		// a. critical keeps a live current, whatever else holds.
		{"a: critical keeps current", fleet, RefreshRequest{Current: "eu-3", Closest: "us-1", Critical: true}, "eu-3", ReasonRefreshKeep, false},
		{"a: critical keeps a draining current", fleet, RefreshRequest{Current: "eu-d", Closest: "eu-1", Critical: true}, "eu-d", ReasonRefreshKeep, false},
		{"a: critical keeps an overloaded current", fleet, RefreshRequest{Current: "us-2", Critical: true}, "us-2", ReasonRefreshKeep, false},

		// b. current dead: move to C whatever the critical flag.
		{"b: dead current moves to closest", fleet, RefreshRequest{Current: "gone", Closest: "us-2"}, "us-2", ReasonFailover, true},
		{"b: dead current moves to closest even when critical", fleet, RefreshRequest{Current: "gone", Closest: "us-2", Critical: true}, "us-2", ReasonFailover, true},
		{"b: dead current, draining closest goes to its region's least", fleet, RefreshRequest{Current: "gone", Closest: "us-d"}, "us-1", ReasonFailover, true},
		{"b: dead current, draining closest, critical", fleet, RefreshRequest{Current: "gone", Closest: "us-d", Critical: true}, "us-1", ReasonFailover, true},
		{"b: dead current, no closest uses the edge's placement", fleet, RefreshRequest{Current: "gone"}, "eu-1", ReasonFailover, true},
		{"b: dead current, unknown closest uses the edge's placement", fleet, RefreshRequest{Current: "gone", Closest: "also-gone"}, "eu-1", ReasonFailover, true},
		{"b: dead current, closest's region only drains: anywhere", fleet, RefreshRequest{Current: "gone", Closest: "ap-d"}, "us-1", ReasonFailover, true},
		{"b: dead current, nothing left", snapshot(srv("x", "eu", 0, true)), RefreshRequest{Current: "gone", Closest: "x"}, "<nil>", ReasonFailover, false},
		{"b: dead current, empty registry", snapshot(), RefreshRequest{Current: "gone", Critical: true}, "<nil>", ReasonFailover, false},

		// c. not critical, C in current's region.
		{"c: same region, current is the least: keep", fleet, RefreshRequest{Current: "eu-1", Closest: "eu-3"}, "eu-1", ReasonRefreshKeep, false},
		{"c: same region, within hysteresis: keep", snapshot(srv("eu-1", "eu", 0.30, false), srv("eu-2", "eu", 0.35, false)), RefreshRequest{Current: "eu-2", Closest: "eu-1"}, "eu-2", ReasonRefreshKeep, false},
		{"c: same region, exactly at hysteresis: keep", snapshot(srv("eu-1", "eu", 0.25, false), srv("eu-2", "eu", 0.35, false)), RefreshRequest{Current: "eu-2", Closest: "eu-1"}, "eu-2", ReasonRefreshKeep, false},
		{"c: same region, beyond hysteresis of the least: move", fleet, RefreshRequest{Current: "eu-2", Closest: "eu-1"}, "eu-1", ReasonRefreshMove, true},
		{"c: same region, beyond hysteresis: move to least", fleet, RefreshRequest{Current: "eu-3", Closest: "eu-3"}, "eu-1", ReasonRefreshMove, true},
		{"c: same region via placement (no closest), beyond hysteresis", fleet, RefreshRequest{Current: "eu-3"}, "eu-1", ReasonRefreshMove, true},
		{"c: same region, current draining: move to least", fleet, RefreshRequest{Current: "eu-d", Closest: "eu-2"}, "eu-1", ReasonRefreshMove, true},
		{"c: same region, closest is the draining current: move", fleet, RefreshRequest{Current: "eu-d", Closest: "eu-d"}, "eu-1", ReasonRefreshMove, true},
		{"c: draining current alone in its region moves anywhere", fleet, RefreshRequest{Current: "ap-d", Closest: "ap-d"}, "us-1", ReasonRefreshMove, true},
		{"c: draining current, nothing else alive: keep", snapshot(srv("x", "eu", 0, true)), RefreshRequest{Current: "x"}, "x", ReasonRefreshKeep, false},
		{"c: draining current, no closest, edge placement nowhere: keep", snapshot(srv("x", "eu", 0, true), srv("y", "eu", 0, true)), RefreshRequest{Current: "x", Closest: "y"}, "x", ReasonRefreshKeep, false},

		// c. not critical, C in another region.
		{"c: other region: move to closest", fleet, RefreshRequest{Current: "eu-1", Closest: "us-2"}, "us-2", ReasonRefreshMove, true},
		{"c: other region even when current is draining", fleet, RefreshRequest{Current: "eu-d", Closest: "us-1"}, "us-1", ReasonRefreshMove, true},
		{"c: other region, draining closest: its region's least", fleet, RefreshRequest{Current: "eu-1", Closest: "us-d"}, "us-1", ReasonRefreshMove, true},
		{"c: other region, draining closest, region only drains: anywhere", fleet, RefreshRequest{Current: "us-2", Closest: "ap-d"}, "us-1", ReasonRefreshMove, true},
		{"c: other region, draining closest, fallback lands on current: keep", snapshot(srv("eu-1", "eu", 0.1, false), srv("ap-d", "ap", 0, true)), RefreshRequest{Current: "eu-1", Closest: "ap-d"}, "eu-1", ReasonRefreshKeep, false},
		{"c: edge placement in another region moves", fleet, RefreshRequest{Current: "us-2"}, "eu-1", ReasonRefreshMove, true},

		// d. no usable pin.
		{"d: no pin is placement", fleet, RefreshRequest{}, "eu-1", ReasonPlacement, false},
		{"d: no pin ignores critical", fleet, RefreshRequest{Critical: true}, "eu-1", ReasonPlacement, false},
		{"d: no pin, no servers", snapshot(), RefreshRequest{Closest: "eu-1"}, "<nil>", ReasonPlacement, false},
		{"d: nil snapshot", nil, RefreshRequest{}, "<nil>", ReasonPlacement, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every rnd must give the same answer: the cases avoid ties
			// within hysteresis for any choice of a least-loaded server.
			for rnd := uint64(0); rnd < 4; rnd++ {
				got := (&Edge{Region: edge, Hysteresis: 0.1}).Rebalance(tt.snap, tt.req, rnd)
				if id(got.Server) != tt.want || got.Reason != tt.reason || got.Moved != tt.moved {
					t.Fatalf("Rebalance(%+v, rnd=%d) = {%s %s moved=%v}, want {%s %s moved=%v}",
						tt.req, rnd, id(got.Server), got.Reason, got.Moved, tt.want, tt.reason, tt.moved)
				}
			}
		})
	}
}

// The failover target among servers within hysteresis is spread with rnd,
// so that a dead server's clients do not stampede onto one server.
func TestRebalanceSpreadsFailover(t *testing.T) {
	snap := snapshot(
		srv("eu-1", "eu", 0.30, false),
		srv("eu-2", "eu", 0.35, false),
		srv("eu-3", "eu", 0.60, false),
		srv("eu-4", "eu", 0.90, false),
	)
	seen := map[string]bool{}
	for rnd := uint64(0); rnd < 16; rnd++ {
		out := (&Edge{Region: "eu", Hysteresis: 0.1}).Rebalance(snap, RefreshRequest{Current: "eu-4"}, rnd)
		if out.Reason != ReasonRefreshMove {
			t.Fatalf("reason %s, want %s", out.Reason, ReasonRefreshMove)
		}
		seen[out.Server.ID] = true
	}
	if !seen["eu-1"] || !seen["eu-2"] || len(seen) != 2 {
		t.Fatalf("moved to %v, want eu-1 and eu-2", seen)
	}
}

// A server the edge cannot reach is, for that edge, not alive: rule b moves
// its clients even when they are in a critical task, and nothing moves or
// stays there.
func TestRebalanceUnreachable(t *testing.T) {
	fleet := snapshot(
		srv("eu-1", "eu", 0.30, false),
		srv("eu-2", "eu", 0.60, false),
		srv("eu-d", "eu", 0.00, true),
		srv("us-1", "us", 0.10, false),
		srv("us-2", "us", 0.50, false),
		srv("ap-1", "ap", 0.20, false),
	)
	tests := []struct {
		name     string
		down     []string
		fallback []string
		req      RefreshRequest
		want     string
		reason   string
		moved    bool
	}{
		{"b: critical on an unreachable current moves", []string{"eu-2"}, nil, RefreshRequest{Current: "eu-2", Critical: true}, "eu-1", ReasonFailover, true},
		{"b: critical on an unreachable draining current moves", []string{"eu-d"}, nil, RefreshRequest{Current: "eu-d", Critical: true}, "eu-1", ReasonFailover, true},
		{"b: unreachable current, unreachable closest: the edge's placement", []string{"eu-2", "us-1"}, nil, RefreshRequest{Current: "eu-2", Closest: "us-1"}, "eu-1", ReasonFailover, true},
		{"b: unreachable current, reachable closest", []string{"eu-2"}, nil, RefreshRequest{Current: "eu-2", Closest: "us-2"}, "us-2", ReasonFailover, true},
		{"b: the edge's region unreachable: first fallback", []string{"eu-1", "eu-2"}, []string{"ap", "us"}, RefreshRequest{Current: "eu-2", Critical: true}, "ap-1", ReasonFailover, true},
		{"b: nothing reachable", []string{"eu-1", "eu-2", "us-1", "us-2", "ap-1"}, nil, RefreshRequest{Current: "eu-2", Critical: true}, "<nil>", ReasonFailover, false},
		{"a: critical on a reachable current keeps it", []string{"eu-1"}, nil, RefreshRequest{Current: "eu-2", Critical: true}, "eu-2", ReasonRefreshKeep, false},
		{"c: the region's unreachable least loaded does not make current overloaded", []string{"eu-1"}, nil, RefreshRequest{Current: "eu-2"}, "eu-2", ReasonRefreshKeep, false},
		{"c: draining current moves to a reachable server of its region", []string{"eu-1"}, nil, RefreshRequest{Current: "eu-d", Closest: "eu-d"}, "eu-2", ReasonRefreshMove, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Edge{Region: "eu", Fallback: tt.fallback, Hysteresis: 0.1, Reachable: unreachable(tt.down...)}
			for rnd := uint64(0); rnd < 4; rnd++ {
				got := e.Rebalance(fleet, tt.req, rnd)
				if id(got.Server) != tt.want || got.Reason != tt.reason || got.Moved != tt.moved {
					t.Fatalf("Rebalance(%+v, rnd=%d) = {%s %s moved=%v}, want {%s %s moved=%v}",
						tt.req, rnd, id(got.Server), got.Reason, got.Moved, tt.want, tt.reason, tt.moved)
				}
			}
		})
	}
}
