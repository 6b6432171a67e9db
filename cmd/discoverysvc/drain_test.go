package main

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// runToEnd runs "discoverysvc args..." to completion and returns the exit
// code and everything it printed.
func runToEnd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, args, &out)
	return code, out.String()
}

func TestDrainCommandsWaitForQuietAndSurviveARestart(t *testing.T) {
	listen, etcdListen, peer := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	base := "http://" + listen
	dataDir := t.TempDir() + "/etcd"
	t.Setenv(envToken, "")
	serve := func() func() int {
		stop, log := command(t, "serve", "--listen", listen, "--etcd-listen", etcdListen,
			"--etcd-peer-listen", peer, "--data-dir", dataDir, "--token", "admin")
		poll.True(t, 60*time.Second, "/healthz 200 (log:\n"+log.String()+")", func() bool { return httpStatus("GET", base+"/healthz", "", "") == 200 })
		return stop
	}
	stopServe := serve()
	flags := []string{"--discovery", base, "--token", "admin"}
	with := func(args ...string) []string { return append(args, flags...) }

	if code, out := runToEnd(t, "drain", "eu-1", "--discovery", base); code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("drain without the token: exit %d\n%s", code, out)
	}
	code, out := runToEnd(t, with("drain", "eu-1", "--reason", "kernel update")...)
	if code != 0 || !strings.Contains(out, "eu-1: draining since") {
		t.Fatalf("drain: exit %d\n%s", code, out)
	}

	// An edge saw a pinned request just now: --wait must not return before
	// the quiet period has passed since then.
	c := etcdtest.Dial(t, etcdListen)
	last := time.Now()
	lease, err := c.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]schema.ServerActivity{"eu-1": {Pinned: 2, Minute: 2, Last: last}}
	value := schema.AppendActivity(nil, "edge-a", "eu", 0, last, schema.AppendServers(nil, servers))
	if _, err := c.Put(context.Background(), schema.EdgeKey("", "edge-a"), string(value), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	const quiet = 1500 * time.Millisecond
	code, out = runToEnd(t, with("drain", "eu-1", "--wait", "--quiet", quiet.String(), "--timeout", "30s")...)
	if code != 0 || !strings.Contains(out, "eu-1: drained") || !strings.Contains(out, "pinned requests in the last minute") {
		t.Fatalf("drain --wait: exit %d\n%s", code, out)
	}
	if waited := time.Since(last); waited < quiet {
		t.Fatalf("drain --wait returned %s after the last pinned request, before the quiet %s", waited, quiet)
	}
	// Not drained within an hour of a pinned request: exit 1 at the timeout.
	code, out = runToEnd(t, with("drain", "eu-1", "--wait", "--quiet", "1h", "--timeout", "300ms")...)
	if code != 1 || !strings.Contains(out, "not drained after 300ms") {
		t.Fatalf("drain --wait at its timeout: exit %d\n%s", code, out)
	}

	// The drain outlives a restart of discovery and its embedded etcd.
	if code := stopServe(); code != 0 {
		t.Fatal("serve exited", code)
	}
	stopServe = serve()
	defer stopServe()
	if got := httpStatus("GET", base+"/v1/servers/eu-1/drain", "admin", ""); got != 200 {
		t.Fatalf("drain status after a restart: %d", got)
	}
	if code, out := runToEnd(t, with("undrain", "eu-1")...); code != 0 || !strings.Contains(out, "undrained") {
		t.Fatalf("undrain: exit %d\n%s", code, out)
	}
	if code, out := runToEnd(t, with("undrain", "eu-1")...); code != 1 || !strings.Contains(out, "not drained") {
		t.Fatalf("second undrain: exit %d\n%s", code, out)
	}
}

func TestDrainCommandLineErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"drain"}, 2, "server id is required"},
		{[]string{"drain", "-h"}, 0, "-wait"},
		{[]string{"drain", "a/b"}, 2, "must be 1-64"},
		{[]string{"drain", "eu-1", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"drain", "eu-1", "--quiet", "0s"}, 2, "--quiet"},
		{[]string{"drain", "eu-1", "--timeout", "0s"}, 2, "--timeout"},
		{[]string{"drain", "eu-1", "--discovery", "localhost:7070"}, 2, "--discovery"},
		{[]string{"undrain"}, 2, "server id is required"},
		{[]string{"undrain", "--bogus", "eu-1"}, 2, "-bogus"},
		{[]string{"agent", "--id", "a", "--region", "r", "--url", "http://a", "--health-url", "http://a/h", "--discovery", "http://d", "--drain-quiet", "-1s"}, 2, "--drain-quiet"},
	}
	for _, tt := range tests {
		code, out := runToEnd(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%q: exit %d, want %d; output does not contain %q:\n%s", tt.args, code, tt.code, tt.want, out)
		}
	}
}
