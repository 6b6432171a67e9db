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

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc"
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
		t.activity.pinned.Add(1) // tells drains whether the server's clients are gone
		return h.proxy(w, r, next, t, reasonPinned, false, false)
	}
	t := targetOf(h.edge.Place(snap, rand.Uint64()))
	if t == nil {
		return h.noServer(w)
	}
	return h.proxy(w, r, next, t, placement.ReasonPlacement, false, true)
}

// serveRefresh rebalances a refresh request (refresh rules a–d in
// placement.Rebalance) and proxies it.
func (h *Handler) serveRefresh(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, snap *discoverysvc.Snapshot) error {
	body, err := readRefreshBody(r)
	if err != nil {
		if errors.Is(err, errRefreshTooLarge) {
			return writeJSONError(w, http.StatusRequestEntityTooLarge, err.Error(), nil)
		}
		return writeJSONError(w, http.StatusBadRequest, err.Error(), nil)
	}
	in, err := placement.ParseRefresh(body, r.Header)
	if err != nil {
		return writeJSONError(w, http.StatusBadRequest, err.Error(), nil)
	}
	req := placement.RefreshRequest{Closest: in.Closest, Critical: in.Critical}
	if p, ok := h.pin(r, time.Now(), time.Duration(h.RefreshGrace)); ok {
		req.Current = p.Server
	}
	out := h.edge.Rebalance(snap, req, rand.Uint64())
	t := targetOf(out.Server)
	if t == nil {
		return h.noServer(w)
	}
	if c := h.logger.Check(zapcore.DebugLevel, "refresh rebalanced"); c != nil {
		c.Write(zap.String("current", req.Current), zap.String("closest", req.Closest),
			zap.Bool("critical", req.Critical), zap.String("server", t.id),
			zap.String("reason", out.Reason), zap.Bool("moved", out.Moved))
	}
	return h.proxy(w, r, next, t, out.Reason, out.Moved, true)
}

// serveClosest answers closest_path with the server placement would choose.
func (h *Handler) serveClosest(w http.ResponseWriter, r *http.Request, snap *discoverysvc.Snapshot) error {
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

// proxy hands the decision to send the request to t to the upstream source
// and runs the rest of the route. With issue set, a response below 500
// carries a new pin for t.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, t *target, reason string, moved, issue bool) error {
	if !h.bearer {
		// The pin is addressed to the edge: the app neither needs nor
		// should log it.
		delete(r.Header, h.Header)
	}
	px := &proxied{
		// A verify-only edge proxies placed clients without a pin.
		decision: decision{target: t, reason: reason, moved: moved, issue: issue && h.issues},
	}
	d := &px.decision
	caddyhttp.SetVar(r.Context(), decisionVar, d)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// One provider instead of five Set calls: each Set takes the
		// replacer's lock and grows its map.
		repl.Map(d.placeholder)
	}
	pw := &px.writer
	pw.ResponseWriterWrapper = caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
	pw.h = h
	pw.d = d
	pw.secure = r.TLS != nil
	pw.server[0] = t.id
	// Set before the upstream runs so that error responses name the server
	// too; WriteHeader sets it again over anything the upstream sent.
	w.Header()["X-Session-Server"] = pw.server[:]

	err := next.ServeHTTP(pw, r)
	if err != nil && !pw.wroteHeader {
		// reverse_proxy could not reach the server: answer in JSON like
		// every other edge error rather than with an empty page.
		if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && he.StatusCode >= 502 && he.StatusCode <= 504 {
			return h.serverUnreachable(pw, he, t.id)
		}
	}
	return err
}
