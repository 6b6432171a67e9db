package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

func TestAgentProgressFlagErrorsNameTheFlag(t *testing.T) {
	agent := []string{"agent", "--id", "a", "--region", "r", "--url", "http://a", "--health-url", "http://a/healthz", "--discovery", "http://d"}
	with := func(extra ...string) []string { return append(append([]string{}, agent...), extra...) }
	for _, tt := range []struct {
		args []string
		want string
	}{
		{with("--origin", "eu west"), "--origin"},
		{with("--origin", ".."), "--origin"},
		{with("--progress-postgres", "postgres://h/db"), "--progress-postgres: must be ORIGIN=CONNSTRING"},
		{with("--progress-postgres", "eu="), "--progress-postgres: must be ORIGIN=CONNSTRING"},
		{with("--progress-postgres", "eu west=postgres://h/db"), "--progress-postgres"},
		{with("--progress-postgres", "eu=postgres://u:hunter2@h:notaport/db"), "not a valid PostgreSQL connection string"},
		{with("--progress-postgres", "eu=postgres://h/db", "--progress-postgres", "eu=postgres://g/db"), `origin "eu" given more than once`},
		{with("--progress-url", "ftp://h/progress"), "--progress-url"},
		{with("--progress-url", ""), "--progress-url"},
		{with("--progress-url", "/progress"), "--progress-url"},
		{with("--progress-command", ""), "--progress-command"},
		{with("--progress-command", "  "), "--progress-command"},
		{with("--progress-command", "/nonexistent/progress --json"), "--progress-command"},
	} {
		var stderr syncBuffer
		code := run(context.Background(), tt.args, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, want 2; stderr does not contain %q:\n%s", tt.args[len(agent):], code, tt.want, stderr.String())
		}
		if strings.Contains(stderr.String(), "hunter2") {
			t.Errorf("%q: the error shows the connection string's password:\n%s", tt.args[len(agent):], stderr.String())
		}
	}
}

// The agent command reports its origin and the progress its --progress-url
// and --progress-command sources give, through a real discovery service.
func TestAgentCommandReportsProgress(t *testing.T) {
	listen, etcdListen, peer := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	base := "http://" + listen
	stopServe, serveLog := command(t, "serve", "--listen", listen, "--etcd-listen", etcdListen,
		"--etcd-peer-listen", peer, "--data-dir", t.TempDir()+"/etcd", "--allow-loopback", "--token", "admin")
	poll.True(t, 60*time.Second, "/healthz 200", func() bool { return httpStatus("GET", base+"/healthz", "", "") == 200 })

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/progress" {
			w.Write([]byte(`{"us-db": 0.7}`))
			return
		}
		w.Write([]byte(`{"load":0.5}`))
	}))
	defer app.Close()
	script := filepath.Join(t.TempDir(), "progress.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"{\\\"ap-db\\\": $1}\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stopAgent, agentLog := command(t, "agent", "--id", "eu-1", "--region", "eu-west", "--url", app.URL,
		"--health-url", app.URL+"/healthz", "--discovery", base, "--token", discoverysvc.AgentToken("admin", "eu-1"),
		"--interval", "1s", "--origin", "eu-db", "--progress-url", app.URL+"/progress", "--progress-command", script+" null")
	c := etcdtest.Dial(t, etcdListen)
	want := map[string]schema.Progress{"us-db": {LagMS: 1000}, "ap-db": {Unknown: true}}
	poll.Until(t, 30*time.Second, "the agent's progress", func() error {
		var srv schema.Server
		v := getPrefix(t, c, "/sessionpin/servers/")["/sessionpin/servers/eu-1"]
		if err := json.Unmarshal([]byte(v), &srv); err != nil {
			return err
		}
		if srv.Origin != "eu-db" || !schema.SameProgress(srv.Progress, want) {
			return fmt.Errorf("stored %s", v)
		}
		return nil
	})
	if code := stopAgent(); code != 0 {
		t.Fatalf("agent exited %d:\n%s", code, agentLog)
	}
	if code := stopServe(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, serveLog)
	}
}
