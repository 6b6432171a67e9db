package caddymodule

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// errRefreshEncoding refuses a refresh body in a content coding the edge
// does not read: it could not see the fields the app will see.
var errRefreshEncoding = errors.New("refresh body: unsupported Content-Encoding, send identity or gzip")

// utf8BOM is the byte-order mark some clients put before a UTF-8 body.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// decodeRefreshBody returns the refresh body as the app will read it: a
// gzip body decompressed (to at most maxRefreshBody bytes, so that a small
// body cannot make the edge inflate a large one); parseRefreshBody then
// skips a leading UTF-8 byte-order mark, as common body parsers do. The
// edge must judge the same bytes as the app, or a field it did not see (a
// second criticalTaskInProgress, say) could decide the app's reading. Any
// coding other than identity or a single gzip is refused with
// errRefreshEncoding; the body the app receives is never changed.
func decodeRefreshBody(body []byte, h http.Header) ([]byte, error) {
	coding, err := refreshCoding(h)
	if err != nil {
		return nil, err
	}
	if coding == "gzip" && len(body) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("refresh body: gzip: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxRefreshBody+1))
		if err != nil {
			return nil, fmt.Errorf("refresh body: gzip: %w", err)
		}
		if len(out) > maxRefreshBody {
			return nil, errRefreshTooLarge
		}
		body = out
	}
	return body, nil
}

// refreshCoding is the one content coding of the body: "" for identity or
// "gzip"; anything else, or several codings, is errRefreshEncoding.
func refreshCoding(h http.Header) (string, error) {
	var coding string
	for _, line := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(line, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity":
			case "gzip", "x-gzip":
				if coding != "" {
					return "", errRefreshEncoding
				}
				coding = "gzip"
			default:
				return "", errRefreshEncoding
			}
		}
	}
	return coding, nil
}

// refreshErrorStatus is the status a refused refresh is answered with.
func refreshErrorStatus(err error) int {
	switch {
	case errors.Is(err, errRefreshTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errRefreshEncoding):
		return http.StatusUnsupportedMediaType
	default:
		return http.StatusBadRequest
	}
}
