package walkthrough

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Header names of the edge and of the demo app.
const (
	headerPin           = "X-Session-Pin"
	headerServer        = "X-Session-Server"
	headerServerURL     = "X-Session-Server-URL"
	headerServerChanged = "X-Session-Server-Changed"
	headerServedBy      = "X-Served-By"
)

// response is what the walkthrough looks at in an answer.
type response struct {
	status     int
	server     string // X-Session-Server, set by the edge
	servedBy   string // X-Served-By, set by the app
	pin        string // X-Session-Pin when a pin was issued
	serverURL  string
	changed    bool
	retryAfter int
	body       map[string]any
	raw        string
}

// str returns a top-level string field of the JSON body.
func (r response) str(field string) string {
	s, _ := r.body[field].(string)
	return s
}

func (r response) num(field string) float64 {
	f, _ := r.body[field].(float64)
	return f
}

// describe is a one-line summary for the timeline.
func (r response) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", r.status)
	if r.servedBy != "" {
		fmt.Fprintf(&b, " from %s", r.servedBy)
	}
	if e := r.str("error"); e != "" {
		fmt.Fprintf(&b, " %s", e)
		if m := r.str("message"); m != "" {
			fmt.Fprintf(&b, " (%s)", m)
		}
	}
	return b.String()
}

// session is one client of the demo: the edge's pin and the app's own
// tokens, carried from response to response like a browser would.
type session struct {
	client  *http.Client
	pin     string
	server  string // the server the last pin names
	access  string
	refresh string
}

// call sends one request. body, when not nil, is sent as JSON; the pin and
// the access token go along when the session has them.
func (s *session) call(ctx context.Context, method, url string, body any) (response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.pin != "" {
		req.Header.Set(headerPin, s.pin)
	}
	if s.access != "" {
		req.Header.Set("Authorization", "Bearer "+s.access)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}, err // a *url.Error names the method and URL
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	r := response{
		status:    resp.StatusCode,
		server:    resp.Header.Get(headerServer),
		servedBy:  resp.Header.Get(headerServedBy),
		pin:       resp.Header.Get(headerPin),
		serverURL: resp.Header.Get(headerServerURL),
		changed:   resp.Header.Get(headerServerChanged) == "1",
		raw:       strings.TrimSpace(string(raw)),
	}
	r.retryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	_ = json.Unmarshal(raw, &r.body)
	// Like the browser helper: a new pin replaces the old one, and the
	// server it names is where the client now lives.
	if r.pin != "" {
		s.pin = r.pin
		s.server = r.server
	}
	return r, nil
}
