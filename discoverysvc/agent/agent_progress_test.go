package agent_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/agenttest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// progressApp is a progress URL whose answer, status and delay the test
// sets.
type progressApp struct {
	URL    string
	mu     sync.Mutex
	status int
	body   string
	delay  time.Duration
}

func startProgressApp(t *testing.T, body string) *progressApp {
	t.Helper()
	p := &progressApp{status: 200, body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		status, body, delay := p.status, p.body, p.delay
		p.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL + "/progress"
	return p
}

func (p *progressApp) set(status int, body string, delay time.Duration) {
	p.mu.Lock()
	p.status, p.body, p.delay = status, body, delay
	p.mu.Unlock()
}

// progressCommand is a script that prints a file the test writes.
func progressCommand(t *testing.T, output string) (line string, set func(string)) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "progress.json")
	set = func(s string) {
		t.Helper()
		// Written aside and renamed, so the script never reads half a file.
		if err := os.WriteFile(out+".new", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(out+".new", out); err != nil {
			t.Fatal(err)
		}
	}
	set(output)
	script := filepath.Join(dir, "progress.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec cat "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, set
}

// The agent reports the progress of a URL and a command, each origin at
// the larger lag of the two; a source that is down, slow or answers
// garbage leaves its origins unknown, is logged once however many
// heartbeats it lasts, and the agent keeps heartbeating meanwhile.
func TestAgentReportsProgressAndUnknownWhenASourceFails(t *testing.T) {
	f := startAPI(t, testToken)
	app := agenttest.StartApp(t, 200, `{"load":0.1}`)
	url := startProgressApp(t, `{"us-db": 0.3}`)
	line, setCommand := progressCommand(t, `{"us-db": 0.1, "ap-db": null}`)
	urlSrc, err := agent.NewURLSource(url.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmdSrc, err := agent.NewCommandSource(line)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	const interval = time.Second // the sources get half of it, ample under -race
	agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu-west", URL: "http://10.1.2.3:9001",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Token: testToken, Interval: interval, Logger: zap.New(core),
		Progress: []agent.ProgressSource{urlSrc, cmdSrc},
	})
	lag := func(ms int64) schema.Progress { return schema.Progress{LagMS: ms} }
	unknown := schema.Progress{Unknown: true}
	waitProgress := func(what string, want map[string]schema.Progress) {
		t.Helper()
		poll.True(t, 20*time.Second, what, func() bool {
			s := agenttest.Stored(t, f.client, "eu-1")
			return s != nil && schema.SameProgress(s.Progress, want)
		})
	}
	// 0.3 s from the URL beats 0.1 s from the command; stored in steps.
	waitProgress("the sources' progress", map[string]schema.Progress{"us-db": lag(500), "ap-db": unknown})
	if s := agenttest.Stored(t, f.client, "eu-1"); s.Origin != "eu-west" {
		t.Fatalf("origin %q, want the region when no --origin is given", s.Origin)
	}

	failures := func() int {
		return logs.FilterMessage("progress source cannot tell; its origins are reported unknown until it answers").
			FilterField(zap.String("source", urlSrc.Name())).Len()
	}
	// Down, then slow, then garbage: one failure all along, logged once,
	// while heartbeats still carry the app's load.
	url.set(http.StatusInternalServerError, "", 0)
	waitProgress("the failing URL's origin unknown", map[string]schema.Progress{"us-db": unknown, "ap-db": unknown})
	app.Set(200, `{"load":0.6}`)
	poll.True(t, 20*time.Second, "heartbeats while a source fails", func() bool {
		s := agenttest.Stored(t, f.client, "eu-1")
		return s != nil && s.Load == 0.6
	})
	rounds := func(n int) {
		for range n {
			app.SetAndWaitHeartbeat(t, 200, `{"load":0.6}`)
		}
	}
	url.set(200, `{"us-db": 0}`, 2*interval)
	rounds(2) // several heartbeats on a slow source
	url.set(200, `{"us-db": "soon"}`, 0)
	rounds(2)
	if s := agenttest.Stored(t, f.client, "eu-1"); s.Progress["us-db"] != unknown {
		t.Fatalf("a slow or garbled source's origin reads %+v", s.Progress["us-db"])
	}
	if n := failures(); n != 1 {
		t.Fatalf("a failing source was logged %d times, want once", n)
	}

	// Back: known again, logged once.
	url.set(200, `{"us-db": 2}`, 0)
	waitProgress("the URL's origin known again", map[string]schema.Progress{"us-db": lag(2000), "ap-db": unknown})
	if n := logs.FilterMessage("progress source answers again").Len(); n != 1 {
		t.Fatalf("recovery logged %d times, want once", n)
	}

	// The command answers garbage: the origins it reported go unknown.
	setCommand(`{"us-db": 0.1, "ap-db": -1}`)
	waitProgress("the garbled command's origins unknown", map[string]schema.Progress{"us-db": unknown, "ap-db": unknown})
	setCommand(`{"us-db": 0.1, "ap-db": 0.2}`)
	waitProgress("the command's origins known again", map[string]schema.Progress{"us-db": lag(2000), "ap-db": lag(250)})
}

// A progress command never sees the agent's token: the agent's own
// SESSIONPIN_* variables are kept out of its environment.
func TestProgressCommandDoesNotGetTheAgentsToken(t *testing.T) {
	t.Setenv("SESSIONPIN_DISCOVERY_TOKEN", "7")
	t.Setenv("PROGRESS_TEST_LAG", "0.5")
	dir := t.TempDir()
	script := filepath.Join(dir, "progress.sh")
	body := "#!/bin/sh\necho \"{\\\"token\\\": ${SESSIONPIN_DISCOVERY_TOKEN:-null}, \\\"other\\\": ${PROGRESS_TEST_LAG:-null}}\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := agent.NewCommandSource(script)
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]schema.Progress{"token": {Unknown: true}, "other": {LagMS: 500}}
	if !schema.SameProgress(got, want) {
		t.Fatalf("the command saw %v, want %v", got, want)
	}
}
