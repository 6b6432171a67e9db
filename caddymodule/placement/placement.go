// Package placement decides which server a client is pinned to: placement of
// new clients, the server /closestToMe answers, and rebalancing at refresh
// (SPEC §6). Everything here is a pure function of an immutable registry
// snapshot and the request's inputs: no I/O, no locks and no allocation, so
// the edge can call it on every request and the rules can be table-tested.
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

// Place returns the server a new client goes to: the least-loaded alive,
// non-draining server of region; when region has none, the least-loaded
// alive, non-draining server anywhere; nil when there is none at all.
//
// Servers whose load is within hysteresis of the least are equally good, and
// one of them is chosen with rnd, so that a burst of new clients spreads out
// instead of piling onto one server until its next heartbeat lowers its rank.
// rnd is any random number; the caller supplies it so that the decision stays
// a pure function.
func Place(snap *discoverysvc.Snapshot, region string, hysteresis float64, rnd uint64) *discoverysvc.Entry {
	if snap == nil {
		return nil
	}
	if r := snap.Region(region); r != nil && len(r.Active) > 0 {
		return pick(r.Active, hysteresis, rnd)
	}
	return pick(snap.Active(), hysteresis, rnd)
}

// Closest returns the server that /closestToMe answers and that a refresh
// takes as C: the server closestID names when it is alive (draining or not),
// otherwise the edge's own placement for edgeRegion. nil means no server is
// available.
func Closest(snap *discoverysvc.Snapshot, closestID, edgeRegion string, hysteresis float64, rnd uint64) *discoverysvc.Entry {
	if snap == nil {
		return nil
	}
	if closestID != "" {
		if e := snap.Server(closestID); e != nil {
			return e
		}
	}
	return Place(snap, edgeRegion, hysteresis, rnd)
}

// pick chooses among the servers of active (sorted least loaded first) whose
// load is within hysteresis of the least. It returns nil for an empty list.
func pick(active []*discoverysvc.Entry, hysteresis float64, rnd uint64) *discoverysvc.Entry {
	if len(active) == 0 {
		return nil
	}
	limit := active[0].Load + clampHysteresis(hysteresis)
	// Binary search for the first server above the limit; loads are sorted,
	// so this is O(log n) even at 10,000 servers.
	lo, hi := 1, len(active)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if active[mid].Load <= limit {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return active[rnd%uint64(lo)]
}

// clampHysteresis turns a negative or NaN hysteresis into 0, so a bad value
// degrades to "least loaded only" rather than to nonsense comparisons.
func clampHysteresis(h float64) float64 {
	if h > 0 && !math.IsInf(h, 1) {
		return h
	}
	if math.IsInf(h, 1) {
		return math.MaxFloat64
	}
	return 0
}
