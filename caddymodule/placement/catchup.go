package placement

import (
	"math"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// Write is a client's last write as its pin records it: when an edge saw it
// answered, and the origin (database primary) it committed to. The zero
// Write is a client with no known write.
type Write struct {
	At     time.Time
	Origin string
}

// CatchUp makes moves data-aware: a client moves only to a server whose
// copy of the data already holds the client's last write. The zero value
// turns it off, and every move happens as if no server had a lag.
type CatchUp struct {
	// Limit is how long after a client's last write a move may be held for
	// the target to catch up; past it the move happens anyway and counts
	// as unsafe. 0 turns data-aware moves off.
	Limit time.Duration
	// Skew bounds how far the clocks of the edges and the agents may
	// disagree; it is added to every lag.
	Skew time.Duration
	// Fresh is how long after its last confirmation the edge's view of the
	// registry still counts as current. A view older than that (an edge
	// cut off from etcd's quorum) holds the progress its servers reported
	// as of the confirmation, not now: their copies may have fallen
	// behind since, unseen. 0 counts every view as current.
	Fresh time.Duration
}

// asOf is the time the registry's progress is known to hold at: now, while
// the view confirmed at confirmed counts as current, else confirmed. A
// zero confirmed is a current view.
func (c CatchUp) asOf(now, confirmed time.Time) time.Time {
	if confirmed.IsZero() || c.Fresh <= 0 || now.Sub(confirmed) <= c.Fresh {
		return now
	}
	return confirmed
}

// UnknownWait is the wait when no one can tell how long catching up takes:
// the server's progress is unknown for the write's origin.
const UnknownWait = time.Duration(math.MaxInt64)

// On reports whether moves are data-aware.
func (c CatchUp) On() bool { return c.Limit > 0 }

// Covers reports whether s's data holds w at now, and when it does not, how
// long until it should (wait; UnknownWait when that is unknown). s covers w when:
// moves are not data-aware, no write is known, s's own writes commit at
// w's origin, s takes no part in data-aware moves (no origin, no progress),
// or s reports a known lag L for w's origin and w is at least L plus the
// skew old. A write dated more than the skew in the future means the
// clocks disagree beyond the bound, and nothing covers it until it is past.
func (c CatchUp) Covers(s *watch.Entry, w Write, now time.Time) (ok bool, wait time.Duration) {
	if !c.On() || w.At.IsZero() || s.Origin == w.Origin || (s.Origin == "" && len(s.Progress) == 0) {
		return true, 0
	}
	p, known := s.Progress[w.Origin]
	if !known || p.Unknown {
		return false, UnknownWait
	}
	need := p.Lag() + max(c.Skew, 0)
	age := now.Sub(w.At)
	if age >= need {
		return true, 0
	}
	return false, need - age
}

// Expired reports whether w is older than the limit, so that a move held
// for catch-up now happens anyway.
func (c CatchUp) Expired(w Write, now time.Time) bool {
	return now.Sub(w.At) >= c.Limit
}

// covering returns the least-loaded reachable, non-draining server that
// covers w, looking in region first, then the edge's region and fallback
// regions, then anywhere; nil when none does. wait is the shortest wait
// among the servers that do not (UnknownWait when none can tell). It runs
// only on a failover whose first choice does not cover the client, so the
// scan is affordable.
func (e *Edge) covering(snap *watch.Snapshot, region string, w Write, now time.Time) (found *watch.Entry, wait time.Duration) {
	wait = UnknownWait
	try := func(active []*watch.Entry) *watch.Entry {
		for _, s := range active {
			if !e.reachable(s) {
				continue
			}
			ok, d := e.CatchUp.Covers(s, w, now)
			if ok {
				return s
			}
			wait = min(wait, d)
		}
		return nil
	}
	for _, name := range append([]string{region, e.Region}, e.Fallback...) {
		if r := snap.Region(name); r != nil {
			if s := try(r.Active); s != nil {
				return s, 0
			}
		}
	}
	return try(snap.Active()), wait
}
