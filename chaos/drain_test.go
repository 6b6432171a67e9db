package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc"
	discoveryapi "github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// drainToken is the discovery admin token of the drain tests.
const drainToken = "drain-admin-token"

// drainFleet is discovery, two edges publishing their activity every
// interval, and two servers of one region, eu-1 the less loaded.
type drainFleet struct {
	disc     string
	edges    []*edge
	servers  map[string]*echoBackend
	interval time.Duration
}

func startDrainFleet(t *testing.T, interval time.Duration) *drainFleet {
	t.Helper()
	m := etcdtest.Start(t)
	reg := discoverysvc.NewRegistry(etcdtest.NewClient(t, m), "")
	disc, _ := startDiscovery(t, "discovery", []string{m.Client}, "--token", drainToken)
	f := &drainFleet{disc: disc, interval: interval, servers: map[string]*echoBackend{}}
	for id, load := range map[string]float64{"eu-1": 0.1, "eu-2": 0.5} {
		b := newEchoBackend(t, id)
		register(t, reg, b, "eu", load)
		f.servers[id] = b
	}
	for _, name := range []string{"edge-a", "edge-b"} {
		e := startEdge(t, name, edgeConfig{
			Region: "eu", Etcd: []string{m.Client},
			App: "edge_id " + name + "\nactivity_interval " + interval.String(),
		})
		e.waitServers(t, 2)
		f.edges = append(f.edges, e)
	}
	return f
}

// status is GET /v1/servers/<id>/drain.
func (f *drainFleet) status(t *testing.T, id, quiet string) (discoveryapi.DrainStatus, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.disc+"/v1/servers/"+id+"/drain?quiet="+quiet, nil)
	req.Header.Set("Authorization", "Bearer "+drainToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st discoveryapi.DrainStatus
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
	}
	return st, resp.StatusCode
}

// pinnedClient keeps sending pinned requests through one edge until its
// context ends, noting when its last request to its server was sent.
type pinnedClient struct {
	edge, server string

	mu       sync.Mutex
	pin      string    // refresh replaces it while run sends it
	lastSent time.Time // start of the last request answered by server
	lastDone time.Time // end of it
	wrong    int       // answers from another server
}

func (c *pinnedClient) run(ctx context.Context, every time.Duration) {
	for ctx.Err() == nil {
		sent := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.edge+"/step", nil)
		c.mu.Lock()
		pin := c.pin
		c.mu.Unlock()
		req.Header.Set("X-Session-Pin", pin)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			c.mu.Lock()
			if by := resp.Header.Get("X-Served-By"); by == c.server {
				c.lastSent, c.lastDone = sent, time.Now()
			} else {
				c.wrong++
			}
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// refresh asks the edge to rebalance the client and adopts the new pin.
func (c *pinnedClient) refresh(t *testing.T, critical bool) (server string, changed bool) {
	t.Helper()
	body := fmt.Sprintf(`{"criticalTaskInProgress":%v}`, critical)
	req, _ := http.NewRequest(http.MethodPost, c.edge+"/auth/refresh", strings.NewReader(body))
	c.mu.Lock()
	pin := c.pin
	c.mu.Unlock()
	req.Header.Set("X-Session-Pin", pin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d", resp.StatusCode)
	}
	if p := resp.Header.Get("X-Session-Pin"); p != "" {
		c.mu.Lock()
		c.pin = p
		c.mu.Unlock()
	}
	return resp.Header.Get("X-Session-Server"), resp.Header.Get("X-Session-Server-Changed") == "1"
}

func TestOperatorDrainWaitsForPinnedClientsOnEveryEdge(t *testing.T) {
	// The bound checked at the end, quiet + 2 intervals, leaves the
	// command one interval beyond the edges' publishing for its own poll
	// and the watch; an interval of a second keeps that margin above what
	// a loaded two-core machine adds.
	const (
		interval = time.Second
		quiet    = 2 * time.Second
	)
	f := startDrainFleet(t, interval)
	// One client pinned to eu-1 through each edge, busy.
	var clients []*pinnedClient
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	clientCtx := make([]context.CancelFunc, 2)
	for i, e := range f.edges {
		_, _, pin := pinTo(t, e.URL, "eu-1")
		c := &pinnedClient{edge: e.URL, pin: pin, server: "eu-1"}
		clients = append(clients, c)
		cctx, ccancel := context.WithCancel(ctx)
		clientCtx[i] = ccancel
		wg.Add(1)
		go func() { defer wg.Done(); c.run(cctx, 100*time.Millisecond) }()
	}
	defer wg.Wait()
	defer cancel()

	drain := startProc(t, "drain", "discoverysvc", []string{"SESSIONPIN_DISCOVERY_TOKEN=" + drainToken},
		"drain", "eu-1", "--wait", "--quiet", quiet.String(), "--timeout", "2m", "--discovery", f.disc)
	poll.Until(t, 30*time.Second, "both edges to report eu-1's pinned clients", func() error {
		st, code := f.status(t, "eu-1", quiet.String())
		if code != http.StatusOK || !st.Draining || st.EdgesReporting != 2 || st.PinnedLastMinute == 0 || st.Drained {
			return fmt.Errorf("status %d %+v", code, st)
		}
		return nil
	})
	// Placement skips the drained server on both edges; its pinned clients
	// still reach it.
	for _, e := range f.edges {
		for range 10 {
			if status, by, _, _ := hit(t, e.URL, ""); status != http.StatusOK || by != "eu-2" {
				t.Fatalf("a new client through %s went to %q (%d)", e.URL, by, status)
			}
		}
	}
	// A critical task keeps its client on the drained server.
	if srv, changed := clients[0].refresh(t, true); srv != "eu-1" || changed {
		t.Fatalf("critical refresh moved the client to %s", srv)
	}
	// While clients keep working, the drain is not over, however long.
	busyUntil := time.Now().Add(quiet + 2*interval)
	for time.Now().Before(busyUntil) {
		if !drain.running() {
			t.Fatalf("drain --wait returned while pinned clients were busy:\n%s", drain.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _ := f.status(t, "eu-1", quiet.String())
	if st.EdgesReporting != 2 || st.Drained {
		t.Fatalf("status while busy: %+v", st)
	}

	// Both clients finish and refresh without a critical task: they move.
	for _, stop := range clientCtx {
		stop()
	}
	wg.Wait()
	var lastSent, lastDone time.Time
	for _, c := range clients {
		if srv, changed := c.refresh(t, false); srv != "eu-2" || !changed {
			t.Fatalf("refresh kept the client on %s (changed %v)", srv, changed)
		}
		c.mu.Lock()
		if c.wrong > 0 {
			t.Errorf("%d pinned requests answered by another server", c.wrong)
		}
		if c.lastSent.After(lastSent) {
			lastSent, lastDone = c.lastSent, c.lastDone
		}
		c.mu.Unlock()
	}
	if err := drain.wait(30 * time.Second); err != nil {
		t.Fatalf("drain --wait: %v\n%s", err, drain.output())
	}
	returned := time.Now()
	if !strings.Contains(drain.output(), "eu-1: drained") || !strings.Contains(drain.output(), "pinned requests in the last minute") {
		t.Fatalf("drain output:\n%s", drain.output())
	}
	after := returned.Sub(lastDone)
	t.Logf("drain --wait returned %s after the last pinned request (quiet %s, interval %s)", after.Round(time.Millisecond), quiet, interval)
	if returned.Sub(lastSent) < quiet {
		t.Fatalf("drain --wait returned %s after the last pinned request, before the quiet %s", returned.Sub(lastSent), quiet)
	}
	if after > quiet+2*interval {
		t.Errorf("drain --wait returned %s after the last pinned request, later than quiet + 2 intervals", after)
	}
}

func TestKilledEdgeStopsCountingWhenItsLeaseEnds(t *testing.T) {
	const interval = 300 * time.Millisecond
	f := startDrainFleet(t, interval)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Only edge-b carries eu-1's pinned traffic.
	_, _, pin := pinTo(t, f.edges[1].URL, "eu-1")
	c := &pinnedClient{edge: f.edges[1].URL, pin: pin, server: "eu-1"}
	wg.Add(1)
	go func() { defer wg.Done(); c.run(ctx, 50*time.Millisecond) }()
	req, _ := http.NewRequest(http.MethodPut, f.disc+"/v1/servers/eu-1/drain", nil)
	req.Header.Set("Authorization", "Bearer "+drainToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	poll.Until(t, 30*time.Second, "edge-b's report of eu-1", func() error {
		st, _ := f.status(t, "eu-1", "1h")
		if st.EdgesReporting != 2 || st.PinnedLastMinute == 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	f.edges[1].proc.kill() // SIGKILL: no chance to revoke its lease
	cancel()
	poll.Until(t, 30*time.Second, "edge-b's lease to end", func() error {
		st, _ := f.status(t, "eu-1", "1h")
		if st.EdgesReporting != 1 || st.PinnedLastMinute != 0 || st.LastPinned != nil {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}
