package caddymodule

import (
	"net/http"
	"strings"
)

// The edge owns the session headers: an app, or anything the app reflects,
// must not hand the client a pin, a server URL or a move of its own, and
// the app never receives the pin the edge issued.

// sessionHeaders are the response headers only the edge may set, besides
// the pin header and the pin cookie.
var sessionHeaders = []string{"X-Session-Server-Url", "X-Session-Server-Changed"}

// stripUpstreamSession removes from an upstream response what only the
// edge may say: the pin header, X-Session-Server-URL,
// X-Session-Server-Changed and any Set-Cookie of the pin cookie.
func (h *Handler) stripUpstreamSession(hdr http.Header) {
	delete(hdr, h.pinHeaderOut)
	delete(hdr, DefaultHeader)
	for _, k := range sessionHeaders {
		delete(hdr, k)
	}
	if cookies, ok := hdr["Set-Cookie"]; ok {
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
}

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
