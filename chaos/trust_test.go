package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
	"github.com/sessionpin/sessionpin/internal/testcert"
)

// The rows of TestSecurity about the registry's trust boundary: who may
// write a registry entry, where an entry may point, and who may reach etcd.

// agentToken runs `discoverysvc token id` with the admin token, as an
// operator provisioning an agent does.
func agentToken(t *testing.T, admin, id string) string {
	t.Helper()
	cmd := exec.Command(binPath("discoverysvc"), "token", id)
	cmd.Env = []string{"SESSIONPIN_DISCOVERY_TOKEN=" + admin}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("discoverysvc token %s: %v", id, err)
	}
	return strings.TrimSpace(string(out))
}

// discoveryCall makes one discovery API request and returns status and body.
func discoveryCall(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// testAgentTokenScope: the agent token of one server writes that server's
// record, and nothing else: not another server, not a new one, not a drain.
func (s *securityStack) testAgentTokenScope(t *testing.T) {
	tok := agentToken(t, discoveryToken, "zz-1")
	// Region zz and a URL that is never dialled: the edge of this stack
	// places in eu, so the entry cannot disturb the other rows.
	body := `{"region":"zz","url":"http://10.255.0.1:9","load":0.9}`
	if status, b := discoveryCall(t, http.MethodPut, s.disc+"/v1/servers/zz-1", tok, body); status != http.StatusOK {
		t.Fatalf("the agent token PUTs its own server: %d %s", status, b)
	}
	for _, c := range []struct{ name, method, path, body string }{
		{"PUT over eu-1", http.MethodPut, "/v1/servers/eu-1", fmt.Sprintf(`{"region":"eu","url":%q,"load":0}`, "http://10.255.0.1:9")},
		{"PUT a new server", http.MethodPut, "/v1/servers/intruder", body},
		{"DELETE eu-1", http.MethodDelete, "/v1/servers/eu-1", ""},
		{"drain eu-1", http.MethodPut, "/v1/servers/eu-1/drain", ""},
		{"drain itself", http.MethodPut, "/v1/servers/zz-1/drain", ""},
		{"undrain itself", http.MethodDelete, "/v1/servers/zz-1/drain", ""},
	} {
		rev := revision(t, s.etcd)
		status, b := discoveryCall(t, c.method, s.disc+c.path, tok, c.body)
		if status != http.StatusForbidden || strings.TrimSpace(b) != `{"error":"forbidden"}` {
			t.Errorf("agent token, %s: %d %s, want 403 {\"error\":\"forbidden\"}", c.name, status, b)
		}
		if got := revision(t, s.etcd); got != rev {
			t.Errorf("agent token, %s: etcd written (revision %d -> %d)", c.name, rev, got)
		}
	}
	// A forged agent token is no token at all.
	if status, _ := discoveryCall(t, http.MethodPut, s.disc+"/v1/servers/eu-1", "eu-1."+strings.Repeat("0", 64), body); status != http.StatusUnauthorized {
		t.Errorf("forged agent token: %d, want 401", status)
	}
	if status, b := discoveryCall(t, http.MethodDelete, s.disc+"/v1/servers/zz-1", tok, ""); status != http.StatusNoContent {
		t.Fatalf("the agent token DELETEs its own server: %d %s", status, b)
	}
	if a := s.send(t, request{header: map[string]string{"X-Session-Pin": sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims("eu-1", "eu"))}}); a.servedBy != "eu-1" {
		t.Errorf("eu-1 after the agent token's attempts: %d from %q", a.status, a.servedBy)
	}
}

// testDiscoveryRefusesURLs: discovery (without --allow-loopback) refuses
// entries that point at the cloud metadata service, at the edge's own host,
// or at addresses no server has.
func (s *securityStack) testDiscoveryRefusesURLs(t *testing.T) {
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data", "http://[fe80::1]:2019", "http://0.0.0.0:2019", "http://[::]:2019",
		"http://224.0.0.1:80", "http://255.255.255.255", "http://127.0.0.1:2019", "http://[::1]:2019",
		"http://localhost:2019", "http://127.1:2019", "http://2130706433:2019", "http://[::ffff:127.0.0.1]:2019",
		"http://" + s.edge.admin,
	} {
		rev := revision(t, s.etcd)
		status, b := discoveryCall(t, http.MethodPut, s.disc+"/v1/servers/eu-3", discoveryToken, fmt.Sprintf(`{"region":"eu","url":%q,"load":0}`, u))
		if status != http.StatusBadRequest || !strings.Contains(b, "url") {
			t.Errorf("%s: %d %s, want 400 naming url", u, status, b)
		}
		if got := revision(t, s.etcd); got != rev {
			t.Errorf("%s: etcd written (revision %d -> %d)", u, rev, got)
		}
	}
}

// testDiscoveryHidesEtcdErrors: a discovery whose etcd is gone answers
// 503 registry_unavailable, and only its log says why.
func testDiscoveryHidesEtcdErrors(t *testing.T) {
	listen, dead := etcdtest.FreePort(t), etcdtest.FreePort(t)
	p := startProc(t, "discovery-no-etcd", "discoverysvc", nil, "serve", "--listen", listen, "--etcd", dead, "--token", discoveryToken)
	base := "http://" + listen
	poll.Until(t, 30*time.Second, "discovery to answer", func() error {
		if !p.running() {
			t.Fatalf("discovery exited:\n%s", p.tail(20))
		}
		_, _, err := getBody(base + "/healthz")
		return err
	})
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "/v1/servers/eu-1", `{"region":"eu","url":"http://10.0.0.1","load":0}`},
		{http.MethodDelete, "/v1/servers/eu-1", ""},
		{http.MethodGet, "/v1/servers", ""},
	} {
		status, b := discoveryCall(t, c.method, base+c.path, discoveryToken, c.body)
		if status != http.StatusServiceUnavailable || strings.TrimSpace(b) != `{"error":"registry_unavailable"}` {
			t.Errorf("%s %s with no etcd: %d %s", c.method, c.path, status, b)
		}
	}
	if _, b, _ := getBody(base + "/healthz"); strings.Contains(string(b), dead) {
		t.Errorf("/healthz shows the etcd address: %s", b)
	}
	waitLog(t, p, "heartbeat failed")
}

// testAgentTokenOverPlainHTTP: the agent will not send its token in clear
// across the network unless told to.
func testAgentTokenOverPlainHTTP(t *testing.T) {
	p := startProc(t, "agent-plain-http", "discoverysvc", []string{"SESSIONPIN_DISCOVERY_TOKEN=t0ken"},
		"agent", "--id", "eu-1", "--region", "eu", "--url", "http://10.0.0.1:9001",
		"--health-url", "http://10.0.0.1:9001/healthz", "--discovery", "http://10.255.255.1:7070")
	err := p.wait(30 * time.Second)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(p.output(), "--insecure-http") {
		t.Fatalf("agent with a token over plain http to another host: %v\n%s", err, p.output())
	}
	if strings.Contains(p.output(), "t0ken") {
		t.Errorf("the token was printed")
	}
}

// testAgentKeepsLastValidLoad: an app whose health body turns to nonsense
// does not become load 0, the most attractive server of all.
func (s *securityStack) testAgentKeepsLastValidLoad(t *testing.T) {
	var body atomic.Value
	body.Store(`{"load":0.3}`)
	var probes atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		io.WriteString(w, body.Load().(string))
	}))
	defer app.Close()
	p := startProc(t, "agent-zz-2", "discoverysvc", []string{"SESSIONPIN_DISCOVERY_TOKEN=" + agentToken(t, discoveryToken, "zz-2")},
		"agent", "--id", "zz-2", "--region", "zz", "--url", "http://10.255.0.2:9",
		"--health-url", app.URL+"/healthz", "--discovery", s.disc, "--interval", "200ms", "--ttl", "5")
	load := func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := s.etcd.Get(ctx, schema.ServerKey("", "zz-2"))
		if err != nil || len(resp.Kvs) == 0 {
			return -1
		}
		var srv schema.Server
		if json.Unmarshal(resp.Kvs[0].Value, &srv) != nil {
			return -1
		}
		return srv.Load
	}
	poll.True(t, 30*time.Second, "zz-2 registered with load 0.3", func() bool { return load() == 0.3 })
	for _, bad := range []string{`{"load":-1}`, `{"load":1e999}`, `{"load":"idle"}`} {
		body.Store(bad)
		n := probes.Load()
		poll.True(t, 30*time.Second, "two probes of "+bad, func() bool { return probes.Load() >= n+2 })
		if got := load(); got != 0.3 {
			t.Errorf("health body %s: registered load %v, want 0.3 kept", bad, got)
		}
	}
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(p.output(), "invalid load"); n != 1 {
		t.Errorf("invalid load logged %d times, want once:\n%s", n, p.output())
	}
}

// testEmbeddedEtcdMutualTLS: discovery's embedded etcd, listening on every
// interface with mutual TLS, is reached by discovery itself and by an edge
// holding a certificate from the client CA, and by no one else.
func testEmbeddedEtcdMutualTLS(t *testing.T) {
	ca := testcert.NewCA(t, "registry")
	member := ca.Issue("etcd", "127.0.0.1", "localhost")
	edgeCert := ca.Issue("edge")
	stranger := testcert.NewCA(t, "stranger").Issue("stranger")

	port := strings.TrimPrefix(etcdtest.FreePort(t), "127.0.0.1:")
	endpoint := "127.0.0.1:" + port
	const admin = "mtls-admin-token"
	disc, _ := startEmbeddedDiscovery(t, "0.0.0.0:"+port, admin,
		"--etcd-listen-cert", member.CertFile, "--etcd-listen-key", member.KeyFile, "--etcd-client-ca", ca.CertFile, "--allow-loopback")

	app := newEchoBackend(t, "eu-1")
	agent := startAgent(t, agentConfig{ID: "eu-1", Region: "eu", URL: app.srv.URL, Discovery: disc,
		Token: agentToken(t, admin, "eu-1"), Interval: 200 * time.Millisecond, TTL: 5 * time.Second})
	defer agent.stop(10 * time.Second)

	e := startEdge(t, "edge-mtls", edgeConfig{Region: "eu", Etcd: []string{endpoint},
		TLSCA: ca.CertFile, TLSCert: edgeCert.CertFile, TLSKey: edgeCert.KeyFile})
	e.waitServers(t, 1)
	if status, got, pin, body := hit(t, e.URL, ""); status != http.StatusOK || got != "eu-1" || pin == "" {
		t.Fatalf("edge over mTLS: %d from %q: %s", status, got, body)
	}

	tlsConfig := func(cert, key string) *clientv3.Config {
		info := transport.TLSInfo{TrustedCAFile: ca.CertFile, CertFile: cert, KeyFile: key}
		tc, err := info.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		return &clientv3.Config{Endpoints: []string{endpoint}, TLS: tc, DialTimeout: 3 * time.Second, Logger: zap.NewNop()}
	}
	for name, cfg := range map[string]*clientv3.Config{
		"plain TCP":              {Endpoints: []string{endpoint}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()},
		"TLS without a cert":     tlsConfig("", ""),
		"a cert from another CA": tlsConfig(stranger.CertFile, stranger.KeyFile),
	} {
		c, err := clientv3.New(*cfg)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = c.Put(ctx, schema.ServerKey("", "intruder"), `{"id":"intruder","region":"eu","url":"http://10.0.0.1","load":0}`)
		cancel()
		c.Close()
		if err == nil {
			t.Errorf("%s: wrote to the registry", name)
		}
	}
	if n, err := e.registryServers(); err != nil || n != 1 {
		t.Errorf("edge sees %d servers (%v), want only eu-1", n, err)
	}
}

// startEmbeddedDiscovery runs `discoverysvc serve` with its embedded etcd
// listening on etcdListen, and waits for /healthz.
func startEmbeddedDiscovery(t *testing.T, etcdListen, admin string, args ...string) (string, *proc) {
	t.Helper()
	listen := etcdtest.FreePort(t)
	all := append([]string{"serve", "--listen", listen, "--etcd-listen", etcdListen, "--etcd-peer-listen", etcdtest.FreePort(t),
		"--data-dir", t.TempDir(), "--log-level", "warn"}, args...)
	p := startProc(t, "discovery-embedded", "discoverysvc", []string{"SESSIONPIN_DISCOVERY_TOKEN=" + admin}, all...)
	url := "http://" + listen
	poll.Until(t, 60*time.Second, "embedded discovery to be healthy", func() error {
		if !p.running() {
			t.Fatalf("discovery exited:\n%s", p.tail(20))
		}
		status, _, err := getBody(url + "/healthz")
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("healthz %d", status)
		}
		return nil
	})
	return url, p
}

// testEmbeddedEtcdRefusesOpenListen: without TLS, a non-loopback etcd
// address stops discovery at start, naming the flags that would allow it.
func testEmbeddedEtcdRefusesOpenListen(t *testing.T) {
	port := strings.TrimPrefix(etcdtest.FreePort(t), "127.0.0.1:")
	p := startProc(t, "discovery-open-etcd", "discoverysvc", nil, "serve", "--listen", etcdtest.FreePort(t),
		"--etcd-listen", "0.0.0.0:"+port, "--data-dir", t.TempDir())
	err := p.wait(30 * time.Second)
	out := p.output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("discovery with an open etcd listen: %v\n%s", err, out)
	}
	for _, flag := range []string{"--etcd-listen-cert", "--etcd-listen-key", "--etcd-client-ca"} {
		if !strings.Contains(out, flag) {
			t.Errorf("the refusal does not name %s:\n%s", flag, out)
		}
	}
}

// testEdgeNeverDialsItsAdmin: an entry written straight into etcd naming
// the edge's admin endpoint, the most attractive server of the region, is
// never dialled: 30 placements, no connection on the admin listener.
func (s *securityStack) testEdgeNeverDialsItsAdmin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port := s.edge.admin[strings.LastIndexByte(s.edge.admin, ':')+1:]
	entries := map[string]string{
		"admin":           "http://" + s.edge.admin,
		"admin-localhost": "http://localhost:" + port,
		"admin-v6":        "http://[::1]:" + port,
	}
	for id, url := range entries {
		if _, err := s.etcd.Put(ctx, schema.ServerKey("", id), fmt.Sprintf(`{"id":%q,"region":"eu","url":%q,"load":0}`, id, url)); err != nil {
			t.Fatal(err)
		}
	}
	good := newEchoBackend(t, "eu-2")
	reg := discoverysvc.NewRegistry(s.etcd, "")
	register(t, reg, good, "eu", 0.5)
	s.edge.waitServers(t, 3) // eu-1, us-1, eu-2: the admin entries are not servers
	before := adminConns(t, port)
	for i := range 30 {
		a := s.send(t, request{})
		if a.status != http.StatusOK || (a.servedBy != "eu-1" && a.servedBy != "eu-2") {
			t.Fatalf("placement %d: %d from %q: %s", i, a.status, a.servedBy, a.body)
		}
	}
	for id := range entries {
		a := s.send(t, request{header: map[string]string{"X-Session-Pin": sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims(id, "eu"))}})
		if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "pinned_server_unavailable") {
			t.Errorf("pin to %s: %d: %s", id, a.status, a.body)
		}
	}
	// The test's own reads of the admin /metrics may age out, never in.
	if after := adminConns(t, port); after > before {
		t.Errorf("connections on the edge's admin port went from %d to %d", before, after)
	}
	for id := range entries {
		s.etcd.Delete(ctx, schema.ServerKey("", id))
	}
	if _, err := reg.Deregister(ctx, "eu-2"); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 30*time.Second, "eu-2 gone from the edge", func() bool {
		a := s.send(t, request{header: map[string]string{"X-Session-Pin": sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims("eu-2", "eu"))}})
		return a.status == http.StatusServiceUnavailable
	})
}

// adminConns counts this host's TCP sockets with port on either side, the
// listening one aside (TIME_WAIT keeps closed ones visible for a while).
func adminConns(t *testing.T, port string) int {
	t.Helper()
	p, _ := strconv.ParseUint(port, 10, 16)
	hexPort := fmt.Sprintf(":%04X", p)
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Skipf("no %s: %v", file, err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] == "0A" {
				continue
			}
			if strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort) {
				n++
			}
		}
	}
	return n
}

// testEdgeOwnsItsHeaders: an app that answers with the edge's session
// headers cannot hand the client a pin, a URL or a move, and never sees
// the pin cookie; its own cookies reach it as they came.
func testEdgeOwnsItsHeaders(t *testing.T) {
	m := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, m)
	var gotCookie atomic.Value
	gotCookie.Store("")
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotCookie.Store(strings.Join(r.Header["Cookie"], "\n"))
		w.Header().Set("X-Served-By", "eu-1")
		w.Header().Set("X-Session-Pin", "forged")
		w.Header().Set("X-Session-Server-URL", "http://evil.example")
		w.Header().Set("X-Session-Server-Changed", "1")
		w.Header().Add("Set-Cookie", "sessionpin=forged; Path=/")
		w.Header().Add("Set-Cookie", "app=1; Path=/")
	}))
	defer app.Close()
	reg := discoverysvc.NewRegistry(cli, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.Heartbeat(ctx, schema.Server{ID: "eu-1", Region: "eu", URL: app.URL}, time.Minute); err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, "edge-headers", edgeConfig{Region: "eu", Etcd: []string{m.Client}})
	e.waitServers(t, 1)

	resp, err := http.Get(e.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pinOut := resp.Header.Get("X-Session-Pin")
	if pinOut == "" || pinOut == "forged" || len(resp.Header.Values("X-Session-Pin")) != 1 ||
		resp.Header.Get("X-Session-Server-Url") != app.URL || resp.Header.Get("X-Session-Server-Changed") != "" {
		t.Fatalf("placement headers: %v", resp.Header)
	}
	var pinCookies []string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "sessionpin=") {
			pinCookies = append(pinCookies, c)
		}
	}
	if len(pinCookies) != 1 || !strings.HasPrefix(pinCookies[0], "sessionpin="+pinOut+";") {
		t.Fatalf("pin cookies %q, want only the edge's", pinCookies)
	}

	req, _ := http.NewRequest(http.MethodGet, e.URL+"/", nil)
	req.Header.Set("Cookie", `lang=en; sessionpin=`+pinOut+`; cart="a b"`)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := gotCookie.Load().(string); got != `lang=en; cart="a b"` || resp.Header.Get("X-Session-Pin") != "" {
		t.Errorf("pinned by cookie: app got Cookie %q, response pin %q", got, resp.Header.Get("X-Session-Pin"))
	}
}

// testRefreshRepeatedField: a refresh body that names closestServerId or
// criticalTaskInProgress twice is ambiguous, so refused before any app.
func (s *securityStack) testRefreshRepeatedField(t *testing.T) {
	for _, body := range []string{
		`{"closestServerId":"eu-1","closestServerId":"us-1"}`,
		`{"criticalTaskInProgress":true,"criticalTaskInProgress":false}`,
	} {
		before := s.eu.count() + s.us.count()
		a := s.send(t, request{method: http.MethodPost, path: "/auth/refresh", body: []byte(body)})
		field := "closestServerId"
		if strings.Contains(body, "critical") {
			field = "criticalTaskInProgress"
		}
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, field) || s.eu.count()+s.us.count() != before {
			t.Errorf("%s: %d from %q: %s, want 400 naming %s from the edge", body, a.status, a.servedBy, a.body, field)
		}
	}
}

// critToken is a genuinely signed pin whose header names a critical
// extension the edge does not implement.
func critToken(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["crit"] = []string{"exp"}
	s, err := tok.SignedString([]byte(pinSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testAudience: an edge with `audience` routes on a genuine pin only when
// its aud names that audience; any other is no pin, and the client is
// placed with a pin of the edge's own, which carries the audience.
func (s *securityStack) testAudience(t *testing.T) {
	e := startEdge(t, "edge-audience", edgeConfig{Region: "eu", Etcd: []string{s.endpoint}, Handler: "\t\taudience orders-api\n"})
	withAud := func(aud any) string {
		c := claims("us-1", "us")
		if aud != nil {
			c["aud"] = aud
		}
		return sign(t, jwt.SigningMethodHS256, []byte(pinSecret), c)
	}
	poll.Until(t, 30*time.Second, "a pin for this audience routed to us-1", func() error {
		if status, got, _, body := hit(t, e.URL, withAud("orders-api")); got != "us-1" {
			return fmt.Errorf("%d from %q: %s", status, got, body)
		}
		return nil
	})
	if _, got, pin, _ := hit(t, e.URL, withAud([]string{"billing", "orders-api"})); got != "us-1" || pin != "" {
		t.Errorf("aud list naming orders-api: served by %q, new pin %v", got, pin != "")
	}
	for name, aud := range map[string]any{"another audience": "billing", "no aud": nil, "a prefix": "orders"} {
		before := s.us.count()
		status, got, pin, body := hit(t, e.URL, withAud(aud))
		if status != http.StatusOK || got != "eu-1" || pin == "" || s.us.count() != before {
			t.Errorf("%s: %d from %q (new pin %v), want placement on eu-1 with a new pin: %s", name, status, got, pin != "", body)
			continue
		}
		if _, again, newPin, _ := hit(t, e.URL, pin); again != "eu-1" || newPin != "" {
			t.Errorf("%s: the edge's own pin routed to %q (new pin %v), want eu-1", name, again, newPin != "")
		}
	}
}
