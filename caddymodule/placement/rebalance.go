package placement

import (
	"time"

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
	// Write is the client's last write as its pin records it; zero when
	// none is known.
	Write Write
	// Confirmed is when the edge's view of the registry (the snapshot) was
	// last confirmed current; zero when it is current. See CatchUp.Fresh.
	Confirmed time.Time
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
	// Held reports that a move was held back because its target did not
	// yet hold the client's last write: the client keeps Current.
	Held bool
	// CatchingUp reports that the pinned server is gone and no server yet
	// holds the client's last write: Server is nil, and the client should
	// come back after Wait (UnknownWait when no server can tell).
	CatchingUp bool
	Wait       time.Duration
	// Unsafe reports a move to a server that may not hold the client's
	// last write, made because the write is older than the catch-up limit.
	Unsafe bool
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
//
// With data-aware moves (Edge.CatchUp), a move goes only to a server that
// covers the client's last write (CatchUp.Covers):
//
//   - in rule c, when the target does not, the client keeps current (Held);
//   - in rule b, when C does not, the least-loaded server that does, from
//     C's region on (see covering); when none does, no server (CatchingUp,
//     with the shortest expected Wait);
//   - in rule a, a critical client whose last write is known leaves a
//     draining current for the target rule c would choose, but only when
//     that target covers the write: its data is already there, so the
//     drain need not wait for its task to end;
//   - once the write is older than CatchUp.Limit, a held move (not a
//     critical one) happens anyway and is Unsafe;
//   - when the edge's view is older than CatchUp.Fresh (req.Confirmed),
//     progress counts as of the view's confirmation, not now.
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
	// a. a critical task in progress on a live server is never interrupted,
	// unless the server drains and the task's data is already where the
	// client would go (checked in move).
	if cur != nil && req.Critical && !(cur.Draining && e.CatchUp.On() && !req.Write.At.IsZero()) {
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
		return e.failover(snap, target, req)
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
	return e.move(cur, target, req)
}

// move is rule c's move from cur to target, held when target does not yet
// hold the client's last write.
func (e *Edge) move(cur, target *watch.Entry, req RefreshRequest) Outcome {
	moved := Outcome{Server: target, Reason: ReasonRefreshMove, Moved: true}
	if !e.CatchUp.On() || req.Write.At.IsZero() {
		return moved
	}
	now := e.now()
	if ok, _ := e.CatchUp.Covers(target, req.Write, e.CatchUp.asOf(now, req.Confirmed)); ok {
		return moved
	}
	if req.Critical {
		return keep(cur)
	}
	if e.CatchUp.Expired(req.Write, now) {
		moved.Unsafe = true
		return moved
	}
	return Outcome{Server: cur, Reason: ReasonRefreshKeep, Held: true}
}

// failover is rule b: the client goes to target, or, when target does not
// hold the client's last write, to the server covering finds; with none,
// nowhere yet (CatchingUp) until the write is older than the limit.
func (e *Edge) failover(snap *watch.Snapshot, target *watch.Entry, req RefreshRequest) Outcome {
	if target == nil {
		return Outcome{Reason: ReasonFailover}
	}
	out := Outcome{Server: target, Reason: ReasonFailover, Moved: true}
	w := req.Write
	if !e.CatchUp.On() || w.At.IsZero() {
		return out
	}
	now := e.now()
	asOf := e.CatchUp.asOf(now, req.Confirmed)
	if ok, _ := e.CatchUp.Covers(target, w, asOf); ok {
		return out
	}
	// Ifs rather than a switch: a case's condition lies outside every
	// block of the coverage profile, and mutation testing would leave it
	// untested.
	s, wait := e.covering(snap, target.Region, w, asOf)
	if s != nil {
		out.Server = s
		return out
	}
	if !e.CatchUp.Expired(w, now) {
		if !asOf.Equal(now) {
			// An old view cannot see a copy catch up: no one can tell.
			wait = UnknownWait
		}
		return Outcome{Reason: ReasonFailover, CatchingUp: true, Wait: wait}
	}
	out.Unsafe = true
	return out
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
