// Package demostack runs the whole sessionpin demo inside a test: a real
// embedded etcd, the discovery HTTP API over it with the fleet page, four demo backends in two
// regions with a heartbeat agent each, and a real in-process Caddy with two
// edges (eu-west, us-east) that also serves examples/web under /demo/.
// Every port is a free one, the Caddy admin endpoint included.
package demostack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sessionpin/sessionpin/caddymodule"
	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/examples/backend/app"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// Options tune the stack.
type Options struct {
	// ReplicationDelay of the backends. Default: 1h, so that nothing is
	// replicated during a test and a hop always shows.
	ReplicationDelay time.Duration
	// AgentInterval between health probes and heartbeats. Default: 100ms.
	AgentInterval time.Duration
	// Token is discovery's admin token, which the agents then use too.
	// Default: none, writes are open.
	Token string
}

// Backend is one demo server of the stack.
type Backend struct {
	ID, Region string
	URL        string // public URL, what the edges proxy to
	AdminURL   string
	App        *app.App
}

// Stack is a running demo.
type Stack struct {
	EdgeA, EdgeB string // base URLs: eu-west and us-east
	Discovery    string // discovery API base URL
	Backends     map[string]*Backend
	Admins       map[string]string // id → admin URL
}

// layout is the demo's topology, the same as examples/run.sh.
var layout = []struct{ id, region string }{
	{"eu-1", "eu-west"}, {"eu-2", "eu-west"}, {"us-1", "us-east"}, {"us-2", "us-east"},
}

// TokenKey is the demo app's own token key in the stack.
var TokenKey = []byte("demo-backend-token-key-for-tests-only")

// PinSecret is the edges' pin key in the stack.
const PinSecret = "sessionpin-demo-stack-secret-0123456789"

// Start runs the stack and stops it when the test ends. It returns once both
// edges answer /closestToMe and all four servers are registered.
func Start(t *testing.T, opts Options) *Stack {
	t.Helper()
	if opts.ReplicationDelay <= 0 {
		opts.ReplicationDelay = time.Hour
	}
	if opts.AgentInterval <= 0 {
		opts.AgentInterval = 100 * time.Millisecond
	}
	member := etcdtest.Start(t)
	client := etcdtest.NewClient(t, member)

	// Discovery as `discoverysvc serve` runs it: the API behind the fleet's
	// metrics, events stream and page.
	svc := discoverysvc.New(discoverysvc.Config{Client: client, Token: opts.Token, AllowLoopback: true})
	disc := httptest.NewServer(svc.Handler())
	t.Cleanup(disc.Close)
	fleetCtx, stopFleet := context.WithCancel(context.Background())
	fleetDone := make(chan struct{})
	go func() {
		defer close(fleetDone)
		svc.Run(fleetCtx)
	}()
	// Before disc.Close: the end of the fleet's watch ends its streams.
	t.Cleanup(func() { stopFleet(); <-fleetDone })

	st := &Stack{Discovery: disc.URL, Backends: map[string]*Backend{}, Admins: map[string]string{}}
	st.startBackends(t, opts)
	st.startAgents(t, opts)
	st.startCaddy(t, member.Client)
	st.waitReady(t)
	return st
}

func (st *Stack) startBackends(t *testing.T, opts Options) {
	t.Helper()
	// Listeners first: every backend needs its peers' URLs at construction.
	type half struct {
		pub, adm *httptest.Server
		h        *lateHandler
		ah       *lateHandler
	}
	halves := map[string]*half{}
	for _, l := range layout {
		h, ah := &lateHandler{}, &lateHandler{}
		hf := &half{pub: httptest.NewServer(h), adm: httptest.NewServer(ah), h: h, ah: ah}
		t.Cleanup(hf.pub.Close)
		t.Cleanup(hf.adm.Close)
		halves[l.id] = hf
	}
	for _, l := range layout {
		var peers []string
		for _, o := range layout {
			if o.id != l.id {
				peers = append(peers, halves[o.id].pub.URL)
			}
		}
		a, err := app.New(app.Config{
			ServerID: l.id, Region: l.region, TokenKey: TokenKey,
			Peers: peers, ReplicationDelay: opts.ReplicationDelay,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		hf := halves[l.id]
		hf.h.set(a.Handler())
		hf.ah.set(a.AdminHandler())
		st.Backends[l.id] = &Backend{ID: l.id, Region: l.region, URL: hf.pub.URL, AdminURL: hf.adm.URL, App: a}
		st.Admins[l.id] = hf.adm.URL
	}
}

func (st *Stack) startAgents(t *testing.T, opts Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, b := range st.Backends {
		ag := &agent.Agent{
			ID: b.ID, Region: b.Region, URL: b.URL, HealthURL: b.URL + "/healthz",
			Discovery: st.Discovery, Interval: opts.AgentInterval, Token: opts.Token,
		}
		if err := ag.Validate(); err != nil {
			t.Fatalf("agent %s: %v", b.ID, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ag.Run(ctx)
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// webRoot is examples/web, which the edges serve under /demo/.
func webRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "web")
}

// startCaddy runs both edges in one in-process Caddy. A free port can be
// taken by another process between the probe and Caddy's listen, so a bind
// failure is retried with new ports.
func (st *Stack) startCaddy(t *testing.T, etcdAddr string) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = st.loadCaddy(t, etcdAddr); err == nil {
			t.Cleanup(func() { _ = caddy.Stop() })
			return
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("start caddy: %v", err)
}

func (st *Stack) loadCaddy(t *testing.T, etcdAddr string) error {
	t.Helper()
	admin, portA, portB := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	site := func(addr, region string) string {
		return fmt.Sprintf(`http://%s {
	bind 127.0.0.1
	handle_path /demo/* {
		root * %q
		file_server
	}
	handle {
		session_pin {
			region %s
			key hs256 %s
		}
		reverse_proxy {
			dynamic session_pin
		}
	}
}
`, addr, webRoot(), region, PinSecret)
	}
	cf := fmt.Sprintf(`{
	admin %s
	persist_config off
	log {
		level ERROR
	}
	session_pin {
		etcd %s
		activity_interval 1s
	}
}
`, admin, etcdAddr) + site(portA, "eu-west") + site(portB, "us-east")

	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt Caddyfile: %v\n%s", err, cf)
	}
	for _, w := range warnings {
		t.Logf("Caddyfile warning: %s", w.Message)
	}
	if err := caddy.Load(cfg, true); err != nil {
		return err
	}
	st.EdgeA, st.EdgeB = "http://"+portA, "http://"+portB
	return nil
}

// waitReady polls until both edges place clients and all four servers are
// registered.
func (st *Stack) waitReady(t *testing.T) {
	t.Helper()
	poll.Until(t, 60*time.Second, "the demo stack to come up", func() error {
		// All four registered, and the edges (which share one registry
		// watch) place clients in their own regions: the watch has caught up.
		n, err := st.Registered()
		if err != nil {
			return err
		}
		if n != len(layout) {
			return fmt.Errorf("%d of %d servers registered", n, len(layout))
		}
		for _, e := range []struct{ url, region string }{{st.EdgeA, "eu-west"}, {st.EdgeB, "us-east"}} {
			if err := closestInRegion(e.url, e.region); err != nil {
				return err
			}
		}
		return nil
	})
}

// Registered counts the servers in the registry.
func (st *Stack) Registered() (int, error) {
	ids, err := st.RegisteredIDs()
	return len(ids), err
}

// Servers lists the registered servers, from the discovery API.
func (st *Stack) Servers() ([]schema.Server, error) {
	resp, err := http.Get(st.Discovery + "/v1/servers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Servers []schema.Server `json:"servers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	return list.Servers, nil
}

// RegisteredIDs lists the ids of the registered servers.
func (st *Stack) RegisteredIDs() ([]string, error) {
	servers, err := st.Servers()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range servers {
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// WaitRegistered polls until server id is (or is not) in the registry.
func (st *Stack) WaitRegistered(t *testing.T, id string, want bool) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%s registered=%v", id, want), func() error {
		ids, err := st.RegisteredIDs()
		if err != nil {
			return err
		}
		has := strings.Contains(","+strings.Join(ids, ",")+",", ","+id+",")
		if has != want {
			return fmt.Errorf("registered: %v", ids)
		}
		return nil
	})
}

// WaitLoad polls until the registry holds load for server id.
func (st *Stack) WaitLoad(t *testing.T, id string, load float64) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%s to report load %v", id, load), func() error {
		servers, err := st.Servers()
		if err != nil {
			return err
		}
		for _, s := range servers {
			if s.ID == id && s.Load == load {
				return nil
			}
		}
		return fmt.Errorf("registry: %+v", servers)
	})
}

func closestInRegion(edge, region string) error {
	resp, err := http.Get(edge + "/closestToMe")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var c struct {
		Region string `json:"region"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&c) != nil || c.Region != region {
		return fmt.Errorf("%s/closestToMe: %s, region %q, want %q", edge, resp.Status, c.Region, region)
	}
	return nil
}

// lateHandler lets a server listen before its handler exists.
type lateHandler struct {
	mu sync.RWMutex
	h  http.Handler
}

func (l *lateHandler) set(h http.Handler) { l.mu.Lock(); l.h = h; l.mu.Unlock() }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.RLock()
	h := l.h
	l.mu.RUnlock()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}
