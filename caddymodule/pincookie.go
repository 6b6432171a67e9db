package caddymodule

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The pin cookie: read from a request, stripped from what the app
// receives and from what the app answers, written with a new pin.

// setCookieName is the cookie name of a Set-Cookie value, as a browser
// reads it: up to the first '=', without surrounding blanks.
func setCookieName(v string) string {
	name, _, _ := strings.Cut(v, ";")
	name, _, _ = strings.Cut(name, "=")
	return strings.TrimSpace(name)
}

// stripPinCookie removes every cookie named name from Cookie header lines
// and keeps the rest byte for byte, separators included. It returns the
// lines unchanged (and false) when there is no such cookie, so that the
// common request costs no allocation.
func stripPinCookie(lines []string, name string) ([]string, bool) {
	found := false
	for _, line := range lines {
		if hasCookie(line, name) {
			found = true
			break
		}
	}
	if !found {
		return lines, false
	}
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		if !hasCookie(line, name) {
			out = append(out, line)
			continue
		}
		var b strings.Builder
		b.Grow(len(line))
		rest := line
		for {
			part, after, more := strings.Cut(rest, ";")
			if !isCookie(part, name) {
				if b.Len() == 0 {
					// The first kept cookie starts the line: drop the
					// blank that followed a removed one's ';'.
					part = strings.TrimLeft(part, " \t")
				} else {
					b.WriteByte(';')
				}
				if b.Len() > 0 || part != "" {
					b.WriteString(part)
				}
			}
			if !more {
				break
			}
			rest = after
		}
		// A blank before a removed last cookie's ';' would end the line.
		if s := strings.TrimRight(b.String(), " \t"); s != "" {
			out = append(out, s)
		}
	}
	return out, true
}

// hasCookie reports whether a Cookie header line holds cookie name.
func hasCookie(line, name string) bool {
	for len(line) > 0 {
		var part string
		part, line, _ = strings.Cut(line, ";")
		if isCookie(part, name) {
			return true
		}
	}
	return false
}

// isCookie reports whether one "name=value" part of a Cookie line is
// cookie name. Blanks around the name are ignored, more leniently than
// cookieValue reads it, because some app frameworks trim them.
func isCookie(part, name string) bool {
	k, _, ok := strings.Cut(part, "=")
	return ok && strings.TrimSpace(k) == name
}

// pinCookieAttrs are the attributes of the pin cookie for pins living ttl.
func pinCookieAttrs(ttl time.Duration) string {
	return "; Path=/; Max-Age=" + strconv.FormatInt(int64(ttl/time.Second), 10) + "; HttpOnly; SameSite=Lax"
}

// setPinCookie adds the Set-Cookie of pin tok to a response, Secure when
// the request came over TLS.
func (h *Handler) setPinCookie(hdr http.Header, tok string, secure bool) {
	cookie := h.Cookie + "=" + tok + h.cookieAttrs
	if secure {
		cookie += "; Secure"
	}
	hdr["Set-Cookie"] = append(hdr["Set-Cookie"], cookie)
}

// dropPinSetCookie removes every Set-Cookie of the pin cookie from an
// upstream response: only the edge issues pins.
func (h *Handler) dropPinSetCookie(hdr http.Header) {
	cookies, ok := hdr["Set-Cookie"]
	if !ok {
		return
	}
	kept := cookies[:0]
	for _, c := range cookies {
		if setCookieName(c) != h.Cookie {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		delete(hdr, "Set-Cookie")
	} else {
		hdr["Set-Cookie"] = kept
	}
}

// dropPinCookie removes the pin cookie from the Cookie headers of a
// request before the app receives it.
func (h *Handler) dropPinCookie(hdr http.Header) {
	if lines, ok := stripPinCookie(hdr["Cookie"], h.Cookie); ok {
		if len(lines) == 0 {
			delete(hdr, "Cookie")
		} else {
			hdr["Cookie"] = lines
		}
	}
}

// cookieValue finds cookie name in Cookie header lines; http.Request.Cookie
// would parse and allocate every cookie of the request.
func cookieValue(lines []string, name string) string {
	for _, line := range lines {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}
