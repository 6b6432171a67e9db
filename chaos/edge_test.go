package chaos

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// pinSecret is the HS256 pin key shared by every edge of a test, so a
// client may go through either edge with the same pin.
const pinSecret = "sessionpin-chaos-secret-0123456789abcdef"

// edgeConfig is what differs between the edges of a test.
type edgeConfig struct {
	Region   string
	Etcd     []string
	Username string // etcd auth, with Password
	Password string
	// TLS to etcd: CA file, client certificate and key files.
	TLSCA, TLSCert, TLSKey string
	// Handler holds extra session_pin subdirectives, one per line.
	Handler string
	// LogLevel of Caddy. Default: WARN.
	LogLevel string
	// DialTimeout of the etcd client. Default: 2s.
	DialTimeout string
	// App holds extra session_pin app options, one per line.
	App string
}

// edge is a bin/caddy child process serving one sessionpin edge.
type edge struct {
	URL   string // http://127.0.0.1:port
	admin string // host:port of Caddy's admin endpoint
	addr  string
	proc  *proc
}

// caddyfile renders the edge's configuration, in the shape of the root
// Caddyfile but with every port chosen by the test.
func (c edgeConfig) caddyfile(addr, admin string) string {
	level := c.LogLevel
	if level == "" {
		level = "WARN"
	}
	dial := c.DialTimeout
	if dial == "" {
		dial = "2s"
	}
	var app strings.Builder
	fmt.Fprintf(&app, "\t\tetcd %s\n\t\tdial_timeout %s\n", strings.Join(c.Etcd, " "), dial)
	if c.Username != "" {
		fmt.Fprintf(&app, "\t\tusername %s\n\t\tpassword %s\n", c.Username, c.Password)
	}
	if c.TLSCA != "" {
		fmt.Fprintf(&app, "\t\ttls {\n\t\t\tca %s\n\t\t\tcert %s\n\t\t\tkey %s\n\t\t}\n", c.TLSCA, c.TLSCert, c.TLSKey)
	}
	for _, line := range strings.Split(c.App, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			fmt.Fprintf(&app, "\t\t%s\n", line)
		}
	}
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	log {
		level %s
	}
	session_pin {
%s	}
}

http://%s {
	bind 127.0.0.1
	session_pin {
		region %s
		key hs256 %s
		retry_after 1s
%s	}
	reverse_proxy {
		dynamic session_pin
		# Idle upstream connections close soon, so the edge's goroutines
		# settle back to their baseline within a test.
		transport http {
			keepalive 2s
		}
	}
}
`, admin, level, app.String(), addr, c.Region, pinSecret, c.Handler)
}

// startEdge runs bin/caddy with cfg on free ports and waits until it answers.
// It does not wait for the registry: an edge may start before etcd.
func startEdge(t testing.TB, name string, cfg edgeConfig) *edge {
	t.Helper()
	e := &edge{addr: etcdtest.FreePort(t), admin: etcdtest.FreePort(t)}
	e.URL = "http://" + e.addr
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg.caddyfile(e.addr, e.admin)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.proc = startProc(t, name, "caddy", nil, "run", "--config", path, "--adapter", "caddyfile")
	poll.Until(t, 30*time.Second, name+" to listen", func() error {
		if !e.proc.running() {
			t.Fatalf("%s exited:\n%s", name, e.proc.tail(20))
		}
		resp, err := http.Get(e.URL + "/closestToMe")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return e
}

// reload replaces the edge's configuration through Caddy's admin API
// (POST /load), as an operator's `caddy reload` does.
func (e *edge) reload(t testing.TB, cfg edgeConfig) {
	t.Helper()
	body := cfg.caddyfile(e.addr, e.admin)
	req, err := http.NewRequest(http.MethodPost, "http://"+e.admin+"/load", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reload edge: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("reload edge: %s: %s", resp.Status, b)
	}
}

// startDiscovery runs `discoverysvc serve` over etcd and waits for /healthz.
func startDiscovery(t testing.TB, name string, etcd []string, args ...string) (string, *proc) {
	t.Helper()
	listen := etcdtest.FreePort(t)
	all := append([]string{"serve", "--listen", listen, "--etcd", joinComma(etcd), "--log-level", "warn"}, args...)
	p := startProc(t, name, "discoverysvc", nil, all...)
	url := "http://" + listen
	poll.Until(t, 30*time.Second, name+" to be healthy", func() error {
		if !p.running() {
			t.Fatalf("%s exited:\n%s", name, p.tail(20))
		}
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	return url, p
}

// agentConfig is one `discoverysvc agent` sidecar.
type agentConfig struct {
	ID, Region, URL string
	Discovery       string
	Token           string
	Interval        time.Duration
	TTL             time.Duration
	DrainTimeout    time.Duration

	// HealthURL is what the agent probes. Default: URL + "/healthz".
	HealthURL string
}

// startAgent runs `discoverysvc agent` for a backend.
func startAgent(t testing.TB, c agentConfig) *proc {
	t.Helper()
	health := c.HealthURL
	if health == "" {
		health = c.URL + "/healthz"
	}
	args := []string{"agent", "--id", c.ID, "--region", c.Region, "--url", c.URL,
		"--health-url", health, "--discovery", c.Discovery,
		"--interval", c.Interval.String(), "--ttl", c.TTL.String(), "--log-level", "warn"}
	if c.DrainTimeout > 0 {
		args = append(args, "--drain-timeout", c.DrainTimeout.String())
	}
	var env []string
	if c.Token != "" {
		env = append(env, "SESSIONPIN_DISCOVERY_TOKEN="+c.Token)
	}
	return startProc(t, "agent-"+c.ID, "discoverysvc", env, args...)
}

// getJSON is a GET whose answer the caller decodes; it returns status and body.
func getBody(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// contains reports whether b contains s, for error bodies.
func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// registryServers sums the edge's sessionpin_registry_servers gauge, read
// from Caddy's admin /metrics: how many servers its snapshot holds.
func (e *edge) registryServers() (int, error) {
	status, b, err := getBody("http://" + e.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("metrics: %d", status)
	}
	total := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "sessionpin_registry_servers{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			total += v
		}
	}
	return int(total), nil
}

// edgeSyncTimeout bounds the wait for an edge's snapshot to follow the
// registry.
const edgeSyncTimeout = 30 * time.Second

// waitServers polls until the edge's snapshot holds n servers.
func (e *edge) waitServers(t testing.TB, n int) {
	t.Helper()
	poll.Until(t, edgeSyncTimeout, fmt.Sprintf("edge %s to see %d servers", e.addr, n), func() error {
		got, err := e.registryServers()
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("sees %d", got)
		}
		return nil
	})
}

// goroutines is the edge process's goroutine count, from Caddy's admin
// /debug/pprof endpoint.
func (e *edge) goroutines() (int, error) {
	status, b, err := getBody("http://" + e.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("pprof: %d", status)
	}
	var n int
	if _, err := fmt.Sscanf(string(b), "goroutine profile: total %d", &n); err != nil {
		return 0, fmt.Errorf("pprof: %w", err)
	}
	return n, nil
}
