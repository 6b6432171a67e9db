package discoverysvc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
	"github.com/sessionpin/sessionpin/internal/agenttest"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// drainWait bounds waits that depend only on the machine being responsive.
const drainWait = 20 * time.Second

// drainStatus decodes a drain status answer.
func drainStatus(t *testing.T, r apiResponse) client.DrainStatus {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var st client.DrainStatus
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return st
}

// watch runs a registry watcher over the fixture's etcd, as an edge does.
func (f *apiFixture) watch(t *testing.T) *watch.Watcher {
	t.Helper()
	w := watch.NewWatcher(watch.WatcherConfig{Client: etcdtest.NewClient(t, f.member)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// putActivity writes an edge's activity value under a lease of ttl, as an
// edge does, and returns the lease.
func (f *apiFixture) putActivity(t *testing.T, edge, value string, ttl int64) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g, err := f.client.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Put(ctx, schema.EdgeKey("", edge), value, clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	return g.ID
}

func activityValue(edge, server string, minute uint64, last time.Time) string {
	servers := map[string]schema.ServerActivity{server: {Pinned: minute, Minute: minute, Last: last}}
	return string(schema.AppendActivity(nil, edge, "eu", 0, time.Now(), schema.AppendServers(nil, servers)))
}

func TestDrainAPIStartsReportsAndEnds(t *testing.T) {
	f := startAPI(t, testToken)
	heartbeat := `{"region":"eu","url":"http://10.0.0.1:8080","load":0.1,"draining":false}`
	if r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, heartbeat); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := f.do(t, "GET", "/v1/servers/eu-1/drain", testToken, ""); r.status != 404 {
		t.Fatalf("status before a drain: %d %s", r.status, r.body)
	}
	st := drainStatus(t, f.do(t, "PUT", "/v1/servers/eu-1/drain?quiet=30s", testToken, `{"reason":"kernel update"}`))
	if !st.Draining || st.Since == nil || st.Reason != "kernel update" || !st.Registered || st.Drained || st.Quiet != "30s" || st.LastPinned != nil {
		t.Fatalf("after PUT: %+v", st)
	}
	// Draining again keeps the start, so repeating the command does not
	// restart the quiet period.
	again := drainStatus(t, f.do(t, "PUT", "/v1/servers/eu-1/drain", testToken, ""))
	if !again.Since.Equal(*st.Since) || again.Reason != "kernel update" || again.Quiet != "1m0s" {
		t.Fatalf("second PUT: %+v, first since %v", again, st.Since)
	}
	// Draining an id that is not registered is allowed.
	if st := drainStatus(t, f.do(t, "PUT", "/v1/servers/eu-9/drain", testToken, "")); st.Registered || !st.Draining {
		t.Fatalf("unregistered drain: %+v", st)
	}
	if r := f.do(t, "DELETE", "/v1/servers/eu-1/drain", testToken, ""); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := f.do(t, "DELETE", "/v1/servers/eu-1/drain", testToken, ""); r.status != 404 {
		t.Fatalf("second DELETE: %d %s", r.status, r.body)
	}
	if r := f.do(t, "GET", "/v1/servers/eu-1/drain", testToken, ""); r.status != 404 {
		t.Fatalf("GET after DELETE: %d %s", r.status, r.body)
	}
	// A server whose own record says it is draining has a status too.
	if r := f.do(t, "PUT", "/v1/servers/eu-1", testToken, strings.Replace(heartbeat, `"draining":false`, `"draining":true`, 1)); r.status != 200 {
		t.Fatalf("draining heartbeat: %d", r.status)
	}
	if st := drainStatus(t, f.do(t, "GET", "/v1/servers/eu-1/drain", testToken, "")); !st.Draining || st.Since != nil {
		t.Fatalf("record drain: %+v", st)
	}
	if r := f.do(t, "DELETE", "/v1/servers/eu-1/drain", testToken, ""); r.status != 404 {
		t.Fatalf("DELETE of a record drain: %d %s", r.status, r.body)
	}
}

func TestDrainAPIRefusesBadInputAndWritesNothing(t *testing.T) {
	f := startAPI(t, testToken)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		field                           string
	}{
		{"PUT without a token", "PUT", "/v1/servers/eu-1/drain", "", "", 401, ""},
		{"PUT with a wrong token", "PUT", "/v1/servers/eu-1/drain", "wrong", "", 401, ""},
		{"DELETE without a token", "DELETE", "/v1/servers/eu-1/drain", "", "", 401, ""},
		{"GET without a token", "GET", "/v1/servers/eu-1/drain", "", "", 401, ""},
		{"bad id", "PUT", "/v1/servers/eu%201/drain", testToken, "", 400, "id"},
		{"dots id", "PUT", "/v1/servers/.../drain", testToken, "", 400, "id"},
		{"unknown field", "PUT", "/v1/servers/eu-1/drain", testToken, `{"reason":"x","since":"2020-01-01T00:00:00Z"}`, 400, "body"},
		{"reason not a string", "PUT", "/v1/servers/eu-1/drain", testToken, `{"reason":5}`, 400, "reason"},
		{"reason twice", "PUT", "/v1/servers/eu-1/drain", testToken, `{"reason":"a","reason":"b"}`, 400, "reason"},
		{"reason with a newline", "PUT", "/v1/servers/eu-1/drain", testToken, `{"reason":"a\nb"}`, 400, "reason"},
		{"reason too long", "PUT", "/v1/servers/eu-1/drain", testToken, `{"reason":"` + strings.Repeat("r", 300) + `"}`, 400, "reason"},
		{"not an object", "PUT", "/v1/servers/eu-1/drain", testToken, `["x"]`, 400, "body"},
		{"bad quiet", "PUT", "/v1/servers/eu-1/drain?quiet=soon", testToken, "", 400, "quiet"},
		{"negative quiet", "GET", "/v1/servers/eu-1/drain?quiet=-1s", testToken, "", 400, "quiet"},
		{"quiet twice", "GET", "/v1/servers/eu-1/drain?quiet=1s&quiet=2s", testToken, "", 400, "quiet"},
		{"wrong method", "POST", "/v1/servers/eu-1/drain", testToken, "", 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.revision(t)
			r := f.do(t, tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if msg := r.errorText(t); tc.field != "" && !strings.HasPrefix(msg, "invalid "+tc.field) {
				t.Fatalf("error %q does not name %s", msg, tc.field)
			}
			if after := f.revision(t); after != before {
				t.Fatalf("etcd revision moved from %d to %d", before, after)
			}
		})
	}
}

func TestDrainSurvivesHeartbeatsAgentAndDiscoveryRestarts(t *testing.T) {
	f := startAPI(t, "")
	w := f.watch(t)
	app := agenttest.StartApp(t, 200, `{"load":0.1}`)
	start := func() func() error {
		return agenttest.Run(t, &agent.Agent{
			ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
			HealthURL: app.URL + "/healthz", Discovery: f.srv.URL, Interval: agenttest.Interval,
		})
	}
	stopAgent := start()
	poll.True(t, drainWait, "registration", func() bool { return w.Snapshot().Server("eu-1") != nil })
	if r := f.do(t, "PUT", "/v1/servers/eu-1/drain", "", ""); r.status != 200 {
		t.Fatalf("drain: %d %s", r.status, r.body)
	}
	draining := func(what string) {
		t.Helper()
		poll.Until(t, drainWait, what, func() error {
			e := w.Snapshot().Server("eu-1")
			if e == nil || !e.Draining || len(w.Snapshot().Active()) != 0 {
				return fmt.Errorf("entry %+v, %d active", e, len(w.Snapshot().Active()))
			}
			return nil
		})
	}
	draining("the edge to see the drain")
	// Heartbeats that say draining:false, and a load change that is written.
	for _, load := range []string{"0.5", "0.9"} {
		if r := f.do(t, "PUT", "/v1/servers/eu-1", "", `{"region":"eu","url":"http://10.0.0.1","load":`+load+`,"draining":false}`); r.status != 200 {
			t.Fatalf("heartbeat: %d", r.status)
		}
	}
	poll.True(t, drainWait, "the load change", func() bool { e := w.Snapshot().Server("eu-1"); return e != nil && e.Load == 0.9 })
	draining("draining after heartbeats with draining:false")

	// The agent stops (deregisters) and starts again.
	if err := stopAgent(); err != nil {
		t.Fatal(err)
	}
	poll.True(t, drainWait, "deregistration", func() bool { return w.Snapshot().Server("eu-1") == nil })
	stopAgent = start()
	defer stopAgent()
	draining("draining after an agent restart")

	// A second discovery instance over the same etcd, as after a restart.
	restarted := httptest.NewServer(discoverysvc.NewAPI(discoverysvc.NewRegistry(etcdtest.NewClient(t, f.member), ""), discoverysvc.APIConfig{AllowLoopback: true}))
	defer restarted.Close()
	g := &apiFixture{member: f.member, client: f.client, srv: restarted}
	if st := drainStatus(t, g.do(t, "GET", "/v1/servers/eu-1/drain", "", "")); !st.Draining || st.Since == nil {
		t.Fatalf("after a discovery restart: %+v", st)
	}
	if r := g.do(t, "DELETE", "/v1/servers/eu-1/drain", "", ""); r.status != 204 {
		t.Fatalf("undrain: %d", r.status)
	}
	poll.True(t, drainWait, "undrained", func() bool {
		e := w.Snapshot().Server("eu-1")
		return e != nil && !e.Draining && len(w.Snapshot().Active()) == 1
	})
}

func TestDrainStatusAggregatesLiveEdges(t *testing.T) {
	f := startAPI(t, "")
	if r := f.do(t, "PUT", "/v1/servers/eu-1/drain", "", ""); r.status != 200 {
		t.Fatalf("drain: %d", r.status)
	}
	now := time.Now()
	f.putActivity(t, "edge-a", activityValue("edge-a", "eu-1", 5, now.Add(-2*time.Second)), 60)
	dying := f.putActivity(t, "edge-b", activityValue("edge-b", "eu-1", 7, now.Add(-time.Second)), 60)
	f.putActivity(t, "edge-c", activityValue("edge-c", "eu-2", 100, now), 60)
	// Malformed values are ignored: not counted, not reporting.
	f.putActivity(t, "edge-d", `{"edge":"edge-d","at":"2026-11-29T05:00:00Z","servers":{"eu-1":{"pinned":-4}}}`, 60)
	f.putActivity(t, "edge-e", activityValue("edge-x", "eu-1", 1000, now), 60)

	st := drainStatus(t, f.do(t, "GET", "/v1/servers/eu-1/drain?quiet=1ms", "", ""))
	if st.EdgesReporting != 3 || st.PinnedLastMinute != 12 || st.LastPinned == nil || st.LastPinned.UnixMilli() != now.Add(-time.Second).UnixMilli() {
		t.Fatalf("status %+v", st)
	}
	// An edge whose lease ends stops counting.
	if _, err := f.client.Revoke(context.Background(), dying); err != nil {
		t.Fatal(err)
	}
	st = drainStatus(t, f.do(t, "GET", "/v1/servers/eu-1/drain?quiet=1ms", "", ""))
	if st.EdgesReporting != 2 || st.PinnedLastMinute != 5 || st.LastPinned.UnixMilli() != now.Add(-2*time.Second).UnixMilli() {
		t.Fatalf("after edge-b's lease ended: %+v", st)
	}
	if !st.Drained {
		t.Fatalf("quiet of 1ms long past: %+v", st)
	}
	if st := drainStatus(t, f.do(t, "GET", "/v1/servers/eu-1/drain?quiet=1h", "", "")); st.Drained {
		t.Fatalf("drained within an hour of the drain: %+v", st)
	}
}

func TestAgentDeregistersOnceDrained(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{"load":0.2}`)
	const quiet = 600 * time.Millisecond
	stop := agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval, DrainTimeout: time.Hour, DrainQuiet: quiet,
	})
	poll.True(t, drainWait, "registration", func() bool { return agenttest.Stored(t, f.client, "eu-1") != nil })
	// An edge saw a pinned request a moment ago; it stays quiet from here.
	last := time.Now()
	f.putActivity(t, "edge-a", activityValue("edge-a", "eu-1", 3, last), 60)

	stopAgentWithin(t, stop, drainWait, "the agent did not deregister after its server was drained")
	if took := time.Since(last); took < quiet {
		t.Fatalf("deregistered %s after the last pinned request, before the quiet %s", took, quiet)
	}
	if s := agenttest.Stored(t, f.client, "eu-1"); s != nil {
		t.Fatalf("still registered: %+v", s)
	}
}

func TestAgentLeavesAtOnceWhenAnOperatorDrainIsOver(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{"load":0.2}`)
	stop := agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		// The drain would last longer than the wait below, not so long that
		// a failure hangs the test's clean-up.
		Interval: agenttest.Interval, DrainTimeout: 3 * drainWait, DrainQuiet: time.Hour,
	})
	poll.True(t, drainWait, "registration", func() bool { return agenttest.Stored(t, f.client, "eu-1") != nil })
	// The operator drained eu-1 two hours ago and its last pinned request
	// is as old: it was drained before its agent began to stop, so the
	// agent's own quiet hour protects no client.
	since := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	if _, err := f.client.Put(context.Background(), schema.DrainKey("", "eu-1"), `{"id":"eu-1","since":"`+since+`"}`); err != nil {
		t.Fatal(err)
	}
	f.putActivity(t, "edge-a", activityValue("edge-a", "eu-1", 0, time.Now().Add(-2*time.Hour)), 60)
	if st := drainStatus(t, f.do(t, "GET", "/v1/servers/eu-1/drain?quiet=1h", "", "")); !st.Drained {
		t.Fatalf("status before the stop: %+v", st)
	}

	stopAgentWithin(t, stop, drainWait, "the agent of a server an operator had drained waited out its own quiet period")
	if s := agenttest.Stored(t, f.client, "eu-1"); s != nil {
		t.Fatalf("still registered: %+v", s)
	}
}

// stopAgentWithin stops an agent as SIGTERM would and fails with why when
// it has not returned within d.
func stopAgentWithin(t *testing.T, stop func() error, d time.Duration, why string) {
	t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		t.Fatal(why)
	}
}
