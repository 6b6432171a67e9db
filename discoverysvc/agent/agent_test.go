package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/agenttest"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

func TestAgentFollowsAppHealthAndDeregistersOnStop(t *testing.T) {
	f := startAPI(t, testToken)
	app := agenttest.StartApp(t, 200, `{"status":"ok","load":0.42}`)
	stop := agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu-west", URL: "http://10.1.2.3:9001",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL + "/",
		Token: testToken, Interval: agenttest.Interval,
	})

	poll.True(t, 20*time.Second, "registration with the load of the health body", func() bool {
		s := agenttest.Stored(t, f.client, "eu-1")
		return s != nil && s.Load == 0.42
	})
	if s := agenttest.Stored(t, f.client, "eu-1"); s.Region != "eu-west" || s.URL != "http://10.1.2.3:9001" || s.Draining {
		t.Fatalf("stored %+v", s)
	}

	app.Set(503, `{"status":"down"}`)
	// Gone at once by DELETE, long before the 10 s lease would expire.
	poll.True(t, 5*time.Second, "deregistration while the app is unhealthy", func() bool {
		return agenttest.Stored(t, f.client, "eu-1") == nil
	})

	app.Set(200, `{"load":0.7}`)
	poll.True(t, 20*time.Second, "registration again after recovery", func() bool {
		s := agenttest.Stored(t, f.client, "eu-1")
		return s != nil && s.Load == 0.7
	})

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := agenttest.Stored(t, f.client, "eu-1"); s != nil {
		t.Fatalf("still registered after stop: %+v", s)
	}
}

func TestAgentKeepsASlowAppRegistered(t *testing.T) {
	f := startAPI(t, testToken)
	app := agenttest.StartApp(t, 200, `{"load":0.1}`)
	core, logs := observer.New(zap.WarnLevel)
	agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu-west", URL: "http://10.1.2.3:9001",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Token: testToken, Interval: agenttest.Interval, Logger: zap.New(core),
	})
	poll.True(t, 20*time.Second, "registration", func() bool { return agenttest.Stored(t, f.client, "eu-1") != nil })

	// Probes now time out: heartbeats stop, but a slow app is not a dead
	// one, so the server stays until its lease says otherwise.
	app.SetDelay(2 * agenttest.Interval)
	poll.True(t, 20*time.Second, "three skipped heartbeats", func() bool {
		return logs.FilterMessage("health probe timed out; heartbeat skipped").Len() >= 3
	})
	if agenttest.Stored(t, f.client, "eu-1") == nil {
		t.Fatal("a slow health probe deregistered the server")
	}
}

func TestAgentReportsFixedLoadAndTTL(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 204, ``)
	load := 0.3
	agenttest.Run(t, &agent.Agent{
		ID: "us-1", Region: "us", URL: "https://us1.example.com",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval, Load: &load, TTL: 5 * time.Second,
	})
	poll.True(t, 20*time.Second, "registration", func() bool { return agenttest.Stored(t, f.client, "us-1") != nil })
	app.SetAndWaitHeartbeat(t, 200, `{"load":0.9}`) // ignored: --load wins
	if s := agenttest.Stored(t, f.client, "us-1"); s.Load != 0.3 {
		t.Fatalf("load %v, want the fixed 0.3", s.Load)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := f.client.Get(ctx, schema.ServerKey("", "us-1"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get: %v", err)
	}
	ttl, err := f.client.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != 5 {
		t.Fatalf("lease granted %d s (%v), want 5", ttl.GrantedTTL, err)
	}
}

// switchHandler lets a test swap what answers on one address.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (s *switchHandler) set(h http.Handler) { s.h.Store(&h) }
func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func TestAgentSurvivesDiscoveryOutages(t *testing.T) {
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	app := agenttest.StartApp(t, 200, `{"load":0.1}`)
	core, logs := observer.New(zap.InfoLevel)
	addr := etcdtest.FreePort(t)

	// The agent starts before discovery exists.
	agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: "http://" + addr,
		Interval: agenttest.Interval, Logger: zap.New(core),
	})
	count := func(msg string) int { return logs.FilterMessage(msg).Len() }
	poll.True(t, 20*time.Second, "the outage to be logged", func() bool { return count("discovery unreachable; retrying with backoff") == 1 })

	api := discoverysvc.NewAPI(discoverysvc.NewRegistry(c, ""), discoverysvc.APIConfig{AllowLoopback: true})
	sw := &switchHandler{}
	sw.set(api)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: sw}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	poll.True(t, 20*time.Second, "registration once discovery is up", func() bool { return agenttest.Stored(t, c, "eu-1") != nil })
	poll.True(t, 5*time.Second, "the recovery to be logged", func() bool { return count("discovery reachable again") == 1 })

	// A second outage: discovery answers 503 (its etcd is down, say) to many
	// retries, and the agent logs it once.
	var refused atomic.Int32
	sw.set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		http.Error(w, `{"error":"registry unavailable"}`, http.StatusServiceUnavailable)
	}))
	poll.True(t, 20*time.Second, "several failed heartbeats", func() bool { return refused.Load() >= 4 })
	if n := count("discovery unreachable; retrying with backoff"); n != 2 {
		t.Fatalf("%d outage logs for two outages", n)
	}
	sw.set(api)
	app.Set(200, `{"load":0.9}`)
	poll.True(t, 20*time.Second, "heartbeats to resume", func() bool {
		s := agenttest.Stored(t, c, "eu-1")
		return s != nil && s.Load == 0.9
	})
	// The agent logs the recovery after the answer that etcd already shows.
	poll.True(t, 5*time.Second, "the second recovery to be logged", func() bool { return count("discovery reachable again") == 2 })
	if n := count("discovery unreachable; retrying with backoff"); n != 2 {
		t.Fatalf("%d outage logs for two outages", n)
	}
}

func TestAgentDrainsBeforeDeregistering(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{"load":0.2}`)
	stop := agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval, DrainTimeout: 4 * agenttest.Interval,
	})
	poll.True(t, 20*time.Second, "registration", func() bool { return agenttest.Stored(t, f.client, "eu-1") != nil })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := f.client.Watch(ctx, schema.ServerKey("", "eu-1"), clientv3.WithRev(etcdtest.Revision(t, f.client)+1))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sawDraining bool
	for resp := range events {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				if !sawDraining {
					t.Fatal("deleted without being marked draining first")
				}
				return
			}
			var s schema.Server
			if err := json.Unmarshal(ev.Kv.Value, &s); err != nil {
				t.Fatal(err)
			}
			sawDraining = sawDraining || s.Draining
		}
	}
	t.Fatal("watch ended before the delete")
}

func TestAgentDrainEndsWhenTheAppDies(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{}`)
	stop := agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval, DrainTimeout: time.Hour,
	})
	poll.True(t, 20*time.Second, "registration", func() bool { return agenttest.Stored(t, f.client, "eu-1") != nil })
	// The app goes down with the agent, as under one SIGTERM: draining to a
	// dead app would strand its clients, so the agent deregisters instead of
	// waiting out the hour.
	app.Set(503, ``)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := agenttest.Stored(t, f.client, "eu-1"); s != nil {
		t.Fatalf("still registered: %+v", s)
	}
}

func TestAgentValidatesItsConfig(t *testing.T) {
	good := func() agent.Agent {
		return agent.Agent{ID: "a", Region: "r", URL: "http://a", HealthURL: "http://a/healthz?full=1", Discovery: "http://d:7070"}
	}
	neg := -1.0
	nan := math.NaN()
	tests := []struct {
		field  string
		mutate func(*agent.Agent)
	}{
		{"id", func(a *agent.Agent) { a.ID = "" }},
		{"id", func(a *agent.Agent) { a.ID = "a/b" }},
		{"region", func(a *agent.Agent) { a.Region = "r r" }},
		{"url", func(a *agent.Agent) { a.URL = "http://a/?q" }},
		{"health-url", func(a *agent.Agent) { a.HealthURL = "" }},
		{"health-url", func(a *agent.Agent) { a.HealthURL = "localhost:8080/healthz" }},
		{"discovery", func(a *agent.Agent) { a.Discovery = "" }},
		{"discovery", func(a *agent.Agent) { a.Discovery = "http://d/?x=1" }},
		{"interval", func(a *agent.Agent) { a.Interval = -time.Second }},
		{"load", func(a *agent.Agent) { a.Load = &neg }},
		{"load", func(a *agent.Agent) { a.Load = &nan }},
		{"capacity", func(a *agent.Agent) { a.Capacity = -1 }},
		{"capacity", func(a *agent.Agent) { a.Capacity = math.NaN() }},
		{"capacity", func(a *agent.Agent) { a.Capacity = 1e12 }},
		{"limit", func(a *agent.Agent) { a.Limit = math.Inf(1) }},
		{"limit", func(a *agent.Agent) { a.Limit = -0.1 }},
		{"ttl", func(a *agent.Agent) { a.TTL = 1500 * time.Millisecond }},
		{"ttl", func(a *agent.Agent) { a.TTL = 2 * time.Hour }},
		{"ttl", func(a *agent.Agent) { a.TTL = 3 * time.Second }}, // not longer than the 3 s interval
		{"ttl", func(a *agent.Agent) { a.Interval = 20 * time.Second }},
		{"drain-timeout", func(a *agent.Agent) { a.DrainTimeout = -1 }},
	}
	for _, tt := range tests {
		a := good()
		tt.mutate(&a)
		err := a.Run(context.Background()) // validates before anything else
		fe, ok := errors.AsType[*schema.FieldError](err)
		if !ok || fe.Field != tt.field {
			t.Errorf("%+v: error %v, want one for %s", a, err, tt.field)
		}
	}
	a := good()
	if err := a.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
}

// TestAgentKeepsItsTokenOffPlainHTTP: a token goes over plain http only to
// this host, unless the operator says --insecure-http.
func TestAgentKeepsItsTokenOffPlainHTTP(t *testing.T) {
	for _, tt := range []struct {
		discovery, token string
		insecure, ok     bool
	}{
		{"http://10.0.0.5:7070", "t", false, false},
		{"http://discovery.internal", "t", false, false},
		{"http://127.0.0.2.nip.io:7070", "t", false, false},
		{"http://10.0.0.5:7070", "t", true, true},
		{"http://10.0.0.5:7070", "", false, true},
		{"https://discovery.internal", "t", false, true},
		{"http://127.0.0.1:7070", "t", false, true},
		{"http://[::1]:7070", "t", false, true},
		{"http://localhost:7070", "t", false, true},
	} {
		a := agent.Agent{ID: "a", Region: "r", URL: "http://a", HealthURL: "http://a/healthz",
			Discovery: tt.discovery, Token: tt.token, InsecureHTTP: tt.insecure}
		err := a.Validate()
		fe, isField := errors.AsType[*schema.FieldError](err)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s (token %v, insecure %v): %v", tt.discovery, tt.token != "", tt.insecure, err)
		case !tt.ok && (!isField || fe.Field != "discovery" || !strings.Contains(fe.Reason, "--insecure-http")):
			t.Errorf("%s (token %v): error %v, want one for discovery naming --insecure-http", tt.discovery, tt.token != "", err)
		}
	}
}

func TestLoadFromHealth(t *testing.T) {
	tests := []struct {
		body string
		want float64
		ok   bool
	}{
		{`{"load":0.5}`, 0.5, true},
		{`{"status":"ok","load":2,"extra":{"load":9}}`, 2, true},
		{`{"load":0}`, 0, true},
		{`{"status":"ok"}`, 0, true},
		{`OK`, 0, true},
		{``, 0, true},
		{`[{"load":1}]`, 0, true},
		{`{"load":-1}`, 0, false},
		{`{"load":"0.5"}`, 0, false},
		{`{"load":1e999}`, 0, false},
		{`{"load":null}`, 0, false},
		{`{"load":true}`, 0, false},
	}
	for _, tt := range tests {
		if got, ok := agent.LoadFromHealth([]byte(tt.body)); got != tt.want || ok != tt.ok {
			t.Errorf("LoadFromHealth(%s) = %v, %v; want %v, %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzLoadFromHealth(f *testing.F) {
	for _, seed := range []string{`{"load":0.5}`, `{"load":-1}`, `{"load":1e999}`, `{"load":"x"}`, `OK`, `{"load":null}`, `{"load":0.1,"load":-3}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		load, ok := agent.LoadFromHealth(body)
		if math.IsNaN(load) || math.IsInf(load, 0) || load < 0 {
			t.Fatalf("LoadFromHealth(%q) = %v, %v: not a load", body, load, ok)
		}
		if !ok && load != 0 {
			t.Fatalf("LoadFromHealth(%q) = %v with ok false", body, load)
		}
	})
}

// TestAgentKeepsTheLastValidLoad: a health body whose load is negative,
// non-finite or not a number does not become load 0, the value that draws
// every new client; the agent keeps reporting the last valid load and says
// so once.
func TestAgentKeepsTheLastValidLoad(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{"load":0.7}`)
	core, logs := observer.New(zap.InfoLevel)
	agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval, Logger: zap.New(core),
	})
	poll.True(t, 20*time.Second, "load 0.7 registered", func() bool {
		s := agenttest.Stored(t, f.client, "eu-1")
		return s != nil && s.Load == 0.7
	})
	for _, bad := range []string{`{"load":-1}`, `{"load":1e999}`, `{"load":"low"}`, `{"load":null}`} {
		app.Set(200, bad)
		before := app.Hits()
		poll.True(t, 20*time.Second, "two probes of "+bad, func() bool { return app.Hits() >= before+2 })
		if s := agenttest.Stored(t, f.client, "eu-1"); s == nil || s.Load != 0.7 {
			t.Fatalf("after health body %s: stored %+v, want load 0.7 kept", bad, s)
		}
	}
	if n := logs.FilterMessage("health body has an invalid load; keeping the last valid one").Len(); n != 1 {
		t.Errorf("invalid load logged %d times over one streak, want 1", n)
	}
	app.Set(200, `{"load":0.2}`)
	poll.True(t, 20*time.Second, "load 0.2 registered", func() bool {
		s := agenttest.Stored(t, f.client, "eu-1")
		return s != nil && s.Load == 0.2
	})
}

// TestAgentWithoutAValidLoadLooksBusy: before any valid load, the agent
// reports 1, the top of the conventional range, not 0.
func TestAgentWithoutAValidLoadLooksBusy(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{"load":-5}`)
	agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL, Interval: agenttest.Interval,
	})
	poll.True(t, 20*time.Second, "registered", func() bool { return agenttest.Stored(t, f.client, "eu-1") != nil })
	if s := agenttest.Stored(t, f.client, "eu-1"); s.Load != 1 {
		t.Fatalf("stored %+v, want load 1", s)
	}
}

func TestAgentLogsARefusalOnceAndKeepsTrying(t *testing.T) {
	f := startAPI(t, testToken)
	var puts atomic.Int32
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			puts.Add(1)
		}
		f.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(counting.Close)
	app := agenttest.StartApp(t, 200, `{}`)
	core, logs := observer.New(zap.InfoLevel)
	agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: counting.URL,
		Token: "wrong", Interval: agenttest.Interval, Logger: zap.New(core),
	})
	poll.True(t, 20*time.Second, "several refused heartbeats", func() bool { return puts.Load() >= 3 })
	refusals := logs.FilterMessage("discovery refused the request").All()
	if len(refusals) != 1 || refusals[0].ContextMap()["status"] != int64(http.StatusUnauthorized) {
		t.Fatalf("refusal logs: %+v", refusals)
	}
	if n := logs.FilterMessage("discovery unreachable; retrying with backoff").Len(); n != 0 {
		t.Fatalf("a refusal was logged as an outage %d times", n)
	}
	if s := agenttest.Stored(t, f.client, "eu-1"); s != nil {
		t.Fatalf("registered with a wrong token: %+v", s)
	}
}

// The agent's heartbeats share one kept-alive connection to discovery.
func TestAgentKeepsItsConnectionToDiscovery(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	var conns, beats atomic.Int64
	api := discoverysvc.NewAPI(discoverysvc.NewRegistry(c, ""), discoverysvc.APIConfig{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r)
		if r.Method == http.MethodPut {
			beats.Add(1)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	app := agenttest.StartApp(t, 204, ``)
	load := 0.3
	agenttest.Run(t, &agent.Agent{
		ID: "us-1", Region: "us", URL: "https://us1.example.com",
		HealthURL: app.URL + "/healthz", Discovery: srv.URL,
		Interval: agenttest.Interval, Load: &load,
	})
	poll.True(t, 30*time.Second, "six heartbeats", func() bool { return beats.Load() >= 6 })
	if n := conns.Load(); n > 2 {
		t.Fatalf("%d connections for %d heartbeats, want them kept alive", n, beats.Load())
	}
}

// A server that drains itself waits out the quiet period discovery judges
// with, which an edge publishing less often than the agent's quiet period
// lengthens: a request the edge served just before the drain is reported
// only at the end of its interval.
func TestAgentSelfDrainWaitsForTheEdgesInterval(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{"load":0.2}`)
	stop := agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu", URL: "http://10.0.0.1",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval, DrainTimeout: time.Minute, DrainQuiet: 100 * time.Millisecond,
	})
	poll.True(t, 20*time.Second, "registration", func() bool { return agenttest.Stored(t, f.client, "eu-1") != nil })
	// An edge that publishes every 3 s and has not served eu-1 lately:
	// discovery judges the drain with 4 s, not 100 ms.
	const interval = 3 * time.Second
	value := schema.AppendActivity(nil, "edge-a", "eu", interval, time.Now(), schema.AppendServers(nil, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.client.Put(ctx, schema.EdgeKey("", "edge-a"), string(value)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took < interval+time.Second {
		t.Fatalf("deregistered %v after the drain began, before the edge's interval plus a second", took)
	}
	if agenttest.Stored(t, f.client, "eu-1") != nil {
		t.Fatal("still registered after the drain")
	}
}
