// Package walkthrough walks the flows of sessionpin's seed design against a
// running demo (two edges in two regions, four demo backends) and prints a
// readable timeline: login pins the client, the edges answer /closestToMe
// for their own regions, a pin issued by one edge is honoured by the other,
// a critical workflow stays on its server through a refresh, a non-critical
// refresh moves the client, an operator drain lets a critical workflow
// finish before the client moves and then reports the server drained, and
// a stopped server leads to "Reconnecting…", a refresh and a new server.
//
// Every step checks what it shows; Run returns an error at the first
// expectation that fails.
package walkthrough

import (
	"context"
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
	// Discovery is the base URL of the discovery API, where the walkthrough
	// drains the pinned server. Default: http://127.0.0.1:7070.
	Discovery string
	// Token is discovery's admin token, which drains take. Default: none
	// (a discovery service without a token).
	Token string
	// DrainQuiet is the quiet period after which the drained server counts
	// as drained (the ?quiet= of the drain status). Default: 6s, longer
	// than the edges' default 5s activity interval, so that "drained"
	// comes after a report that includes the last pinned request.
	DrainQuiet time.Duration
	// DrainTimeout bounds the wait for the drained server to be reported
	// drained. Default: 60s.
	DrainTimeout time.Duration
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
	if c.Discovery == "" {
		c.Discovery = "http://127.0.0.1:7070"
	}
	c.Discovery = strings.TrimRight(c.Discovery, "/")
	if c.DrainQuiet <= 0 {
		c.DrainQuiet = 6 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 60 * time.Second
	}
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
		w.drain,
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

// abbrev shortens a token for printing; a whole token is never logged.
func abbrev(tok string) string {
	if len(tok) <= 16 {
		return tok
	}
	return tok[:12] + "…"
}

// edge is one of the two edges the walkthrough talks to, by URL and by the
// letter the timeline calls it.
type edge struct{ url, name string }
