package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// echoBackend is a plain app server that names itself in X-Served-By and
// records what it was sent.
type echoBackend struct {
	ID  string
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	lastHdr  http.Header
	lastBody int
}

func newEchoBackend(t testing.TB, id string) *echoBackend {
	t.Helper()
	b := &echoBackend{ID: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		b.requests++
		b.lastHdr = r.Header.Clone()
		b.lastBody = int(n)
		b.mu.Unlock()
		w.Header().Set("X-Served-By", id)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"server":%q}`, id)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *echoBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests
}

func (b *echoBackend) last() (http.Header, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastHdr, b.lastBody
}

// register heartbeats b into the registry with a long lease, so it stays
// while etcd is away.
func register(t testing.TB, reg *discoverysvc.Registry, b *echoBackend, region string, load float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.Heartbeat(ctx, schema.Server{ID: b.ID, Region: region, URL: b.srv.URL, Load: load}, time.Minute); err != nil {
		t.Fatalf("register %s: %v", b.ID, err)
	}
}

// hit sends one request through the edge with pin (may be "") and returns
// the status, the app's X-Served-By, and the new pin if one was issued.
func hit(t testing.TB, edgeURL, pin string) (status int, servedBy, newPin string, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, edgeURL+"/whatever", nil)
	if pin != "" {
		req.Header.Set("X-Session-Pin", pin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("request through the edge: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Served-By"), resp.Header.Get("X-Session-Pin"), string(b)
}

// waitLog polls a process's log for a line containing s.
func waitLog(t testing.TB, p *proc, s string) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%s to log %q", p.name, s), func() error {
		if strings.Contains(p.output(), s) {
			return nil
		}
		return fmt.Errorf("not yet")
	})
}

// TestRegistryFaults checks the edge against registry faults:
// etcd fully unreachable, watch history compacted away while the edge was
// cut off, and a flood of heartbeats.
func TestRegistryFaults(t *testing.T) {
	t.Run("etcd unreachable: routing from the last snapshot, then recovery", testEtcdUnreachable)
	t.Run("compaction while cut off: re-list with no gap", testCompactionRelist)
	t.Run("heartbeat flood: no write storm", testHeartbeatFlood)
}

func testEtcdUnreachable(t *testing.T) {
	m := etcdtest.Start(t)
	reg := discoverysvc.NewRegistry(etcdtest.NewClient(t, m), "")
	a, b := newEchoBackend(t, "a"), newEchoBackend(t, "b")
	register(t, reg, a, "eu", 0.2)
	register(t, reg, b, "eu", 0.2)
	e := startEdge(t, "edge", edgeConfig{Region: "eu", Etcd: []string{m.Client}, LogLevel: "INFO"})
	e.waitServers(t, 2)

	status, pinned, pin, body := hit(t, e.URL, "")
	if status != http.StatusOK || pin == "" {
		t.Fatalf("placement: %d %s, pin %q", status, body, pin)
	}

	m.Stop()
	waitLog(t, e.proc, "registry unreachable")
	for i := range 20 {
		if status, got, _, body := hit(t, e.URL, pin); status != http.StatusOK || got != pinned {
			t.Fatalf("pinned request %d with etcd down: %d from %q, want 200 from %s: %s", i, status, got, pinned, body)
		}
		status, got, newPin, body := hit(t, e.URL, "")
		if status != http.StatusOK || newPin == "" || (got != "a" && got != "b") {
			t.Fatalf("unpinned request %d with etcd down: %d from %q, pin %v: %s", i, status, got, newPin != "", body)
		}
	}

	m.Restart()
	waitLog(t, e.proc, "registry reachable again")
	// Changes flow again: a new server appears, a removed one is refused.
	// The test's own etcd client reconnects on its own schedule (gRPC backs
	// off while the member is down), so its first write is retried.
	c := newEchoBackend(t, "c")
	poll.Until(t, time.Minute, "the test's etcd client to register c after the restart", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := reg.Heartbeat(ctx, schema.Server{ID: c.ID, Region: "eu", URL: c.srv.URL, Load: 0.1}, time.Minute)
		return err
	})
	e.waitServers(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.Deregister(ctx, pinned); err != nil {
		t.Fatal(err)
	}
	e.waitServers(t, 2)
	if status, got, _, body := hit(t, e.URL, pin); status != http.StatusServiceUnavailable || got != "" || !strings.Contains(body, "pinned_server_unavailable") {
		t.Fatalf("pin to a deregistered server after recovery: %d from %q: %s", status, got, body)
	}
}

func testCompactionRelist(t *testing.T) {
	m := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, m)
	reg := discoverysvc.NewRegistry(cli, "")
	a, b, c := newEchoBackend(t, "a"), newEchoBackend(t, "b"), newEchoBackend(t, "c")
	register(t, reg, a, "eu", 0.2)
	register(t, reg, b, "eu", 0.2)
	proxy := etcdtest.StartCutProxy(t, m.Client)
	e := startEdge(t, "edge", edgeConfig{Region: "eu", Etcd: []string{proxy.Addr()}, LogLevel: "INFO"})
	e.waitServers(t, 2)
	_, _, pinA := pinTo(t, e.URL, "a")

	proxy.Cut()
	// While the edge is cut off: remove a, add c, make b busy, then compact
	// away the history the edge would need to catch up event by event.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.Deregister(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	register(t, reg, c, "eu", 0.1)
	register(t, reg, b, "eu", 0.9)
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/other/%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	get, err := cli.Get(ctx, "/other/0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, get.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	proxy.Heal()

	// The edge either resumes its watch and finds the history compacted, or
	// has already declared the registry unreachable and lists on its return;
	// both must end in exactly the registry's state.
	poll.Until(t, 60*time.Second, "the edge to resync", func() error {
		out := e.proc.output()
		if strings.Contains(out, "fell behind compaction") || strings.Contains(out, "registry reachable again") {
			return nil
		}
		return fmt.Errorf("no resync logged yet")
	})
	if strings.Contains(e.proc.output(), "fell behind compaction") {
		t.Log("the edge's watch hit the compaction and listed again")
	} else {
		t.Log("the edge noticed the outage first and listed again on reconnecting")
	}
	// No gap: the removal, the addition and the load change all arrive.
	poll.Until(t, 30*time.Second, "the removal of a to reach the edge", func() error {
		if status, got, _, body := hit(t, e.URL, pinA); status != http.StatusServiceUnavailable || got != "" {
			return fmt.Errorf("pin to a, removed while the edge was cut off: %d from %q: %s", status, got, body)
		}
		return nil
	})
	e.waitServers(t, 2)
	for i := range 10 {
		// c (0.1) is the least loaded; b (0.9) is outside the hysteresis.
		if status, got, _, body := hit(t, e.URL, ""); status != http.StatusOK || got != "c" {
			t.Fatalf("placement %d after re-list: %d from %q, want c: %s", i, status, got, body)
		}
	}
}

func testHeartbeatFlood(t *testing.T) {
	m := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, m)
	const token = "flood-token"
	disc, _ := startDiscovery(t, "discovery", []string{m.Client}, "--token", token, "--allow-loopback")
	e := startEdge(t, "edge", edgeConfig{Region: "eu", Etcd: []string{m.Client}})
	const servers, beats = 30, 10
	backend := newEchoBackend(t, "any")
	put := func(id string, load float64) error {
		body := fmt.Sprintf(`{"region":"eu","url":%q,"load":%g,"ttl":60}`, backend.srv.URL, load)
		req, _ := http.NewRequest(http.MethodPut, disc+"/v1/servers/"+id, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("PUT %s: %d %s", id, resp.StatusCode, b)
		}
		return nil
	}
	for i := range servers {
		if err := put(fmt.Sprintf("s%02d", i), 0.5); err != nil {
			t.Fatal(err)
		}
	}
	e.waitServers(t, servers)
	before := revision(t, cli)

	// Every server heartbeats many times at once, its load jittering by less
	// than the write threshold: leases are renewed, nothing is written.
	var wg sync.WaitGroup
	errs := make(chan error, servers*beats)
	for i := range servers {
		for j := range beats {
			wg.Go(func() {
				jitter := float64(j%5-2) * 0.004 // within ±0.008 of 0.5
				errs <- put(fmt.Sprintf("s%02d", i), 0.5+jitter)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	after := revision(t, cli)
	t.Logf("heartbeat flood: %d heartbeats of %d servers moved the etcd revision by %d", servers*beats, servers, after-before)
	if after != before {
		t.Errorf("a flood of %d lease-only heartbeats wrote etcd %d times; want 0", servers*beats, after-before)
	}
	// A real load change is still written, once.
	if err := put("s00", 0.9); err != nil {
		t.Fatal(err)
	}
	if got := revision(t, cli); got != after+1 {
		t.Errorf("a load change moved the revision by %d; want 1", got-after)
	}
}

// revision is etcd's current revision.
func revision(t testing.TB, c *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "/sessionpin/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// pinTo places requests until one lands on server id and returns its pin.
func pinTo(t testing.TB, edgeURL, id string) (int, string, string) {
	t.Helper()
	for range 200 {
		status, got, pin, _ := hit(t, edgeURL, "")
		if status == http.StatusOK && got == id && pin != "" {
			return status, got, pin
		}
	}
	t.Fatalf("placement never chose %s", id)
	return 0, "", ""
}
