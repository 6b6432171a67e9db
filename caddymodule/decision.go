package caddymodule

import (
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/caddymodule/placement"
)

// decisionVar is the request variable through which the handler hands its
// decision to the upstream source. Its value is a *decision, a type no other
// module can construct, so nothing but the handler can steer the proxy.
const decisionVar = "session_pin.decision"

// reasonPinned is the {http.session_pin.reason} of a request routed on its
// own pin (no new pin is issued).
const reasonPinned = "pinned"

// decision is where the handler sends one request, and why, with the
// upstream it hands reverse_proxy.
type decision struct {
	choice
	// upstreams is what the upstream source hands reverse_proxy.
	upstreams upstreamList
}

// choice is the handler's decision for one request; it is copied into the
// request's decision.
type choice struct {
	target *target
	// reason is pinned, or one of placement's reasons.
	reason string
	// moved is set when a refresh moved the client to another server.
	moved bool
	// issue is set when a response below 500 should carry a new pin.
	issue bool
	// write is set when a response below 500 records the request as the
	// client's last write: in the new pin, or in prior re-signed.
	write bool
	// hold is set when a refresh kept the client because the server it
	// would have moved to does not yet hold its last write.
	hold bool
	// unsafe is set when a refresh moved the client to a server that may
	// not yet hold its last write, because the write passed the catch-up
	// limit.
	unsafe bool
	// prior is the request's verified pin when the response may need it
	// (a write to record, a refresh carrying the last write along); nil
	// otherwise, which keeps an ordinary request's state small.
	prior *pin.Pin
}

// lastWrite is the client's last write for the pin the response carries,
// at now: this request when it is recorded as a write, else what the
// request's pin said.
func (d *choice) lastWrite(now time.Time) pin.Write {
	if d.write {
		return pin.Write{At: now, Origin: d.target.origin}
	}
	if d.prior == nil {
		return pin.Write{}
	}
	return d.prior.LastWrite
}

// upstreamList is the returned slice and its one upstream. It lives in the
// request's decision rather than in the shared target: reverse_proxy
// provisions (mutates) every upstream a source returns, so concurrent
// requests must not share one, and a request's retries run one after
// another.
type upstreamList struct {
	list [1]*reverseproxy.Upstream
	up   reverseproxy.Upstream
}

// upstream returns the decision's server as a fresh upstream list. It is
// reset on every call, so that a retry starts from a clean upstream as it
// would from a new one.
func (d *decision) upstream() []*reverseproxy.Upstream {
	u := &d.upstreams
	u.up = reverseproxy.Upstream{Dial: d.target.dial}
	u.list[0] = &u.up
	return u.list[:]
}

// placeholder resolves {http.session_pin.*} for the rest of the route.
func (d *decision) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "http.session_pin.")
	if !ok {
		return nil, false
	}
	switch name {
	case "server":
		return d.target.idValue, true
	case "region":
		return d.target.regionValue, true
	case "url":
		return d.target.urlValue, true
	case "reason":
		return reasonValue(d.reason), true
	case "moved":
		return d.moved, true
	}
	return nil, false
}

// reasonValue boxes the reason once per process instead of per request.
func reasonValue(reason string) any {
	switch reason {
	case reasonPinned:
		return boxedPinned
	case placement.ReasonPlacement:
		return boxedPlacement
	case placement.ReasonRefreshKeep:
		return boxedRefreshKeep
	case placement.ReasonRefreshMove:
		return boxedRefreshMove
	case placement.ReasonFailover:
		return boxedFailover
	}
	return reason
}

var (
	boxedPinned      any = reasonPinned
	boxedPlacement   any = placement.ReasonPlacement
	boxedRefreshKeep any = placement.ReasonRefreshKeep
	boxedRefreshMove any = placement.ReasonRefreshMove
	boxedFailover    any = placement.ReasonFailover
)
