package caddymodule_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/internal/poll"
)

// hostileApp is an app that answers with the edge's own session headers,
// as an app that reflects request headers, or a compromised one, might. It
// records the Cookie lines it was sent.
type hostileApp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	cookies []string
	hasPin  bool
}

func newHostileApp(t *testing.T, id string) *hostileApp {
	t.Helper()
	a := &hostileApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.cookies = slices.Clone(r.Header["Cookie"])
		a.hasPin = r.Header.Get("X-Session-Pin") != ""
		a.mu.Unlock()
		h := w.Header()
		h.Set("X-Backend", id)
		h.Set("X-Session-Pin", "forged-pin")
		h.Set("X-Session-Server-URL", "http://evil.example")
		h.Set("X-Session-Server-Changed", "1")
		h.Set("X-Session-Unsafe-Move", "1")
		h.Set("X-Session-Hold", "catching_up")
		h.Add("Set-Cookie", "sessionpin=forged; Path=/")
		h.Add("Set-Cookie", " sessionpin =forged2; Path=/; HttpOnly")
		h.Add("Set-Cookie", "app=1; Path=/")
		io.WriteString(w, id)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *hostileApp) received() (cookies []string, pin bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cookies, a.hasPin
}

// TestEdgeOwnsItsHeaders: whatever the app answers, the session headers a
// client sees are the edge's; whatever the client sends, the app never sees
// the pin, and its own cookies reach it as they came.
func TestEdgeOwnsItsHeaders(t *testing.T) {
	f := newFixture(t, "")
	eu1, eu2 := newHostileApp(t, "eu-1"), newHostileApp(t, "eu-2")
	f.reg.put("eu-1", "eu-west", eu1.srv.URL, 0.1, false)
	f.reg.put("eu-2", "eu-west", eu2.srv.URL, 0.5, false)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("eu-2", "eu-west")

	setCookies := func(r response, name string) []string {
		var out []string
		for _, c := range r.header.Values("Set-Cookie") {
			if n, _, _ := strings.Cut(c, "="); strings.TrimSpace(n) == name {
				out = append(out, c)
			}
		}
		return out
	}

	// Placement: the new pin, URL and cookie are the edge's, once each.
	r := f.do(request{})
	if r.status != http.StatusOK || r.server() != "eu-1" {
		t.Fatalf("placement: %d from %q", r.status, r.server())
	}
	p, err := f.keys.Verify(r.pinOut())
	if err != nil || p.Server != "eu-1" || len(r.header.Values("X-Session-Pin")) != 1 {
		t.Fatalf("placement pin %q: %v %+v, want one genuine pin for eu-1", r.header.Values("X-Session-Pin"), err, p)
	}
	if got := r.header.Values("X-Session-Server-Url"); len(got) != 1 || got[0] != eu1.srv.URL {
		t.Errorf("placement X-Session-Server-URL %q, want only %s", got, eu1.srv.URL)
	}
	if got := r.header.Values("X-Session-Server-Changed"); len(got) != 0 {
		t.Errorf("placement X-Session-Server-Changed %q from the app", got)
	}
	if got := setCookies(r, "sessionpin"); len(got) != 1 || !strings.HasPrefix(got[0], "sessionpin="+r.pinOut()+";") {
		t.Errorf("placement pin cookies %q, want only the edge's", got)
	}
	if got := setCookies(r, "app"); len(got) != 1 {
		t.Errorf("the app's own cookie: %q", got)
	}

	// A pinned request gets no new pin, and none from the app either.
	tok := f.pinFor("eu-2", "eu-west")
	r = f.do(request{pin: tok})
	if r.server() != "eu-2" || r.header.Get("X-Session-Pin") != "" || r.header.Get("X-Session-Server-Url") != "" ||
		r.header.Get("X-Session-Server-Changed") != "" || r.header.Get("X-Session-Unsafe-Move") != "" || r.header.Get("X-Session-Hold") != "" ||
		len(setCookies(r, "sessionpin")) != 0 || len(setCookies(r, "app")) != 1 {
		t.Errorf("pinned request: server %q, headers %v", r.server(), r.header)
	}
	if _, pin := eu2.received(); pin {
		t.Errorf("the app received the pin header")
	}

	// The pin cookie routes, and is all the edge takes out of Cookie.
	for _, c := range []struct {
		name string
		in   []string
		want []string
	}{
		{"between two", []string{`a=1; sessionpin=` + tok + `; b="x y"`}, []string{`a=1; b="x y"`}},
		{"alone", []string{"sessionpin=" + tok}, nil},
		{"first", []string{"sessionpin=" + tok + "; theme=dark"}, []string{"theme=dark"}},
		{"last, no blank", []string{"theme=dark;sessionpin=" + tok}, []string{"theme=dark"}},
		{"twice", []string{"sessionpin=" + tok + "; x=%20y ;sessionpin=" + tok}, []string{"x=%20y"}},
		{"own line", []string{"a=1;  b=2", "sessionpin=" + tok}, []string{"a=1;  b=2"}},
		{"look-alikes stay", []string{"sessionpinx=1; xsessionpin=2; sessionpin=" + tok}, []string{"sessionpinx=1; xsessionpin=2"}},
	} {
		req, _ := http.NewRequest(http.MethodGet, f.URL+"/", nil)
		req.Header["Cookie"] = c.in
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got, _ := eu2.received()
		if resp.Header.Get("X-Session-Server") != "eu-2" || !slices.Equal(got, c.want) {
			t.Errorf("%s: served by %q, app got Cookie %q, want %q", c.name, resp.Header.Get("X-Session-Server"), got, c.want)
		}
	}
}

// loopbackConns counts the TCP sockets of this host with port on either
// side, the listening socket aside: every connection ever made to a local
// listener shows here until well after it closed (TIME_WAIT).
func loopbackConns(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(file)
		if err != nil {
			t.Skipf("no %s: %v", file, err)
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] == "0A" { // LISTEN
				continue
			}
			for _, ep := range fields[1:3] {
				_, hexPort, _ := strings.Cut(ep, ":")
				if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
					n++
					break
				}
			}
		}
		fh.Close()
	}
	return n
}

// TestEdgeNeverDialsItself writes registry entries straight into etcd that
// name the edge's own admin endpoint, its etcd, and addresses no server
// has, each the most attractive server of the region: placement never
// picks them, a pin naming them is a pin to a server that is not alive, and
// nothing ever connects to the admin listener.
func TestEdgeNeverDialsItself(t *testing.T) {
	f := newFixture(t, "")
	_, adminPort, _ := net.SplitHostPort(f.admin)
	port, _ := strconv.Atoi(adminPort)
	_, etcdPort, _ := net.SplitHostPort(f.member.Client)
	if n := loopbackConns(t, port); n != 0 {
		t.Fatalf("%d connections on the admin port before the test", n)
	}
	hostile := map[string]string{
		"admin":           "http://" + f.admin,
		"admin-localhost": "http://localhost:" + adminPort,
		"admin-v6":        "http://[::1]:" + adminPort,
		"admin-https":     "https://127.0.0.1:" + adminPort,
		"etcd":            "http://" + f.member.Client,
		"etcd-localhost":  "http://localhost:" + etcdPort,
		"metadata":        "http://169.254.169.254",
		"unspecified":     "http://0.0.0.0:" + adminPort,
		"multicast":       "http://224.0.0.1:" + adminPort,
	}
	for id, url := range hostile {
		f.reg.put(id, "eu-west", url, 0, false)
	}
	eu1 := newBackend(t, "eu-1")
	f.reg.put("eu-1", "eu-west", eu1.srv.URL, 0.5, false)
	f.waitRouted("eu-1", "eu-west") // written after them: the edge has read them all

	for i := range 30 {
		r := f.do(request{})
		if r.status != http.StatusOK || r.server() != "eu-1" {
			t.Fatalf("placement %d: %d from %q: %s", i, r.status, r.server(), r.body)
		}
	}
	cr := f.do(request{path: "/closestToMe"})
	if !strings.Contains(cr.body, `"eu-1"`) {
		t.Errorf("/closestToMe: %s", cr.body)
	}
	for id := range hostile {
		r := f.do(request{pin: f.pinFor(id, "eu-west")})
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "pinned_server_unavailable") {
			t.Errorf("pin to %s: %d from %q: %s", id, r.status, r.server(), r.body)
		}
	}
	if n := loopbackConns(t, port); n != 0 {
		t.Fatalf("%d connections on the edge's admin listener after 30 placements", n)
	}
	// The count sees a connection when there is one.
	c, err := net.DialTimeout("tcp", f.admin, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	poll.True(t, 5*time.Second, "the control connection counted", func() bool { return loopbackConns(t, port) > 0 })
}

// TestAudience: with `audience`, a token routes only when its aud names
// this service, and the edge's own pins carry it.
func TestAudience(t *testing.T) {
	const idpSecret = "identity-provider-secret-0123456789abcdef"
	f := newFixture(t, "header Authorization\n\t\tverify_key hs256 "+idpSecret+"\n\t\tissuer https://idp.example\n\t\tclaim backend\n\t\taudience orders-api")
	f.reg.put("eu-2", "eu-west", newBackend(t, "eu-2").srv.URL, 0.2, false)
	f.reg.put("us-1", "us-east", newBackend(t, "us-1").srv.URL, 0.1, false)
	bearer := func(aud any) map[string]string {
		c := jwt.MapClaims{"iss": "https://idp.example", "backend": "us-1", "exp": time.Now().Add(time.Hour).Unix()}
		if aud != nil {
			c["aud"] = aud
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(idpSecret))
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	poll.Until(t, eventuallyTimeout, "routed on a token for this audience", func() error {
		if r := f.do(request{headers: bearer("orders-api")}); r.server() != "us-1" {
			return errString(r.server())
		}
		return nil
	})
	for _, c := range []struct {
		name  string
		aud   any
		route bool
	}{
		{"one of a list", []string{"billing", "orders-api"}, true},
		{"another service's token", "billing", false},
		{"another list", []string{"billing", "orders"}, false},
		{"no aud", nil, false},
		{"aud a number", 7, false},
		{"aud a prefix", "orders", false},
	} {
		r := f.do(request{headers: bearer(c.aud)})
		if routed := r.server() == "us-1"; routed != c.route {
			t.Errorf("%s: served by %q, want routed on the token %v", c.name, r.server(), c.route)
		}
	}
	// A placed client's pin (its cookie, in this mode) carries the audience
	// and routes back.
	r := f.do(request{})
	if r.server() != "eu-2" || r.pinOut() == "" {
		t.Fatalf("placement: %q pin %q", r.server(), r.pinOut())
	}
	if again := f.do(request{cookie: r.pinOut()}); again.server() != "eu-2" || again.pinOut() != "" {
		t.Errorf("the edge's own pin: served by %q, new pin %v", again.server(), again.pinOut() != "")
	}
}

// TestEdgeOwnsItsInterimHeaders: an app's interim response (103 Early
// Hints) reaches the client, but without the session headers the app put
// in it: a client that reads interim headers must not take a pin, a server
// URL or a move from the app either.
func TestEdgeOwnsItsInterimHeaders(t *testing.T) {
	f := newFixture(t, "")
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</app.css>; rel=preload")
		h.Set("X-Session-Pin", "forged-pin")
		h.Set("X-Session-Server-URL", "http://evil.example")
		h.Set("X-Session-Server-Changed", "1")
		h.Set("X-Session-Unsafe-Move", "1")
		h.Add("Set-Cookie", "sessionpin=forged; Path=/")
		w.WriteHeader(http.StatusEarlyHints)
		clear(h)
		h.Set("X-Backend", "eu-1")
		io.WriteString(w, "eu-1")
	}))
	t.Cleanup(app.Close)
	f.reg.put("eu-1", "eu-west", app.URL, 0.1, false)
	f.waitRouted("eu-1", "eu-west")

	var mu sync.Mutex
	var interim []textproto.MIMEHeader
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		interim = append(interim, h)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, f.URL+"/", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Session-Server") != "eu-1" || resp.Header.Get("X-Session-Pin") == "forged-pin" {
		t.Fatalf("final response: %d %v", resp.StatusCode, resp.Header)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(interim) != 1 || interim[0].Get("Link") == "" {
		t.Fatalf("interim responses %v, want the app's 103 with its Link", interim)
	}
	for _, k := range []string{"X-Session-Pin", "X-Session-Server-Url", "X-Session-Server-Changed", "X-Session-Unsafe-Move", "Set-Cookie"} {
		if v := interim[0].Values(k); len(v) != 0 {
			t.Errorf("the app's 103 reached the client with %s %q", k, v)
		}
	}
}
