package caddymodule_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
	"github.com/sessionpin/sessionpin/internal/testcert"
)

// transportEdge is a fixture's edge reloaded with three sites, one per
// kind of client connection, all routing through session_pin:
//
//   - URL (plain HTTP): HTTP/1.1, WebSocket upgrades and h2c;
//   - tlsURL: HTTP/2 over TLS, with a certificate the test made;
//   - grpcAddr (plain HTTP): h2c to the edge and h2c to the servers, as
//     gRPC needs end to end.
type transportEdge struct {
	*fixture
	tlsURL   string
	grpcAddr string
	roots    *x509.CertPool
}

func newTransportEdge(t *testing.T) *transportEdge {
	t.Helper()
	f := newFixture(t, "")
	te := &transportEdge{fixture: f, tlsURL: "https://" + etcdtest.FreePort(t), grpcAddr: etcdtest.FreePort(t)}
	ca := testcert.NewCA(t, "edge-ca")
	leaf := ca.Issue("edge", "127.0.0.1")
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	te.roots = x509.NewCertPool()
	te.roots.AppendCertsFromPEM(caPEM)
	handler := fmt.Sprintf("session_pin {\n\t\tregion eu-west\n\t\tkey hs256 %s\n\t\thysteresis 0\n\t\tslow_start 0\n\t}", testSecret)
	cf := fmt.Sprintf(`{
	admin %s
	persist_config off
	auto_https disable_redirects
	servers {
		protocols h1 h2 h2c
	}
	session_pin {
		etcd %s
		prefix %s
	}
}

http://%s {
	%s
	reverse_proxy {
		dynamic session_pin
	}
}

%s {
	tls %s %s
	%s
	reverse_proxy {
		dynamic session_pin
	}
}

http://%s {
	%s
	reverse_proxy {
		dynamic session_pin
		transport http {
			versions h2c
		}
	}
}
`, f.admin, f.etcd, f.prefix, f.httpAdr, handler, te.tlsURL, leaf.CertFile, leaf.KeyFile, handler, te.grpcAddr, handler)
	if err := loadCaddyfile(cf); err != nil {
		t.Fatalf("load caddy config: %v", err)
	}
	return te
}

// get sends a GET with the pin through hc and returns the protocol, the
// X-Session-Server and the body.
func get(t *testing.T, hc *http.Client, url, tok string) (proto int, server, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Session-Pin", tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return resp.ProtoMajor, resp.Header.Get("X-Session-Server"), string(b)
}

// TestPinnedHTTP2: a pin sent over HTTP/2, with TLS or as h2c, routes like
// one sent over HTTP/1.1: to the pinned server, whichever is least loaded.
func TestPinnedHTTP2(t *testing.T) {
	te := newTransportEdge(t)
	b1, b2 := newBackend(t, "eu-1"), newBackend(t, "eu-2")
	te.reg.put("eu-1", "eu-west", b1.srv.URL, 0.0, false)
	te.reg.put("eu-2", "eu-west", b2.srv.URL, 0.9, false)
	te.waitRouted("eu-1", "eu-west")
	te.waitRouted("eu-2", "eu-west")
	tok := te.pinFor("eu-2", "eu-west") // the more loaded one: placement would not choose it

	t.Run("HTTP/2 over TLS", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: te.roots}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		var proto int
		var srv, body string
		// The TLS site starts listening when the config is loaded; the
		// first handshake may race it.
		poll.Until(t, eventuallyTimeout, "TLS site up", func() error {
			req, _ := http.NewRequest(http.MethodHead, te.tlsURL, nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		for range 3 {
			proto, srv, body = get(t, hc, te.tlsURL+"/h2", tok)
			if proto != 2 || srv != "eu-2" || body != "eu-2:" {
				t.Fatalf("got HTTP/%d from %q body %q, want HTTP/2 from eu-2", proto, srv, body)
			}
		}
	})

	t.Run("h2c", func(t *testing.T) {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &p}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for range 3 {
			proto, srv, body := get(t, hc, te.URL+"/h2c", tok)
			if proto != 2 || srv != "eu-2" || body != "eu-2:" {
				t.Fatalf("got HTTP/%d from %q body %q, want HTTP/2 from eu-2", proto, srv, body)
			}
		}
	})
}

// wsBackend is a WebSocket server that greets each connection with its id
// and then echoes.
func wsBackend(t *testing.T, id string) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, http.Header{"X-Backend": {id}})
		if err != nil {
			return
		}
		defer c.Close()
		if err := c.WriteMessage(websocket.TextMessage, []byte(id)); err != nil {
			return
		}
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	}))
	return srv
}

// newHTTPServer serves h on a free loopback port until the test ends and
// returns its URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// TestPinnedWebSocket: a WebSocket upgrade carrying a pin (header or
// cookie) is proxied to the pinned server and stays there for the life of
// the connection; an upgrade without one is placed and gets a pin.
func TestPinnedWebSocket(t *testing.T) {
	f := newFixture(t, "")
	f.reg.put("eu-1", "eu-west", wsBackend(t, "eu-1"), 0.0, false)
	f.reg.put("eu-2", "eu-west", wsBackend(t, "eu-2"), 0.9, false)
	wsURL := "ws" + strings.TrimPrefix(f.URL, "http") + "/socket"
	poll.Until(t, eventuallyTimeout, "eu-2 in the snapshot", func() error {
		if r := f.do(request{path: "/closestToMe"}); !strings.Contains(r.body, `"eu-1"`) {
			return errString(r.body)
		}
		if r := f.do(request{pin: f.pinFor("eu-2", "eu-west")}); r.server() != "eu-2" {
			return fmt.Errorf("pinned request: %d %q", r.status, r.server())
		}
		return nil
	})
	tok := f.pinFor("eu-2", "eu-west")

	dial := func(t *testing.T, hdr http.Header) (*websocket.Conn, *http.Response) {
		t.Helper()
		c, resp, err := websocket.DefaultDialer.Dial(wsURL, hdr)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("dial %s: %v (status %d)", wsURL, err, status)
		}
		t.Cleanup(func() { c.Close() })
		return c, resp
	}
	converse := func(t *testing.T, c *websocket.Conn, want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != want {
			t.Fatalf("greeting %q (%v), want %q", msg, err, want)
		}
		for i := range 3 {
			out := fmt.Sprintf("step %d", i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(out)); err != nil {
				t.Fatal(err)
			}
			if _, msg, err := c.ReadMessage(); err != nil || string(msg) != out {
				t.Fatalf("echo %q (%v), want %q", msg, err, out)
			}
		}
	}

	t.Run("pin header", func(t *testing.T) {
		c, resp := dial(t, http.Header{"X-Session-Pin": {tok}})
		if got := resp.Header.Get("X-Session-Server"); got != "eu-2" || resp.Header.Get("X-Backend") != "eu-2" {
			t.Fatalf("101 from %q (X-Backend %q), want eu-2", got, resp.Header.Get("X-Backend"))
		}
		if resp.Header.Get("X-Session-Pin") != "" {
			t.Error("a pinned upgrade got a new pin")
		}
		converse(t, c, "eu-2")
	})
	t.Run("pin cookie", func(t *testing.T) {
		c, resp := dial(t, http.Header{"Cookie": {"sessionpin=" + tok}})
		if got := resp.Header.Get("X-Session-Server"); got != "eu-2" {
			t.Fatalf("101 from %q, want eu-2", got)
		}
		converse(t, c, "eu-2")
	})
	t.Run("no pin is placed and pinned", func(t *testing.T) {
		c, resp := dial(t, nil)
		if got := resp.Header.Get("X-Session-Server"); got != "eu-1" || resp.Header.Get("X-Session-Pin") == "" {
			t.Fatalf("101 from %q with pin %q, want eu-1 and a new pin", got, resp.Header.Get("X-Session-Pin"))
		}
		converse(t, c, "eu-1")
	})
}

// grpcBackend serves the standard gRPC health service, which reports
// SERVING for a service named like the server and NOT_FOUND for any other:
// an answer for the pinned id can only come from the pinned server.
func grpcBackend(t *testing.T, id string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus(id, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return "http://" + l.Addr().String()
}

// TestPinnedGRPC: gRPC (h2c end to end) carries the pin as the metadata
// x-session-pin, which is the HTTP/2 header the edge reads; a call
// without one is placed, and its response metadata carries the new pin.
func TestPinnedGRPC(t *testing.T) {
	if raceEnabled {
		t.Skip("runs without -race: see raceEnabled")
	}
	te := newTransportEdge(t)
	te.reg.put("g-1", "eu-west", grpcBackend(t, "g-1"), 0.0, false)
	te.reg.put("g-2", "eu-west", grpcBackend(t, "g-2"), 0.9, false)
	te.waitRoutedGRPC(t, "g-1")

	conn, err := grpc.NewClient(te.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func(tok, service string) (healthpb.HealthCheckResponse_ServingStatus, metadata.MD, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-session-pin", tok)
		}
		var hdr metadata.MD
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.Header(&hdr))
		if err != nil {
			return 0, hdr, err
		}
		return resp.GetStatus(), hdr, nil
	}

	tok := te.pinFor("g-2", "eu-west") // the more loaded one: placement would not choose it
	poll.Until(t, eventuallyTimeout, "g-2 routed", func() error {
		_, _, err := check(tok, "g-2")
		return err
	})
	for range 3 {
		st, hdr, err := check(tok, "g-2")
		if err != nil || st != healthpb.HealthCheckResponse_SERVING || first(hdr, "x-session-server") != "g-2" {
			t.Fatalf("pinned call: %v %v x-session-server %q, want SERVING from g-2", st, err, first(hdr, "x-session-server"))
		}
		if first(hdr, "x-session-pin") != "" {
			t.Fatal("a pinned call got a new pin")
		}
	}

	// Placement goes to g-1; the pin it returns keeps the client there.
	st, hdr, err := check("", "g-1")
	if err != nil || st != healthpb.HealthCheckResponse_SERVING || first(hdr, "x-session-server") != "g-1" {
		t.Fatalf("placed call: %v %v x-session-server %q, want SERVING from g-1", st, err, first(hdr, "x-session-server"))
	}
	placed := first(hdr, "x-session-pin")
	if placed == "" {
		t.Fatal("a placed call got no pin")
	}
	if _, hdr, err := check(placed, "g-1"); err != nil || first(hdr, "x-session-server") != "g-1" {
		t.Fatalf("call with the placed pin: %v from %q, want g-1", err, first(hdr, "x-session-server"))
	}
}

// waitRoutedGRPC waits until placement over the gRPC site reaches id.
func (te *transportEdge) waitRoutedGRPC(t *testing.T, id string) {
	t.Helper()
	poll.Until(t, eventuallyTimeout, id+" placed", func() error {
		if r := te.do(request{path: "/closestToMe"}); !strings.Contains(r.body, `"`+id+`"`) {
			return errString(r.body)
		}
		return nil
	})
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
