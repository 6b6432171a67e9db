package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// TestMain lets a test run this binary as the real command: with
// DISCOVERYSVC_RUN_MAIN=1 the test binary is discoverysvc, signals and all.
func TestMain(m *testing.M) {
	if os.Getenv("DISCOVERYSVC_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// startProcess runs "discoverysvc args..." as a child process.
func startProcess(t *testing.T, args ...string) (cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	cmd = exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "DISCOVERYSVC_RUN_MAIN=1")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, stderr
}

// terminate sends SIGTERM and returns the exit code.
func terminate(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) int {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("%v ignored SIGTERM; stderr:\n%s", cmd.Args, stderr)
		return -1
	}
}

func TestSIGTERMShutsDownGracefully(t *testing.T) {
	listen, etcdListen, peer := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	base := "http://" + listen
	serve, serveLog := startProcess(t, "serve", "--listen", listen, "--etcd-listen", etcdListen,
		"--etcd-peer-listen", peer, "--data-dir", t.TempDir(), "--token", "tok", "--allow-loopback")
	poll.True(t, 60*time.Second, "/healthz 200", func() bool { return httpStatus("GET", base+"/healthz", "", "") == 200 })

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	agent, agentLog := startProcess(t, "agent", "--id", "eu-1", "--region", "eu", "--url", app.URL,
		"--health-url", app.URL, "--discovery", base, "--token", "tok", "--interval", "200ms")
	c := etcdtest.Dial(t, etcdListen)
	poll.True(t, 20*time.Second, "the agent's registration", func() bool {
		return len(getPrefix(t, c, "/sessionpin/servers/")) == 1
	})
	if code := terminate(t, agent, agentLog); code != 0 {
		t.Fatalf("agent exited %d:\n%s", code, agentLog)
	}
	if kvs := getPrefix(t, c, "/sessionpin/servers/"); len(kvs) != 0 {
		t.Fatalf("registered after the agent's SIGTERM: %v", kvs)
	}
	if code := terminate(t, serve, serveLog); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, serveLog)
	}
	if !strings.Contains(serveLog.String(), "embedded etcd stopped") {
		t.Errorf("no orderly shutdown in the log:\n%s", serveLog)
	}
}
