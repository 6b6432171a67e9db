package stack

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessionpin/sessionpin/lab/proc"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// DiscoveryURL is region r's discovery replica.
func DiscoveryURL(r string) string {
	return fmt.Sprintf("http://%s:%d", topo.InfraHost(r).Addr, topo.PortDiscovery)
}

// upDiscovery starts one replica per region, on its region's etcd member.
func (s *Stack) upDiscovery(ctx context.Context) error {
	for _, r := range topo.Regions {
		p, err := s.sup.Start(proc.Spec{
			Name: "discovery-" + r,
			NS:   s.Net.NS(topo.InfraHost(r)),
			Env:  []string{"SESSIONPIN_DISCOVERY_TOKEN=" + s.adminToken},
			Args: []string{s.cfg.Discovery, "serve", "--listen", fmt.Sprintf("%s:%d", topo.InfraHost(r).Addr, topo.PortDiscovery), "--etcd", EtcdEndpoint(r)},
		})
		if err != nil {
			return err
		}
		s.disc[r] = p
	}
	for _, r := range topo.Regions {
		if err := s.waitHTTP(ctx, s.Net.NS(topo.InfraHost(r)), DiscoveryURL(r)+"/healthz", 60*time.Second, s.disc[r]); err != nil {
			return err
		}
	}
	return nil
}

func appURL(h topo.Host) string { return fmt.Sprintf("http://%s:%d", h.Addr, topo.PortApp) }

// upServers starts every server's app and agent and waits until the
// registry lists them all.
func (s *Stack) upServers(ctx context.Context) error {
	for _, h := range topo.Servers() {
		if err := s.StartServer(ctx, h.Name); err != nil {
			return err
		}
	}
	return s.WaitRegistered(ctx, len(topo.Servers()), 60*time.Second)
}

func serverHost(id string) (topo.Host, error) {
	for _, h := range topo.Servers() {
		if h.Name == id {
			return h, nil
		}
	}
	return topo.Host{}, fmt.Errorf("no server %q", id)
}

// StartServer starts server id's app, waits for it, then starts its agent.
func (s *Stack) StartServer(ctx context.Context, id string) error {
	h, err := serverHost(id)
	if err != nil {
		return err
	}
	ns := s.Net.NS(h)
	args := []string{s.cfg.Lab, "app", "--id", id, "--region", h.Region, "--listen", fmt.Sprintf("%s:%d", h.Addr, topo.PortApp),
		"--capacity", strconv.FormatFloat(s.cfg.Capacity, 'g', -1, 64)}
	for _, r := range topo.Regions {
		args = append(args, "--primary", r+"="+PrimaryDSN(r), "--copy", r+"="+CopyDSN(h.Region, r))
	}
	a, err := s.sup.Start(proc.Spec{Name: "app-" + id, NS: ns, Args: args})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.apps[id] = a
	s.mu.Unlock()
	if err := s.waitHTTP(ctx, ns, appURL(h)+"/healthz", 30*time.Second, a); err != nil {
		return err
	}
	tok := exec.Command(s.cfg.Discovery, "token", id)
	tok.Env = append(tok.Environ(), "SESSIONPIN_DISCOVERY_TOKEN="+s.adminToken)
	out, err := tok.Output()
	if err != nil {
		return fmt.Errorf("agent token for %s: %w", id, err)
	}
	ag, err := s.sup.Start(proc.Spec{
		Name: "agent-" + id,
		NS:   ns,
		Env:  []string{"SESSIONPIN_DISCOVERY_TOKEN=" + strings.TrimSpace(string(out))},
		Args: agentArgs(s.cfg, h),
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.agents[id] = ag
	s.mu.Unlock()
	return nil
}

// agentArgs is server h's agent command line. Its writes commit to its
// own region's primary (the app writes a workflow started here there), so
// that is its origin; it reads every region's workflows from its region's
// copy (the own primary, or a standby of the other region's primary), and
// the agent reads each copy's replication progress from that same
// instance.
func agentArgs(cfg Config, h topo.Host) []string {
	args := []string{cfg.Discovery, "agent", "--id", h.Name, "--region", h.Region, "--url", appURL(h),
		"--health-url", appURL(h) + "/healthz", "--discovery", DiscoveryURL(h.Region), "--insecure-http",
		"--interval", cfg.AgentInterval.String(), "--ttl", cfg.LeaseTTL.String(), "--origin", h.Region}
	for _, of := range topo.Regions {
		args = append(args, "--progress-postgres", of+"="+ProgressDSN(h.Region, of))
	}
	if cfg.Capacity > 0 {
		args = append(args, "--capacity", strconv.FormatFloat(cfg.Capacity, 'g', -1, 64))
	}
	if cfg.Limit > 0 {
		args = append(args, "--limit", strconv.FormatFloat(cfg.Limit, 'g', -1, 64))
	}
	return args
}

// StopServer stops server id: its agent with SIGTERM (it deregisters),
// then its app.
func (s *Stack) StopServer(id string) error {
	s.mu.Lock()
	ag, a := s.agents[id], s.apps[id]
	s.mu.Unlock()
	var errs []string
	if ag != nil {
		if err := ag.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if a != nil {
		if err := a.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop %s: %s", id, strings.Join(errs, "; "))
	}
	return nil
}

// KillServer sends SIGKILL to server id's app; its agent stays, sees the
// app's health fail and stops heartbeating.
func (s *Stack) KillServer(id string) error {
	s.mu.Lock()
	a := s.apps[id]
	s.mu.Unlock()
	if a == nil {
		return fmt.Errorf("no app %s", id)
	}
	return a.Stop(syscall.SIGKILL, 5*time.Second)
}

// ServerRunning says whether server id's app and agent both run.
func (s *Stack) ServerRunning(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ag := s.apps[id], s.agents[id]
	return a != nil && a.Running() && ag != nil && ag.Running()
}

// Registered returns the ids in the registry, as region r's discovery
// replica lists them.
func (s *Stack) Registered(ctx context.Context, r string) ([]string, error) {
	fleet, err := s.Fleet(ctx, r)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, sv := range fleet {
		ids = append(ids, sv.ID)
	}
	return ids, nil
}

// WaitRegistered waits until every region's replica lists n servers.
func (s *Stack) WaitRegistered(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		var last []string
		for _, r := range topo.Regions {
			ids, err := s.Registered(ctx, r)
			if err != nil || len(ids) != n {
				ok, last = false, ids
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("registry lists %v, want %d servers, after %v", last, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Discoverysvc runs a discoverysvc command (drain, undrain) with the admin
// token against region r's replica, from that region.
func (s *Stack) Discoverysvc(ctx context.Context, r string, args ...string) (string, error) {
	full := append([]string{"netns", "exec", s.Net.NS(topo.InfraHost(r)), s.cfg.Discovery}, args...)
	full = append(full, "--discovery", DiscoveryURL(r))
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Env = append(cmd.Environ(), "SESSIONPIN_DISCOVERY_TOKEN="+s.adminToken, proc.RunEnv+"="+s.cfg.RunID)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// EnsureServers starts every server that is not running.
func (s *Stack) EnsureServers(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(topo.Servers()))
	for i, h := range topo.Servers() {
		if s.ServerRunning(h.Name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.StopServer(h.Name)
			errs[i] = s.StartServer(ctx, h.Name)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
