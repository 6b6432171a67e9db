package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stats are the figures of a chaos run, shared by all simulated clients.
type stats struct {
	steps     atomic.Int64 // workflow steps attempted (after the step that created the order)
	stepsOK   atomic.Int64
	workflows atomic.Int64 // workflows completed (order submitted on its server)
	wrongSrv  atomic.Int64 // steps answered by a server other than the workflow's: must be 0
	refreshes atomic.Int64
	critKept  atomic.Int64 // critical refreshes that kept the workflow's server
	moves     atomic.Int64 // non-critical refreshes that moved the client
	lostCrash atomic.Int64 // workflows cut short because their server crashed
	lostPlan  atomic.Int64 // workflows cut short by a planned restart: must be 0
	lostCut   atomic.Int64 // workflows cut short because their server was cut off from the edges
	failPlan  atomic.Int64 // requests failed on a server in a planned restart: must be 0
	// Connections an edge's config reload reset: Caddy on Linux gives the
	// new config its own SO_REUSEPORT socket and closes the old one, and
	// the kernel resets what was still queued on it or idle on the old
	// server. Caddy's, not sessionpin's; counted apart, only in the
	// reload's window.
	reloadResets atomic.Int64
	// Submits whose first answer was lost on the way back (a cut or a
	// reset between edge and client) and that Go's client resent, as the
	// Idempotency-Key allows: the workflow's own server answers 409
	// order_submitted, because the first one went through. The demo app
	// does not deduplicate by key; the order is submitted on its server,
	// so the workflow completed without a hop.
	resubmits  atomic.Int64
	repinCount atomic.Int64

	start      time.Time
	mu         sync.Mutex
	byReason   map[string]int64 // 5xx answers of the edge, by status and error
	other      map[string]int64 // any other failure, by kind: must be empty
	otherDesc  []string         // a few examples of other failures
	repinWorst time.Duration    // longest death → re-pinned
	repinSum   time.Duration
	// The same for clients of a server cut off from the edges while it
	// kept heartbeating: cut → re-pinned.
	cutRepinCount int64
	cutRepinWorst time.Duration
	cutRepinSum   time.Duration

	margins *margins // timing bounds and how close the run came to them

	reloads []reloadWindow // edge config reloads, begun or done
}

// reloadWindow is when an edge's config reload ran; end is zero while it
// runs.
type reloadWindow struct{ begin, end time.Time }

// reloadResetGrace is how long after a reload returns a reset still
// counts as the reload's: the old server closes its connections as it
// shuts down, after the new config answers.
const reloadResetGrace = 2 * time.Second

func (s *stats) reloadBegun() {
	s.mu.Lock()
	s.reloads = append(s.reloads, reloadWindow{begin: time.Now()})
	s.mu.Unlock()
}

func (s *stats) reloadDone() {
	s.mu.Lock()
	s.reloads[len(s.reloads)-1].end = time.Now()
	s.mu.Unlock()
}

// inReload reports whether t falls within a reload or its grace.
func (s *stats) inReload(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.reloads {
		if !t.Before(w.begin) && (w.end.IsZero() || t.Before(w.end.Add(reloadResetGrace))) {
			return true
		}
	}
	return false
}

func newStats() *stats {
	return &stats{byReason: map[string]int64{}, other: map[string]int64{}, start: time.Now(), margins: newMargins()}
}

func (s *stats) reason(status int, code string) {
	s.mu.Lock()
	s.byReason[fmt.Sprintf("%d %s", status, code)]++
	s.mu.Unlock()
}

func (s *stats) fail(kind, desc string) {
	s.mu.Lock()
	s.other[kind]++
	s.mu.Unlock()
	s.example(kind, desc)
}

// example keeps a few failures, with their time, for the report.
func (s *stats) example(kind, desc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.otherDesc) < 12 {
		s.otherDesc = append(s.otherDesc, fmt.Sprintf("%6.1fs %s: %s", time.Since(s.start).Seconds(), kind, desc))
	}
}

// repinned records how long a client of a server that crashed or was cut
// off took to get a pin for another server.
func (s *stats) repinned(kind serverState, d time.Duration) {
	if kind == stateCut {
		s.margins.observe("cut -> re-pinned (unreachable_for + client retry)", d, unreachableFor+cutRepinSlack)
	} else {
		s.margins.observe("death -> re-pinned (lease TTL + client retry)", d, leaseTTL+repinSlack)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == stateCut {
		s.cutRepinCount++
		s.cutRepinSum += d
		s.cutRepinWorst = max(s.cutRepinWorst, d)
		return
	}
	s.repinCount.Add(1)
	s.repinSum += d
	s.repinWorst = max(s.repinWorst, d)
}

func (s *stats) otherTotal() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.other {
		n += v
	}
	return n
}

func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// serverState is what the chaos controller tells clients about a server, so
// that a failure can be blamed on the fault that caused it.
type serverState int32

const (
	stateUp      serverState = iota
	stateCrashed             // killed without warning, with its agent
	statePlanned             // draining and restarting on purpose
	stateCut                 // running and heartbeating, but refusing the edges' connections
)

// fleet is the controller's view of the servers, read by the clients.
type fleet struct {
	mu     sync.Mutex
	state  map[string]serverState
	last   map[string]serverState // the kind of the server's last restart
	deaths map[string]time.Time   // when a crashed server died, or a cut one was cut off
	gen    map[string]int         // bumped when a server goes down: its memory is lost
}

func newFleet() *fleet {
	return &fleet{state: map[string]serverState{}, last: map[string]serverState{},
		deaths: map[string]time.Time{}, gen: map[string]int{}}
}

func (f *fleet) set(id string, st serverState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[id] = st
	if st != stateUp {
		f.last[id] = st
		f.gen[id]++
	}
	if st == stateCrashed || st == stateCut {
		f.deaths[id] = time.Now()
	}
}

func (f *fleet) get(id string) (serverState, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[id], f.deaths[id]
}

// generation changes each time the server goes down.
func (f *fleet) generation(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen[id]
}

func (f *fleet) lastRestart(id string) serverState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[id]
}

// client is one simulated user: it logs in, runs critical order workflows
// (create, add items, submit) with critical refreshes in between, and a
// non-critical refresh after each workflow, going through a random edge on
// every request: a pin is valid at every edge.
type client struct {
	user    string
	edges   []string
	http    *http.Client
	rng     *rand.Rand
	st      *stats
	fleet   *fleet
	think   time.Duration
	retry   time.Duration
	pin     string
	server  string // server of the current pin
	access  string
	refresh string
	closest bool // send closestServerId from /closestToMe at refresh
	seq     int  // numbers the Idempotency-Key of each request
}

// response is what a client keeps of an answer.
type response struct {
	status   int
	servedBy string // the app's own X-Served-By
	edgeSrv  string // the edge's X-Session-Server
	errCode  string // "error" of a JSON error body
	moved    bool   // X-Session-Server-Changed
	body     []byte
}

func (c *client) edge() string { return c.edges[c.rng.IntN(len(c.edges))] }

// do sends one request through a random edge, carrying the pin, and adopts
// a new pin from the answer.
func (c *client) do(ctx context.Context, method, path string, body any, auth bool) (response, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.edge()+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// An edge reload closes idle keep-alive connections; a request sent on
	// one at that instant is dropped unread. Browsers resend such a request;
	// an Idempotency-Key makes Go's client do the same (and only then).
	c.seq++
	req.Header.Set("Idempotency-Key", c.user+"-"+strconv.Itoa(c.seq))
	if c.pin != "" {
		req.Header.Set("X-Session-Pin", c.pin)
	}
	if auth && c.access != "" {
		req.Header.Set("Authorization", "Bearer "+c.access)
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	c.st.margins.observe("request -> whole answer (client timeout)", time.Since(sent), c.http.Timeout)
	r := response{
		status: resp.StatusCode, servedBy: resp.Header.Get("X-Served-By"),
		edgeSrv: resp.Header.Get("X-Session-Server"), body: b,
		moved: resp.Header.Get("X-Session-Server-Changed") == "1",
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		r.errCode = e.Error
	}
	if p := resp.Header.Get("X-Session-Pin"); p != "" {
		c.pin, c.server = p, r.edgeSrv
	}
	return r, nil
}

// run loops workflows until ctx ends.
func (c *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		if c.access == "" && !c.login(ctx) {
			c.pause(ctx, c.retry)
			continue
		}
		c.workflow(ctx)
		c.pause(ctx, c.think)
		c.refreshOnce(ctx, false)
	}
}

func (c *client) pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d/2 + time.Duration(c.rng.Int64N(int64(d))))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tokens is the demo app's login and refresh answer.
type tokens struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

func (c *client) login(ctx context.Context) bool {
	r, err := c.do(ctx, http.MethodPost, "/auth/login", map[string]string{"user": c.user}, false)
	if err != nil {
		c.transportErr(ctx, "login", err)
		return false
	}
	if r.status != http.StatusOK {
		c.unexpected(ctx, "login", r, "")
		return false
	}
	var tk tokens
	if err := json.Unmarshal(r.body, &tk); err != nil || tk.AccessToken == "" {
		c.st.fail("login body", string(r.body))
		return false
	}
	c.access, c.refresh = tk.AccessToken, tk.RefreshToken
	return true
}

// order is the part of the demo app's order the client checks.
type order struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Items  []struct {
		SKU string `json:"sku"`
	} `json:"items"`
}

// workflow runs one critical order: every step after the first must be
// answered by the server (and the same process of it) that created the order.
func (c *client) workflow(ctx context.Context) {
	r, err := c.do(ctx, http.MethodPost, "/orders", nil, true)
	if err != nil {
		c.transportErr(ctx, "create order", err)
		return
	}
	if r.status != http.StatusCreated {
		c.unexpected(ctx, "create order", r, "")
		return
	}
	var o order
	if err := json.Unmarshal(r.body, &o); err != nil || o.ID == "" {
		c.st.fail("create body", string(r.body))
		return
	}
	home, gen := r.servedBy, c.fleet.generation(r.servedBy)
	n, items := 2+c.rng.IntN(3), 0
	for i := range n + 1 {
		c.pause(ctx, c.think)
		if ctx.Err() != nil {
			return
		}
		var step string
		switch {
		case i == n:
			step = "submit"
			r, err = c.do(ctx, http.MethodPost, "/orders/"+o.ID+"/submit", nil, true)
		case i > 0 && c.rng.IntN(4) == 0:
			// A critical refresh in the middle of the workflow must keep
			// the client on its server while that server is alive.
			step = "critical refresh"
			r, err = c.do(ctx, http.MethodPost, "/auth/refresh",
				map[string]any{"refreshToken": c.refresh, "criticalTaskInProgress": true}, false)
		default:
			step = "add item"
			items++
			r, err = c.do(ctx, http.MethodPost, "/orders/"+o.ID+"/items",
				map[string]any{"sku": fmt.Sprintf("sku-%d", i), "qty": 1}, true)
		}
		c.st.steps.Add(1)
		if err != nil {
			c.transportErr(ctx, step, err)
			return
		}
		if step == "critical refresh" && r.moved && r.status < 300 {
			// Refresh rule b: the server left the registry, so even a critical
			// refresh moves. Right only when the controller took it down.
			c.adoptTokens(r)
			if st, _ := c.fleet.get(home); st == stateUp {
				c.st.fail("critical refresh moved off a live server", home+" -> "+r.servedBy)
			} else {
				c.lost(home, false)
			}
			return
		}
		if r.servedBy != "" && r.servedBy != home {
			c.st.wrongSrv.Add(1)
			c.st.fail("wrong server", fmt.Sprintf("%s of order %s created on %s answered by %s (%d)", step, o.ID, home, r.servedBy, r.status))
			return
		}
		if r.servedBy == home && r.status == http.StatusNotFound && c.fleet.generation(home) != gen {
			// Same id, new process: the server went down and came back while
			// this client was between steps. Not a hop, but the order is lost.
			c.lost(home, true)
			return
		}
		if step == "submit" && r.servedBy == home && r.status == http.StatusConflict && r.errCode == "order_submitted" {
			c.st.resubmits.Add(1)
			c.st.stepsOK.Add(1)
			c.st.workflows.Add(1)
			return
		}
		if r.status >= 300 {
			c.unexpected(ctx, step, r, home)
			return
		}
		c.st.stepsOK.Add(1)
		if step == "critical refresh" {
			c.adoptTokens(r)
			c.st.critKept.Add(1)
		}
		if i == n {
			var done order
			if err := json.Unmarshal(r.body, &done); err != nil || done.Status != "submitted" || len(done.Items) != items {
				c.st.fail("submit answer", fmt.Sprintf("want submitted with %d items: %s", items, bytes.TrimSpace(r.body)))
				return
			}
			c.st.workflows.Add(1)
		}
	}
}

// adoptTokens takes the app's new token pair from a refresh answer.
func (c *client) adoptTokens(r response) {
	var tk tokens
	if json.Unmarshal(r.body, &tk) == nil && tk.AccessToken != "" {
		c.access, c.refresh = tk.AccessToken, tk.RefreshToken
	}
}

// refreshOnce makes a refresh and adopts its pin; with critical false the
// edge may move the client (drain, rebalance, failover).
func (c *client) refreshOnce(ctx context.Context, critical bool) bool {
	body := map[string]any{"refreshToken": c.refresh, "criticalTaskInProgress": critical}
	if c.closest {
		if _, b, err := getBodyCtx(ctx, c.http, c.edge()+"/closestToMe"); err == nil {
			var cl struct {
				ID string `json:"closestServerId"`
			}
			if json.Unmarshal(b, &cl) == nil && cl.ID != "" {
				body["closestServerId"] = cl.ID
			}
		}
	}
	before := c.server
	r, err := c.do(ctx, http.MethodPost, "/auth/refresh", body, false)
	c.st.refreshes.Add(1)
	if err != nil {
		c.transportErr(ctx, "refresh", err)
		return false
	}
	if r.status != http.StatusOK {
		c.unexpected(ctx, "refresh", r, "")
		return false
	}
	c.adoptTokens(r)
	if before != "" && c.server != before {
		c.st.moves.Add(1)
	}
	return true
}

// unexpected classifies a failed answer. A 5xx of the edge (not of the
// app) for a server the controller took down is expected and counted by
// reason, and the client then refreshes until it is re-pinned; anything else
// is an error, after which the client starts over with a fresh login.
func (c *client) unexpected(ctx context.Context, step string, r response, home string) {
	if ctx.Err() != nil {
		return
	}
	if r.status < 500 || r.servedBy != "" {
		c.st.fail(fmt.Sprintf("%d %s", r.status, r.errCode), fmt.Sprintf("%s via %s: %s", step, r.servedBy, bytes.TrimSpace(r.body)))
		c.access = ""
		return
	}
	c.st.reason(r.status, r.errCode)
	srv := r.edgeSrv
	if srv == "" {
		srv = c.server
	}
	st, died := c.fleet.get(srv)
	if st != stateCrashed && st != stateCut {
		died = time.Time{} // a death that counts is the current crash's or cut's
	}
	switch {
	case r.errCode == "no_server_available":
		c.st.fail("no server available", step)
	case st == stateUp:
		c.st.fail("5xx for a healthy server", fmt.Sprintf("%s: %d %s (%s)", step, r.status, r.errCode, srv))
	case st == statePlanned:
		c.st.failPlan.Add(1)
		c.st.example("failed during a planned restart", fmt.Sprintf("%s: %d %s (%s)", step, r.status, r.errCode, srv))
	}
	if home != "" {
		c.lost(home, false)
	}
	c.repin(ctx, srv, st, died)
}

// lost counts a workflow cut short by its server's fault; restarted means
// the server came back (empty) and the last restart's kind is to blame.
func (c *client) lost(srv string, restarted bool) {
	st, _ := c.fleet.get(srv)
	if restarted {
		st = c.fleet.lastRestart(srv)
	}
	switch st {
	case statePlanned:
		c.st.lostPlan.Add(1)
		c.st.example("workflow lost to a planned restart", srv)
	case stateCrashed:
		c.st.lostCrash.Add(1)
	case stateCut:
		c.st.lostCut.Add(1)
	default:
		c.st.fail("workflow lost on a healthy server", srv)
	}
}

// repin refreshes (non-critical) until the edge moves the client off dead,
// then records the time since its death (or its cut, by kind).
func (c *client) repin(ctx context.Context, dead string, kind serverState, died time.Time) {
	for ctx.Err() == nil {
		c.pause(ctx, c.retry)
		before := c.server
		body := map[string]any{"refreshToken": c.refresh, "criticalTaskInProgress": false}
		r, err := c.do(ctx, http.MethodPost, "/auth/refresh", body, false)
		c.st.refreshes.Add(1)
		if err != nil {
			c.transportErr(ctx, "re-pin refresh", err)
			return
		}
		if r.status >= 500 && r.servedBy == "" {
			c.st.reason(r.status, r.errCode)
			continue
		}
		if r.status != http.StatusOK {
			c.st.fail(fmt.Sprintf("re-pin %d %s", r.status, r.errCode), string(bytes.TrimSpace(r.body)))
			c.access = ""
			return
		}
		c.adoptTokens(r)
		if before != c.server {
			c.st.moves.Add(1)
		}
		if c.server != dead && !died.IsZero() {
			c.st.repinned(kind, time.Since(died))
		}
		return
	}
}

func (c *client) transportErr(ctx context.Context, step string, err error) {
	if ctx.Err() != nil {
		return // the run ended mid-request
	}
	if isConnReset(err) && c.st.inReload(time.Now()) {
		c.st.reloadResets.Add(1)
		c.st.example("reset by an edge reload", step+": "+err.Error())
		return
	}
	c.st.fail("transport", step+": "+err.Error())
}

// isConnReset is a connection the peer reset or closed under a request,
// as a closing listener or server does; a refused dial or a timeout is not.
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE)
}

func getBodyCtx(ctx context.Context, hc *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
