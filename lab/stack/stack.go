// Package stack brings up and takes down the whole three-region lab: the
// network, the relay, etcd, PostgreSQL, discovery, the app's servers with
// their agents, and the edges in one routing mode.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sessionpin/sessionpin/lab/link"
	"github.com/sessionpin/sessionpin/lab/netns"
	"github.com/sessionpin/sessionpin/lab/proc"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// Config is what the lab is built from.
type Config struct {
	Caddy, Discovery, Lab string // binaries; Lab runs etcd-member and app
	Caddyfile             string // the root Caddyfile (sessionpin mode)
	Dir                   string // working directory, removed by Down
	RunID                 string
	RTTs                  topo.RTTs
	Jitter                time.Duration
	Lag                   time.Duration // recovery_min_apply_delay at start
	LeaseTTL              time.Duration
	AgentInterval         time.Duration
	EtcdHeartbeat         time.Duration
	EtcdElection          time.Duration
	// Capacity and Limit are every server's: the app's load is its
	// distinct recent clients over Capacity, and its agent declares both
	// (--capacity, --limit) so that edges weigh servers and stop placing
	// new clients on one at its limit. 0: none declared, load 0.
	Capacity, Limit float64
	// LimitEdges is every edge's limit_edges. 0: the number of regions.
	LimitEdges int
	Log        io.Writer
}

// Stack is a running lab.
type Stack struct {
	cfg   Config
	Net   *netns.Network
	relay *link.Relay
	sup   *proc.Supervisor

	adminToken string
	pinSecret  string

	mu      sync.Mutex
	etcd    map[string]*proc.Proc
	disc    map[string]*proc.Proc
	pg      map[string]*proc.Proc // "<region>" primary, "<region>/<of>" standby
	apps    map[string]*proc.Proc // by server id
	agents  map[string]*proc.Proc
	edges   map[string]*proc.Proc
	mode    string
	lagNow  time.Duration
	probe   *LagProbe
	clients map[string]*http.Client // by namespace
}

func (s *Stack) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, "lab: "+format+"\n", args...)
}

func randToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Up builds the lab. On error the caller still calls Down.
func Up(ctx context.Context, cfg Config) (*Stack, error) {
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	// PostgreSQL runs as its own user and must reach its data.
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	s := &Stack{
		cfg:        cfg,
		Net:        netns.NewNetwork("splab" + cfg.RunID),
		sup:        &proc.Supervisor{RunID: cfg.RunID, LogDir: filepath.Join(cfg.Dir, "logs")},
		adminToken: randToken(),
		pinSecret:  randToken(),
		etcd:       map[string]*proc.Proc{},
		disc:       map[string]*proc.Proc{},
		pg:         map[string]*proc.Proc{},
		apps:       map[string]*proc.Proc{},
		agents:     map[string]*proc.Proc{},
		edges:      map[string]*proc.Proc{},
		clients:    map[string]*http.Client{},
		lagNow:     cfg.Lag,
	}
	steps := []struct {
		what string
		fn   func(context.Context) error
	}{
		{"network", s.upNetwork},
		{"etcd", s.upEtcd},
		{"postgresql", s.upPG},
		{"discovery", s.upDiscovery},
		{"servers", s.upServers},
	}
	for _, st := range steps {
		start := time.Now()
		if err := st.fn(ctx); err != nil {
			return s, fmt.Errorf("lab %s: %w", st.what, err)
		}
		s.logf("%s up (%.1fs)", st.what, time.Since(start).Seconds())
	}
	s.probe = startLagProbe(s)
	return s, nil
}

// Logs is where the processes' logs are.
func (s *Stack) Logs() string { return s.sup.LogDir }

func (s *Stack) upNetwork(ctx context.Context) error {
	if err := s.Net.Up(topo.Hosts()); err != nil {
		return err
	}
	r, err := link.Start(func(addr string) (net.Listener, error) { return netns.Listen(s.Net.Router(), addr) },
		netns.Dialer(s.Net.Router()), topo.RelayedPorts(), s.cfg.RTTs, s.cfg.Jitter)
	if err != nil {
		return err
	}
	s.relay = r
	return nil
}

// HTTP returns a client whose connections start in namespace ns.
func (s *Stack) HTTP(ns string) *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[ns]; ok {
		return c
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: netns.Dialer(ns), MaxIdleConnsPerHost: 16}}
	s.clients[ns] = c
	return c
}

// waitHTTP polls url from namespace ns until it answers 200.
func (s *Stack) waitHTTP(ctx context.Context, ns, url string, timeout time.Duration, p *proc.Proc) error {
	deadline := time.Now().Add(timeout)
	c := s.HTTP(ns)
	for {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if p != nil && !p.Running() {
			return fmt.Errorf("%s exited: %s", p.Name, proc.Tail(p, 10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v: %w", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Down stops every process and removes the namespaces and the working
// directory; it is safe on a half-built stack.
func (s *Stack) Down() error {
	var errs []error
	if s.probe != nil {
		s.probe.Stop()
	}
	// Agents first, so that servers deregister while discovery answers.
	s.mu.Lock()
	agents := s.agents
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Stop(syscall.SIGTERM, 5*time.Second) }()
	}
	wg.Wait()
	errs = append(errs, s.sup.StopAll(10*time.Second))
	if s.relay != nil {
		errs = append(errs, s.relay.Close())
	}
	errs = append(errs, s.Net.Down())
	if left := proc.Leftovers(s.cfg.RunID); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes left behind: %v", left))
	}
	return errors.Join(errs...)
}
