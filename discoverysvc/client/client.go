package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAnswer bounds how much of an answer is read: a drain status or a
// record is well under a kilobyte, and a client must not be made to buffer
// an arbitrary body.
const maxAnswer = 64 << 10

// Client calls the discovery API. Its fields are read on every call and
// must not change while calls are under way. Each call takes its deadline
// from ctx (or from HTTP's own Timeout).
type Client struct {
	// Base is the base URL of the discovery API, e.g.
	// http://127.0.0.1:7070. Required.
	Base string
	// Token is sent as "Authorization: Bearer <Token>" when not empty: the
	// admin token, or a server's agent token for that server's own calls.
	Token string
	// HTTP makes the requests. Default: http.DefaultClient.
	HTTP *http.Client
}

// StatusError is an answer other than the one a call expects: Status is
// the HTTP status, Message the "error" text of the body.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("discovery answered %d: %s", e.Status, e.Message)
}

// Refused reports whether the answer was a 4xx: discovery works but will
// not take the request (a wrong token, a bad record), so trying again
// sooner does not help.
func (e *StatusError) Refused() bool { return e.Status >= 400 && e.Status < 500 }

// IsStatus reports whether err is a StatusError with the given status.
func IsStatus(err error, status int) bool {
	se, ok := errors.AsType[*StatusError](err)
	return ok && se.Status == status
}

// Heartbeat registers server id or renews its registration (PUT
// /v1/servers/{id}). The stored record in the answer is not read: a
// heartbeat is sent every few seconds and only its outcome matters.
func (c *Client) Heartbeat(ctx context.Context, id string, req HeartbeatRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPut, serverPath(id), nil, body, http.StatusOK, nil)
}

// Deregister removes server id now (DELETE /v1/servers/{id}); found is
// false when discovery did not know it.
func (c *Client) Deregister(ctx context.Context, id string) (found bool, err error) {
	return c.remove(ctx, serverPath(id))
}

// Drain starts the operator drain of server id (PUT
// /v1/servers/{id}/drain) with an optional reason, and returns its status
// judged with quiet (0: discovery's default, DefaultQuiet).
func (c *Client) Drain(ctx context.Context, id, reason string, quiet time.Duration) (DrainStatus, error) {
	var body []byte
	if reason != "" {
		var err error
		if body, err = json.Marshal(DrainRequest{Reason: &reason}); err != nil {
			return DrainStatus{}, err
		}
	}
	var st DrainStatus
	return st, c.call(ctx, http.MethodPut, drainPath(id), quietQuery(quiet), body, http.StatusOK, &st)
}

// Undrain ends the operator drain of server id (DELETE
// /v1/servers/{id}/drain); found is false when there was none.
func (c *Client) Undrain(ctx context.Context, id string) (found bool, err error) {
	return c.remove(ctx, drainPath(id))
}

// DrainStatus reads the drain status of server id (GET
// /v1/servers/{id}/drain), judged with quiet (0: discovery's default). A
// server that is not draining gives a StatusError with status 404.
func (c *Client) DrainStatus(ctx context.Context, id string, quiet time.Duration) (DrainStatus, error) {
	var st DrainStatus
	return st, c.call(ctx, http.MethodGet, drainPath(id), quietQuery(quiet), nil, http.StatusOK, &st)
}

// remove DELETEs path: 204 is found, 404 not found.
func (c *Client) remove(ctx context.Context, path string) (bool, error) {
	err := c.call(ctx, http.MethodDelete, path, nil, nil, http.StatusNoContent, nil)
	switch {
	case err == nil:
		return true, nil
	case IsStatus(err, http.StatusNotFound):
		return false, nil
	}
	return false, err
}

func serverPath(id string) string { return "/v1/servers/" + url.PathEscape(id) }

func drainPath(id string) string { return serverPath(id) + "/drain" }

func quietQuery(quiet time.Duration) url.Values {
	if quiet <= 0 {
		return nil
	}
	return url.Values{"quiet": {quiet.String()}}
}

// call makes one request and decodes a want answer into out (when not
// nil); any other status is a *StatusError.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, want int, out any) error {
	u := strings.TrimRight(c.Base, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != want {
		var e ErrorResponse
		_ = json.Unmarshal(answer, &e) // the status is what counts
		return &StatusError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}
