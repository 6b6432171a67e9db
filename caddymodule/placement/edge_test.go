package placement

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// sized is a registry record with a capacity and a limit.
func sized(id, region string, load, capacity, limit float64) schema.Server {
	s := srv(id, region, load, false)
	s.Capacity, s.Limit = capacity, limit
	return s
}

// placedCounts is an Edge.Placed over a table of counts by id.
func placedCounts(n map[string]uint64) func(*watch.Entry, time.Time) Recent {
	return func(s *watch.Entry, _ time.Time) Recent { return Recent{Placed: n[s.ID]} }
}

// placeShares places n clients with consecutive rnd and returns each
// server's share.
func placeShares(e *Edge, snap *watch.Snapshot, n int) map[string]float64 {
	out := map[string]float64{}
	for rnd := range uint64(n) {
		out[id(e.Place(snap, rnd))] += 1 / float64(n)
	}
	return out
}

func TestPlaceByCapacityAndLimit(t *testing.T) {
	tests := []struct {
		name     string
		servers  []schema.Server
		placed   map[string]uint64
		fallback []string
		want     map[string]float64
	}{
		{"capacity is a weight",
			[]schema.Server{sized("eu-1", "eu", 0.5, 1000, 0), sized("eu-2", "eu", 0.5, 2000, 0)}, nil, nil,
			map[string]float64{"eu-1": 1.0 / 3, "eu-2": 2.0 / 3}},
		{"the edge's placements count toward the load",
			// eu-1: 0.3 + 300/1000 = 0.6, out of the band above eu-2's 0.4.
			[]schema.Server{sized("eu-1", "eu", 0.3, 1000, 0), sized("eu-2", "eu", 0.4, 1000, 0)},
			map[string]uint64{"eu-1": 300}, nil,
			map[string]float64{"eu-2": 1}},
		{"a server at its limit takes no new client",
			[]schema.Server{sized("eu-1", "eu", 0.1, 1000, 0.5), sized("eu-2", "eu", 0.45, 1000, 0.9)},
			map[string]uint64{"eu-1": 400}, nil,
			map[string]float64{"eu-2": 1}},
		{"every server of the region at its limit: the fallback region",
			[]schema.Server{sized("eu-1", "eu", 0.1, 1000, 0.5), sized("eu-2", "eu", 0.9, 1000, 0.9), sized("us-1", "us", 0.95, 0, 0), sized("ap-1", "ap", 0, 0, 0)},
			map[string]uint64{"eu-1": 400}, []string{"us"},
			map[string]float64{"us-1": 1}},
		{"at its limit by the report alone, without a capacity",
			[]schema.Server{sized("eu-1", "eu", 0.8, 0, 0.8), sized("us-1", "us", 0.95, 0, 0)}, nil, []string{"us"},
			map[string]float64{"us-1": 1}},
		{"one server of the region below its limit keeps the clients in the region",
			[]schema.Server{sized("eu-1", "eu", 0.89, 1000, 0.9), sized("eu-2", "eu", 0.9, 1000, 0.9), sized("us-1", "us", 0, 0, 0)}, nil, []string{"us"},
			map[string]float64{"eu-1": 1}},
		{"every server everywhere at its limit: none",
			[]schema.Server{sized("eu-1", "eu", 0.9, 1000, 0.9), sized("us-1", "us", 0.95, 10, 0.5)}, nil, []string{"us"},
			map[string]float64{"<nil>": 1}},
		{"servers without capacity: as before, uniform within hysteresis",
			[]schema.Server{srv("eu-1", "eu", 0.3, false), srv("eu-2", "eu", 0.35, false), srv("eu-3", "eu", 0.5, false)},
			map[string]uint64{"eu-1": 1e6}, nil,
			map[string]float64{"eu-1": 0.5, "eu-2": 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := snapshot(tt.servers...)
			e := &Edge{Region: "eu", Fallback: tt.fallback, Hysteresis: 0.1, Placed: placedCounts(tt.placed),
				SlowStart: SlowStart{Window: 10 * time.Second}}
			got := placeShares(e, snap, 6000)
			for k, w := range tt.want {
				if !near(got[k], w, 0.005) {
					t.Fatalf("shares %v, want %v", got, tt.want)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("shares %v, want only %v", got, tt.want)
			}
			// /closestToMe answers where placement would go.
			for rnd := range uint64(64) {
				p, c := e.Place(snap, rnd), e.closest(snap, "", rnd)
				if p != c {
					t.Fatalf("rnd %d: placed on %s, closest %s", rnd, id(p), id(c))
				}
			}
		})
	}
}

// The limit counts what the server may hold beyond the estimate: this
// edge's late placements, the others' expected ones, and with LimitEdges
// the room kept for the other edges.
func TestLimitCountsTheUnseen(t *testing.T) {
	// eu-1 holds 2 clients of its limit of 5.
	snap := snapshot(sized("eu-1", "eu", 0.2, 10, 0.5), sized("us-1", "us", 0, 0, 0))
	tests := []struct {
		name   string
		edges  int
		recent Recent
		want   string
	}{
		{"room for this edge's placements", 0, Recent{Placed: 2}, "eu-1"},
		{"the limit reached by them", 0, Recent{Placed: 3}, "us-1"},
		{"a late placement counts", 0, Recent{Placed: 2, Late: 1}, "us-1"},
		{"others' expected placements count", 0, Recent{Placed: 2, Others: 1}, "us-1"},
		{"short of the limit with the others", 0, Recent{Placed: 2, Others: 0.9}, "eu-1"},
		{"one edge keeps no room", 1, Recent{Placed: 2}, "eu-1"},
		{"room for one other edge", 2, Recent{}, "eu-1"},
		{"room for one other edge's two", 2, Recent{Placed: 1}, "us-1"},
		{"room for two other edges", 3, Recent{}, "eu-1"},
		{"two other edges' two each", 3, Recent{Placed: 1}, "us-1"},
		{"late placements in the room too", 3, Recent{Late: 1}, "us-1"},
		{"the others' expected when more than the room", 3, Recent{Others: 3}, "us-1"},
		{"the room or the others' expected, not both", 3, Recent{Others: 1.5}, "eu-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Edge{Region: "eu", Fallback: []string{"us"}, Hysteresis: 0.1, LimitEdges: tt.edges,
				Placed: func(*watch.Entry, time.Time) Recent { return tt.recent }}
			for rnd := range uint64(16) {
				if got := id(e.Place(snap, rnd)); got != tt.want {
					t.Fatalf("placed on %s, want %s", got, tt.want)
				}
			}
		})
	}
}

// A server that joins after the edge's first list is ramped from its
// Entry.Joined; the servers of the first list are established.
func TestPlaceSlowStart(t *testing.T) {
	base := snapshot(sized("eu-1", "eu", 0.5, 1000, 0), sized("eu-2", "eu", 0.5, 1000, 0))
	joiner := sized("eu-3", "eu", 0, 1000, 0)
	snap := base.Apply(2, []watch.Change{{ID: "eu-3", Server: &joiner}})
	joined := snap.Server("eu-3").Joined
	if joined.IsZero() || !snap.Server("eu-1").Joined.IsZero() {
		t.Fatalf("joined %v and %v, want the joiner's set and the listed one's zero", joined, snap.Server("eu-1").Joined)
	}
	for _, tt := range []struct {
		name   string
		window time.Duration
		age    time.Duration
		want   float64 // eu-3's share
	}{
		// Weights 100, 1000, 1000: the joiner takes its ramp (the minimum
		// 0.1) times an established server's share.
		{"just joined", 10 * time.Second, 0, 100.0 / 2100},
		{"half way", 10 * time.Second, 5 * time.Second, 500.0 / 2500},
		// After the window, far below the others, it is the band alone:
		// twice its share of the weight, and its share of the rest.
		{"ramped up", 10 * time.Second, 10 * time.Second, 2.0/3 + 1.0/3*1.0/3},
		{"slow start off", 0, 0, 2.0/3 + 1.0/3*1.0/3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &Edge{Region: "eu", Hysteresis: 0.1, SlowStart: SlowStart{Window: tt.window},
				Now: func() time.Time { return joined.Add(tt.age) }}
			if got := placeShares(e, snap, 6000)["eu-3"]; !near(got, tt.want, 0.005) {
				t.Fatalf("joiner's share %.4f, want %.4f", got, tt.want)
			}
		})
	}
}

// A region of plain servers in which one has just joined is no longer
// plain while it ramps: the joiner does not take every client by being
// the least loaded.
func TestPlaceSlowStartWithoutCapacity(t *testing.T) {
	base := snapshot(srv("eu-1", "eu", 0.5, false), srv("eu-2", "eu", 0.5, false))
	joiner := srv("eu-3", "eu", 0, false)
	snap := base.Apply(2, []watch.Change{{ID: "eu-3", Server: &joiner}})
	joined := snap.Server("eu-3").Joined
	e := &Edge{Region: "eu", Hysteresis: 0.1, SlowStart: SlowStart{Window: 10 * time.Second},
		Now: func() time.Time { return joined }}
	if got := placeShares(e, snap, 6000)["eu-3"]; !near(got, 0.1/2.1, 0.005) {
		t.Fatalf("joiner's share %.4f, want %.4f", got, 0.1/2.1)
	}
	e.Now = func() time.Time { return joined.Add(time.Minute) }
	if got := placeShares(e, snap, 6000)["eu-3"]; !near(got, 1, 1e-9) {
		t.Fatalf("after slow start the plain rule: joiner's share %.4f, want 1 (least loaded alone in the band)", got)
	}
}

// Once a joiner's slow start is over (exactly at the window's end), or
// with slow start off even when the edge's clock is behind the join (a
// clock step), the region is placed exactly as if the joiner had been
// listed from the start: the same server for every rnd, including the
// draws around an unreachable server of the band.
func TestPlaceWithoutSlowStartIsPlain(t *testing.T) {
	eu1, eu2, eu3 := srv("eu-1", "eu", 0.5, false), srv("eu-2", "eu", 0.5, false), srv("eu-3", "eu", 0.5, false)
	listed := snapshot(eu1, eu2, eu3)
	snap := snapshot(eu1, eu2).Apply(2, []watch.Change{{ID: "eu-3", Server: &eu3}})
	joined := snap.Server("eu-3").Joined
	for _, tt := range []struct {
		name   string
		window time.Duration
		age    time.Duration
	}{
		{"at the window's end", 10 * time.Second, 10 * time.Second},
		{"slow start off, the clock behind the join", 0, -time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &Edge{Region: "eu", Hysteresis: 0.1, SlowStart: SlowStart{Window: tt.window},
				Reachable: unreachable("eu-2"), Now: func() time.Time { return joined.Add(tt.age) }}
			for rnd := range uint64(64) {
				if got, want := id(e.Place(snap, rnd)), id(e.Place(listed, rnd)); got != want {
					t.Fatalf("rnd %d: placed on %s, on %s when listed from the start", rnd, got, want)
				}
			}
		})
	}
}

// The choice over the whole fleet (no server in the edge's or fallback
// regions) follows the same rule.
func TestPlaceAnywhereByCapacity(t *testing.T) {
	snap := snapshot(sized("us-1", "us", 0.5, 1000, 0), sized("ap-1", "ap", 0.5, 3000, 0), sized("sa-1", "sa", 0.5, 1000, 0.5))
	e := &Edge{Region: "eu", Hysteresis: 0.1}
	got := placeShares(e, snap, 6000)
	if !near(got["us-1"], 0.25, 0.005) || !near(got["ap-1"], 0.75, 0.005) || got["sa-1"] != 0 {
		t.Fatalf("shares %v, want us-1 0.25, ap-1 0.75, sa-1 (at its limit) none", got)
	}
}

// A region too large for the stack keeps its candidates in a pooled
// buffer: once the buffer has grown, a placement allocates nothing.
func TestLargeRegionWithCapacityDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled buffers at random")
	}
	var servers []schema.Server
	for i := range 2 * smallRegion {
		servers = append(servers, sized(fmt.Sprintf("eu-%d", i), "eu", float64(i%10)/20, 1000, 0.9))
	}
	snap := snapshot(servers...)
	e := &Edge{Region: "eu", Hysteresis: 0.1,
		Placed: func(*watch.Entry, time.Time) Recent { return Recent{Placed: 1} }}
	e.Place(snap, 1) // grows the buffer
	if n := testing.AllocsPerRun(100, func() { e.Place(snap, 7) }); n != 0 {
		t.Fatalf("a placement over %d servers allocates %.1f times", len(servers), n)
	}
}

func TestDecisionsWithCapacityDoNotAllocate(t *testing.T) {
	base := snapshot(sized("a", "eu", 0.1, 1000, 0.9), sized("b", "eu", 0.15, 2000, 0.9), sized("c", "us", 0, 10, 0))
	joiner := sized("d", "eu", 0, 1000, 0)
	snap := base.Apply(2, []watch.Change{{ID: "d", Server: &joiner}})
	e := &Edge{Region: "eu", Hysteresis: 0.1, SlowStart: SlowStart{Window: time.Hour},
		Placed: func(*watch.Entry, time.Time) Recent { return Recent{Placed: 3, Late: 1, Others: 0.5} }, LimitEdges: 3}
	req := RefreshRequest{Current: "c", Closest: "a"}
	if n := testing.AllocsPerRun(100, func() {
		e.Place(snap, 7)
		e.Rebalance(snap, req, 7)
	}); n != 0 {
		t.Fatalf("decisions allocate %.1f times", n)
	}
}
