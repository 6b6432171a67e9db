// Package client is a lab user: it follows the protocol a sessionpin client
// follows (the critical flag while a workflow runs, /closestToMe before each
// refresh) in every routing mode, and reads back its last workflow right
// after a refresh that moved it, as a real user does.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"sync"
	"time"
)

// Steps is how many steps a workflow has after its start.
const Steps = 3

// Event is one request's outcome, kept for the recovery time.
type Event struct {
	At     time.Time
	Client int
	OK     bool
}

// Tally is what the clients counted.
type Tally struct {
	mu             sync.Mutex
	Workflows      int
	Completed      int
	StaleSteps     int
	StaleAfterMove int
	WrongServer    int
	Moves          int
	Errors         map[string]int
	Events         []Event
	// ByPhase counts workflows started and failed per phase tag.
	Started, Failed map[string]int
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{Errors: map[string]int{}, Started: map[string]int{}, Failed: map[string]int{}}
}

func (t *Tally) add(f func(t *Tally)) {
	t.mu.Lock()
	f(t)
	t.mu.Unlock()
}

// CookiePolicyName is the cookie of Caddy's lb_policy cookie in the lab.
const CookiePolicyName = "lb_lab"

// Client is one user.
type Client struct {
	// pin is the server the client is pinned to: the one named by the
	// last pin or policy cookie it got, or, where the edge pins nothing
	// (round robin), the server that started its workflow.
	pin    string
	sticky bool

	ID    int
	Edge  string // base URL of its region's edge
	HTTP  *http.Client
	Tally *Tally
	// Phase tags each workflow with the phase it started in.
	Phase func() string
}

// New returns a client with its own cookie jar and connections.
func New(id int, edge string, dial func(ctx context.Context, network, addr string) (net.Conn, error), t *Tally, phase func() string) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{ID: id, Edge: edge, Tally: t, Phase: phase, HTTP: &http.Client{
		Jar:       jar,
		Timeout:   6 * time.Second,
		Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 2, ResponseHeaderTimeout: 6 * time.Second},
	}}
}

type answer struct {
	status  int
	server  string
	changed bool
	// pinned: the response (re)issued stickiness — a sessionpin pin, or
	// the cookie of Caddy's cookie policy — for the server that answered.
	pinned bool
	body   map[string]any
}

func (c *Client) do(ctx context.Context, method, path string, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Edge+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, server: resp.Header.Get("X-Lab-Server"), changed: resp.Header.Get("X-Session-Server-Changed") == "1",
		pinned: resp.Header.Get("X-Session-Pin") != ""}
	for _, ck := range resp.Cookies() {
		if ck.Name == CookiePolicyName {
			a.pinned = true
		}
	}
	if a.pinned && a.server != "" && a.status < 500 {
		c.pin, c.sticky = a.server, true
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&a.body)
	return a, nil
}

// reason names a failed request for errors_by_reason.
func reason(a answer, err error) string {
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "connection"
	}
	if e, ok := a.body["error"].(string); ok {
		return strconv.Itoa(a.status) + " " + e
	}
	return strconv.Itoa(a.status)
}

func (c *Client) record(ok bool) {
	c.Tally.add(func(t *Tally) { t.Events = append(t.Events, Event{At: time.Now(), Client: c.ID, OK: ok}) })
}

func (c *Client) fail(a answer, err error) {
	r := reason(a, err)
	c.record(false)
	c.Tally.add(func(t *Tally) { t.Errors[r]++ })
}

func think(ctx context.Context, lo, hi time.Duration) bool {
	d := lo + time.Duration(rand.Int64N(int64(hi-lo)+1))
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// refresh asks /closestToMe, then refreshes with the critical flag.
func (c *Client) refresh(ctx context.Context, critical bool) (answer, error) {
	a, err := c.do(ctx, http.MethodGet, "/closestToMe", nil)
	closest, _ := a.body["closestServerId"].(string)
	if err != nil || a.status != 200 {
		closest = ""
	}
	body := map[string]any{"criticalTaskInProgress": critical}
	if closest != "" {
		body["closestServerId"] = closest
	}
	return c.do(ctx, http.MethodPost, "/auth/refresh", body)
}

// Run loops until ctx ends: log in, then workflows, each followed by a
// refresh.
func (c *Client) Run(ctx context.Context) {
	for ctx.Err() == nil {
		a, err := c.do(ctx, http.MethodPost, "/auth/login", map[string]string{"user": fmt.Sprint("user-", c.ID)})
		if err == nil && a.status == 200 {
			c.record(true)
			break
		}
		if ctx.Err() != nil {
			return
		}
		c.fail(a, err)
		think(ctx, 500*time.Millisecond, time.Second)
	}
	var lastID, lastServer string
	lastStep := -1
	for ctx.Err() == nil {
		// A workflow: the critical flag is set from its start to its end.
		phase := c.Phase()
		a, err := c.do(ctx, http.MethodPost, "/workflows", nil)
		if ctx.Err() != nil {
			return
		}
		if err != nil || a.status != 200 {
			c.fail(a, err)
			think(ctx, 300*time.Millisecond, 600*time.Millisecond)
			c.refreshAfter(ctx, &lastID, &lastServer, lastStep)
			continue
		}
		c.record(true)
		id, _ := a.body["id"].(string)
		if !c.sticky {
			c.pin = a.server
		}
		c.Tally.add(func(t *Tally) { t.Workflows++; t.Started[phase]++ })
		ok := true
		// A workflow the end of the run interrupts is not counted.
		uncount := func() { c.Tally.add(func(t *Tally) { t.Workflows--; t.Started[phase]-- }) }
		for step := 0; step < Steps && ok; step++ {
			if !think(ctx, 150*time.Millisecond, 350*time.Millisecond) {
				uncount()
				return
			}
			if step == 1 {
				// A token refresh in the middle of the workflow, with
				// the critical flag: it must not move the client.
				if ra, err := c.refresh(ctx, true); err == nil && ra.status < 500 {
					c.record(true)
				}
			}
			a, err := c.do(ctx, http.MethodPost, "/workflows/"+id+"/steps?expect="+strconv.Itoa(step), nil)
			if ctx.Err() != nil {
				uncount()
				return
			}
			switch {
			case err == nil && a.status == 200:
				c.record(true)
				if a.server != c.pin {
					c.Tally.add(func(t *Tally) { t.WrongServer++ })
				}
				lastStep = step + 1
			case err == nil && a.status == 409 && a.body["error"] == "stale_read":
				c.record(true) // served, but by data that had not caught up
				c.Tally.add(func(t *Tally) { t.StaleSteps++ })
				if a.server != c.pin {
					c.Tally.add(func(t *Tally) { t.WrongServer++ })
				}
				ok = false
			default:
				c.fail(a, err)
				ok = false
			}
		}
		if ok {
			c.Tally.add(func(t *Tally) { t.Completed++ })
		} else {
			c.Tally.add(func(t *Tally) { t.Failed[phase]++ })
		}
		lastID, lastServer = id, a.server
		if !ok {
			lastStep = -1 // what the client knows of an abandoned workflow is unsure
		}
		if !think(ctx, 200*time.Millisecond, 500*time.Millisecond) {
			return
		}
		c.refreshAfter(ctx, &lastID, &lastServer, lastStep)
		if !think(ctx, 200*time.Millisecond, 500*time.Millisecond) {
			return
		}
	}
}

// refreshAfter refreshes without the critical flag; when the refresh moved
// the client, it reads its last workflow back from the new server.
func (c *Client) refreshAfter(ctx context.Context, lastID, lastServer *string, lastStep int) {
	a, err := c.refresh(ctx, false)
	if ctx.Err() != nil {
		return
	}
	if err != nil || a.status >= 500 {
		c.fail(a, err)
		return
	}
	c.record(true)
	moved := a.changed || (*lastServer != "" && a.server != "" && a.server != *lastServer)
	if !moved {
		return
	}
	c.Tally.add(func(t *Tally) { t.Moves++ })
	if *lastID == "" || lastStep < 0 {
		return
	}
	b, err := c.do(ctx, http.MethodGet, "/workflows/"+*lastID, nil)
	if ctx.Err() != nil {
		return
	}
	switch {
	case err == nil && b.status == 200:
		c.record(true)
		if step, _ := b.body["step"].(float64); int(step) < lastStep {
			c.Tally.add(func(t *Tally) { t.StaleAfterMove++ })
		}
	case err == nil && b.status == 409:
		c.record(true)
		c.Tally.add(func(t *Tally) { t.StaleAfterMove++ })
	default:
		c.fail(b, err)
	}
	*lastServer = b.server
}
