package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessionpin/sessionpin/lab/proc"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// Modes are the routing modes the lab knows: round robin, Caddy's cookie
// policy, sessionpin as the root Caddyfile sets it up (data-aware moves on,
// the default), and sessionpin with data-aware moves off.
var Modes = []string{"rr", "cookie", "sessionpin", "sessionpin-blind"}

// DefaultModes are the modes a run compares when none are named.
var DefaultModes = []string{"rr", "cookie", "sessionpin"}

// IsSessionpin says whether mode's edges are sessionpin's.
func IsSessionpin(mode string) bool { return mode == "sessionpin" || mode == "sessionpin-blind" }

// blindLine is the session_pin line after which sessionpin-blind turns
// data-aware moves off.
const blindLine = "key hs256 {$SESSIONPIN_SECRET}"

// blindCaddyfile is the root Caddyfile with data-aware moves off
// (catch_up_limit 0), so that the two sessionpin modes differ in that
// alone.
func blindCaddyfile(root string) (string, error) {
	lines := strings.Split(root, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == blindLine {
			indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			out := append(append(append([]string{}, lines[:i+1]...), indent+"catch_up_limit 0"), lines[i+1:]...)
			return strings.Join(out, "\n"), nil
		}
	}
	return "", fmt.Errorf("the root Caddyfile has no line %q in its session_pin block to add catch_up_limit 0 after", blindLine)
}

// EdgeURL is region r's edge.
func EdgeURL(r string) string {
	return fmt.Sprintf("http://%s:%d", topo.EdgeHost(r).Addr, topo.PortEdge)
}

// plainCaddyfile is an edge without sessionpin: Caddy's reverse_proxy over
// every server of every region, with a selection policy, passive health
// checks and retries, as an operator would set it up. /closestToMe is
// answered by the edge itself so that clients send the same traffic in
// every mode.
func plainCaddyfile(listen, policy string) string {
	var ups []string
	for _, h := range topo.Servers() {
		ups = append(ups, fmt.Sprintf("%s:%d", h.Addr, topo.PortApp))
	}
	return fmt.Sprintf(`{
	admin localhost:2019
}

http://%[1]s {
	bind %[2]s
	handle /closestToMe {
		header Cache-Control no-store
		respond "{}" 200
	}
	handle {
		reverse_proxy %[3]s {
			lb_policy %[4]s
			lb_try_duration 3s
			lb_try_interval 250ms
			fail_duration 10s
			max_fails 1
			unhealthy_status 502 503 504
			transport http {
				dial_timeout 2s
			}
		}
	}
}
`, listen, strings.Split(listen, ":")[0], strings.Join(ups, " "), policy)
}

// StartEdges (re)starts every region's edge in mode and waits until each
// answers.
func (s *Stack) StartEdges(ctx context.Context, mode string) error {
	s.StopEdges()
	for _, r := range topo.Regions {
		h := topo.EdgeHost(r)
		listen := fmt.Sprintf("%s:%d", h.Addr, topo.PortEdge)
		dir := filepath.Join(s.cfg.Dir, "edge-"+r)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		env := []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "XDG_DATA_HOME=" + filepath.Join(dir, "data")}
		conf := s.cfg.Caddyfile
		switch mode {
		case "sessionpin", "sessionpin-blind":
			env = append(env, "SESSIONPIN_LISTEN="+listen, "SESSIONPIN_REGION="+r, "SESSIONPIN_ETCD="+EtcdEndpoint(r),
				"SESSIONPIN_SECRET="+s.pinSecret, "SESSIONPIN_ADMIN=localhost:2019",
				"SESSIONPIN_LIMIT_EDGES="+strconv.Itoa(s.limitEdges()))
			if mode == "sessionpin-blind" {
				root, err := os.ReadFile(conf)
				if err != nil {
					return err
				}
				blind, err := blindCaddyfile(string(root))
				if err != nil {
					return err
				}
				conf = filepath.Join(dir, mode+".Caddyfile")
				if err := os.WriteFile(conf, []byte(blind), 0o644); err != nil {
					return err
				}
			}
		case "rr", "cookie":
			policy := "round_robin"
			if mode == "cookie" {
				policy = "cookie lb_lab {\n\t\t\t\tfallback round_robin\n\t\t\t}"
			}
			conf = filepath.Join(dir, mode+".Caddyfile")
			if err := os.WriteFile(conf, []byte(plainCaddyfile(listen, policy)), 0o644); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown mode %q", mode)
		}
		p, err := s.sup.Start(proc.Spec{Name: "edge-" + r + "-" + mode, NS: s.Net.NS(h), Env: env,
			Args: []string{s.cfg.Caddy, "run", "--config", conf, "--adapter", "caddyfile"}})
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.edges[r] = p
		s.mode = mode
		s.mu.Unlock()
	}
	for _, r := range topo.Regions {
		s.mu.Lock()
		p := s.edges[r]
		s.mu.Unlock()
		if err := s.waitHTTP(ctx, s.Net.NS(topo.InfraHost(r)), EdgeURL(r)+"/closestToMe", 60*time.Second, p); err != nil {
			return fmt.Errorf("edge %s (%s): %w", r, mode, err)
		}
	}
	return nil
}

// StopEdges stops every edge.
func (s *Stack) StopEdges() {
	s.mu.Lock()
	edges := s.edges
	s.edges = map[string]*proc.Proc{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range edges {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Stop(syscall.SIGTERM, 10*time.Second) }()
	}
	wg.Wait()
}

// ClientNS is the namespace region r's clients run in.
func (s *Stack) ClientNS(r string) string { return s.Net.NS(topo.InfraHost(r)) }

// Relay exposes the link for changes of distance.
func (s *Stack) SetRTTs(rtts topo.RTTs) { s.relay.SetRTTs(rtts) }

// limitEdges is the edges' limit_edges: by default every edge, since each
// places anywhere once its own region is full, so all of them may place on
// one server at once.
func (s *Stack) limitEdges() int {
	if s.cfg.LimitEdges > 0 {
		return s.cfg.LimitEdges
	}
	return len(topo.Regions)
}
