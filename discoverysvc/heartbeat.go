package discoverysvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// MaxBodyBytes bounds a heartbeat request body. A record is a few hundred
// bytes; anything larger is a mistake or an attack.
const MaxBodyBytes = 64 << 10

var (
	errBodyTooLarge = &schema.FieldError{Field: "body", Reason: fmt.Sprintf("larger than %d bytes", MaxBodyBytes)}
	errNotObject    = &schema.FieldError{Field: "body", Reason: "must be one JSON object"}
	errInvalidID    = schema.InvalidName("id")
)

// DecodeHeartbeat parses and validates the body of PUT /v1/servers/{id}. It
// touches nothing, so the API can refuse bad input before any etcd call. The
// error is a *FieldError naming the bad field ("body" for the shape of the
// document itself).
func DecodeHeartbeat(id string, body []byte) (schema.Server, time.Duration, error) {
	if !schema.ValidName(id) {
		return schema.Server{}, 0, errInvalidID
	}
	if len(body) > MaxBodyBytes {
		return schema.Server{}, 0, errBodyTooLarge
	}
	// A JSON null or a scalar would decode into the struct without error.
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return schema.Server{}, 0, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req client.HeartbeatRequest
	if err := dec.Decode(&req); err != nil {
		return schema.Server{}, 0, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return schema.Server{}, 0, &schema.FieldError{Field: "body", Reason: "unexpected data after the JSON object"}
	}
	if err := checkKeys(body); err != nil {
		return schema.Server{}, 0, err
	}
	if req.ID != nil && *req.ID != id {
		return schema.Server{}, 0, &schema.FieldError{Field: "id", Reason: fmt.Sprintf("body id %q differs from path id %q", *req.ID, id)}
	}
	switch {
	case req.Region == nil:
		return schema.Server{}, 0, &schema.FieldError{Field: "region", Reason: "is required"}
	case req.URL == nil:
		return schema.Server{}, 0, &schema.FieldError{Field: "url", Reason: "is required"}
	case req.Load == nil:
		return schema.Server{}, 0, &schema.FieldError{Field: "load", Reason: "is required"}
	}
	srv := schema.Server{ID: id, Region: *req.Region, URL: *req.URL, Load: *req.Load}
	if req.Draining != nil {
		srv.Draining = *req.Draining
	}
	if req.Capacity != nil {
		srv.Capacity = *req.Capacity
	}
	if req.Limit != nil {
		srv.Limit = *req.Limit
	}
	if req.Origin != nil {
		srv.Origin = *req.Origin
	}
	srv.Progress = req.Progress
	if err := srv.Validate(); err != nil {
		return schema.Server{}, 0, err
	}
	ttl := schema.DefaultTTL
	if req.TTL != nil {
		secs := *req.TTL
		// etcd leases are whole seconds; refusing 1.5 beats silently granting 2.
		if secs != math.Trunc(secs) || secs < schema.MinTTL.Seconds() || secs > schema.MaxTTL.Seconds() {
			return schema.Server{}, 0, &schema.FieldError{Field: "ttl", Reason: fmt.Sprintf("must be whole seconds from %d to %d", int(schema.MinTTL.Seconds()), int(schema.MaxTTL.Seconds()))}
		}
		ttl = time.Duration(secs) * time.Second
	}
	return srv, ttl, nil
}

// heartbeatFields are the keys of a HeartbeatRequest, spelled exactly.
var heartbeatFields = map[string]bool{"id": true, "region": true, "url": true, "load": true, "draining": true, "capacity": true, "limit": true, "ttl": true, "origin": true, "progress": true}

// checkKeys refuses top-level keys that are unknown in their exact spelling
// or repeated. encoding/json alone would match "REGION" to region and let
// the last of two "region" keys win, so the record stored could differ from
// what a reader of the request sees. body must be one valid JSON object.
func checkKeys(body []byte) error {
	if err := checkKeysOf(body, heartbeatFields); err != nil {
		return err
	}
	return checkProgressKeys(body)
}

// checkKeysOf is checkKeys for any request body with the given fields.
func checkKeysOf(body []byte, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace
		return decodeError(err)
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return decodeError(err)
		}
		key, _ := tok.(string)
		if !fields[key] {
			return &schema.FieldError{Field: "body", Reason: fmt.Sprintf("unknown field %q", key)}
		}
		if seen[key] {
			return &schema.FieldError{Field: key, Reason: "given more than once"}
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return decodeError(err)
		}
	}
	return nil
}

// decodeError turns an encoding/json error into a FieldError naming the
// field, so the caller sees "invalid load: ..." rather than Go type names.
func decodeError(err error) *schema.FieldError {
	if fe, ok := errors.AsType[*schema.FieldError](err); ok { // a progress entry's own check
		return fe
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return errNotObject
		}
		if te.Field == "progress" || strings.HasPrefix(te.Field, "progress.") {
			return errProgressShape
		}
		return &schema.FieldError{Field: te.Field, Reason: "must be a JSON " + jsonKind(te.Field)}
	}
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		return &schema.FieldError{Field: "body", Reason: "malformed JSON: " + err.Error()}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &schema.FieldError{Field: "body", Reason: "truncated JSON"}
	}
	// DisallowUnknownFields reports `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &schema.FieldError{Field: "body", Reason: "unknown field " + name}
	}
	return &schema.FieldError{Field: "body", Reason: strings.TrimPrefix(err.Error(), "json: ")}
}

func jsonKind(field string) string {
	switch field {
	case "load", "ttl":
		return "number"
	case "draining":
		return "boolean"
	default:
		return "string"
	}
}
