package caddymodule

import (
	"net/http"
	"time"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The edge owns the session headers: an app, or anything the app reflects,
// must not hand the client a pin, a server URL or a move of its own, and
// the app never receives the pin the edge issued.

// sessionHeaders are the response headers only the edge may set, besides
// the pin header and the pin cookie.
var sessionHeaders = []string{"X-Session-Server-Url", "X-Session-Server-Changed", "X-Session-Hold", "X-Session-Unsafe-Move"}

// stripUpstreamSession removes from an upstream response what only the
// edge may say: the pin header, the sessionHeaders and any Set-Cookie of
// the pin cookie.
func (h *Handler) stripUpstreamSession(hdr http.Header) {
	delete(hdr, h.pinHeaderOut)
	delete(hdr, DefaultHeader)
	for _, k := range sessionHeaders {
		delete(hdr, k)
	}
	h.dropPinSetCookie(hdr)
}

var one = []string{"1"}

// issuePin adds a new pin for the decision's server to the response
// headers: in the pin header, as a cookie (Secure over TLS), with the
// server's URL, with X-Session-Server-Changed when a refresh moved the
// client, and X-Session-Unsafe-Move when the new server may not yet hold
// the client's last write (a front end can say "your latest changes may
// take a moment to appear").
func (h *Handler) issuePin(hdr http.Header, d *decision, secure bool) {
	t := d.target
	now := time.Now()
	tok, err := h.keyring.Sign(pin.Pin{Server: t.id, Region: t.region, IssuedAt: now,
		ExpiresAt: now.Add(time.Duration(h.PinTTL)), LastWrite: d.lastWrite(now)})
	if err != nil {
		if c := h.logger.Check(zapcore.DebugLevel, "no pin issued"); c != nil {
			c.Write(zap.String("server", t.id), zap.Error(err))
		}
		return
	}
	hdr[h.pinHeaderOut] = []string{tok}
	hdr["X-Session-Server-Url"] = []string{t.url}
	h.setPinCookie(hdr, tok, secure)
	if d.moved {
		hdr["X-Session-Server-Changed"] = one
		if d.unsafe {
			hdr["X-Session-Unsafe-Move"] = one
		}
	}
	countPinIssued(d.reason)
}

// recordWrite adds the request's pin, re-signed with this request as the
// client's last write, to the response headers: its server and times are
// unchanged, so a write neither moves the client nor extends its pin.
func (h *Handler) recordWrite(hdr http.Header, d *decision, secure bool) {
	p := *d.prior
	p.LastWrite = d.lastWrite(time.Now())
	tok, err := h.keyring.Sign(p)
	if err != nil {
		if c := h.logger.Check(zapcore.DebugLevel, "write not recorded"); c != nil {
			c.Write(zap.String("server", d.target.id), zap.Error(err))
		}
		return
	}
	hdr[h.pinHeaderOut] = []string{tok}
	h.setPinCookie(hdr, tok, secure)
	countPinIssued(reasonWrite)
}

// reasonWrite labels the pins re-signed to record a write.
const reasonWrite = "write"

var catchingUpValue = []string{"catching_up"}

// writeSession replaces whatever session headers the upstream sent with
// the edge's own, for a final response of status: X-Session-Server always
// (server backs its value), and a new pin when the decision calls for one
// and the upstream answered below 500 (a failed upstream must not re-pin a
// client whose old pin may still be the better one).
func (h *Handler) writeSession(hdr http.Header, server []string, d *decision, secure bool, status int) {
	h.stripUpstreamSession(hdr)
	hdr["X-Session-Server"] = server
	if d.hold {
		hdr["X-Session-Hold"] = catchingUpValue
	}
	if status >= 500 {
		return
	}
	switch {
	case d.issue:
		h.issuePin(hdr, d, secure)
	case d.write:
		h.recordWrite(hdr, d, secure)
	}
}
