package caddymodule

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
)

var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// writeJSONError answers with {"error": code, ...extra}. Edge errors are
// JSON so that clients can tell an edge decision (retry, refresh) from an
// application error.
func writeJSONError(w http.ResponseWriter, status int, code string, extra map[string]any) error {
	body := make(map[string]any, len(extra)+1)
	for k, v := range extra {
		body[k] = v
	}
	body["error"] = code
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Cache-Control"] = noStore
	hdr.Del("Content-Length")
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}

// pinnedUnavailable answers a valid pin whose server left the registry, or
// that this edge cannot reach.
// The client is never moved silently: its workflow's state may exist only
// on that server, so it must retry or refresh.
func (h *Handler) pinnedUnavailable(w http.ResponseWriter, id string) error {
	pinnedUnavailableTotal.Inc()
	if c := h.logger.Check(zapcore.DebugLevel, "pinned server unavailable"); c != nil {
		c.Write(zap.String("server", id))
	}
	w.Header()["Retry-After"] = h.retryAfter
	return writeJSONError(w, http.StatusServiceUnavailable, "pinned_server_unavailable",
		map[string]any{"server": id, "retryAfterSeconds": h.retryAfterSeconds()})
}

// catchingUp answers a refresh whose pinned server is gone when no server
// holds the client's last write yet (see placement.Edge.Rebalance): the
// client keeps its pin and comes back after Retry-After, the expected
// catch-up (the configured retry_after when it is unknown).
func (h *Handler) catchingUp(w http.ResponseWriter, id string, wait time.Duration) error {
	movesHeldTotal.WithLabelValues(heldWait).Inc()
	secs := h.retryAfterSeconds()
	if wait != placement.UnknownWait {
		secs = max(int64(math.Ceil(wait.Seconds())), 1)
	}
	w.Header()["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	return writeJSONError(w, http.StatusServiceUnavailable, "catching_up",
		map[string]any{"server": id, "retryAfterSeconds": secs})
}

// noServer answers when the registry has no server to place on.
func (h *Handler) noServer(w http.ResponseWriter) error {
	w.Header()["Retry-After"] = h.retryAfter
	return writeJSONError(w, http.StatusServiceUnavailable, "no_server_available", nil)
}

// serverUnreachable answers when reverse_proxy could not reach the chosen
// server (its 502, 503 or 504 before anything was written).
func (h *Handler) serverUnreachable(w http.ResponseWriter, he caddyhttp.HandlerError, id string) error {
	if c := h.logger.Check(zapcore.DebugLevel, "server unreachable"); c != nil {
		c.Write(zap.String("server", id), zap.Error(he.Err))
	}
	return writeJSONError(w, he.StatusCode, "server_unreachable", map[string]any{"server": id})
}
