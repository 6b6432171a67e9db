// Package walkthrough walks the flows of sessionpin's seed design against a
// running demo (two edges in two regions, four demo backends) and prints a
// readable timeline: login pins the client, the edges answer /closestToMe
// for their own regions, a pin issued by one edge is honoured by the other,
// a critical workflow stays on its server through a refresh, a non-critical
// refresh moves the client, and a stopped server leads to "Reconnecting…",
// a refresh and a new server.
//
// Every step checks what it shows; Run returns an error at the first
// expectation that fails.
package walkthrough

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ServerChangedMessage is what the front end shows when a refresh moved the
// client to another server (seed §8).
const ServerChangedMessage = "Your primary server has changed. Any missing data will be synced within 5 minutes."

// Config says where the demo runs.
type Config struct {
	// EdgeA and EdgeB are the base URLs of two edges in different regions.
	// Default: http://127.0.0.1:8080 and http://127.0.0.1:8081.
	EdgeA, EdgeB string
	// Admins maps a server id to the base URL of its demo backend's admin
	// listener, used to take the pinned server down and bring it back.
	// Default: eu-1, eu-2, us-1, us-2 on http://127.0.0.1:9101..9104.
	Admins map[string]string
	// User logs in. Default: "alice".
	User string
	// Fast waits at most 2s where the edge says Retry-After, instead of the
	// full time, for tests and impatient demos.
	Fast bool
	// DownTimeout bounds the wait for the edge to notice a stopped server
	// (the agent's next probe). Default: 30s.
	DownTimeout time.Duration
	// Out receives the timeline. Default: io.Discard.
	Out io.Writer
	// Client sends the requests; it must not follow redirects or keep
	// cookies (the pin travels in the X-Session-Pin header). Default: a
	// client with a 10s timeout.
	Client *http.Client
}

// DefaultAdmins are the admin listeners of examples/run.sh.
func DefaultAdmins() map[string]string {
	return map[string]string{
		"eu-1": "http://127.0.0.1:9101",
		"eu-2": "http://127.0.0.1:9102",
		"us-1": "http://127.0.0.1:9103",
		"us-2": "http://127.0.0.1:9104",
	}
}

func (c *Config) defaults() {
	if c.EdgeA == "" {
		c.EdgeA = "http://127.0.0.1:8080"
	}
	if c.EdgeB == "" {
		c.EdgeB = "http://127.0.0.1:8081"
	}
	c.EdgeA = strings.TrimRight(c.EdgeA, "/")
	c.EdgeB = strings.TrimRight(c.EdgeB, "/")
	if c.Admins == nil {
		c.Admins = DefaultAdmins()
	}
	if c.User == "" {
		c.User = "alice"
	}
	if c.DownTimeout <= 0 {
		c.DownTimeout = 30 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Client == nil {
		c.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
}

// walk is one run of the walkthrough.
type walk struct {
	cfg  Config
	s    *session
	step int
	// regionOf remembers the region of every server seen, from the edges'
	// /closestToMe answers.
	regionOf map[string]string
}

// Run walks every flow and returns the first failed expectation.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	w := &walk{cfg: cfg, s: &session{client: cfg.Client}, regionOf: map[string]string{}}
	w.printf("sessionpin walkthrough: edge A %s, edge B %s\n", cfg.EdgeA, cfg.EdgeB)
	steps := []func(context.Context) error{
		w.login,
		w.closest,
		w.pinAcrossEdges,
		w.criticalWorkflow,
		w.nonCriticalRefresh,
		w.failover,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			w.printf("    ✗ %v\n", err)
			return err
		}
	}
	w.printf("\nAll steps passed.\n")
	return nil
}

func (w *walk) printf(format string, args ...any) { fmt.Fprintf(w.cfg.Out, format, args...) }

func (w *walk) title(s string) {
	w.step++
	w.printf("\n%d. %s\n", w.step, s)
}

func (w *walk) ok(format string, args ...any) { w.printf("    ✓ "+format+"\n", args...) }

func (w *walk) note(format string, args ...any) { w.printf("    "+format+"\n", args...) }

// login: the edge places the new client and pins it; the app issues its own
// tokens and knows nothing about it.
func (w *walk) login(ctx context.Context) error {
	w.title("Login through edge A")
	r, err := w.s.call(ctx, "POST", w.cfg.EdgeA+"/auth/login", map[string]any{"user": w.cfg.User})
	if err != nil {
		return err
	}
	w.note("POST A/auth/login → %s", r.describe())
	if r.status != http.StatusOK {
		return fmt.Errorf("login: want 200, got %s", r.describe())
	}
	if r.pin == "" || r.server == "" {
		return errors.New("login: the edge issued no pin (X-Session-Pin / X-Session-Server missing)")
	}
	if r.servedBy != r.server {
		return fmt.Errorf("login: pinned to %s but answered by %s", r.server, r.servedBy)
	}
	w.s.access, w.s.refresh = r.str("accessToken"), r.str("refreshToken")
	w.regionOf[r.server] = r.str("region")
	w.ok("pinned to %s (%s): X-Session-Server: %s, X-Session-Pin: %s", r.server, r.str("region"), r.server, abbrev(r.pin))
	w.ok("the app issued its own tokens (access %s)", abbrev(w.s.access))
	return nil
}

// closestOf asks an edge which server it would place a client on.
func (w *walk) closestOf(ctx context.Context, edge, name string) (id, region string, err error) {
	r, err := w.s.call(ctx, "GET", edge+"/closestToMe", nil)
	if err != nil {
		return "", "", err
	}
	if r.status != http.StatusOK || r.str("closestServerId") == "" {
		return "", "", fmt.Errorf("GET %s/closestToMe: want 200 with closestServerId, got %d %s", name, r.status, r.raw)
	}
	id, region = r.str("closestServerId"), r.str("region")
	w.regionOf[id] = region
	w.note("GET %s/closestToMe → %s (%s, load %.2f)", name, id, region, r.num("load"))
	return id, region, nil
}

func (w *walk) closest(ctx context.Context) error {
	w.title("Each edge names the closest server of its own region")
	_, ra, err := w.closestOf(ctx, w.cfg.EdgeA, "A")
	if err != nil {
		return err
	}
	_, rb, err := w.closestOf(ctx, w.cfg.EdgeB, "B")
	if err != nil {
		return err
	}
	if ra == rb {
		return fmt.Errorf("both edges answer for region %s; want two regions", ra)
	}
	w.ok("edge A answers for %s, edge B for %s", ra, rb)
	return nil
}

// pinAcrossEdges: the pin is verified by any edge sharing the key, and names
// a server id that every edge resolves through the shared registry.
func (w *walk) pinAcrossEdges(ctx context.Context) error {
	w.title("A pin issued by edge A is honoured by edge B")
	r, err := w.s.call(ctx, "GET", w.cfg.EdgeB+"/whoami", nil)
	if err != nil {
		return err
	}
	w.note("GET B/whoami with the pin → %s", r.describe())
	if r.status != http.StatusOK || r.servedBy != w.s.server {
		return fmt.Errorf("edge B sent the pinned client to %q, want %s", r.servedBy, w.s.server)
	}
	if r.pin != "" {
		return errors.New("edge B issued a new pin for a valid one")
	}
	w.ok("edge B (another region) proxied to %s, the pinned server", w.s.server)
	return nil
}

// otherRegionClosest is the closest server of the edge whose region is not
// the pinned server's, so that a refresh has a reason to move.
func (w *walk) otherRegionClosest(ctx context.Context) (string, error) {
	for _, e := range []struct{ url, name string }{{w.cfg.EdgeB, "B"}, {w.cfg.EdgeA, "A"}} {
		id, region, err := w.closestOf(ctx, e.url, e.name)
		if err != nil {
			return "", err
		}
		if region != w.regionOf[w.s.server] {
			return id, nil
		}
	}
	return "", fmt.Errorf("no edge names a server outside %s's region", w.s.server)
}

// refresh sends the refresh the seed describes: the app's refresh token,
// the closest server and whether a critical task runs.
func (w *walk) refresh(ctx context.Context, edge, closest string, critical bool) (response, error) {
	r, err := w.s.call(ctx, "POST", edge+"/auth/refresh", map[string]any{
		"refreshToken":           w.s.refresh,
		"closestServerId":        closest,
		"criticalTaskInProgress": critical,
	})
	if err != nil {
		return r, err
	}
	if r.status == http.StatusOK {
		w.s.access, w.s.refresh = r.str("accessToken"), r.str("refreshToken")
	}
	return r, nil
}

func (w *walk) orderStep(ctx context.Context, what, path string, body any) (response, error) {
	r, err := w.s.call(ctx, "POST", w.cfg.EdgeA+path, body)
	if err != nil {
		return r, err
	}
	w.note("%s: POST A%s → %s", what, path, r.describe())
	if r.status/100 != 2 {
		return r, fmt.Errorf("%s failed: %s", what, r.describe())
	}
	if r.servedBy != w.s.server {
		return r, fmt.Errorf("%s ran on %s, not on the pinned server %s", what, r.servedBy, w.s.server)
	}
	return r, nil
}

// criticalWorkflow: a refresh in the middle of a multi-step workflow keeps
// the client where its state is, even when another region is closer.
func (w *walk) criticalWorkflow(ctx context.Context) error {
	w.title("A critical workflow stays on its server through a refresh")
	pinned := w.s.server
	r, err := w.orderStep(ctx, "create order", "/orders", nil)
	if err != nil {
		return err
	}
	id := r.str("id")
	closest, err := w.otherRegionClosest(ctx)
	if err != nil {
		return err
	}
	r, err = w.refresh(ctx, w.cfg.EdgeA, closest, true)
	if err != nil {
		return err
	}
	w.note("POST A/auth/refresh {closestServerId: %s, criticalTaskInProgress: true} → %s", closest, r.describe())
	if r.status != http.StatusOK {
		return fmt.Errorf("critical refresh: want 200, got %s", r.describe())
	}
	if r.servedBy != pinned || w.s.server != pinned || r.changed {
		return fmt.Errorf("critical refresh moved the client from %s to %s", pinned, w.s.server)
	}
	w.ok("stayed on %s although %s is closer: a critical task is in progress", pinned, closest)
	if _, err := w.orderStep(ctx, "add item", "/orders/"+id+"/items", map[string]any{"sku": "espresso-beans", "qty": 2}); err != nil {
		return err
	}
	r, err = w.orderStep(ctx, "submit", "/orders/"+id+"/submit", nil)
	if err != nil {
		return err
	}
	if r.str("status") != "submitted" {
		return fmt.Errorf("submit: order status %q, want submitted", r.str("status"))
	}
	w.ok("order %s created, filled and submitted on %s: the workflow never hopped", id, pinned)
	return nil
}

// nonCriticalRefresh: with no critical task, a refresh moves the client to
// the closest server of another region, and the front end says so.
func (w *walk) nonCriticalRefresh(ctx context.Context) error {
	w.title("A refresh with no critical task moves the client")
	from := w.s.server
	closest, err := w.otherRegionClosest(ctx)
	if err != nil {
		return err
	}
	r, err := w.refresh(ctx, w.cfg.EdgeB, closest, false)
	if err != nil {
		return err
	}
	w.note("POST B/auth/refresh {closestServerId: %s, criticalTaskInProgress: false} → %s", closest, r.describe())
	if r.status != http.StatusOK {
		return fmt.Errorf("refresh: want 200, got %s", r.describe())
	}
	if w.s.server == from || !r.changed {
		return fmt.Errorf("refresh kept the client on %s (X-Session-Server-Changed %v)", w.s.server, r.changed)
	}
	if r.servedBy != w.s.server {
		return fmt.Errorf("refresh answered by %s but the new pin names %s", r.servedBy, w.s.server)
	}
	w.ok("moved %s → %s (X-Session-Server-Changed: 1, X-Session-Server-URL: %s)", from, w.s.server, r.serverURL)
	w.printf("    💬 %s\n", ServerChangedMessage)
	return nil
}

// failover: the pinned server stops; the edge refuses to send the client
// anywhere else until it refreshes, then the refresh lands on a live server.
func (w *walk) failover(ctx context.Context) error {
	w.title("The pinned server stops: 503, Reconnecting…, refresh, a new server")
	down := w.s.server
	admin, ok := w.cfg.Admins[down]
	if !ok {
		return fmt.Errorf("no admin URL for %s (see --admin)", down)
	}
	if err := w.admin(ctx, admin, "down"); err != nil {
		return err
	}
	defer w.restore(down, admin)
	w.note("POST %s/admin/down: %s stops answering its health check", admin, down)

	r, err := w.waitPinnedUnavailable(ctx)
	if err != nil {
		return err
	}
	w.ok("GET A/whoami → 503 %s for %s, Retry-After: %d", r.str("error"), r.str("server"), r.retryAfter)

	w.countdown(ctx, r.retryAfter)
	closest, _, err := w.closestOf(ctx, w.cfg.EdgeA, "A")
	if err != nil {
		return err
	}
	r, err = w.refresh(ctx, w.cfg.EdgeA, closest, false)
	if err != nil {
		return err
	}
	w.note("POST A/auth/refresh {closestServerId: %s, criticalTaskInProgress: false} → %s", closest, r.describe())
	if r.status != http.StatusOK || w.s.server == down || !r.changed {
		return fmt.Errorf("refresh after failure: want 200 on a new server, got %s, pinned to %s", r.describe(), w.s.server)
	}
	w.ok("moved %s → %s", down, w.s.server)
	w.printf("    💬 %s\n", ServerChangedMessage)

	r, err = w.s.call(ctx, "GET", w.cfg.EdgeA+"/whoami", nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK || r.servedBy != w.s.server {
		return fmt.Errorf("after failover: want 200 from %s, got %s", w.s.server, r.describe())
	}
	w.ok("GET A/whoami → 200 from %s: back in business", r.servedBy)
	return nil
}

// waitPinnedUnavailable polls until the edge has seen the server leave the
// registry and answers the edge's own 503 for the pin. Meanwhile the app
// itself may answer 503 server_down through the edge.
func (w *walk) waitPinnedUnavailable(ctx context.Context) (response, error) {
	deadline := time.Now().Add(w.cfg.DownTimeout)
	seenAppDown := false
	for {
		r, err := w.s.call(ctx, "GET", w.cfg.EdgeA+"/whoami", nil)
		if err != nil {
			return r, err
		}
		if r.status == http.StatusServiceUnavailable && r.str("error") == "pinned_server_unavailable" {
			return r, nil
		}
		if r.status >= 500 && !seenAppDown {
			seenAppDown = true
			w.note("GET A/whoami → %s (the server is failing; waiting for it to leave the registry)", r.describe())
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("the edge still answers %s %s after %s; want 503 pinned_server_unavailable", r.describe(), r.raw, w.cfg.DownTimeout)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// countdown shows "Reconnecting…" for the Retry-After seconds, as the seed's
// front end does; Fast shortens it.
func (w *walk) countdown(ctx context.Context, retryAfter int) {
	if retryAfter <= 0 {
		retryAfter = 30
	}
	wait := time.Duration(retryAfter) * time.Second
	if w.cfg.Fast && wait > 2*time.Second {
		wait = 2 * time.Second
		w.note("Reconnecting… (Retry-After %ds; --fast waits %s)", retryAfter, wait)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for left := wait; left > 0; left -= time.Second {
		if !w.cfg.Fast && (left == wait || left%(5*time.Second) == 0 || left <= 3*time.Second) {
			w.note("Reconnecting… %ds", int(left/time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *walk) admin(ctx context.Context, base, action string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(base, "/")+"/admin/"+action, nil)
	if err != nil {
		return err
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s: %w", action, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin %s: %s answered %s", action, base, resp.Status)
	}
	return nil
}

// restore brings the stopped server back even when a step failed, so the
// demo is whole again for the next run.
func (w *walk) restore(id, admin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.admin(ctx, admin, "up"); err != nil {
		w.note("could not restore %s: %v", id, err)
		return
	}
	w.note("POST %s/admin/up: %s is back (its agent registers it again on the next heartbeat)", admin, id)
}

// abbrev shortens a token for printing; a whole token is never logged.
func abbrev(tok string) string {
	if len(tok) <= 16 {
		return tok
	}
	return tok[:12] + "…"
}
