// Package placement decides which server a client is pinned to: placement of
// new clients, the server /closestToMe answers, and rebalancing at refresh.
// Everything here is a pure function of an immutable registry snapshot, the
// deciding edge and the request's inputs: no I/O, no locks and no
// allocation, so the edge can call it on every request and the rules can be
// table-tested.
package placement

import (
	"math"

	"github.com/sessionpin/sessionpin/discoverysvc/watch"
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
	Reachable func(*watch.Entry) bool
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
func (e *Edge) Place(snap *watch.Snapshot, rnd uint64) *watch.Entry {
	return e.placeIn(snap, e.Region, rnd)
}

// placeIn is Place starting from region rather than the edge's own: the
// least-loaded usable server of region, else of the edge's fallback regions
// in order, else anywhere.
func (e *Edge) placeIn(snap *watch.Snapshot, region string, rnd uint64) *watch.Entry {
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

func (e *Edge) pickRegion(snap *watch.Snapshot, region string, rnd uint64) *watch.Entry {
	if r := snap.Region(region); r != nil {
		return e.pick(r.Active, rnd)
	}
	return nil
}

// closest returns the server a refresh takes as C: the server closestID
// names when it is alive and reachable (draining or not), otherwise the
// server placement would choose (which is what /closestToMe answers). nil
// means no server is available.
func (e *Edge) closest(snap *watch.Snapshot, closestID string, rnd uint64) *watch.Entry {
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

func (e *Edge) reachable(s *watch.Entry) bool {
	return e.Reachable == nil || e.Reachable(s)
}

// pick chooses among the reachable servers of active (sorted least loaded
// first) whose load is within hysteresis of the least reachable one. It
// returns nil when none is reachable.
func (e *Edge) pick(active []*watch.Entry, rnd uint64) *watch.Entry {
	first := 0
	for first < len(active) && !e.reachable(active[first]) {
		first++
	}
	if first == len(active) {
		return nil
	}
	limit := active[first].Load + clampHysteresis(e.Hysteresis)
	// Binary search for the first server above the limit; loads are sorted,
	// so this is O(log n) even at 10,000 servers.
	// Mutation testing: first-1 here is an equivalent mutant; the search
	// only starts lower, among servers already known to be within limit.
	lo, hi := first+1, len(active)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if active[mid].Load <= limit {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	candidates := active[first:lo]
	n := uint64(len(candidates))
	if s := candidates[rnd%n]; e.reachable(s) {
		return s
	}
	// Some candidates cannot be reached: choose among those that can. The
	// draw uses the part of rnd the first draw did not, so that it is as
	// even as the first.
	k := uint64(0)
	for _, s := range candidates {
		if e.reachable(s) {
			k++
		}
	}
	if k == 0 {
		// Reachable reads live state, which may change between calls:
		// candidates[0] was reachable a moment ago.
		return candidates[0]
	}
	k = (rnd / n) % k
	var last *watch.Entry
	for _, s := range candidates {
		if e.reachable(s) {
			if k == 0 {
				return s
			}
			k--
			last = s
		}
	}
	if last == nil {
		return candidates[0]
	}
	return last
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
