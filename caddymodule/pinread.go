package caddymodule

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
)

// pin returns the request's pin when it verifies and is usable at now
// within grace past its expiry.
func (h *Handler) pin(r *http.Request, now time.Time, grace time.Duration) (pin.Pin, bool) {
	tok := h.token(r)
	if tok == "" {
		return pin.Pin{}, false
	}
	if len(tok) > pin.MaxTokenLen {
		h.debugRejected(tok, errTokenTooLong)
		return pin.Pin{}, false
	}
	p, err := h.keyring.VerifyAt(tok, now)
	if err != nil {
		h.debugRejected(tok, err)
		return pin.Pin{}, false
	}
	if !p.Usable(now, grace) {
		h.debugRejected(tok, errPinExpired)
		return pin.Pin{}, false
	}
	return p, true
}

var (
	errTokenTooLong = errors.New("token too long")
	errPinExpired   = errors.New("pin expired")
)

// debugRejected logs why a pin was not used, naming the token by its
// fingerprint only: a whole token is a credential.
func (h *Handler) debugRejected(tok string, err error) {
	if c := h.logger.Check(zapcore.DebugLevel, "pin not used"); c != nil {
		c.Write(zap.String("token", pin.Fingerprint(tok)), zap.Error(err))
	}
}

// token returns the raw pin from the configured header (which wins) or
// the cookie, without allocating.
func (h *Handler) token(r *http.Request) string {
	if v := r.Header[h.Header]; len(v) > 0 && v[0] != "" {
		if !h.bearer {
			return strings.TrimSpace(v[0])
		}
		if tok, ok := bearerToken(v[0]); ok {
			return tok
		}
	}
	return cookieValue(r.Header["Cookie"], h.Cookie)
}

// bearerToken extracts the token of an "Authorization: Bearer <token>".
func bearerToken(v string) (string, bool) {
	const prefix = "bearer "
	if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(v[len(prefix):]), true
}
