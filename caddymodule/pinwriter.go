package caddymodule

import (
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// pinWriter adds the session headers to a proxied response when its status
// is known: X-Session-Server always, and a new pin when one is due and the
// upstream answered below 500 (a failed upstream must not re-pin a client
// whose old pin may still be the better one).
type pinWriter struct {
	caddyhttp.ResponseWriterWrapper
	h           *Handler
	t           *target
	reason      string
	issue       bool
	moved       bool
	secure      bool
	wroteHeader bool
	// server backs the X-Session-Server value, saving an allocation.
	server [1]string
	// upstreams is what the session_pin upstream source hands
	// reverse_proxy for this request.
	upstreams upstreamList
}

// placeholder resolves {http.session_pin.*} for the rest of the route.
func (pw *pinWriter) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "http.session_pin.")
	if !ok {
		return nil, false
	}
	switch name {
	case "server":
		return pw.t.idValue, true
	case "region":
		return pw.t.regionValue, true
	case "url":
		return pw.t.urlValue, true
	case "reason":
		return reasonValue(pw.reason), true
	case "moved":
		return pw.moved, true
	}
	return nil, false
}

// WriteHeader adds the session headers before the status goes out.
func (pw *pinWriter) WriteHeader(status int) {
	if pw.wroteHeader {
		pw.ResponseWriter.WriteHeader(status)
		return
	}
	// 1xx responses other than 101 are interim; the final header follows.
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		pw.ResponseWriter.WriteHeader(status)
		return
	}
	pw.wroteHeader = true
	hdr := pw.Header()
	hdr["X-Session-Server"] = pw.server[:]
	if pw.issue && status < 500 {
		pw.h.issuePin(hdr, pw.t, pw.reason, pw.moved, pw.secure)
	}
	pw.ResponseWriter.WriteHeader(status)
}

// Write sends the header first, as net/http would.
func (pw *pinWriter) Write(b []byte) (int, error) {
	if !pw.wroteHeader {
		pw.WriteHeader(http.StatusOK)
	}
	return pw.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy (file_server, static responses) from writing the
// header behind our back.
func (pw *pinWriter) ReadFrom(r io.Reader) (int64, error) {
	if !pw.wroteHeader {
		pw.WriteHeader(http.StatusOK)
	}
	return pw.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError lets http.ResponseController flush a streaming response
// without skipping the session headers.
func (pw *pinWriter) FlushError() error {
	if !pw.wroteHeader {
		pw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(pw.ResponseWriter).Flush()
}

// Interface guards
var (
	_ http.ResponseWriter = (*pinWriter)(nil)
	_ io.ReaderFrom       = (*pinWriter)(nil)
)
