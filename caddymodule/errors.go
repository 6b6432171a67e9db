package caddymodule

import (
	"encoding/json"
	"net/http"
)

// writeJSONError answers with {"error": code, ...extra}. Edge errors are
// JSON so that clients can tell an edge decision (retry, refresh) from an
// application error.
func writeJSONError(w http.ResponseWriter, status int, code string, extra map[string]any) error {
	body := make(map[string]any, len(extra)+1)
	for k, v := range extra {
		body[k] = v
	}
	body["error"] = code
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Cache-Control"] = noStore
	hdr.Del("Content-Length")
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}
