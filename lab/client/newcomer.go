package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/lab/app"
)

// Newcomer is a user who arrives at an edge without a pin, logs in (the
// edge places it: the decision the lab watches), works for Stay and
// leaves. Its work is one workflow started and then read back about once a
// second, so that the server counts it in its load all along; it never
// refreshes, so it stays where placement put it.
type Newcomer struct {
	ID   string // unique in the run; sent in app.ClientHeader
	Edge string // base URL of the edge it arrives at
	// Header: it carries its pin in the X-Session-Pin header (sessionpin);
	// otherwise it keeps a cookie jar (Caddy's cookie policy).
	Header bool
	Stay   time.Duration
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Placement is where the edge put a newcomer.
type Placement struct {
	At time.Time
	// Server is the server that answered the login: the edge's
	// X-Session-Server, or the app's X-Lab-Server where the edge names
	// none; "" when the login failed.
	Server string
	// Error is why the login failed (as in errors_by_reason); "" when it
	// did not.
	Error string
	// WorkErrors are the newcomer's failed requests after its login.
	WorkErrors int
}

// Run logs in, works until Stay has passed or ctx ends, and returns where
// the login placed it; false when ctx ended before the login was answered.
func (n *Newcomer) Run(ctx context.Context) (Placement, bool) {
	tr := &http.Transport{DialContext: n.Dial, MaxIdleConnsPerHost: 1, ResponseHeaderTimeout: 6 * time.Second}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 6 * time.Second, Transport: tr}
	if !n.Header {
		hc.Jar, _ = cookiejar.New(nil)
	}
	var pin string
	do := func(method, path string) (*http.Response, map[string]any, error) {
		req, err := http.NewRequestWithContext(ctx, method, n.Edge+path, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set(app.ClientHeader, n.ID)
		if n.Header && pin != "" {
			req.Header.Set(PinHeader, pin)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		if tok := resp.Header.Get(PinHeader); n.Header && tok != "" {
			pin = tok
		}
		var body map[string]any
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
		return resp, body, nil
	}
	end := time.Now().Add(n.Stay)
	p := Placement{At: time.Now()}
	resp, body, err := do(http.MethodPost, "/auth/login")
	if ctx.Err() != nil {
		return p, false
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		p.Error = reason(answerOf(resp, body), err)
		return p, true
	}
	p.Server = resp.Header.Get("X-Session-Server")
	if p.Server == "" {
		p.Server = resp.Header.Get("X-Lab-Server")
	}
	id := ""
	for ctx.Err() == nil && time.Now().Before(end) {
		path, method := "/workflows", http.MethodPost
		if id != "" {
			path, method = "/workflows/"+id, http.MethodGet
		}
		resp, body, err := do(method, path)
		switch {
		case errors.Is(err, context.Canceled):
			return p, true
		case err != nil || resp.StatusCode != http.StatusOK:
			p.WorkErrors++
		case id == "":
			id, _ = body["id"].(string)
		}
		if !think(ctx, 800*time.Millisecond, 1200*time.Millisecond) {
			break
		}
	}
	return p, true
}

func answerOf(resp *http.Response, body map[string]any) answer {
	if resp == nil {
		return answer{}
	}
	return answer{status: resp.StatusCode, body: body}
}

// Arrivals starts a newcomer every interval until ctx ends, each made by
// next, and calls placed with where each was placed once it has left (not
// for one whose login the end of ctx cut short). It returns when every
// newcomer it started has left.
func Arrivals(ctx context.Context, interval time.Duration, next func(k int) *Newcomer, placed func(Placement)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Not all at the tick: a region's arrivals do not coincide with
	// another's.
	if !think(ctx, 0, interval) {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for k := 0; ; k++ {
		n := next(k)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, ok := n.Run(ctx); ok {
				placed(p)
			}
		}()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
