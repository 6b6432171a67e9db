package discoverysvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// errProgressShape is the error for a heartbeat's progress that is not an
// object of origins to progress objects.
var errProgressShape = &schema.FieldError{Field: "progress", Reason: `must be an object of origin names to {"lag_ms": N} or {"unknown": true}`}

// progressFields are the keys of one origin's progress in a heartbeat.
var progressFields = map[string]bool{"lag_ms": true, "unknown": true}

// checkProgressKeys holds a heartbeat's progress to what checkKeys holds
// its top level to: origins and fields spelled exactly and given once, and
// no field unknown. encoding/json alone would let the last of two entries
// for one origin win (a reader of the request could see "unknown" where
// "lag_ms": 0 is stored), and match "LAG_MS" to lag_ms. body must be one
// valid JSON object whose keys passed checkKeys.
func checkProgressKeys(body []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return decodeError(err)
	}
	raw, ok := top["progress"]
	if !ok || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errProgressShape
	}
	origins := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errProgressShape
		}
		origin, _ := tok.(string)
		if origins[origin] {
			return &schema.FieldError{Field: "progress", Reason: fmt.Sprintf("origin %q given more than once", origin)}
		}
		origins[origin] = true
		var entry json.RawMessage
		if err := dec.Decode(&entry); err != nil {
			return errProgressShape
		}
		if err := checkKeysOf(entry, progressFields); err != nil {
			reason := err.Error()
			if fe, ok := errors.AsType[*schema.FieldError](err); ok {
				reason = fe.Reason
				if fe.Field != "body" {
					reason = fmt.Sprintf("%q %s", fe.Field, fe.Reason)
				}
			}
			return &schema.FieldError{Field: "progress", Reason: fmt.Sprintf("origin %q: %s", origin, reason)}
		}
	}
	return nil
}
