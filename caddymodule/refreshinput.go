package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// maxRefreshBody is the largest refresh body the edge reads to find the
// fields; the body is then passed to the app byte for byte. The handler
// answers a larger body with 413 rather than guess at a critical flag it
// could not read.
const maxRefreshBody = 64 << 10

// JSON field names and header names of the refresh inputs.
const (
	fieldClosest   = "closestServerId"
	fieldCritical  = "criticalTaskInProgress"
	headerClosest  = "X-Closest-Server"
	headerCritical = "X-Critical-Task"
)

// parseRefreshBody reads closestServerId (a string: a valid server id or "")
// and criticalTaskInProgress (a bool) from the top level of a JSON object.
//
// A body that is not a JSON object (a form, plain text, empty, or JSON cut
// short) yields no fields and no error: the app owns the body format and
// the client may send the headers instead. A JSON object whose field has the
// wrong type or names an invalid server id is an error naming the field.
// A field set to null counts as absent. Field names match exactly (after
// JSON unescaping). A field given twice is an error naming it: parsers
// disagree on which one wins (JavaScript's JSON.parse takes the last, others
// the first), so the app behind the edge could read another value than the
// edge decided on. foundClosest and foundCritical report which fields were
// present, so that headers can fill the rest.
func parseRefreshBody(body []byte) (in placement.RefreshRequest, foundClosest, foundCritical bool, err error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return placement.RefreshRequest{}, false, false, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		// Unreachable after json.Valid for an object; treat as "not ours".
		return placement.RefreshRequest{}, false, false, nil
	}
	if name, ok := repeatedField(trimmed); ok {
		return placement.RefreshRequest{}, false, false, fmt.Errorf("refresh body: %s given more than once", name)
	}
	if raw, ok := fields[fieldClosest]; ok && !isNull(raw) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return placement.RefreshRequest{}, false, false, fmt.Errorf("refresh body: %s must be a string", fieldClosest)
		}
		if s != "" && !schema.ValidName(s) {
			return placement.RefreshRequest{}, false, false, fmt.Errorf("refresh body: %s %q is not a valid server id", fieldClosest, truncate(s))
		}
		in.Closest, foundClosest = s, true
	}
	if raw, ok := fields[fieldCritical]; ok && !isNull(raw) {
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return placement.RefreshRequest{}, false, false, fmt.Errorf("refresh body: %s must be a boolean", fieldCritical)
		}
		in.Critical, foundCritical = b, true
	}
	return in, foundClosest, foundCritical, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// repeatedField returns the first refresh field that appears more than once
// at the top level of a valid JSON object; other keys may repeat, they are
// the app's business.
func repeatedField(obj []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // the opening brace
		return "", false
	}
	var seenClosest, seenCritical bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch key, _ := tok.(string); key {
		case fieldClosest:
			if seenClosest {
				return key, true
			}
			seenClosest = true
		case fieldCritical:
			if seenCritical {
				return key, true
			}
			seenCritical = true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

// parseRefreshHeaders reads X-Closest-Server (a valid server id; an empty
// value means unknown, like "" in the body) and X-Critical-Task (true, 1,
// false or 0, case-insensitive). Any other value, or a header given twice,
// is an error naming the header. foundClosest and foundCritical report which
// headers were present.
func parseRefreshHeaders(h http.Header) (in placement.RefreshRequest, foundClosest, foundCritical bool, err error) {
	if v, ok, err := singleHeader(h, headerClosest); err != nil {
		return placement.RefreshRequest{}, false, false, err
	} else if ok {
		if v != "" && !schema.ValidName(v) {
			return placement.RefreshRequest{}, false, false, fmt.Errorf("header %s: %q is not a valid server id", headerClosest, truncate(v))
		}
		in.Closest, foundClosest = v, true
	}
	if v, ok, err := singleHeader(h, headerCritical); err != nil {
		return placement.RefreshRequest{}, false, false, err
	} else if ok {
		switch {
		case v == "1" || strings.EqualFold(v, "true"):
			in.Critical = true
		case v == "0" || strings.EqualFold(v, "false"):
			in.Critical = false
		default:
			return placement.RefreshRequest{}, false, false, fmt.Errorf("header %s: %q must be true, 1, false or 0", headerCritical, truncate(v))
		}
		foundCritical = true
	}
	return in, foundClosest, foundCritical, nil
}

// parseRefresh combines both sources: fields of a JSON body win, and the
// headers fill what the body does not have. An invalid body field or an
// invalid header is an error even when the other source has the field, so
// that a client bug shows up instead of being masked.
func parseRefresh(body []byte, h http.Header) (placement.RefreshRequest, error) {
	in, bodyClosest, bodyCritical, err := parseRefreshBody(body)
	if err != nil {
		return placement.RefreshRequest{}, err
	}
	hin, _, _, err := parseRefreshHeaders(h)
	if err != nil {
		return placement.RefreshRequest{}, err
	}
	if !bodyClosest {
		in.Closest = hin.Closest
	}
	if !bodyCritical {
		in.Critical = hin.Critical
	}
	return in, nil
}

// single returns the one value of header name, trimmed of spaces.
func singleHeader(h http.Header, name string) (string, bool, error) {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return strings.TrimSpace(vs[0]), true, nil
	default:
		return "", false, fmt.Errorf("header %s: given %d times, want once", name, len(vs))
	}
}

// truncate keeps client-supplied values short in error messages and logs.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// errRefreshTooLarge rejects refresh bodies the edge will not buffer.
var errRefreshTooLarge = fmt.Errorf("refresh body: larger than %d bytes", maxRefreshBody)

// readRefreshBody reads the refresh body (at most MaxRefreshBody bytes) to
// find the client's inputs, and puts it back so that the app receives it
// byte for byte.
func readRefreshBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > maxRefreshBody {
		return nil, errRefreshTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRefreshBody+1))
	if err != nil {
		return nil, fmt.Errorf("refresh body: %w", err)
	}
	if len(body) > maxRefreshBody {
		return nil, errRefreshTooLarge
	}
	r.Body = &replayedBody{Reader: bytes.NewReader(body), orig: r.Body}
	return body, nil
}

// replayedBody serves the buffered body and closes the original.
type replayedBody struct {
	*bytes.Reader
	orig io.Closer
}

func (b *replayedBody) Close() error { return b.orig.Close() }
