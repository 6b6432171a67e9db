package discoverysvc

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Timing of the events stream.
const (
	// eventsKeepAlive is how often an idle stream carries a comment line,
	// so that proxies keep it open and a vanished client is noticed.
	eventsKeepAlive = 15 * time.Second
	// eventsWriteTimeout bounds one write to a subscriber; a client that
	// takes longer is not reading, and its connection is closed.
	eventsWriteTimeout = 10 * time.Second
	// eventsRetry is the reconnect delay an EventSource is told to use.
	eventsRetry = "retry: 2000\n\n"
)

// serveEvents serves GET /v1/events: the hub's full state or, with a
// Last-Event-ID the hub can resume from, the events the client missed; then
// every change until the client goes or the hub drops it.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, http.MethodGet)
		return
	}
	last, resume, err := ParseEventID(r.Header.Get("Last-Event-ID"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if h.limit != nil {
		release, refused := h.limit.acquire(clientAddress(r))
		if refused != "" {
			if h.metrics != nil {
				h.metrics.limits.countRefusedSubscriber(refused)
			}
			refuseSubscriber(w, refused)
			return
		}
		defer release()
	}
	select {
	case <-h.Ready():
	case <-r.Context().Done():
		return
	}
	sub, initial := h.subscribe(last, resume)
	defer h.unsubscribe(sub)

	rc := http.NewResponseController(w)
	// Unblock a write stuck on a client that stopped reading as soon as the
	// hub drops it, rather than at the write timeout.
	stop := context.AfterFunc(sub.ctx, func() { _ = rc.SetWriteDeadline(time.Now()) })
	defer stop()

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	write := func(chunks ...[]byte) bool {
		// Each write gets its own deadline, which also lifts the server's
		// whole-response WriteTimeout from this long-lived response.
		if err := rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		// A drop between the select and here has already set its deadline,
		// which the line above just replaced: checked after it, a drop
		// either is seen here or its deadline comes after ours.
		if sub.ctx.Err() != nil {
			return false
		}
		for _, c := range chunks {
			if _, err := w.Write(c); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !write(append([][]byte{[]byte(eventsRetry)}, initial...)...) {
		return
	}
	keepAlive := time.NewTicker(eventsKeepAlive)
	defer keepAlive.Stop()
	pending := make([][]byte, 0, 16)
	for {
		select {
		case b := <-sub.ch:
			// Write what has queued up meanwhile in one flush.
			pending = append(pending[:0], b.wire)
		more:
			for len(pending) < cap(pending) {
				select {
				case b := <-sub.ch:
					pending = append(pending, b.wire)
				default:
					break more
				}
			}
			if !write(pending...) {
				return
			}
		case <-keepAlive.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		case <-sub.ctx.Done():
			return // dropped: the client resumes from the history
		case <-r.Context().Done():
			return
		}
	}
}
