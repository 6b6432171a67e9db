package caddymodule_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
	"github.com/sessionpin/sessionpin/internal/testcert"
)

// testSecret is the HS256 secret of every test edge.
const testSecret = "test-secret-0123456789abcdefghijklmnop"

// caddyMu serialises tests that run Caddy: it is a process-wide singleton.
var caddyMu sync.Mutex

// edge is a real Caddy running in-process with the session_pin modules,
// on free ports for both HTTP and admin.
type edge struct {
	t       *testing.T
	URL     string // http://127.0.0.1:port
	admin   string
	httpAdr string
	etcd    string
	prefix  string
	client  *http.Client
	opts    string // the handler options of the loaded config
	appOpts string // more settings of the session_pin app (etcd TLS)

	// With serveTLS, the edge also serves the site over HTTPS.
	tlsURL    string // https://127.0.0.1:port
	tlsAdr    string
	tlsPair   testcert.Pair
	tlsClient *http.Client
}

// edgeConfig is the Caddyfile of a test edge; opts go inside the
// session_pin handler block.
func (e *edge) caddyfile(opts string) string {
	cf := fmt.Sprintf(`{
	admin %s
	persist_config off
	auto_https disable_redirects
	session_pin {
		etcd %s
		prefix %s
%s
	}
}
`, e.admin, e.etcd, e.prefix, e.appOpts)
	cf += "\nhttp://" + e.httpAdr + " {\n" + siteBody(opts) + "}\n"
	if e.tlsAdr != "" {
		cf += "\nhttps://" + e.tlsAdr + " {\n\ttls " + e.tlsPair.CertFile + " " + e.tlsPair.KeyFile + "\n" + siteBody(opts) + "}\n"
	}
	return cf
}

// siteBody is the edge's site: the session_pin handler with opts, and
// reverse_proxy to its choice.
func siteBody(opts string) string {
	return fmt.Sprintf(`	header {
		defer
		X-Pin-Reason {http.session_pin.reason}
		X-Pin-Moved {http.session_pin.moved}
		X-Pin-Route "{http.session_pin.server} {http.session_pin.region} {http.session_pin.url}"
	}
	session_pin {
		region eu-west
		key hs256 %s
%s
	}
	reverse_proxy {
		dynamic session_pin
	}
`, testSecret, opts)
}

// startEdge runs Caddy against the etcd at endpoint with the registry under
// prefix. It stops when the test ends.
func startEdge(t *testing.T, endpoint, prefix, opts string) *edge {
	t.Helper()
	return startEdgeApp(t, endpoint, prefix, "", opts)
}

// startEdgeApp is startEdge with appOpts added to the session_pin global
// option, the app's connection to etcd.
func startEdgeApp(t *testing.T, endpoint, prefix, appOpts, opts string) *edge {
	t.Helper()
	caddyMu.Lock()
	e := &edge{
		appOpts: appOpts,
		t:       t,
		admin:   etcdtest.FreePort(t),
		httpAdr: etcdtest.FreePort(t),
		etcd:    endpoint,
		prefix:  prefix,
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	e.URL = "http://" + e.httpAdr
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stop caddy: %v", err)
		}
		caddyMu.Unlock()
	})
	if err := e.load(opts); err != nil {
		t.Fatalf("load caddy config: %v", err)
	}
	return e
}

// load (re)loads the edge's config with the given handler options.
func (e *edge) load(opts string) error {
	e.opts = opts
	return loadCaddyfile(e.caddyfile(opts))
}

// serveTLS reloads the edge to serve its site over HTTPS too, on another
// port, with a certificate of a CA that only e.tlsClient trusts. Requests
// with tls set go there.
func (e *edge) serveTLS() {
	e.t.Helper()
	ca := testcert.NewCA(e.t, "edge")
	e.tlsPair = ca.Issue("edge", "127.0.0.1")
	e.tlsAdr = etcdtest.FreePort(e.t)
	e.tlsURL = "https://" + e.tlsAdr
	e.tlsClient = &http.Client{
		Timeout:       e.client.Timeout,
		CheckRedirect: e.client.CheckRedirect,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: etcdtest.Roots(e.t, ca)}},
	}
	e.t.Cleanup(e.tlsClient.CloseIdleConnections)
	if err := e.load(e.opts); err != nil {
		e.t.Fatalf("load caddy config with TLS: %v", err)
	}
}

func loadCaddyfile(cf string) error {
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, _, err := adapter.Adapt([]byte(cf), nil)
	if err != nil {
		return fmt.Errorf("adapt: %w", err)
	}
	return caddy.Load(cfg, true)
}

// request is a test request to the edge.
type request struct {
	method  string
	path    string
	body    string
	pin     string // X-Session-Pin
	cookie  string // sessionpin cookie
	headers map[string]string
	tls     bool // over HTTPS, after serveTLS
}

type response struct {
	status int
	header http.Header
	body   string
}

// pinOut is the new pin of a response, "" when none was issued.
func (r response) pinOut() string { return r.header.Get("X-Session-Pin") }

func (r response) server() string { return r.header.Get("X-Session-Server") }

func (e *edge) do(req request) response {
	e.t.Helper()
	if req.method == "" {
		req.method = http.MethodGet
	}
	if req.path == "" {
		req.path = "/"
	}
	// During a config reload the old server may accept a connection and
	// close it unanswered as it shuts down; a client sees EOF and tries
	// again, as browsers do.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := e.try(req)
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s %s: %v", req.method, req.path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *edge) try(req request) (response, error) {
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	base, client := e.URL, e.client
	if req.tls {
		base, client = e.tlsURL, e.tlsClient
	}
	hr, err := http.NewRequest(req.method, base+req.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if req.pin != "" {
		hr.Header.Set("X-Session-Pin", req.pin)
	}
	if req.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: "sessionpin", Value: req.cookie})
	}
	for k, v := range req.headers {
		hr.Header.Set(k, v)
	}
	resp, err := client.Do(hr)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// backend is a real HTTP server that knows nothing of pins: it answers with
// its id and echoes the request body, or the status asked for in ?status=.
type backend struct {
	id         string
	srv        *httptest.Server
	hits       atomic.Int64
	lastBody   atomic.Value // string
	lastHeader atomic.Value // http.Header
}

func newBackend(t *testing.T, id string) *backend {
	t.Helper()
	b := &backend{id: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		b.lastBody.Store(string(body))
		b.lastHeader.Store(r.Header.Clone())
		w.Header().Set("X-Backend", id)
		status := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s:%s", id, body)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) body() string {
	s, _ := b.lastBody.Load().(string)
	return s
}

// header is the header of the last request the backend received.
func (b *backend) header() http.Header {
	h, _ := b.lastHeader.Load().(http.Header)
	return h
}

// registry writes server records straight into etcd, as any etcd client
// (etcdctl) may.
type registry struct {
	t      *testing.T
	cli    *clientv3.Client
	prefix string
}

func (r *registry) put(id, region, url string, load float64, draining bool) {
	r.t.Helper()
	etcdtest.PutServer(r.t, r.cli, r.prefix, schema.Server{ID: id, Region: region, URL: url, Load: load, Draining: draining})
}

func (r *registry) delete(id string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.cli.Delete(ctx, schema.ServerKey(r.prefix, id)); err != nil {
		r.t.Fatalf("delete %s: %v", id, err)
	}
}

// fixture is an etcd, a registry prefix, and an edge watching it.
type fixture struct {
	*edge
	reg    *registry
	member *etcdtest.Member
	keys   *pin.Keyring
}

func newFixture(t *testing.T, opts string) *fixture {
	t.Helper()
	m := etcdtest.Start(t)
	prefix := "/" + strings.ReplaceAll(t.Name(), "/", "_") + "/"
	f := &fixture{
		reg:    &registry{t: t, cli: etcdtest.NewClient(t, m), prefix: prefix},
		member: m,
	}
	if !strings.Contains(opts, "hysteresis") {
		opts += "\n\t\thysteresis 0" // deterministic placement unless a test wants spread
	}
	f.edge = startEdge(t, m.Client, prefix, opts)
	f.keys = testKeyring(t)
	return f
}

// testKeyring issues pins as the test edges do.
func testKeyring(t *testing.T) *pin.Keyring {
	t.Helper()
	kr, err := pin.NewKeyring(pin.KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, "sessionpin", "srv")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// pinFor issues a valid pin for id, as an edge would have.
func (f *fixture) pinFor(id, region string) string {
	f.t.Helper()
	tok, err := f.keys.Issue(id, region, time.Now(), time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// eventuallyTimeout bounds every wait of these tests for the edge to see a
// registry change.
const eventuallyTimeout = 15 * time.Second

// waitRouted waits until a pinned request for id reaches it, i.e. the
// edge's snapshot has the server.
func (f *fixture) waitRouted(id, region string) {
	f.t.Helper()
	tok := f.pinFor(id, region)
	poll.Until(f.t, eventuallyTimeout, "server "+id+" routed", func() error {
		r := f.do(request{pin: tok})
		if r.status != http.StatusOK || r.server() != id {
			return fmt.Errorf("status %d server %q body %q", r.status, r.server(), r.body)
		}
		return nil
	})
}

// waitGone waits until the edge's snapshot no longer has id.
func (f *fixture) waitGone(id, region string) {
	f.t.Helper()
	tok := f.pinFor(id, region)
	poll.Until(f.t, eventuallyTimeout, "server "+id+" gone", func() error {
		if r := f.do(request{pin: tok}); r.status != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d server %q", r.status, r.server())
		}
		return nil
	})
}

// freeClosedAddr returns a loopback address nothing listens on.
func freeClosedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
