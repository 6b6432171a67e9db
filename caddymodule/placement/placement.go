// Package placement decides which server a client is pinned to: placement of
// new clients, the server /closestToMe answers, and rebalancing at refresh.
// Everything here is a pure function of an immutable registry snapshot, the
// deciding edge and the request's inputs: no I/O, no locks and no
// allocation, so the edge can call it on every request and the rules can be
// table-tested.
package placement

import (
	"math"
	"sync"
	"time"

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
	// SlowStart ramps up the servers that have just joined (from their
	// Entry.Joined). The zero value turns it off.
	SlowStart SlowStart
	// Placed returns what this edge knows at now of the clients placed on
	// a server since its last load report (Placements.Since). nil means
	// none.
	Placed func(s *watch.Entry, now time.Time) Recent
	// LimitEdges is how many edges may place new clients on one server
	// between two of its load reports, this one included. Below a
	// server's limit, the edge keeps room for the others: as many
	// clients as it placed there itself since the report, plus one, for
	// each other edge, so that together they stay within the limit. 0 and
	// 1 keep no room beyond what the server's last two reports say the
	// others placed (Recent.Others).
	LimitEdges int
	// Now is the clock of slow start, Placed and CatchUp; nil means
	// time.Now.
	Now func() time.Time
	// CatchUp makes moves data-aware; the zero value turns that off.
	CatchUp CatchUp
}

// Place returns the server a new client goes to: a server of the edge's
// region chosen by the rule Choose describes (least loaded, within
// hysteresis; by capacity, estimated load, limit and slow start where
// servers declare them); when the region has no server that may take the
// client (none is active and reachable, or every one is at its limit), one
// of the first fallback region that has one; else one of all the servers;
// nil when there is none at all.
//
// rnd is any random number; the caller supplies it so that the decision
// stays a pure function of the snapshot, the edge's counts and its clock.
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
	return e.pickAnywhere(snap, rnd)
}

func (e *Edge) pickRegion(snap *watch.Snapshot, region string, rnd uint64) *watch.Entry {
	if r := snap.Region(region); r != nil {
		return e.pick(r.Active, r.Declared, r.Joined, rnd)
	}
	return nil
}

// pickAnywhere picks among every active server of the snapshot.
func (e *Edge) pickAnywhere(snap *watch.Snapshot, rnd uint64) *watch.Entry {
	declared, joined := snap.Declared()
	return e.pick(snap.Active(), declared, joined, rnd)
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
// first) by the rule Choose describes. declared and joined are the list's
// Region.Declared and Region.Joined: when no server declares a capacity or
// a limit and none joined within the slow-start window, the list is placed
// as before capacities existed, looking no further than the band. It
// returns nil when no server is reachable or every reachable one is at its
// limit.
func (e *Edge) pick(active []*watch.Entry, declared bool, joined time.Time, rnd uint64) *watch.Entry {
	var now time.Time // read only when a rule needs it
	if declared || e.ramping(joined, time.Time{}) {
		now = e.now()
	}
	if !declared && !e.ramping(joined, now) {
		return e.pickPlain(active, rnd)
	}
	// choose looks at every server two or three times: work out each
	// candidate once, into a buffer on the stack for a region of up to
	// smallRegion servers, else into one reused across placements.
	// Mutation testing: len(active) < smallRegion is an equivalent
	// mutant; a region of exactly smallRegion fits either buffer.
	var i int
	if len(active) <= smallRegion {
		var small [smallRegion]considered
		i = e.chooseAmong(e.consider(small[:0], active, now), rnd)
	} else {
		buf := candidateBuffers.Get().(*[]considered)
		list := e.consider((*buf)[:0], active, now)
		i = e.chooseAmong(list, rnd)
		*buf = list[:0]
		candidateBuffers.Put(buf)
	}
	if i < 0 {
		return nil
	}
	return active[i]
}

// consider appends to list what placement knows of each server of active
// at now.
func (e *Edge) consider(list []considered, active []*watch.Entry, now time.Time) []considered {
	for _, s := range active {
		if e.reachable(s) {
			list = append(list, considered{e.candidate(s, now), true})
		} else {
			list = append(list, considered{})
		}
	}
	return list
}

// chooseAmong is choose over the servers consider listed.
func (e *Edge) chooseAmong(list []considered, rnd uint64) int {
	return choose(len(list), func(i int) (Candidate, bool) { return list[i].c, list[i].ok }, e.Hysteresis, rnd, false)
}

// considered is one server as pick hands it to choose: whether this edge
// may send it a client, and what placement knows of it.
type considered struct {
	c  Candidate
	ok bool
}

// smallRegion is the most servers a region may have for pick to keep its
// candidates on the stack: a few kilobytes.
const smallRegion = 64

// candidateBuffers hold the candidates of larger regions between
// placements, so that a placement allocates nothing once a buffer has
// grown to the region's size (the race detector drops pooled buffers at
// random, so there it allocates now and then).
var candidateBuffers = sync.Pool{New: func() any { return new([]considered) }}

// pickPlain is pick for servers that declare no capacity or limit and are
// not in slow start: uniform among the reachable servers of active (sorted
// least loaded first) whose load is within hysteresis of the least
// reachable one, found by binary search, so that a plain region costs
// O(log n) a placement. It returns nil when none is reachable.
func (e *Edge) pickPlain(active []*watch.Entry, rnd uint64) *watch.Entry {
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
	lo, hi := first, len(active)
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
	// Should Reachable change during the loop, the last reachable one
	// seen is taken, or candidates[0], reachable a moment ago.
	last := candidates[0]
	for _, s := range candidates {
		if e.reachable(s) {
			if k == 0 {
				return s
			}
			k--
			last = s
		}
	}
	return last
}

// ramping reports whether a server that joined at joined may still be in
// slow start at now; with now zero, whether it may be at all.
func (e *Edge) ramping(joined, now time.Time) bool {
	if joined.IsZero() || e.SlowStart.Window <= 0 {
		return false
	}
	return now.IsZero() || now.Sub(joined) < e.SlowStart.Window
}

func (e *Edge) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// candidate is what placement knows of s at this edge at now.
func (e *Edge) candidate(s *watch.Entry, now time.Time) Candidate {
	c := Candidate{Load: s.Load, Capacity: s.Capacity, Limit: s.Limit, Ramp: 1}
	if e.Placed != nil {
		r := e.Placed(s, now)
		c.Placed, c.Unseen = r.Placed, r.Unseen(e.LimitEdges)
	}
	if !s.Joined.IsZero() {
		c.Ramp = e.SlowStart.Ramp(now.Sub(s.Joined))
	}
	return c
}

// clampHysteresis turns a negative or NaN hysteresis into 0, so a bad value
// degrades to "least loaded only" rather than to nonsense comparisons.
func clampHysteresis(h float64) float64 {
	if math.IsNaN(h) {
		return 0
	}
	return min(max(h, 0), math.MaxFloat64)
}
