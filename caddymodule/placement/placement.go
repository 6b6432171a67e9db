// Package placement decides which server a client is pinned to: placement of
// new clients, the server /closestToMe answers, and rebalancing at refresh.
// Everything here is a pure function of an immutable registry snapshot, the
// deciding edge and the request's inputs: no I/O, no locks and no
// allocation, so the edge can call it on every request and the rules can be
// table-tested.
package placement

import (
	"math"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

// Reasons a pin is issued; they label the pins-issued metric.
const (
	ReasonPlacement   = "placement"
	ReasonRefreshKeep = "refresh_keep"
	ReasonRefreshMove = "refresh_move"
	ReasonFailover    = "failover"
)

// Edge is what a decision needs to know of the edge that makes it. Its
// fields are set once and then only read.
type Edge struct {
	// Region is the edge's own region: new clients go to its servers first.
	Region string
	// Fallback lists, nearest first, the regions whose servers take new
	// clients when Region has none, before the least loaded anywhere.
	Fallback []string
	// Hysteresis: servers whose load is within this of the least are
	// equally good. A negative or NaN value means "least loaded only".
	Hysteresis float64
	// Reachable reports whether this edge may send a client to a server of
	// the snapshot. A server it cannot reach is, for this edge, not alive:
	// never placed, never kept at refresh, never answered as closest.
	// nil means every server of the snapshot is reachable.
	Reachable func(*discoverysvc.Entry) bool
	// Standing returns what this edge knows of a server beyond its record:
	// how many clients it has placed there since the server's last load
	// report, and the server's slow-start ramp (SlowStart.Ramp). nil
	// means none placed and every server established.
	Standing func(*discoverysvc.Entry) (placed uint64, ramp float64)
	// Plain reports that no server of active declares a capacity or a
	// limit and none is in slow start, so that placement among them need
	// not look past the least loaded few. nil means it cannot tell.
	Plain func(active []*discoverysvc.Entry) bool
}

// Place returns the server a new client goes to: the least-loaded alive,
// non-draining server of the edge's region; when the region has none, of
// the first fallback region that has one; else the least loaded anywhere;
// nil when there is none at all.
//
// Servers whose load is within hysteresis of the least are equally good, and
// one of them is chosen with rnd, so that a burst of new clients spreads out
// instead of piling onto one server until its next heartbeat lowers its rank.
// rnd is any random number; the caller supplies it so that the decision stays
// a pure function.
func (e *Edge) Place(snap *discoverysvc.Snapshot, rnd uint64) *discoverysvc.Entry {
	return e.placeIn(snap, e.Region, rnd)
}

// placeIn is Place starting from region rather than the edge's own: the
// least-loaded usable server of region, else of the edge's fallback regions
// in order, else anywhere.
func (e *Edge) placeIn(snap *discoverysvc.Snapshot, region string, rnd uint64) *discoverysvc.Entry {
	if snap == nil {
		return nil
	}
	if s := e.pickRegion(snap, region, rnd); s != nil {
		return s
	}
	for _, fb := range e.Fallback {
		if fb == region {
			continue
		}
		if s := e.pickRegion(snap, fb, rnd); s != nil {
			return s
		}
	}
	return e.pick(snap.Active(), rnd)
}

func (e *Edge) pickRegion(snap *discoverysvc.Snapshot, region string, rnd uint64) *discoverysvc.Entry {
	if r := snap.Region(region); r != nil {
		return e.pick(r.Active, rnd)
	}
	return nil
}

// closest returns the server a refresh takes as C: the server closestID
// names when it is alive and reachable (draining or not), otherwise the
// server placement would choose (which is what /closestToMe answers). nil
// means no server is available.
func (e *Edge) closest(snap *discoverysvc.Snapshot, closestID string, rnd uint64) *discoverysvc.Entry {
	if snap == nil {
		return nil
	}
	if closestID != "" {
		if s := snap.Server(closestID); s != nil && e.reachable(s) {
			return s
		}
	}
	return e.Place(snap, rnd)
}

func (e *Edge) reachable(s *discoverysvc.Entry) bool {
	return e.Reachable == nil || e.Reachable(s)
}

// pick chooses among the reachable servers of active (sorted least loaded
// first) by the rule Choose describes. It returns nil when none is
// reachable or every reachable one is at its limit.
func (e *Edge) pick(active []*discoverysvc.Entry, rnd uint64) *discoverysvc.Entry {
	i := choose(len(active), func(i int) (Candidate, bool) {
		s := active[i]
		if !e.reachable(s) {
			return Candidate{}, false
		}
		return e.candidate(s), true
	}, e.Hysteresis, rnd, e.Plain != nil && e.Plain(active))
	if i < 0 {
		return nil
	}
	return active[i]
}

// candidate is what placement knows of s at this edge.
func (e *Edge) candidate(s *discoverysvc.Entry) Candidate {
	c := Candidate{Load: s.Load}
	if e.Standing != nil {
		c.Placed, c.Ramp = e.Standing(s)
	}
	return c
}

// clampHysteresis turns a negative or NaN hysteresis into 0, so a bad value
// degrades to "least loaded only" rather than to nonsense comparisons.
func clampHysteresis(h float64) float64 {
	// Mutation testing: h >= 0 is an equivalent mutant; 0 is returned
	// either way.
	if h > 0 && !math.IsInf(h, 1) {
		return h
	}
	if math.IsInf(h, 1) {
		return math.MaxFloat64
	}
	return 0
}
