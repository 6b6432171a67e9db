package caddymodule

import (
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

var one = []string{"1"}

// issuePin adds a new pin for the decision's server to the response
// headers: in the pin header, as a cookie (Secure over TLS), with the
// server's URL, and with X-Session-Server-Changed when a refresh moved the
// client.
func (h *Handler) issuePin(hdr http.Header, d *decision, secure bool) {
	t := d.target
	tok, err := h.keyring.Issue(t.id, t.region, time.Now(), time.Duration(h.PinTTL))
	if err != nil {
		if c := h.logger.Check(zapcore.DebugLevel, "no pin issued"); c != nil {
			c.Write(zap.String("server", t.id), zap.Error(err))
		}
		return
	}
	hdr[h.pinHeaderOut] = []string{tok}
	hdr["X-Session-Server-Url"] = []string{t.url}
	cookie := h.Cookie + "=" + tok + h.cookieAttrs
	if secure {
		cookie += "; Secure"
	}
	hdr["Set-Cookie"] = append(hdr["Set-Cookie"], cookie)
	if d.moved {
		hdr["X-Session-Server-Changed"] = one
	}
	countPinIssued(d.reason)
}
