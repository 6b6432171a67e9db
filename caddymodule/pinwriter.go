package caddymodule

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// pinWriter adds the session headers to a proxied response when its status
// is known: X-Session-Server always, and a new pin when the decision calls
// for one and the upstream answered below 500 (a failed upstream must not
// re-pin a client whose old pin may still be the better one).
type pinWriter struct {
	caddyhttp.ResponseWriterWrapper
	h           *Handler
	d           *decision
	secure      bool // the request came over TLS: the cookie is Secure
	wroteHeader bool
	// server backs the X-Session-Server value, saving an allocation.
	server [1]string
}

// WriteHeader replaces whatever session headers the upstream sent with the
// edge's own before the status goes out.
func (pw *pinWriter) WriteHeader(status int) {
	if pw.wroteHeader {
		pw.ResponseWriter.WriteHeader(status)
		return
	}
	// 1xx responses other than 101 are interim; the final header follows.
	// An interim response carries the upstream's headers too (103 Early
	// Hints), so the session headers in it are removed as well.
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		pw.h.stripUpstreamSession(pw.Header())
		pw.ResponseWriter.WriteHeader(status)
		return
	}
	pw.wroteHeader = true
	pw.h.writeSession(pw.Header(), pw.server[:], pw.d, pw.secure, status)
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
