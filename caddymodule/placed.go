package caddymodule

import (
	"time"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// clockOrigin makes the placement tallies' times monotonic offsets, immune
// to steps of the wall clock.
var clockOrigin = time.Now()

// notePlaced counts a client this edge sends to t for the first time (a
// placement, or a refresh that moves it here).
func (t *target) notePlaced(now time.Time) {
	t.activity.placements.Add(now.Sub(clockOrigin))
}

// received is the load report t's record is, as the edge received it at
// now; it must run where the registry's changes are applied, one at a time.
func (t *target) received(srv schema.Server, now time.Time) {
	t.report = t.activity.placements.Received(srv.Load, srv.Capacity, now.Sub(clockOrigin))
}

// placedAtEdge is placement's Edge.Placed: the clients this edge placed on
// the server since its last report, and those the server may hold unseen.
func placedAtEdge(e *watch.Entry, now time.Time) placement.Recent {
	t := targetOf(e)
	if t == nil {
		return placement.Recent{}
	}
	return t.activity.placements.Since(t.report, now.Sub(clockOrigin))
}
