package discoverysvc_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// noSpaceWait bounds conditions that depend only on a responsive machine.
const noSpaceWait = 30 * time.Second

// loadApp is an app whose health body the test sets; hits counts probes.
type loadApp struct {
	srv  *httptest.Server
	body atomic.Value // string
	hits atomic.Int64
}

func startLoadApp(t *testing.T, body string) *loadApp {
	t.Helper()
	a := &loadApp{}
	a.body.Store(body)
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, a.body.Load().(string))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// runAgent runs ag until the test ends.
func runAgent(t *testing.T, ag *agent.Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ag.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// stored returns the server's record in etcd, or nil when it is absent.
func stored(t *testing.T, c *clientv3.Client, id string) *schema.Server {
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
	s, err := schema.DecodeServer(schema.ServersPrefix(""), resp.Kvs[0].Key, resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// apiCall sends one request to the discovery API and returns the status
// and the body.
func apiCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// When etcd's database is full (NOSPACE), nobody is lost: edges route on
// what they have, registered servers keep their leases through their
// heartbeats, writes get 503 registry_full, the agent keeps trying, and
// everything catches up by itself once the alarm is disarmed. The member
// is real, with a tiny quota, and its own upkeep is held off so that the
// operator's steps are what ends the alarm.
func TestNoSpaceLosesNobodyAndRecovers(t *testing.T) {
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) {
		c.QuotaBytes = 2 << 20
		c.CompactionRetention = -1
		c.UpkeepInterval = time.Hour
	})
	admin := etcdtest.NewClient(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Discovery as serve runs it beside its embedded member.
	in := m.Etcd().InProcessClient(nil)
	t.Cleanup(func() { in.Close() })
	svc := discoverysvc.New(discoverysvc.Config{Client: in.Client, Renew: in.Renew})
	svcCtx, stopSvc := context.WithCancel(ctx)
	svcDone := make(chan struct{})
	go func() {
		defer close(svcDone)
		svc.Run(svcCtx)
	}()
	t.Cleanup(func() {
		stopSvc()
		<-svcDone
	})
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)

	// An edge watching over the network.
	edge := watch.NewWatcher(watch.WatcherConfig{Client: etcdtest.NewClient(t, m)})
	edgeCtx, stopEdge := context.WithCancel(ctx)
	edgeDone := make(chan struct{})
	go func() {
		defer close(edgeDone)
		edge.Run(edgeCtx)
	}()
	t.Cleanup(func() {
		stopEdge()
		<-edgeDone
	})
	edgeHas := func(ids ...string) bool {
		var got []string
		for _, s := range edge.Snapshot().Servers() {
			got = append(got, s.ID)
		}
		return slices.Equal(got, ids)
	}

	const eu2 = `{"region":"eu","url":"http://10.0.0.2:9000","load":0.5,"ttl":60}`
	if code, body := apiCall(t, http.MethodPut, srv.URL+"/v1/servers/eu-2", eu2); code != http.StatusOK {
		t.Fatalf("register eu-2: %d %s", code, body)
	}
	app := startLoadApp(t, `{"load":0.1}`)
	runAgent(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1:9000", HealthURL: app.srv.URL + "/healthz",
		Discovery: srv.URL, Interval: 200 * time.Millisecond, TTL: 2 * time.Second,
	})
	poll.True(t, noSpaceWait, "eu-1 registered", func() bool {
		s := stored(t, admin, "eu-1")
		return s != nil && s.Load == 0.1
	})
	poll.True(t, noSpaceWait, "the edge has both servers", func() bool { return edgeHas("eu-1", "eu-2") })

	// Fill the database with history of a key outside the registry.
	filler := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		_, err := admin.Put(ctx, "/other/filler", filler)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil || i > 10_000 {
			t.Fatalf("filling etcd: %v after %d puts", err, i)
		}
	}

	// The app's load moves: the agent's heartbeats now need a write.
	app.body.Store(`{"load":0.9}`)
	probes := app.hits.Load()
	full := `{"error":"registry_full"}`
	if code, body := apiCall(t, http.MethodPut, srv.URL+"/v1/servers/eu-2", eu2); code != http.StatusOK {
		t.Fatalf("heartbeat that only renews, under NOSPACE: %d %s", code, body)
	}
	for _, c := range []struct{ what, method, path, body string }{
		{"a heartbeat that changes the load", http.MethodPut, "/v1/servers/eu-2", strings.Replace(eu2, "0.5", "0.7", 1)},
		{"a new registration", http.MethodPut, "/v1/servers/eu-3", `{"region":"eu","url":"http://10.0.0.3:9000","load":0.5}`},
		{"a drain", http.MethodPut, "/v1/servers/eu-2/drain", ""},
	} {
		if code, body := apiCall(t, c.method, srv.URL+c.path, c.body); code != http.StatusServiceUnavailable || body != full {
			t.Errorf("%s under NOSPACE: %d %s, want 503 %s", c.what, code, body, full)
		}
	}

	// For three lease TTLs: eu-1 stays registered (its agent's heartbeats
	// renew its lease before their write is refused) with its old load,
	// and the edge keeps routing to both servers.
	until := time.Now().Add(3 * 2 * time.Second)
	for time.Now().Before(until) {
		if s := stored(t, admin, "eu-1"); s == nil || s.Load != 0.1 {
			t.Fatalf("eu-1 under NOSPACE: %+v, want registered with load 0.1", s)
		}
		if !edgeHas("eu-1", "eu-2") {
			t.Fatal("the edge lost a server under NOSPACE")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := app.hits.Load() - probes; n < 5 {
		t.Fatalf("the agent probed %d times while the registry was full: it stopped trying", n)
	}

	// Deletes are not refused: a server that leaves, leaves.
	if code, body := apiCall(t, http.MethodDelete, srv.URL+"/v1/servers/eu-2", ""); code != http.StatusNoContent {
		t.Fatalf("deregistration under NOSPACE: %d %s", code, body)
	}
	poll.True(t, noSpaceWait, "the edge drops eu-2", func() bool { return edgeHas("eu-1") })

	// The operator frees space and disarms.
	get, err := admin.Get(ctx, "/other/filler")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(ctx, get.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Defragment(ctx, m.Client); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}

	// Everything catches up on its own.
	poll.True(t, noSpaceWait, "the agent's new load written", func() bool {
		s := stored(t, admin, "eu-1")
		return s != nil && s.Load == 0.9
	})
	if code, body := apiCall(t, http.MethodPut, srv.URL+"/v1/servers/eu-3", `{"region":"eu","url":"http://10.0.0.3:9000","load":0.5}`); code != http.StatusOK {
		t.Fatalf("registration after the alarm: %d %s", code, body)
	}
	poll.True(t, noSpaceWait, "the edge sees the new load and server", func() bool {
		s := edge.Snapshot().Server("eu-1")
		return edgeHas("eu-1", "eu-3") && s != nil && s.Load == 0.9
	})
}
