package discoverysvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// serveDrain handles /v1/servers/{id}/drain. Drains decide where no new
// client goes, so starting and ending one takes the admin token. Reading the
// status is also allowed to the server's own credential, because its agent
// waits on it before deregistering.
func (a *api) serveDrain(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !a.requireServer(w, r, id) {
			return
		}
	case http.MethodPut, http.MethodDelete:
		if !a.requireAdmin(w, r) {
			return
		}
	default:
		methodNotAllowed(w, r, http.MethodGet, http.MethodPut, http.MethodDelete)
		return
	}
	if !schema.ValidName(id) {
		writeError(w, http.StatusBadRequest, errInvalidID.Error())
		return
	}
	quiet, err := ParseQuiet(r.URL.Query()["quiet"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	switch r.Method {
	case http.MethodPut:
		a.startDrain(ctx, w, r, id, quiet)
	case http.MethodDelete:
		a.endDrain(ctx, w, id)
	default:
		a.drainStatus(ctx, w, id, quiet)
	}
}

func (a *api) startDrain(ctx context.Context, w http.ResponseWriter, r *http.Request, id string, quiet time.Duration) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, errBodyTooLarge.Error())
		return
	}
	reason, err := DecodeDrainRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, err := a.reg.Drain(ctx, id, reason)
	if err != nil {
		if fe, ok := errors.AsType[*schema.FieldError](err); ok {
			writeError(w, http.StatusBadRequest, fe.Error())
			return
		}
		a.unavailable(w, "drain failed", id, err)
		return
	}
	a.logger.Info("drain started", zap.String("id", id), zap.Time("since", d.Since), zap.String("reason", d.Reason))
	a.drainStatus(ctx, w, id, quiet)
}

func (a *api) endDrain(ctx context.Context, w http.ResponseWriter, id string) {
	found, err := a.reg.Undrain(ctx, id)
	a.answerRemoval(w, id, found, err, "undrain failed", "is not drained by an operator", "drain ended")
}

func (a *api) drainStatus(ctx context.Context, w http.ResponseWriter, id string, quiet time.Duration) {
	st, err := a.reg.DrainStatus(ctx, id, quiet)
	switch {
	case IsNotDraining(err):
		writeError(w, http.StatusNotFound, fmt.Sprintf("server %q is not draining", id))
	case err != nil:
		a.unavailable(w, "drain status failed", id, err)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// requireAdmin answers 401 (403 for an agent token) and reports false
// unless r carries the admin token. Every admin-only route goes through
// here.
func (a *api) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	return a.auth.authorize(w, r, "")
}

// requireServer is requireAdmin for what server id's own credential may
// also do.
func (a *api) requireServer(w http.ResponseWriter, r *http.Request, id string) bool {
	return a.auth.authorize(w, r, id)
}

// ParseQuiet parses the ?quiet= values of a drain status request: none
// means DefaultQuiet; one Go duration from 1ms to 24h otherwise.
func ParseQuiet(values []string) (time.Duration, error) {
	if len(values) == 0 {
		return schema.DefaultQuiet, nil
	}
	if len(values) > 1 {
		return 0, &schema.FieldError{Field: "quiet", Reason: "given more than once"}
	}
	d, err := time.ParseDuration(values[0])
	if err != nil || d < time.Millisecond || d > schema.MaxQuiet {
		return 0, &schema.FieldError{Field: "quiet", Reason: fmt.Sprintf("must be a duration from 1ms to %s, like 60s", schema.MaxQuiet)}
	}
	return d, nil
}

// DecodeDrainRequest parses the optional body of PUT
// /v1/servers/{id}/drain: empty, or {"reason":"..."} and nothing else.
func DecodeDrainRequest(body []byte) (reason string, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", nil
	}
	if len(body) > MaxBodyBytes {
		return "", errBodyTooLarge
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); trimmed[0] != '{' {
		return "", errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req struct {
		Reason *string `json:"reason"`
	}
	if err := dec.Decode(&req); err != nil {
		return "", decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", &schema.FieldError{Field: "body", Reason: "unexpected data after the JSON object"}
	}
	if err := checkKeysOf(body, drainFields); err != nil {
		return "", err
	}
	if req.Reason == nil {
		return "", nil
	}
	if err := schema.ValidateReason(*req.Reason); err != nil {
		return "", err
	}
	return *req.Reason, nil
}

// drainFields are the keys of a drain request body, spelled exactly.
var drainFields = map[string]bool{"reason": true}
