package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// run is runWith with stdout and stderr on one writer.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	return runWith(ctx, args, stderr, stderr)
}

// syncBuffer collects a command's stderr while the command still writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// command runs "discoverysvc args..." in-process until stop is called;
// stop returns the exit code.
func command(t *testing.T, args ...string) (stop func() int, stderr *syncBuffer) {
	t.Helper()
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, stderr) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("%v did not stop; stderr:\n%s", args, stderr)
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stop, stderr
}

func httpStatus(method, url, token, body string) int {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// getPrefix returns the keys and values under prefix, as etcdctl get --prefix would.
func getPrefix(t *testing.T, c *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

func TestServeWithEmbeddedEtcdAndAgent(t *testing.T) {
	listen, etcdListen, peer := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	base := "http://" + listen
	t.Setenv(envToken, "from-env")
	stopServe, serveLog := command(t, "serve", "--listen", listen, "--etcd-listen", etcdListen,
		"--etcd-peer-listen", peer, "--data-dir", t.TempDir()+"/etcd", "--allow-loopback")
	poll.True(t, 60*time.Second, "/healthz 200", func() bool { return httpStatus("GET", base+"/healthz", "", "") == 200 })

	// The token comes from the environment.
	body := `{"region":"eu-west","url":"http://127.0.0.1:9001","load":0.25}`
	if got := httpStatus("PUT", base+"/v1/servers/eu-1", "", body); got != 401 {
		t.Fatalf("PUT without the token: %d", got)
	}
	if got := httpStatus("PUT", base+"/v1/servers/eu-1", "from-env", body); got != 200 {
		t.Fatalf("PUT: %d", got)
	}
	c := etcdtest.Dial(t, etcdListen)
	kvs := getPrefix(t, c, "/sessionpin/servers/")
	var rec map[string]any
	if err := json.Unmarshal([]byte(kvs["/sessionpin/servers/eu-1"]), &rec); err != nil || rec["region"] != "eu-west" || rec["load"] != 0.25 {
		t.Fatalf("etcd holds %v (%v)", kvs, err)
	}
	// Discovery reads its embedded member's size (in-process) for the
	// fleet page and /metrics.
	poll.Until(t, 30*time.Second, "the registry's size", func() error { return registrySize(base) })

	// The agent subcommand registers a healthy app and deregisters on stop,
	// with the agent token of its own id.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok","load":0.5}`))
	}))
	defer app.Close()
	stopAgent, agentLog := command(t, "agent", "--id", "us-1", "--region", "us-east", "--url", app.URL,
		"--health-url", app.URL+"/healthz", "--discovery", base, "--token", discoverysvc.AgentToken("from-env", "us-1"), "--interval", "200ms", "--ttl", "5")
	poll.True(t, 20*time.Second, "the agent's registration", func() bool {
		return strings.Contains(getPrefix(t, c, "/sessionpin/servers/")["/sessionpin/servers/us-1"], `"load":0.5`)
	})
	if code := stopAgent(); code != 0 {
		t.Fatalf("agent exited %d:\n%s", code, agentLog)
	}
	if v, ok := getPrefix(t, c, "/sessionpin/servers/")["/sessionpin/servers/us-1"]; ok {
		t.Fatalf("still registered after the agent stopped: %s", v)
	}

	if code := stopServe(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, serveLog)
	}
	// Every log line is JSON, and the token never appears in them.
	for _, logs := range []string{serveLog.String(), agentLog.String()} {
		for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
			if !json.Valid([]byte(line)) {
				t.Errorf("log line is not JSON: %s", line)
			}
		}
		if strings.Contains(logs, "from-env") {
			t.Errorf("the token was logged")
		}
	}
	// Shutdown closed the API and the embedded etcd.
	for _, addr := range []string{listen, etcdListen} {
		poll.True(t, 10*time.Second, addr+" to be released", func() bool {
			l, err := net.Listen("tcp", addr)
			if err == nil {
				l.Close()
			}
			return err == nil
		})
	}
}

// registrySize checks that GET /v1/registry reports a database size.
func registrySize(base string) error {
	resp, err := http.Get(base + "/v1/registry")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var st struct {
		DBSize int64 `json:"db_size"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK || st.DBSize <= 0 {
		return fmt.Errorf("GET /v1/registry: %d, db_size %d (%v)", resp.StatusCode, st.DBSize, err)
	}
	return nil
}

func TestServeWithExistingEtcd(t *testing.T) {
	m := etcdtest.Start(t)
	listen := etcdtest.FreePort(t)
	base := "http://" + listen
	t.Setenv(envToken, "")
	stop, log := command(t, "serve", "--listen", listen, "--etcd", m.Client, "--prefix", "/custom",
		"--etcd-compact", "--etcd-compaction-retention", "1s")
	poll.True(t, 30*time.Second, "/healthz 200", func() bool { return httpStatus("GET", base+"/healthz", "", "") == 200 })
	put, err := etcdtest.NewClient(t, m).Put(context.Background(), "/custom/other", "v")
	if err != nil {
		t.Fatal(err)
	}
	if got := httpStatus("PUT", base+"/v1/servers/eu-1", "", `{"region":"eu","url":"http://a","load":0}`); got != 200 {
		t.Fatalf("PUT: %d", got)
	}
	if kvs := getPrefix(t, etcdtest.NewClient(t, m), "/custom/servers/"); len(kvs) != 1 {
		t.Fatalf("under /custom/servers/: %v", kvs)
	}
	poll.Until(t, 30*time.Second, "the registry's size", func() error { return registrySize(base) })
	// --etcd-compact: discovery compacts the cluster, keeping a second.
	poll.Until(t, 60*time.Second, "discovery's compaction", func() error {
		_, err := etcdtest.NewClient(t, m).Get(context.Background(), "/custom/other", clientv3.WithRev(put.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil
		}
		return fmt.Errorf("revision %d still readable (%v)", put.Header.Revision, err)
	})
	if !strings.Contains(log.String(), "no token") {
		t.Errorf("no warning about open writes:\n%s", log)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, log)
	}
}

func TestCommandLineErrorsNameTheFlag(t *testing.T) {
	agent := []string{"agent", "--id", "a", "--region", "r", "--url", "http://a", "--health-url", "http://a/healthz", "--discovery", "http://d"}
	with := func(base []string, extra ...string) []string { return append(append([]string{}, base...), extra...) }
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: discoverysvc"},
		{[]string{"-h"}, 0, "usage: discoverysvc"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"serve", "-h"}, 0, "-etcd-peer-listen"},
		{[]string{"serve", "-h"}, 0, "-etcd-compaction-retention duration"},
		{[]string{"serve", "-h"}, 0, "(default 5m0s)"},
		{[]string{"serve", "--etcd-compaction-retention", "0s"}, 2, "--etcd-compaction-retention"},
		{[]string{"serve", "--etcd-compaction-retention", "-1m"}, 2, "--etcd-compaction-retention"},
		{[]string{"serve", "--etcd-compaction-retention", "soon"}, 2, "-etcd-compaction-retention"},
		{[]string{"serve", "--etcd-quota-bytes", "0"}, 2, "--etcd-quota-bytes"},
		{[]string{"serve", "--etcd-quota-bytes", "1GiB"}, 2, "-etcd-quota-bytes"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-compaction-retention", "1m"}, 2, "needs --etcd-compact"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-compact", "--etcd-compaction-retention", "0s"}, 2, "--etcd-compaction-retention"},
		{[]string{"serve", "--etcd-compact"}, 2, "--etcd-compact"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-quota-bytes", "100"}, 2, "--etcd-quota-bytes"},
		{[]string{"agent", "--help"}, 0, "-health-url"},
		{[]string{"serve", "--bogus"}, 2, "-bogus"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--listen"}, 2, "-listen"},
		{[]string{"serve", "--listen", "7070"}, 2, "--listen"},
		{[]string{"serve", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"serve", "--prefix", ""}, 2, "--prefix"},
		{[]string{"serve", "--etcd", ""}, 2, "--etcd"},
		{[]string{"serve", "--etcd", "http//x"}, 2, "--etcd"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--data-dir", "x"}, 2, "--data-dir"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-listen", "127.0.0.1:1"}, 2, "--etcd-listen"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-password", "p"}, 2, "--etcd-password"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-cert", "c.pem"}, 2, "--etcd-cert"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-ca", "/nonexistent/ca.pem"}, 2, "--etcd-ca"},
		{[]string{"serve", "--etcd-user", "u"}, 2, "--etcd-user"},
		{[]string{"serve", "--etcd-peer-listen", "127.0.0.1:2379"}, 2, "--etcd-peer-listen"},
		{[]string{"agent"}, 2, "--id"},
		{[]string{"agent", "--id", "a"}, 2, "--region"},
		{with(agent, "--url", "ftp://a"), 2, "--url"},
		{with(agent, "--health-url", "localhost/healthz"), 2, "--health-url"},
		{with(agent, "--discovery", ""), 2, "--discovery"},
		{with(agent, "--interval", "abc"), 2, "-interval"},
		{with(agent, "--interval", "0s"), 2, "--interval"},
		{with(agent, "--load", "-1"), 2, "--load"},
		{with(agent, "--load", "x"), 2, "-load"},
		{with(agent, "--ttl", "2s"), 2, "--ttl"}, // not longer than the 3 s interval
		{with(agent, "--ttl", "soon"), 2, "-ttl"},
		{with(agent, "--drain-timeout", "-1s"), 2, "--drain-timeout"},
		{with(agent, "--log-level", "loud"), 2, "--log-level"},
		{with(agent, "--discovery", "http://10.0.0.5:7070", "--token", "t"), 2, "--insecure-http"},
		{[]string{"serve", "--etcd-listen", "0.0.0.0:2379"}, 2, "--etcd-listen-cert, --etcd-listen-key and --etcd-client-ca"},
		{[]string{"serve", "--etcd-listen", ":2379"}, 2, "--etcd-listen-cert"},
		{[]string{"serve", "--etcd-listen", "10.0.0.5:2379"}, 2, "--etcd-client-ca"},
		{[]string{"serve", "--etcd-listen-cert", "c.pem", "--etcd-listen-key", "k.pem"}, 2, "--etcd-client-ca"},
		{[]string{"serve", "--etcd-client-ca", "ca.pem"}, 2, "--etcd-listen-cert"},
		{[]string{"serve", "--etcd-peer-listen", "0.0.0.0:2380"}, 2, "--etcd-peer-listen"},
		{[]string{"serve", "--etcd-cert", "c.pem", "--etcd-key", "k.pem"}, 2, "--etcd-cert"},
		{[]string{"serve", "--etcd", "127.0.0.1:2379", "--etcd-client-ca", "ca.pem"}, 2, "--etcd-client-ca"},
		{[]string{"token"}, 2, "one server id"},
		{[]string{"token", "--token", "adm", "a", "b"}, 2, "one server id"},
		{[]string{"token", "--token", "adm", "a/b"}, 2, `"a/b"`},
		{[]string{"token", "eu-1"}, 2, "--token"},
	}
	for _, tt := range tests {
		var stderr syncBuffer
		code := run(context.Background(), tt.args, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, want %d; stderr does not contain %q:\n%s", tt.args, code, tt.code, tt.want, stderr.String())
		}
	}
}

func TestTokenPrintsTheAgentToken(t *testing.T) {
	t.Setenv(envToken, "")
	for _, args := range [][]string{{"token", "--token", "admin-token", "eu-1"}} {
		var stdout, stderr syncBuffer
		if code := runWith(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, stderr.String())
		}
		if got, want := stdout.String(), discoverysvc.AgentToken("admin-token", "eu-1")+"\n"; got != want {
			t.Fatalf("%q printed %q, want %q", args, got, want)
		}
	}
	t.Setenv(envToken, "admin-token")
	var stdout, stderr syncBuffer
	if code := runWith(context.Background(), []string{"token", "eu-1"}, &stdout, &stderr); code != 0 || stdout.String() != discoverysvc.AgentToken("admin-token", "eu-1")+"\n" {
		t.Fatalf("admin token from the environment: exit %d, %q %s", code, stdout.String(), stderr.String())
	}
}
