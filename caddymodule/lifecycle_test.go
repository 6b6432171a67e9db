package caddymodule_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessionpin/sessionpin/caddymodule"
	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// TestReloadKeepsSnapshot: a config reload keeps the shared registry watch
// and its snapshot. etcd is stopped before the reload, so routing after it
// can only come from the snapshot that survived.
func TestReloadKeepsSnapshot(t *testing.T) {
	f := newFixture(t, "")
	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.1, false)
	f.waitRouted("eu-1", "eu-west")

	f.member.Stop()
	if err := f.load("hysteresis 0\n\t\tretry_after 7s"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	r := f.do(request{pin: f.pinFor("eu-1", "eu-west")})
	if r.status != http.StatusOK || r.server() != "eu-1" {
		t.Fatalf("after reload without etcd: got %d from %q, want eu-1 from the kept snapshot", r.status, r.server())
	}
	if r := f.do(request{}); r.server() != "eu-1" || r.pinOut() == "" {
		t.Fatalf("placement after reload: got %q pin %q", r.server(), r.pinOut())
	}
	// The new config is the one serving.
	r = f.do(request{pin: f.pinFor("gone", "eu-west")})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "7" {
		t.Fatalf("got %d Retry-After %q, want the reloaded retry_after 7", r.status, r.header.Get("Retry-After"))
	}
}

// TestStartWithoutEtcd: Caddy starts with no reachable etcd, answers 503
// no_server_available, and routes once etcd comes up, without a restart.
func TestStartWithoutEtcd(t *testing.T) {
	m := etcdtest.Start(t)
	m.Stop()
	e := startEdge(t, m.Client, "/nostart/", "hysteresis 0")
	for _, path := range []string{"/", "/closestToMe"} {
		r := e.do(request{path: path})
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("%s without etcd: status %d, want 503", path, r.status)
		}
		assertJSON(t, r.body, map[string]any{"error": "no_server_available"})
	}

	m.Restart()
	reg := &registry{t: t, cli: etcdtest.NewClient(t, m), prefix: "/nostart/"}
	reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.1, false)
	poll.Until(t, eventuallyTimeout, "routing after etcd came up", func() error {
		if r := e.do(request{}); r.server() != "eu-1" {
			return fmt.Errorf("status %d body %q", r.status, r.body)
		}
		return nil
	})
}

// TestUpstreamWithoutHandler: `dynamic session_pin` without the handler in
// front has no target and dials nothing.
func TestUpstreamWithoutHandler(t *testing.T) {
	e := startEdge(t, "127.0.0.1:1", "/unused/", "")
	b := newBackend(t, "static")
	err := loadCaddyfile(fmt.Sprintf(`{
	admin %s
	persist_config off
}
http://%s {
	reverse_proxy %s {
		dynamic session_pin
	}
}`, e.admin, e.httpAdr, b.srv.Listener.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	r := e.do(request{})
	if r.status < 500 || b.hits.Load() != 0 {
		t.Fatalf("got %d, backend hits %d: want a 5xx and no static fallback", r.status, b.hits.Load())
	}
}

// TestMetrics: the sessionpin_* metrics are in Caddy's registry, served by the
// admin endpoint, and each says what just happened. The counters are
// process-wide, shared with earlier tests, so they are read as deltas.
func TestMetrics(t *testing.T) {
	f := newFixture(t, "")
	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.1, false)
	lastPut := time.Now()
	f.reg.put("eu-d", "eu-west", newBackend(t, "eu-d").srv.URL, 0.1, true)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("eu-d", "eu-west")
	before := scrape(t, f.admin)
	f.do(request{})                                 // placement pin
	f.do(request{pin: f.pinFor("gone", "eu-west")}) // pinned unavailable

	body := scrape(t, f.admin)
	for _, want := range []struct {
		series string
		delta  bool // a counter: the change since before
		value  float64
	}{
		{`sessionpin_pins_issued_total{reason="placement"}`, true, 1},
		{`sessionpin_pinned_unavailable_total`, true, 1},
		{`sessionpin_registry_servers{region="eu-west",state="active"}`, false, 1},
		{`sessionpin_registry_servers{region="eu-west",state="draining"}`, false, 1},
	} {
		v, ok := metrictest.Value(body, want.series)
		if !ok {
			t.Errorf("metric %s missing from /metrics", want.series)
			continue
		}
		if want.delta {
			was, _ := metrictest.Value(before, want.series) // absent means never counted
			v -= was
		}
		if v != want.value {
			t.Errorf("%s = %v (delta: %v), want %v", want.series, v, want.delta, want.value)
		}
	}
	// The snapshot changed no earlier than the last put, and not in the
	// future.
	if v, ok := metrictest.Value(body, `sessionpin_registry_last_update_seconds`); !ok || v < 0 || v > time.Since(lastPut).Seconds() {
		t.Errorf("sessionpin_registry_last_update_seconds = %v (present %v), want 0..%.1f: the time since the last put", v, ok, time.Since(lastPut).Seconds())
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	// A region whose last server leaves disappears from the gauge.
	f.reg.put("ap-1", "ap-south", newBackend(t, "ap-1").srv.URL, 0.1, false)
	f.waitRouted("ap-1", "ap-south")
	if !strings.Contains(scrape(t, f.admin), `region="ap-south"`) {
		t.Fatal("ap-south missing from sessionpin_registry_servers")
	}
	f.reg.delete("ap-1")
	f.waitGone("ap-1", "ap-south")
	if strings.Contains(scrape(t, f.admin), `region="ap-south"`) {
		t.Fatal("an empty region is still reported")
	}
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJSONConfig: every option works in JSON config; durations may be
// strings or nanoseconds.
func TestJSONConfig(t *testing.T) {
	f := newFixture(t, "")
	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.1, false)
	f.waitRouted("eu-1", "eu-west")
	cfg := fmt.Sprintf(`{
	"admin": {"listen": %q, "config": {"persist": false}},
	"apps": {
		"session_pin": {"etcd": [%q], "prefix": %q, "dial_timeout": "3s"},
		"http": {"servers": {"edge": {"listen": [%q], "routes": [{"handle": [
			{"handler": "session_pin", "region": "eu-west",
			 "key": {"algorithm": "hs256", "secret": %q},
			 "issuer": "sessionpin", "pin_ttl": "2h", "refresh_grace": 3600000000000,
			 "header": "X-Session-Pin", "cookie": "sp", "claim": "srv",
			 "refresh_path": "/r", "closest_path": "/c", "retry_after": "9s", "hysteresis": 0,
			 "fallback_regions": ["us-east"], "unreachable_for": "5s"},
			{"handler": "reverse_proxy", "dynamic_upstreams": {"source": "session_pin"}}
		]}]}}}
	}
}`, f.admin, f.etcd, f.prefix, f.httpAdr, testSecret)
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatal(err)
	}
	// dial_timeout differs from the Caddyfile's, so this is a new registry
	// connection whose watch needs a moment to list.
	poll.Until(t, eventuallyTimeout, "closest_path /c", func() error {
		if r := f.do(request{path: "/c"}); r.status != http.StatusOK || !strings.Contains(r.body, `"eu-1"`) {
			return fmt.Errorf("%d %q", r.status, r.body)
		}
		return nil
	})
	r := f.do(request{})
	if r.server() != "eu-1" || !strings.HasPrefix(r.header.Get("Set-Cookie"), "sp=") || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=7200;") {
		t.Fatalf("got %q Set-Cookie %q", r.server(), r.header.Get("Set-Cookie"))
	}
	r = f.do(request{pin: f.pinFor("gone", "eu-west")})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "9" {
		t.Fatalf("got %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
}

// TestHandlerWithoutGlobalOption: the handler works without the
// session_pin global option, and the app then uses its defaults: the etcd
// at 127.0.0.1:2379, which this test runs, and the prefix /sessionpin/.
func TestHandlerWithoutGlobalOption(t *testing.T) {
	// The default address is fixed, so something else may hold it (a
	// local demo); then there is nothing this test can assert.
	if l, err := net.Listen("tcp", caddymodule.DefaultEtcdEndpoint); err != nil {
		t.Skipf("the default etcd address is taken, and this test runs its own etcd there: %v", err)
	} else {
		l.Close()
	}
	etcd, err := embedetcd.Start(embedetcd.Config{Dir: t.TempDir(), ClientAddr: caddymodule.DefaultEtcdEndpoint, PeerAddr: etcdtest.FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	reg := &registry{t: t, cli: etcdtest.NewClient(t, &etcdtest.Member{Client: etcd.Endpoint}), prefix: schema.DefaultPrefix}
	b := newBackend(t, "eu-1")
	reg.put("eu-1", "eu-west", b.srv.URL, 0.1, false)

	e := startEdge(t, "127.0.0.1:1", "/unused/", "")
	err = loadCaddyfile(fmt.Sprintf(`{
	admin %s
	persist_config off
}
http://%s {
	session_pin {
		region eu-west
		key hs256 %s
	}
	reverse_proxy {
		dynamic session_pin
	}
}`, e.admin, e.httpAdr, testSecret))
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, eventuallyTimeout, "closest_path from the default etcd and prefix", func() error {
		if r := e.do(request{path: "/closestToMe"}); r.status != http.StatusOK || !strings.Contains(r.body, `"closestServerId":"eu-1"`) {
			return fmt.Errorf("%d %q", r.status, r.body)
		}
		return nil
	})
	if r := e.do(request{}); r.status != http.StatusOK || r.server() != "eu-1" || r.pinOut() == "" || b.hits.Load() != 1 {
		t.Fatalf("placement: %d from %q, pin %q, backend hits %d", r.status, r.server(), r.pinOut(), b.hits.Load())
	}
}

// TestHeartbeatLease: a server registered through discoverysvc heartbeats
// is routed while its lease lives; when it stops heartbeating its pinned
// clients get 503 pinned_server_unavailable, without an edge restart.
func TestHeartbeatLease(t *testing.T) {
	f := newFixture(t, "")
	reg := discoverysvc.NewRegistry(f.reg.cli, f.prefix)
	srv := schema.Server{ID: "hb-1", Region: "eu-west", URL: newBackend(t, "hb-1").srv.URL, Load: 0.3}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.Heartbeat(ctx, srv, time.Second); err != nil {
		t.Fatal(err)
	}
	f.waitRouted("hb-1", "eu-west")
	// No more heartbeats: the lease expires and the key goes with it.
	f.waitGone("hb-1", "eu-west")
	r := f.do(request{pin: f.pinFor("hb-1", "eu-west")})
	assertJSON(t, r.body, map[string]any{"error": "pinned_server_unavailable", "server": "hb-1", "retryAfterSeconds": 30.0})
}
