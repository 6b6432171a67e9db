package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// netns is a network namespace a test created, joined to the test's own
// namespace by a veth pair: the test reaches hostIP's peer nsIP, and what
// runs inside reaches the test at hostIP.
type netns struct {
	name         string
	hostIP, nsIP string
	hostIf, nsIf string
}

// requireNetns skips without `ip` or root, and fails instead under CI,
// where .ci/run installs iproute2 and runs as root.
func requireNetns(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("ip")
	why := ""
	switch {
	case err != nil:
		why = "`ip` (iproute2) is not installed"
	case os.Geteuid() != 0:
		why = "network namespaces need root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; .ci/run must provide it", why)
	}
	t.Skip(why)
}

// newNetns creates a namespace with loopback up and a veth pair on a
// random /30 of 10.213.0.0/16, and removes both when the test ends. setup
// lines are run by sh inside the namespace (its /proc/sys/net is its own).
func newNetns(t *testing.T, setup ...string) *netns {
	t.Helper()
	requireNetns(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	tag := hex.EncodeToString(b[:])
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<14))
	third, fourth := n.Int64()>>6, (n.Int64()&63)*4
	ns := &netns{
		name:   "sessionpin-test-" + tag,
		hostIf: "sph" + tag, nsIf: "spn" + tag, // at most 15 bytes
		hostIP: fmt.Sprintf("10.213.%d.%d", third, fourth+1),
		nsIP:   fmt.Sprintf("10.213.%d.%d", third, fourth+2),
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns.name)
	// Deleting the namespace removes the veth end inside it, and with it
	// the pair.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns.name, err, out)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", ns.name)); err == nil {
			t.Errorf("namespace %s left behind", ns.name)
		}
	})
	run("link", "add", ns.hostIf, "type", "veth", "peer", "name", ns.nsIf)
	run("link", "set", ns.nsIf, "netns", ns.name)
	run("addr", "add", ns.hostIP+"/30", "dev", ns.hostIf)
	run("link", "set", ns.hostIf, "up")
	run("-n", ns.name, "addr", "add", ns.nsIP+"/30", "dev", ns.nsIf)
	run("-n", ns.name, "link", "set", ns.nsIf, "up")
	run("-n", ns.name, "link", "set", "lo", "up")
	for _, line := range setup {
		run("netns", "exec", ns.name, "sh", "-c", line)
	}
	return ns
}

// start runs bin/<bin> inside the namespace.
func (ns *netns) start(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, "ip", env, append([]string{"netns", "exec", ns.name, binPath(bin)}, args...)...)
}

// slowBackend is a real HTTP server in the test's namespace that holds
// each /slow request for a while, so a burst keeps many connections open.
type slowBackend struct {
	id   string
	srv  *http.Server
	url  string
	hits atomic.Int64
}

func startSlowBackend(t *testing.T, id, host string) *slowBackend {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	b := &slowBackend{id: id, url: "http://" + l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
			}
		}
		w.Write([]byte(id))
	})
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// An edge that runs out of local ports to one server answers the requests
// it could not send with its own 502 edge_resources: the server is not
// marked, and another client pinned to the same healthy server never gets
// 503 pinned_server_unavailable. The edge runs in a namespace whose local
// port range holds 40 ports; a hostile client pinned to the same server
// sends bursts of 120 slow requests.
func TestEdgeOutOfPortsBlamesNoServer(t *testing.T) {
	ns := newNetns(t,
		"echo '40000 40039' > /proc/sys/net/ipv4/ip_local_port_range",
		// Closed connections keep their port for the TIME_WAIT period.
		"echo 0 > /proc/sys/net/ipv4/tcp_tw_reuse")
	target := startSlowBackend(t, "s1", ns.hostIP)
	other := startSlowBackend(t, "s2", ns.hostIP)

	// Discovery, its embedded etcd, the agents and the edge all run in the
	// namespace; its ports are its own, so fixed ports cannot collide.
	dataDir := t.TempDir()
	disc := ns.start(t, "discovery", "discoverysvc", nil, "serve", "--listen", "127.0.0.1:7070",
		"--data-dir", dataDir, "--etcd-listen", "127.0.0.1:2379", "--etcd-peer-listen", "127.0.0.1:2380",
		"--log-level", "warn")
	for _, b := range []*slowBackend{target, other} {
		ns.start(t, "agent-"+b.id, "discoverysvc", nil, "agent", "--id", b.id, "--region", "eu",
			"--url", b.url, "--health-url", b.url+"/healthz", "--discovery", "http://127.0.0.1:7070",
			"--interval", "1s", "--ttl", "10s", "--log-level", "warn")
	}
	cfg := fmt.Sprintf(`{
	admin %[1]s:2019
	persist_config off
	log {
		level ERROR
	}
	session_pin {
		etcd 127.0.0.1:2379
	}
}

http://%[1]s:8080 {
	bind %[1]s
	session_pin {
		region eu
		key hs256 %[2]s
		retry_after 1s
	}
	reverse_proxy {
		dynamic session_pin
	}
}
`, ns.nsIP, pinSecret)
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &edge{URL: "http://" + ns.nsIP + ":8080", admin: ns.nsIP + ":2019", addr: ns.nsIP + ":8080"}
	e.proc = ns.start(t, "edge", "caddy", nil, "run", "--config", path, "--adapter", "caddyfile")
	poll.Until(t, 60*time.Second, "edge to see both servers", func() error {
		if !e.proc.running() || !disc.running() {
			t.Fatalf("edge or discovery exited:\nedge:\n%s\ndiscovery:\n%s", e.proc.tail(20), disc.tail(20))
		}
		n, err := e.registryServers()
		if err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("sees %d", n)
		}
		return nil
	})

	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	pinTo := func(id string) string {
		t.Helper()
		var pin string
		poll.Until(t, 30*time.Second, "a pin to "+id, func() error {
			resp, err := hc.Get(e.URL + "/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			if resp.Header.Get("X-Session-Server") != id {
				return fmt.Errorf("placed on %s", resp.Header.Get("X-Session-Server"))
			}
			pin = resp.Header.Get("X-Session-Pin")
			return nil
		})
		return pin
	}
	victimPin, hostilePin := pinTo(target.id), pinTo(target.id)
	get := func(ctx context.Context, pin, path string) (int, string, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+path, nil)
		if err != nil {
			return 0, "", "", err
		}
		req.Header.Set("X-Session-Pin", pin)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", "", err
		}
		defer resp.Body.Close()
		var body strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		body.Write(buf[:n])
		return resp.StatusCode, resp.Header.Get("X-Session-Server"), body.String(), nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	// The hostile client: bursts of 120 concurrent slow requests.
	var hostile sync.Map // status -> count
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var burst sync.WaitGroup
			for range 120 {
				burst.Add(1)
				go func() {
					defer burst.Done()
					st, _, _, err := get(ctx, hostilePin, "/slow")
					if err == nil {
						v, _ := hostile.LoadOrStore(st, new(atomic.Int64))
						v.(*atomic.Int64).Add(1)
					}
				}()
			}
			burst.Wait()
		}
	}()
	// The victim: an ordinary client of the same server.
	var victimOK, victimEdge int
	var victimBad []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			st, srv, body, err := get(context.Background(), victimPin, "/")
			switch {
			case err != nil:
				victimBad = append(victimBad, err.Error())
			case st == http.StatusOK && srv == target.id:
				victimOK++
			case st == http.StatusBadGateway && strings.Contains(body, `"edge_resources"`):
				victimEdge++
			default:
				victimBad = append(victimBad, fmt.Sprintf("%d from %q: %s", st, srv, body))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	wg.Wait()

	var hostileCounts []string
	hostile.Range(func(k, v any) bool {
		hostileCounts = append(hostileCounts, fmt.Sprintf("%v:%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("victim: %d ok, %d edge_resources; hostile statuses %v", victimOK, victimEdge, hostileCounts)
	if len(victimBad) > 0 {
		t.Errorf("the victim got %d answers other than its server's or edge_resources, first: %s", len(victimBad), victimBad[0])
	}
	metrics := e.metrics(t)
	if metricSum(t, metrics, "sessionpin_edge_resource_errors_total") == 0 {
		t.Fatalf("the edge never ran out of ports, so the test proved nothing; hostile statuses %v", hostileCounts)
	}
	if n := metricSum(t, metrics, "sessionpin_unreachable_total"); n != 0 {
		t.Errorf("a healthy server was marked unreachable %v times", n)
	}
	if n := metricSum(t, metrics, "sessionpin_pinned_unavailable_total"); n != 0 {
		t.Errorf("%v requests got 503 pinned_server_unavailable", n)
	}
	// Once the bursts stop, the victim is served by its server at once.
	st, srv, body, err := get(context.Background(), victimPin, "/")
	if err != nil || st != http.StatusOK || srv != target.id {
		t.Fatalf("after the bursts: %d from %q (%v): %s", st, srv, err, body)
	}
}

// metrics is the edge's Prometheus text from Caddy's admin endpoint.
func (e *edge) metrics(t *testing.T) string {
	t.Helper()
	status, b, err := getBody("http://" + e.admin + "/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("edge metrics: %d %v", status, err)
	}
	return string(b)
}

// metricSum adds every sample of the metric name.
func metricSum(t *testing.T, text, name string) float64 {
	t.Helper()
	sum, _, err := metrictest.Sum(strings.NewReader(text), name)
	if err != nil {
		t.Fatalf("edge metrics: %v", err)
	}
	return sum
}
