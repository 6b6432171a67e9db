package discoverysvc_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address ip, so one test can be several client addresses.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// openStream opens GET /v1/events from hc and returns its status; an
// admitted stream stays open until the test's cleanup or close.
func openStream(t *testing.T, hc *http.Client, url, token string) (int, http.Header, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		return resp.StatusCode, resp.Header, func() {}
	}
	closeIt := func() { cancel(); resp.Body.Close() }
	t.Cleanup(closeIt)
	return resp.StatusCode, resp.Header, closeIt
}

// Streams past the limits are refused with 503 and Retry-After, per client
// address and in total, and counted; meanwhile /healthz, heartbeats and the
// etcd behind the service are unaffected, and once the streams end the
// service's goroutines return to where they were.
func TestEventsSubscriberLimits(t *testing.T) {
	f := startFleet(t, fleetOptions{token: testToken, config: discoverysvc.Config{
		MaxSubscribers: 5, MaxSubscribersPerClient: 3,
	}})
	// The baseline is taken once each kind of request has run, and with
	// no kept-alive connection on either side.
	f.call(t, "", "GET", "/healthz", "", "")
	f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.1, false))
	f.scrape(t)
	settle := func() {
		http.DefaultClient.CloseIdleConnections()
		f.srv.CloseClientConnections()
	}
	settle()
	baseline := goroutinesIn("net/http.(*conn).serve")

	var closers []func()
	a, b := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	for i := range 3 {
		status, _, c := openStream(t, a, f.srv.URL, testToken)
		if status != http.StatusOK {
			t.Fatalf("stream %d from a: %d", i, status)
		}
		closers = append(closers, c)
	}
	status, hdr, _ := openStream(t, a, f.srv.URL, testToken)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("fourth stream from a: %d, Retry-After %q; want 503 with Retry-After", status, hdr.Get("Retry-After"))
	}
	for i := range 2 {
		status, _, c := openStream(t, b, f.srv.URL, testToken)
		if status != http.StatusOK {
			t.Fatalf("stream %d from b: %d", i, status)
		}
		closers = append(closers, c)
	}
	if status, hdr, _ := openStream(t, b, f.srv.URL, testToken); status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("sixth stream in all: %d; want 503 with Retry-After", status)
	}
	f.waitMetric(t, `sessionpin_discovery_events_refused_total{reason="per_client"}`, 1)
	f.waitMetric(t, `sessionpin_discovery_events_refused_total{reason="total"}`, 1)

	// Everything else still works at the limit.
	if s := f.call(t, "", "GET", "/healthz", "", ""); s != http.StatusOK {
		t.Fatalf("/healthz at the limit: %d", s)
	}
	if s := f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.1, false)); s != http.StatusOK {
		t.Fatalf("heartbeat at the limit: %d", s)
	}
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "us-1", Region: "us-east", URL: "http://127.0.0.1:9003", Load: 0})
	poll.True(t, fleetWait, "the hub to see both servers through etcd", func() bool { return f.fleet.Hub().State().Len() == 2 })

	for _, c := range closers {
		c()
	}
	poll.True(t, fleetWait, "every subscriber gone", func() bool { return f.fleet.Hub().Subscribers() == 0 })
	poll.Until(t, fleetWait, "goroutines back to their baseline", func() error {
		settle()
		if n := goroutinesIn("serveEvents"); n != 0 {
			return fmt.Errorf("%d goroutines still serve a stream", n)
		}
		if n := goroutinesIn("net/http.(*conn).serve"); n > baseline {
			return fmt.Errorf("%d connection goroutines, baseline %d", n, baseline)
		}
		return nil
	})
	if status, _, _ := openStream(t, a, f.srv.URL, testToken); status != http.StatusOK {
		t.Fatalf("a stream after the others ended: %d", status)
	}
}

// The listener keeps at most its limit of connections open: one more is
// closed at once and counted, and its place is free again once a
// connection ends.
func TestLimitListener(t *testing.T) {
	metrics := discoverysvc.NewMetrics()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := discoverysvc.LimitListener(l, 2, metrics)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ll)
	t.Cleanup(func() { srv.Close() })

	get := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:12]) != "HTTP/1.1 200" {
			return fmt.Errorf("answer %q", buf[:n])
		}
		return nil
	}
	var held []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := get(c); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	// The listener closes the third connection as soon as it accepts it;
	// on a loaded machine the client may even see that reset as its dial
	// failing. Either way it is not served.
	if extra, err := net.Dial("tcp", l.Addr().String()); err == nil {
		defer extra.Close()
		if err := get(extra); err == nil {
			t.Fatal("a third connection was served")
		}
	}
	poll.Until(t, fleetWait, "the third connection counted as refused", func() error {
		text := scrapeRegistry(t, metrics)
		if v, _ := metrictest.Value(text, "sessionpin_discovery_connections_refused_total"); v != 1 {
			return fmt.Errorf("refused = %v, want 1", v)
		}
		return nil
	})
	held[0].Close()
	poll.Until(t, fleetWait, "a place free again", func() error {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		return get(c)
	})
}

// goroutinesIn counts the goroutines of this process whose stack contains
// fn: other tests' fixtures winding down do not count.
func goroutinesIn(fn string) int {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// scrapeRegistry renders metrics as /metrics would.
func scrapeRegistry(t *testing.T, m *discoverysvc.Metrics) string {
	t.Helper()
	srv := &http.Server{Handler: m.Handler()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	resp, err := http.Get("http://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
