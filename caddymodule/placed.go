package caddymodule

import (
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// placedSpan is the span of each target's placement tally (see
// placement.Tally): a placement counts toward its server's estimated load
// until the server's next load report replaces the target, and for 3 to 6 s
// at most, about one heartbeat at the agent's default interval, by when the
// server's own report includes it.
const placedSpan = 3 * time.Second

// clockOrigin makes the tally's times monotonic offsets, immune to steps
// of the wall clock.
var clockOrigin = time.Now()

// notePlaced counts a client this edge sends to t for the first time (a
// placement, or a refresh that moves it here).
func (t *target) notePlaced(now time.Time) {
	t.placed.Add(now.Sub(clockOrigin), placedSpan)
}

// placedAtEdge is placement's Edge.Placed: the clients this edge placed on
// the server since its record last changed.
func placedAtEdge(e *watch.Entry, now time.Time) uint64 {
	t := targetOf(e)
	if t == nil {
		return 0
	}
	return t.placed.Count(now.Sub(clockOrigin), placedSpan)
}
