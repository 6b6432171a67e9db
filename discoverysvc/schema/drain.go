package schema

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultQuiet is how long no edge may have seen a pinned request to a
// draining server before it counts as drained: long enough that a client
// between two steps of a workflow is not mistaken for one that moved.
const DefaultQuiet = 60 * time.Second

// MaxQuiet bounds a quiet period: longer than any sensible pin refresh
// cycle.
const MaxQuiet = 24 * time.Hour

// maxReasonLen bounds a drain's reason; it is a note for operators.
const maxReasonLen = 256

// Drain is an operator's intent that a server take no new clients. It is
// stored under DrainKey with no lease, apart from the server's own record,
// so heartbeats (which rewrite the record) never undo it and it outlives
// agent and discovery restarts. It stays until the operator removes it.
type Drain struct {
	ID     string    `json:"id"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// Validate checks a drain record; the error is a *FieldError.
func (d Drain) Validate() error {
	if !ValidName(d.ID) {
		return InvalidName("id")
	}
	if d.Since.IsZero() {
		return &FieldError{"since", "is required"}
	}
	return ValidateReason(d.Reason)
}

// ValidateReason checks a drain's reason: at most 256 bytes of UTF-8
// without control characters.
func ValidateReason(reason string) error {
	if len(reason) > maxReasonLen {
		return &FieldError{"reason", fmt.Sprintf("longer than %d bytes", maxReasonLen)}
	}
	if !utf8.ValidString(reason) {
		return &FieldError{"reason", "must be UTF-8"}
	}
	for _, r := range reason {
		if unicode.IsControl(r) {
			return &FieldError{"reason", "must not contain control characters"}
		}
	}
	return nil
}

// DecodeDrain parses the etcd key/value of a drain: JSON {"id","since",
// "reason"?}, where id must equal the id in the key. drainPrefix is
// DrainPrefix(prefix).
func DecodeDrain(drainPrefix string, key, value []byte) (Drain, error) {
	return decodeValue(drainValue, drainPrefix, key, value, func(d *Drain) string { return d.ID })
}

// EncodeDrain is the etcd value of a drain, its start rounded to the
// millisecond in UTC.
func EncodeDrain(d Drain) string {
	b, err := json.Marshal(Drain{ID: d.ID, Since: d.Since.UTC().Round(time.Millisecond), Reason: d.Reason})
	if err != nil { // a drain is strings and a time; it always encodes
		panic(fmt.Sprintf("encode drain %q: %v", d.ID, err))
	}
	return string(b)
}
