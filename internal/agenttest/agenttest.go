// Package agenttest runs the discovery agent against an app in tests: a
// fake app whose health the test sets, the agent run until the test stops
// it, and the record the agent left in etcd. The agent's own tests and the
// service's drain tests use it.
package agenttest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// Interval is short so the tests move quickly, yet leaves the health
// probe (3/4 of it) ample time on a loaded machine under -race.
const Interval = 200 * time.Millisecond

// App is an unchanged app: a /healthz whose status and body the test sets.
type App struct {
	// URL is the app's base URL; its health is URL + "/healthz".
	URL string

	mu     sync.Mutex
	status int
	body   string
	delay  time.Duration // how long /healthz takes to answer
	probes int           // health requests answered, counted as each reads status and body
	hits   atomic.Int64  // probes received
}

// StartApp starts an app whose /healthz answers status and body, until
// the test ends.
func StartApp(t *testing.T, status int, body string) *App {
	t.Helper()
	a := &App{status: status, body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		a.hits.Add(1)
		a.mu.Lock()
		status, body, delay := a.status, a.body, a.delay
		a.probes++
		a.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// Set changes the app's health answer.
func (a *App) Set(status int, body string) {
	a.mu.Lock()
	a.status, a.body = status, body
	a.mu.Unlock()
}

// SetDelay makes /healthz take d to answer.
func (a *App) SetDelay(d time.Duration) {
	a.mu.Lock()
	a.delay = d
	a.mu.Unlock()
}

// Hits is how many health probes the app received.
func (a *App) Hits() int64 { return a.hits.Load() }

// SetAndWaitHeartbeat sets the app's health and waits until the agent has
// finished a whole round on it: a probe that read it, and the heartbeat
// that followed, which ended before the agent's next probe began.
func (a *App) SetAndWaitHeartbeat(t *testing.T, status int, body string) {
	t.Helper()
	a.mu.Lock()
	a.status, a.body = status, body
	n := a.probes
	a.mu.Unlock()
	poll.True(t, 20*time.Second, "a round of the agent on the new health", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.probes >= n+2
	})
}

// Run runs ag until the returned stop function is called; stop waits
// for Run to return and hands back its error.
func Run(t *testing.T, ag *agent.Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// Stored returns the server's record in etcd, or nil when it is absent.
func Stored(t *testing.T, c *clientv3.Client, id string) *schema.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, schema.ServerKey("", id))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var s schema.Server
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}
