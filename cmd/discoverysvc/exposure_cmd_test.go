package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// serve takes its tokens from files, and its flags set the exposure and
// the limits: reads need the read-only (or admin) token, a name given
// with --allow-host is served and another is not, and one stream more
// than --max-subscribers-per-client gets 503 with Retry-After.
func TestServeExposureAndLimitFlags(t *testing.T) {
	t.Setenv(envToken, "")
	dir := t.TempDir()
	admin, read := filepath.Join(dir, "admin"), filepath.Join(dir, "read")
	os.WriteFile(admin, []byte("admin-from-file\n"), 0o600)
	os.WriteFile(read, []byte("read-from-file\n"), 0o600)
	listen, etcdListen, peer := etcdtest.FreePort(t), etcdtest.FreePort(t), etcdtest.FreePort(t)
	base := "http://" + listen
	_, log := command(t, "serve", "--listen", listen, "--etcd-listen", etcdListen, "--etcd-peer-listen", peer,
		"--data-dir", filepath.Join(dir, "etcd"), "--token-file", admin, "--read-token-file", read,
		"--allow-host", "discovery.internal", "--max-subscribers-per-client", "1")
	poll.True(t, 60*time.Second, "/healthz 200", func() bool { return httpStatus("GET", base+"/healthz", "", "") == 200 })

	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"read-from-file", 200}, {"admin-from-file", 200}} {
		if got := httpStatus("GET", base+"/v1/servers", c.token, ""); got != c.want {
			t.Errorf("GET /v1/servers with %q: %d, want %d", c.token, got, c.want)
		}
	}
	if got := httpStatus("PUT", base+"/v1/servers/eu-1", "read-from-file", `{"region":"eu","url":"http://10.0.0.1","load":0}`); got != 401 {
		t.Errorf("a write with the read-only token: %d, want 401", got)
	}
	for host, want := range map[string]int{"discovery.internal": 200, "attacker.example": 421} {
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}

	open := func() *http.Response {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer read-from-file")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if r := open(); r.StatusCode != 200 {
		t.Fatalf("first stream: %d", r.StatusCode)
	}
	if r := open(); r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream from one address: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if strings.Contains(log.String(), "admin-from-file") || strings.Contains(log.String(), "read-from-file") {
		t.Errorf("a token was logged")
	}
	if strings.Contains(log.String(), "process list") {
		t.Errorf("tokens from files drew the command-line warning")
	}
}
