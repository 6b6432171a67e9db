package placement

import (
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// RefreshRequest is what a refresh decision depends on besides the snapshot.
type RefreshRequest struct {
	// Current is the pinned server id; "" when the request has no usable pin.
	Current string
	// Closest is the closestServerId the client sent; "" when it sent none.
	Closest string
	// Critical is the client's criticalTaskInProgress flag.
	Critical bool
}

// Outcome is a refresh decision.
type Outcome struct {
	// Server is where the client goes; nil means no server is available
	// (503 no_server_available).
	Server *watch.Entry
	// Reason labels the pin that will be issued (Reason* constants).
	Reason string
	// Moved reports that Server differs from a non-empty Current.
	Moved bool
}

// Rebalance decides where a refresh goes, with current the pinned server
// and C the closest server (Closest: req.Closest when alive, else the edge's
// placement). A server the edge cannot reach counts as not alive.
//
//	a. current alive and critical: keep current, even when it is draining;
//	b. current not alive: move to C, or to the least-loaded non-draining
//	   server of C's region when C is draining, whatever the critical flag;
//	c. not critical: when C is in current's region, keep current unless it is
//	   draining or its load exceeds the region's least-loaded non-draining
//	   server by more than hysteresis, else move to that server; when C is in
//	   another region, move to C (or its region's least-loaded non-draining
//	   server when C is draining);
//	d. no pin: placement.
//
// Wherever a "least-loaded" server is chosen, servers within hysteresis of
// the least are chosen among with rnd, as Place does, so that the clients of
// a failed or draining server spread out instead of stampeding onto one; a
// region with no such server gives way to the edge's fallback regions, then
// to anywhere. When a move has no non-draining target at all, a live
// current is kept: a draining server is still better than a 503.
func (e *Edge) Rebalance(snap *watch.Snapshot, req RefreshRequest, rnd uint64) Outcome {
	if snap == nil {
		snap = watch.EmptySnapshot()
	}
	// d. no usable pin.
	if req.Current == "" {
		return Outcome{Server: e.Place(snap, rnd), Reason: ReasonPlacement}
	}
	cur := snap.Server(req.Current)
	if cur != nil && !e.reachable(cur) {
		cur = nil
	}
	// a. a critical task in progress on a live server is never interrupted.
	if cur != nil && req.Critical {
		return keep(cur)
	}
	c := e.closest(snap, req.Closest, rnd)
	// b. the pinned server is gone, or this edge cannot reach it: fail over
	// to C.
	if cur == nil {
		target := c
		if c != nil && c.Draining {
			target = e.placeIn(snap, c.Region, rnd)
		}
		return Outcome{Server: target, Reason: ReasonFailover, Moved: target != nil}
	}
	if c == nil {
		return keep(cur)
	}
	// c. not critical, current alive.
	var target *watch.Entry
	if c.Region == cur.Region {
		if !cur.Draining && !e.overloaded(snap, cur) {
			return keep(cur)
		}
		target = e.placeIn(snap, cur.Region, rnd)
	} else {
		target = c
		if c.Draining {
			target = e.placeIn(snap, c.Region, rnd)
		}
	}
	if target == nil || target == cur || target.ID == cur.ID {
		return keep(cur)
	}
	return Outcome{Server: target, Reason: ReasonRefreshMove, Moved: true}
}

func keep(cur *watch.Entry) Outcome {
	return Outcome{Server: cur, Reason: ReasonRefreshKeep}
}

// overloaded reports whether cur's load exceeds the least-loaded reachable
// non-draining server of its region by more than hysteresis. Hysteresis
// keeps clients from flapping between servers whose loads are close.
func (e *Edge) overloaded(snap *watch.Snapshot, cur *watch.Entry) bool {
	r := snap.Region(cur.Region)
	if r == nil {
		return false
	}
	for _, s := range r.Active {
		if e.reachable(s) {
			return cur.Load > s.Load+clampHysteresis(e.Hysteresis)
		}
	}
	return false
}
