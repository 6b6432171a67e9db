package chaos

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

// securityStack is one edge (region eu) in front of eu-1 (its region) and
// us-1 (the server an attacker wants to reach), an attacker-controlled
// server that must never be dialled, and a discovery API with a token.
type securityStack struct {
	edge     *edge
	eu, us   *echoBackend
	evil     *echoBackend
	etcd     *clientv3.Client
	endpoint string // the etcd client address, for more edges
	disc     string
	esKey    *ecdsa.PrivateKey // a legitimate verify-only key (rotation)
	esPubPEM []byte
}

const discoveryToken = "security-discovery-token-0123456789"

func startSecurityStack(t *testing.T) *securityStack {
	t.Helper()
	m := etcdtest.Start(t)
	s := &securityStack{etcd: etcdtest.NewClient(t, m), endpoint: m.Client}
	reg := discoverysvc.NewRegistry(s.etcd, "")
	s.eu, s.us, s.evil = newEchoBackend(t, "eu-1"), newEchoBackend(t, "us-1"), newEchoBackend(t, "evil")
	register(t, reg, s.eu, "eu", 0.5)
	register(t, reg, s.us, "us", 0.0)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s.esKey = key
	s.esPubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pubFile := filepath.Join(t.TempDir(), "verify.pem")
	if err := os.WriteFile(pubFile, s.esPubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s.edge = startEdge(t, "edge", edgeConfig{
		Region: "eu", Etcd: []string{m.Client},
		Handler: "\t\tverify_key es256 " + pubFile + "\n",
	})
	s.edge.waitServers(t, 2)
	s.disc, _ = startDiscovery(t, "discovery", []string{m.Client}, "--token", discoveryToken)
	return s
}

// claims are a pin's claims for srv, valid for an hour.
func claims(srv, rgn string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"srv": srv, "rgn": rgn, "iss": "sessionpin", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// request is one request of the table.
type request struct {
	method, path string
	header       map[string]string
	body         []byte
}

type answer struct {
	status   int
	servedBy string
	edgeSrv  string
	pin      string
	body     string
}

func (s *securityStack) send(t *testing.T, r request) answer {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	if r.path == "" {
		r.path = "/account"
	}
	var body io.Reader
	if r.body != nil {
		body = strings.NewReader(string(r.body))
	}
	req, err := http.NewRequest(r.method, s.edge.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return answer{resp.StatusCode, resp.Header.Get("X-Served-By"), resp.Header.Get("X-Session-Server"), resp.Header.Get("X-Session-Pin"), string(b)}
}

// TestSecurity is the end-to-end security table: nothing a
// client or a stranger to the registry sends steers traffic where it should
// not go, and oversized input is refused without reaching an app.
func TestSecurity(t *testing.T) {
	s := startSecurityStack(t)

	// Controls: a genuine pin reaches us-1 from the eu edge, with either key,
	// so every forged pin below that lands on eu-1 was truly refused.
	t.Run("genuine pins route to their server", func(t *testing.T) {
		for name, tok := range map[string]string{
			"hs256": sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims("us-1", "us")),
			"es256": sign(t, jwt.SigningMethodES256, s.esKey, claims("us-1", "us")),
		} {
			a := s.send(t, request{header: map[string]string{"X-Session-Pin": tok}})
			if a.status != http.StatusOK || a.servedBy != "us-1" || a.pin != "" {
				t.Errorf("%s: %d from %q (new pin %v), want 200 from us-1 and no new pin", name, a.status, a.servedBy, a.pin != "")
			}
		}
	})

	t.Run("forged pins are ignored", func(t *testing.T) {
		attackerEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, attackerEd, _ := ed25519.GenerateKey(rand.Reader)
		none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("us-1", "us"))
		expired := claims("us-1", "us")
		expired["iat"], expired["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		wrongIss := claims("us-1", "us")
		wrongIss["iss"] = "attacker"
		noExp := claims("us-1", "us")
		delete(noExp, "exp")
		notYet := claims("us-1", "us")
		notYet["nbf"] = time.Now().Add(time.Hour).Unix()
		pad := claims("us-1", "us")
		pad["pad"] = strings.Repeat("x", 8<<10)
		genuine := sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims("us-1", "us"))
		parts := strings.Split(genuine, ".")
		b64 := base64.RawURLEncoding.EncodeToString

		forged := []struct{ name, token string }{
			{"alg none", none},
			{"alg none, signature kept", strings.Join([]string{b64([]byte(`{"alg":"none","typ":"JWT"}`)), parts[1], parts[2]}, ".")},
			{"hs256 with a wrong secret", sign(t, jwt.SigningMethodHS256, []byte("attacker-secret-attacker-secret-0123"), claims("us-1", "us"))},
			{"hs512 with the right secret", sign(t, jwt.SigningMethodHS512, []byte(pinSecret), claims("us-1", "us"))},
			{"hs256 keyed with the es256 public key", sign(t, jwt.SigningMethodHS256, s.esPubPEM, claims("us-1", "us"))},
			{"es256 by an attacker's key", sign(t, jwt.SigningMethodES256, attackerEC, claims("us-1", "us"))},
			{"eddsa by an attacker's key", sign(t, jwt.SigningMethodEdDSA, attackerEd, claims("us-1", "us"))},
			{"wrong issuer", sign(t, jwt.SigningMethodHS256, []byte(pinSecret), wrongIss)},
			{"expired", sign(t, jwt.SigningMethodHS256, []byte(pinSecret), expired)},
			{"no expiry", sign(t, jwt.SigningMethodHS256, []byte(pinSecret), noExp)},
			{"crit header", critToken(t, claims("us-1", "us"))},
			{"nbf in the future", sign(t, jwt.SigningMethodHS256, []byte(pinSecret), notYet)},
			{"claims swapped under a genuine signature", parts[0] + "." + b64([]byte(`{"srv":"evil","iss":"sessionpin","exp":9999999999}`)) + "." + parts[2]},
			{"oversized, genuinely signed", sign(t, jwt.SigningMethodHS256, []byte(pinSecret), pad)},
			{"malformed: garbage", "garbage"},
			{"malformed: empty segments", ".."},
			{"malformed: bad base64", "!!!.@@@.###"},
			{"malformed: four segments", genuine + ".x"},
			{"malformed: not JSON", b64([]byte("{")) + "." + b64([]byte("[")) + ".x"},
		}
		for _, f := range forged {
			for _, via := range []string{"header", "cookie"} {
				hdr := map[string]string{"X-Session-Pin": f.token}
				if via == "cookie" {
					hdr = map[string]string{"Cookie": "sessionpin=" + f.token}
				}
				before := s.us.count()
				a := s.send(t, request{header: hdr})
				// Treated as no pin: placed in the edge's region with a new pin.
				if a.status != http.StatusOK || a.servedBy != "eu-1" || a.pin == "" || s.us.count() != before {
					t.Errorf("%s (%s): %d from %q (new pin %v), want placement on eu-1 with a new pin: %s",
						f.name, via, a.status, a.servedBy, a.pin != "", a.body)
				}
			}
		}
		if n := s.evil.count(); n != 0 {
			t.Errorf("the attacker's server got %d requests", n)
		}
	})

	t.Run("client-sent X-Session headers are not trusted", func(t *testing.T) {
		before := s.us.count()
		a := s.send(t, request{header: map[string]string{
			"X-Session-Server":         "us-1",
			"X-Session-Server-Url":     s.evil.srv.URL,
			"X-Session-Server-Changed": "1",
			"X-Closest-Server":         "us-1",
			"X-Critical-Task":          "true",
		}})
		if a.status != http.StatusOK || a.servedBy != "eu-1" || a.edgeSrv != "eu-1" || s.us.count() != before {
			t.Errorf("%d from %q (X-Session-Server %q), want placement on eu-1", a.status, a.servedBy, a.edgeSrv)
		}
		if n := s.evil.count(); n != 0 {
			t.Errorf("the attacker's server got %d requests", n)
		}
	})

	t.Run("oversized input is refused before any app", func(t *testing.T) {
		big := strings.Repeat("a", 2<<20)
		cases := []struct {
			name string
			req  request
			want int
		}{
			{"2 MiB header", request{header: map[string]string{"X-Junk": big}}, http.StatusRequestHeaderFieldsTooLarge},
			{"2 MiB cookie", request{header: map[string]string{"Cookie": "sessionpin=" + big}}, http.StatusRequestHeaderFieldsTooLarge},
			{"2 MiB pin header", request{header: map[string]string{"X-Session-Pin": big}}, http.StatusRequestHeaderFieldsTooLarge},
			{"1 MiB refresh body", request{method: http.MethodPost, path: "/auth/refresh", body: []byte(`{"x":"` + big[:1<<20] + `"}`)}, http.StatusRequestEntityTooLarge},
		}
		for _, c := range cases {
			before := s.eu.count() + s.us.count()
			a := s.send(t, c.req)
			if a.status != c.want || a.servedBy != "" || s.eu.count()+s.us.count() != before {
				t.Errorf("%s: %d from %q, want %d from the edge itself", c.name, a.status, a.servedBy, c.want)
			}
		}
		// A large body elsewhere is the app's business: passed on intact.
		a := s.send(t, request{method: http.MethodPost, path: "/upload", body: []byte(big[:1<<20])})
		if _, n := s.eu.last(); a.status != http.StatusOK || n != 1<<20 {
			t.Errorf("1 MiB upload: %d, app got %d bytes, want 200 and %d", a.status, n, 1<<20)
		}
	})

	t.Run("hostile registry entries are ignored", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		prefix := schema.ServersPrefix(schema.DefaultPrefix)
		evil := s.evil.srv.URL
		host := strings.TrimPrefix(evil, "http://")
		hostile := map[string]string{
			"userinfo":    fmt.Sprintf(`{"id":"userinfo","region":"eu","url":"http://user:pass@%s","load":0}`, host),
			"steal-eu-1":  fmt.Sprintf(`{"id":"eu-1","region":"eu","url":%q,"load":0}`, evil),
			"file-url":    `{"id":"file-url","region":"eu","url":"file:///etc/passwd","load":0}`,
			"query-url":   fmt.Sprintf(`{"id":"query-url","region":"eu","url":"%s/?next=http://x","load":0}`, evil),
			"crlf-region": fmt.Sprintf(`{"id":"crlf-region","region":"eu\r\nX-Injected: 1","url":%q,"load":0}`, evil),
			"negative":    fmt.Sprintf(`{"id":"negative","region":"eu","url":%q,"load":-1}`, evil),
			"a/b":         fmt.Sprintf(`{"id":"a/b","region":"eu","url":%q,"load":0}`, evil),
			"long-id":     fmt.Sprintf(`{"id":"%s","region":"eu","url":%q,"load":0}`, strings.Repeat("x", 65), evil),
			"not-json":    `<script>alert(1)</script>`,
			"huge-load":   fmt.Sprintf(`{"id":"huge-load","region":"eu","url":%q,"load":1e999}`, evil),
		}
		for key, val := range hostile {
			if _, err := s.etcd.Put(ctx, prefix+key, val); err != nil {
				t.Fatal(err)
			}
		}
		// A good server written after them proves the edge has read them.
		good := newEchoBackend(t, "eu-2")
		reg := discoverysvc.NewRegistry(s.etcd, "")
		register(t, reg, good, "eu", 0.5)
		s.edge.waitServers(t, 3)

		for range 30 {
			a := s.send(t, request{})
			if a.servedBy != "eu-1" && a.servedBy != "eu-2" {
				t.Fatalf("placement with hostile entries: %d from %q: %s", a.status, a.servedBy, a.body)
			}
			_, b, err := getBody(s.edge.URL + "/closestToMe")
			if err != nil || strings.Contains(string(b), host) {
				t.Fatalf("/closestToMe names a hostile entry: %s %v", b, err)
			}
		}
		// A genuine pin naming a hostile id is a pin to a server that is not
		// alive: refused, never dialled.
		for _, id := range []string{"userinfo", "steal-eu-1", "file-url", "negative"} {
			a := s.send(t, request{header: map[string]string{"X-Session-Pin": sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims(id, "eu"))}})
			if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "pinned_server_unavailable") {
				t.Errorf("pin to hostile entry %s: %d from %q: %s", id, a.status, a.servedBy, a.body)
			}
		}
		// The real eu-1 keeps its traffic.
		a := s.send(t, request{header: map[string]string{"X-Session-Pin": sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims("eu-1", "eu"))}})
		if a.status != http.StatusOK || a.servedBy != "eu-1" {
			t.Errorf("pin to eu-1 with a hostile entry claiming its id: %d from %q", a.status, a.servedBy)
		}
		if n := s.evil.count(); n != 0 {
			t.Errorf("the attacker's server got %d requests", n)
		}
		for key := range hostile {
			if _, err := s.etcd.Delete(ctx, prefix+key); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := reg.Deregister(ctx, "eu-2"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("discovery writes need the token", func(t *testing.T) {
		body := fmt.Sprintf(`{"region":"eu","url":%q,"load":0}`, s.evil.srv.URL)
		for _, c := range []struct{ name, method, id, auth string }{
			{"PUT without a token", http.MethodPut, "intruder", ""},
			{"PUT with a wrong token", http.MethodPut, "intruder", "Bearer wrong-token"},
			{"PUT with the token as Basic", http.MethodPut, "intruder", "Basic " + discoveryToken},
			{"PUT with a prefix of the token", http.MethodPut, "intruder", "Bearer " + discoveryToken[:10]},
			{"PUT over eu-1 with a wrong token", http.MethodPut, "eu-1", "Bearer wrong-token"},
			{"DELETE without a token", http.MethodDelete, "eu-1", ""},
			{"DELETE with a wrong token", http.MethodDelete, "eu-1", "Bearer wrong-token"},
		} {
			rev := revision(t, s.etcd)
			var rd io.Reader
			if c.method == http.MethodPut {
				rd = strings.NewReader(body)
			}
			req, _ := http.NewRequest(c.method, s.disc+"/v1/servers/"+c.id, rd)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: %d, want 401", c.name, resp.StatusCode)
			}
			if got := revision(t, s.etcd); got != rev {
				t.Errorf("%s: etcd written (revision %d -> %d)", c.name, rev, got)
			}
		}
		if a := s.send(t, request{header: map[string]string{"X-Session-Pin": sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims("eu-1", "eu"))}}); a.servedBy != "eu-1" {
			t.Errorf("eu-1 after refused writes: %d from %q", a.status, a.servedBy)
		}
		if n := s.evil.count(); n != 0 {
			t.Errorf("the attacker's server got %d requests", n)
		}
	})

	t.Run("an agent token writes only its own server", s.testAgentTokenScope)
	t.Run("discovery refuses URLs no edge should dial", s.testDiscoveryRefusesURLs)
	t.Run("discovery's 503 hides the etcd error", testDiscoveryHidesEtcdErrors)
	t.Run("the agent keeps its token off plain http", testAgentTokenOverPlainHTTP)
	t.Run("a nonsense health load keeps the last valid one", s.testAgentKeepsLastValidLoad)
	t.Run("the embedded etcd takes only clients with a certificate", testEmbeddedEtcdMutualTLS)
	t.Run("the embedded etcd refuses an open listen without TLS", testEmbeddedEtcdRefusesOpenListen)
	t.Run("the edge never dials its own admin endpoint", s.testEdgeNeverDialsItsAdmin)
	t.Run("the edge owns its headers", testEdgeOwnsItsHeaders)
	t.Run("a refresh field given twice is refused", s.testRefreshRepeatedField)
	t.Run("a token for another audience is no pin", s.testAudience)
}

// TestEtcdAuthEndToEnd runs the registry on an etcd with authentication
// enabled: discovery (--etcd-user/--etcd-password) writes and the edge
// (username/password) reads with a user limited to the registry prefix,
// while anonymous and wrongly authenticated clients get nothing.
func TestEtcdAuthEndToEnd(t *testing.T) {
	m := etcdtest.Start(t)
	root := etcdtest.NewClient(t, m)
	// Generous: etcd hashes each password with bcrypt, which is slow under
	// the race detector on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const user, password = "sessionpin", "registry-password-0123"
	prefix := schema.DefaultPrefix
	steps := []struct {
		name string
		do   func() error
	}{
		{"add role root", func() error { _, err := root.RoleAdd(ctx, "root"); return err }},
		{"add user root", func() error { _, err := root.UserAdd(ctx, "root", "root-password-0123"); return err }},
		{"grant root", func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err }},
		{"add role registry", func() error { _, err := root.RoleAdd(ctx, "registry"); return err }},
		{"grant the prefix", func() error {
			_, err := root.RoleGrantPermission(ctx, "registry", prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user sessionpin", func() error { _, err := root.UserAdd(ctx, user, password); return err }},
		{"grant sessionpin", func() error { _, err := root.UserGrantRole(ctx, user, "registry"); return err }},
		{"enable auth", func() error { _, err := root.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Client}, DialTimeout: 20 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, prefix, clientv3.WithPrefix()); err == nil {
		t.Fatal("an anonymous client read the registry with auth enabled")
	}

	const token = "auth-discovery-token"
	disc, _ := startDiscovery(t, "discovery", []string{m.Client}, "--etcd-user", user, "--etcd-password", password, "--token", token, "--allow-loopback")
	app := newEchoBackend(t, "eu-1")
	req, _ := http.NewRequest(http.MethodPut, disc+"/v1/servers/eu-1", strings.NewReader(fmt.Sprintf(`{"region":"eu","url":%q,"load":0.1}`, app.srv.URL)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register through discovery on an auth-enabled etcd: %d", resp.StatusCode)
	}

	// etcd checks passwords with bcrypt, slow under the race detector: give
	// the edges' authentication time.
	e := startEdge(t, "edge", edgeConfig{Region: "eu", Etcd: []string{m.Client}, Username: user, Password: password, DialTimeout: "20s"})
	e.waitServers(t, 1)
	if status, got, pin, body := hit(t, e.URL, ""); status != http.StatusOK || got != "eu-1" || pin == "" {
		t.Fatalf("edge with etcd credentials: %d from %q: %s", status, got, body)
	}

	// An edge with a wrong password starts, but once etcd has refused it, it
	// still has no registry to route on.
	bad := startEdge(t, "edge-bad-password", edgeConfig{Region: "eu", Etcd: []string{m.Client}, Username: user, Password: "wrong-password", DialTimeout: "20s"})
	waitLog(t, bad.proc, "connecting to etcd")
	for range 5 {
		if status, got, _, body := hit(t, bad.URL, ""); status != http.StatusServiceUnavailable || got != "" || !strings.Contains(body, "no_server_available") {
			t.Fatalf("edge with a wrong etcd password: %d from %q: %s", status, got, body)
		}
	}
}
