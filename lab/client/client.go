// Package client is a lab user: it follows the protocol a sessionpin client
// follows (the critical flag while a workflow runs, /closestToMe before each
// refresh) in every routing mode, and reads back its last workflow right
// after a refresh that moved it, as a real user does. A careless user never
// sets the critical flag, as many real clients will not.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/lab/app"
)

// Steps is how many steps a workflow has after its start.
const Steps = 3

// Event is one request's outcome, kept for the recovery time.
type Event struct {
	At     time.Time
	Client int
	OK     bool
}

// Counts are what a set of clients counted.
type Counts struct {
	Workflows      int
	Completed      int
	StaleSteps     int
	StaleAfterMove int
	WrongServer    int
	// Moves are refreshes, within a workflow or after it, that took the
	// client to another server; MovesAcross those of them to another
	// region's server, where the client's data is read from another copy.
	Moves       int
	MovesAcross int
	// HeldMoves are refreshes the edge answered with X-Session-Hold:
	// catching_up: it kept the client where it was because no server it
	// would move to held the client's last write yet.
	HeldMoves int
	// StaleAnnounced are the stale steps and stale reads after a move
	// (counted in StaleSteps and StaleAfterMove) that followed a move the
	// edge announced with X-Session-Unsafe-Move: made past the catch-up
	// limit, to a server that may not hold the client's last write yet.
	StaleAnnounced int
	// CatchUpWaits are refreshes answered 503 catching_up (the pinned
	// server is gone and no other holds the last write yet), each waited
	// out for its Retry-After before the refresh was sent again;
	// CatchUpWait is the time so spent.
	CatchUpWaits int
	CatchUpWait  time.Duration
}

// Tally is what the clients counted.
type Tally struct {
	mu sync.Mutex
	// Counts are every client's, the careless ones included.
	Counts
	// Careless are the careless clients' alone.
	Careless Counts
	// Roaming are the roaming clients' alone.
	Roaming Counts
	Errors  map[string]int
	Events  []Event
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

// count adds to every client's counts and, for a careless or roaming
// client, to the careless or roaming ones'.
func (c *Client) count(f func(k *Counts)) {
	c.Tally.add(func(t *Tally) {
		f(&t.Counts)
		if c.Careless {
			f(&t.Careless)
		}
		if c.Roam.Edge != "" {
			f(&t.Roaming)
		}
	})
}

// CookiePolicyName is the cookie of Caddy's lb_policy cookie in the lab.
const CookiePolicyName = "lb_lab"

// PinHeader carries a sessionpin pin both ways.
const PinHeader = "X-Session-Pin"

// Options are how a client behaves.
type Options struct {
	// Header: the client carries its pin in the X-Session-Pin header, as
	// an app that is not a browser does, and replaces it with the one in
	// any response that carries one (the edge issues a new pin at a move
	// and re-issues it after a write); it keeps no cookies. Otherwise it
	// keeps a cookie jar, as a browser does (Caddy's cookie policy needs
	// one).
	Header bool
	// Careless: the client never sets the critical flag, not even while
	// a workflow runs.
	Careless bool
	// RegionOf names a server's region, for MovesAcross; nil: none
	// counted.
	RegionOf func(server string) string
	// Roam makes the client a traveller; zero: it stays at its edge.
	Roam Roam
}

// Roam is how a client travels: it sends its first Every workflows through
// its own edge, the next Every through Edge, and so on, each workflow and
// the refreshes after it wholly through one edge. At every edge it asks
// that edge's /closestToMe before a refresh, as a client that follows the
// protocol does wherever it is, so a refresh without the critical flag
// after the change may move it to the other region's server, where its
// data is read from another copy.
type Roam struct {
	Edge  string // base URL of the other region's edge; "" for none
	Every int    // workflows between changes, 1 or more
}

// Client is one user.
type Client struct {
	// pin is the server the client is pinned to: the one named by the
	// last pin or policy cookie it got, or, where the edge pins nothing
	// (round robin), the server that started its workflow.
	pin    string
	sticky bool
	// unsafeMove: the client's last move was announced as unsafe.
	unsafeMove bool
	// token is the last pin the edge gave, in header mode.
	token string
	// catchUpBudget is how long in all a refresh waits out 503
	// catching_up: MaxCatchUpWait.
	catchUpBudget time.Duration

	// at is the edge the client talks to now: Edge, or Roam.Edge while
	// it is away.
	at string

	ID    int
	Edge  string // base URL of its region's edge
	HTTP  *http.Client
	Tally *Tally
	// Phase tags each workflow with the phase it started in.
	Phase func() string
	Options
}

// New returns a client with its own connections (and, unless o.Header,
// its own cookie jar).
func New(id int, edge string, dial func(ctx context.Context, network, addr string) (net.Conn, error), t *Tally, phase func() string, o Options) *Client {
	c := &Client{ID: id, Edge: edge, at: edge, Tally: t, Phase: phase, Options: o, catchUpBudget: MaxCatchUpWait, HTTP: &http.Client{
		Timeout:   6 * time.Second,
		Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 2, ResponseHeaderTimeout: 6 * time.Second},
	}}
	if !o.Header {
		c.HTTP.Jar, _ = cookiejar.New(nil)
	}
	return c
}

// IsCareless says whether client n of a run is one of the careless share
// f: round(n·f) steps up at it, so that the careless clients are spread
// evenly over the numbering (and so over the regions), and round(N·f) of N
// clients are careless.
func IsCareless(n int, f float64) bool {
	return math.Round(float64(n+1)*f) > math.Round(float64(n)*f)
}

// RoamEvery is how many workflows client n sends through one edge before
// it changes to the other when it roams: 2, 3 or 4, by its number, so that
// travellers change at different times.
func RoamEvery(n int) int { return 2 + n%3 }

// edgeFor is the edge a roaming client sends its workflow w (0-based)
// through: its own for the first every workflows, then the other's, and so
// on.
func edgeFor(home string, r Roam, w int) string {
	if r.Edge == "" || r.Every < 1 || (w/r.Every)%2 == 0 {
		return home
	}
	return r.Edge
}

type answer struct {
	status  int
	server  string
	changed bool
	// unsafe: a refresh that moved the client past the catch-up limit
	// (X-Session-Unsafe-Move).
	unsafe bool
	// held: a refresh the edge answered without moving the client
	// because no server it would move to holds its last write yet.
	held       bool
	retryAfter string
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
	req, err := http.NewRequestWithContext(ctx, method, c.at+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Header && c.token != "" {
		req.Header.Set(PinHeader, c.token)
	}
	// The app counts the clients it serves by this header alone.
	req.Header.Set(app.ClientHeader, "client-"+strconv.Itoa(c.ID))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, server: resp.Header.Get("X-Lab-Server"), changed: resp.Header.Get("X-Session-Server-Changed") == "1",
		unsafe: resp.Header.Get("X-Session-Unsafe-Move") == "1",
		pinned: resp.Header.Get(PinHeader) != "", held: resp.Header.Get("X-Session-Hold") == "catching_up",
		retryAfter: resp.Header.Get("Retry-After")}
	if tok := resp.Header.Get(PinHeader); c.Header && tok != "" {
		// Whatever the status: the newest pin carries the newest last
		// write.
		c.token = tok
	}
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

// countMove counts a move from server from to server to.
func (c *Client) countMove(from, to string) {
	across := false
	if c.RegionOf != nil {
		rf, rt := c.RegionOf(from), c.RegionOf(to)
		across = rf != "" && rt != "" && rf != rt
	}
	c.count(func(k *Counts) {
		k.Moves++
		if across {
			k.MovesAcross++
		}
	})
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
	for w := 0; ctx.Err() == nil; w++ {
		// A traveller changes edge between workflows: this workflow,
		// its refreshes and the one after it go through one edge.
		c.at = edgeFor(c.Edge, c.Roam, w)
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
		c.count(func(k *Counts) { k.Workflows++ })
		c.Tally.add(func(t *Tally) { t.Started[phase]++ })
		ok := true
		// A workflow the end of the run interrupts is not counted.
		uncount := func() {
			c.count(func(k *Counts) { k.Workflows-- })
			c.Tally.add(func(t *Tally) { t.Started[phase]-- })
		}
		for step := 0; step < Steps && ok; step++ {
			if !think(ctx, 150*time.Millisecond, 350*time.Millisecond) {
				uncount()
				return
			}
			if step == 1 {
				// A token refresh in the middle of the workflow, with
				// the critical flag: it must not move the client. A
				// careless client leaves the flag off, so the edge
				// may move it here; its next step then reads the
				// new server's copy.
				from := c.pin
				if ra, err := c.refresh(ctx, !c.Careless); err == nil && ra.status < 500 {
					c.record(true)
					if ra.changed || (from != "" && ra.server != "" && ra.server != from) {
						c.countMove(from, ra.server)
						c.unsafeMove = ra.unsafe
					}
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
					c.count(func(k *Counts) { k.WrongServer++ })
				}
				lastStep = step + 1
			case err == nil && a.status == 409 && a.body["error"] == "stale_read":
				c.record(true) // served, but by data that had not caught up
				c.count(func(k *Counts) { k.StaleSteps++ })
				c.countAnnounced()
				if a.server != c.pin {
					c.count(func(k *Counts) { k.WrongServer++ })
				}
				ok = false
			default:
				c.fail(a, err)
				ok = false
			}
		}
		if ok {
			c.count(func(k *Counts) { k.Completed++ })
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
