package caddymodule

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// ServeHTTP routes the request. It reads only the current registry
// snapshot: no lock, no etcd call.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	snap := h.app.Snapshot()
	path := r.URL.Path
	if path == h.ClosestPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return h.serveClosest(w, r, snap)
	}
	if path == h.RefreshPath && r.Method == http.MethodPost {
		return h.serveRefresh(w, r, next, snap)
	}

	now := time.Now()
	if p, ok := h.pin(r, now, 0); ok {
		t := targetOf(snap.Server(p.Server))
		if t == nil {
			return h.pinnedUnavailable(w, p.Server)
		}
		trial, ok := t.reach.admit(time.Duration(h.UnreachableFor))
		if !ok {
			return h.pinnedUnavailable(w, p.Server)
		}
		t.activity.pinned.Add(1) // tells drains whether the server's clients are gone
		c := choice{target: t, reason: reasonPinned}
		if h.recordsWrite(r, t) {
			c.write, c.prior = true, heapPin(p)
		}
		return h.proxy(w, r, next, trial, c)
	}
	for range maxAdmits {
		t := targetOf(h.edge.Place(snap, rand.Uint64()))
		if t == nil {
			break
		}
		if trial, ok := t.reach.admit(time.Duration(h.UnreachableFor)); ok {
			t.notePlaced(now)
			return h.proxy(w, r, next, trial, choice{target: t, reason: placement.ReasonPlacement, issue: true, write: h.recordsWrite(r, t)})
		}
	}
	return h.noServer(w)
}

// heapPin is a copy of p of its own, so that only the requests that keep
// their pin pay for its allocation.
func heapPin(p pin.Pin) *pin.Pin { return &p }

// maxAdmits bounds the decisions made for one request. A decision is made
// again only when its server's unreachable mark ran out and another request
// claimed the one trial first; that server is then skipped, so a second
// decision nearly always stands.
const maxAdmits = 3

// serveRefresh rebalances a refresh request (refresh rules a–d, see
// placement.Edge.Rebalance) and proxies it.
func (h *Handler) serveRefresh(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, snap *watch.Snapshot) error {
	body, err := readRefreshBody(r)
	if err != nil {
		return writeJSONError(w, refreshErrorStatus(err), err.Error(), nil)
	}
	req, err := parseRefresh(body, r.Header)
	if err != nil {
		return writeJSONError(w, refreshErrorStatus(err), err.Error(), nil)
	}
	p, ok := h.pin(r, time.Now(), time.Duration(h.RefreshGrace))
	if ok {
		req.Current = p.Server
		req.Write = placement.Write(p.LastWrite)
		req.Confirmed = h.app.confirmed()
	}
	for range maxAdmits {
		out := h.edge.Rebalance(snap, req, rand.Uint64())
		if out.CatchingUp {
			return h.catchingUp(w, req.Current, out.Wait)
		}
		t := targetOf(out.Server)
		if t == nil {
			break
		}
		trial, ok := t.reach.admit(time.Duration(h.UnreachableFor))
		if !ok {
			continue
		}
		if out.Reason != placement.ReasonRefreshKeep {
			t.notePlaced(time.Now())
		}
		countMove(out)
		if c := h.logger.Check(zapcore.DebugLevel, "refresh rebalanced"); c != nil {
			c.Write(zap.String("current", req.Current), zap.String("closest", req.Closest),
				zap.Bool("critical", req.Critical), zap.String("server", t.id),
				zap.String("reason", out.Reason), zap.Bool("moved", out.Moved),
				zap.Bool("held", out.Held), zap.Bool("unsafe", out.Unsafe))
		}
		// The refresh itself is the protocol's, not the app's data: it is
		// not recorded as a write, and the client's last write moves along.
		return h.proxy(w, r, next, trial, choice{target: t, reason: out.Reason, moved: out.Moved, issue: true, hold: out.Held, unsafe: out.Unsafe, prior: heapPin(p)})
	}
	return h.noServer(w)
}

// serveClosest answers closest_path with the server placement would choose.
func (h *Handler) serveClosest(w http.ResponseWriter, r *http.Request, snap *watch.Snapshot) error {
	t := targetOf(h.edge.Place(snap, rand.Uint64()))
	if t == nil {
		return h.noServer(w)
	}
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Cache-Control"] = noStore
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(t.closestJSON)
	return err
}

// proxied is a proxied request's state, allocated once: the decision that
// the upstream source and the placeholders read, and the writer that adds
// the session headers to the response.
type proxied struct {
	decision decision
	writer   pinWriter
}

// recordsWrite reports whether the edge records r, sent to t, as the
// client's last write when it is answered below 500: r's method is unsafe,
// moves are data-aware, t declares where its writes commit, and the edge
// issues its own pins (in bearer mode the pin is another issuer's token,
// which the edge cannot re-sign).
func (h *Handler) recordsWrite(r *http.Request, t *target) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return t.origin != "" && h.issues && !h.bearer && h.edge.CatchUp.On()
}

// proxy hands the decision c (to send the request to c.target) to the
// upstream source and runs the rest of the route. With c.issue set, a
// response below 500 carries a new pin for the target; with c.write, one
// that records the write. trial is non-zero when this request tries the
// target again after an unreachable mark ran out (see reachability.admit).
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, trial int64, c choice) error {
	t, reason := c.target, c.reason
	// The pin is addressed to the edge: the app neither needs nor should
	// log it. In bearer mode the Authorization header is the app's own.
	if !h.bearer {
		delete(r.Header, h.Header)
	}
	h.dropPinCookie(r.Header)
	// A verify-only edge proxies placed clients without a pin.
	c.issue = c.issue && h.issues
	px := &proxied{decision: decision{choice: c}}
	dp := &px.decision
	caddyhttp.SetVar(r.Context(), decisionVar, dp)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// One provider instead of five Set calls: each Set takes the
		// replacer's lock and grows its map.
		repl.Map(dp.placeholder)
	}
	pw := &px.writer
	pw.ResponseWriterWrapper = caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
	pw.h = h
	pw.d = dp
	pw.secure = r.TLS != nil
	pw.server[0] = t.id
	// Set before the upstream runs so that error responses name the server
	// too; WriteHeader sets it again over anything the upstream sent.
	w.Header()["X-Session-Server"] = pw.server[:]

	err := next.ServeHTTP(pw, r)
	switch fault := classifyDialError(err); fault {
	case faultServer:
		h.markUnreachable(t, err)
		if reason == reasonPinned && !pw.wroteHeader {
			// The request never reached the server, and for this edge
			// the server is now not alive: answer like for any pinned
			// server that is not, so the client refreshes.
			return h.pinnedUnavailable(pw, t.id)
		}
	case faultNone:
		if trial != 0 {
			t.reach.answered(trial)
		}
	case faultEdge:
		// The edge's own failure says nothing about the server: no mark,
		// and a trial stays open until its lease runs out.
		if !pw.wroteHeader {
			return h.edgeResources(pw, t, err)
		}
	}
	if err != nil && !pw.wroteHeader {
		// reverse_proxy could not reach the server: answer in JSON like
		// every other edge error rather than with an empty page.
		if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && he.StatusCode >= 502 && he.StatusCode <= 504 {
			return h.serverUnreachable(pw, he, t.id)
		}
	}
	return err
}

// markUnreachable marks t unreachable at this edge after a failed
// connection, and logs and counts it when t was reachable until now.
func (h *Handler) markUnreachable(t *target, err error) {
	if !t.reach.failed(time.Duration(h.UnreachableFor)) {
		return
	}
	unreachableTotal.WithLabelValues(t.id).Inc()
	h.logger.Warn("server unreachable from this edge",
		zap.String("server", t.id), zap.String("dial", t.dial),
		zap.Duration("for", time.Duration(h.UnreachableFor)), zap.Error(err))
}
