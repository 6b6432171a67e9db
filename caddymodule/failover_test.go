package caddymodule_test

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/poll"
)

// TestFallbackRegions: with the edge's region empty, new clients and
// /closestToMe go to the first listed fallback region that has an active
// server, not to the least loaded anywhere; a server in the edge's own
// region wins again as soon as there is one.
func TestFallbackRegions(t *testing.T) {
	f := newFixture(t, "\t\tfallback_regions ap-south us-east")
	ap, us, sa := newBackend(t, "ap-1"), newBackend(t, "us-1"), newBackend(t, "sa-1")
	f.reg.put("ap-d", "ap-south", newBackend(t, "ap-d").srv.URL, 0.0, true) // only drains: skipped
	f.reg.put("us-1", "us-east", us.srv.URL, 0.6, false)
	f.reg.put("sa-1", "sa-east", sa.srv.URL, 0.0, false) // least loaded anywhere
	f.waitRouted("us-1", "us-east")
	f.waitRouted("sa-1", "sa-east")

	placed := func(want string) {
		t.Helper()
		poll.Until(t, eventuallyTimeout, "placement on "+want, func() error {
			r := f.do(request{})
			if r.status != http.StatusOK || r.server() != want || r.pinOut() == "" {
				return fmt.Errorf("placed on %q (%d, pin %v)", r.server(), r.status, r.pinOut() != "")
			}
			c := f.do(request{path: "/closestToMe"})
			if !strings.Contains(c.body, `"closestServerId":"`+want+`"`) {
				return fmt.Errorf("closestToMe %d %s", c.status, c.body)
			}
			return nil
		})
	}
	placed("us-1") // ap-south only drains, so the second fallback

	f.reg.put("ap-1", "ap-south", ap.srv.URL, 0.9, false)
	placed("ap-1") // the first fallback, however loaded

	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.95, false)
	placed("eu-1") // the edge's own region
}

// unreachableCount is sessionpin_unreachable_total for server, 0 when the
// series is absent.
func unreachableCount(t *testing.T, admin, server string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^sessionpin_unreachable_total\{server="` + regexp.QuoteMeta(server) + `"\} (\S+)$`).FindStringSubmatch(scrape(t, admin))
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitListed waits until the edge's snapshot has id, without sending it a
// request: /closestToMe names it while it is the least loaded.
func (f *fixture) waitListed(id string) {
	f.t.Helper()
	poll.Until(f.t, eventuallyTimeout, id+" listed", func() error {
		if r := f.do(request{path: "/closestToMe"}); !strings.Contains(r.body, `"closestServerId":"`+id+`"`) {
			return errString(r.body)
		}
		return nil
	})
}

// TestUnreachableAtEdge: a registered server whose port refuses connections
// is, after the first failure, not alive for this edge: placement and
// /closestToMe never choose it, its pinned clients get 503
// pinned_server_unavailable with Retry-After, and a refresh moves them even
// during a critical task.
func TestUnreachableAtEdge(t *testing.T) {
	f := newFixture(t, "\t\tunreachable_for 10m")
	eu2 := newBackend(t, "eu-2")
	f.reg.put("eu-2", "eu-west", eu2.srv.URL, 0.5, false)
	f.waitRouted("eu-2", "eu-west")
	f.reg.put("eu-1", "eu-west", "http://"+freeClosedAddr(t), 0.0, false) // the least loaded
	f.waitListed("eu-1")
	tok := f.pinFor("eu-1", "eu-west")
	// The counter is process-wide, and other tests name servers eu-1 too.
	marked := unreachableCount(t, f.admin, "eu-1")

	assertPinnedUnavailable := func(r response) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "30" || r.pinOut() != "" {
			t.Fatalf("pinned to eu-1: %d Retry-After %q pin %v, want 503 with Retry-After 30 and no pin",
				r.status, r.header.Get("Retry-After"), r.pinOut() != "")
		}
		assertJSON(t, r.body, map[string]any{"error": "pinned_server_unavailable", "server": "eu-1", "retryAfterSeconds": 30.0})
	}
	// The first failure already answers like any pinned server that is
	// not alive: the request never reached it.
	assertPinnedUnavailable(f.do(request{pin: tok}))
	if n := unreachableCount(t, f.admin, "eu-1") - marked; n != 1 {
		t.Fatalf("sessionpin_unreachable_total{server=eu-1} grew by %v, want 1", n)
	}

	t.Run("placement and closestToMe skip it", func(t *testing.T) {
		for range 20 {
			if r := f.do(request{}); r.status != http.StatusOK || r.server() != "eu-2" || r.pinOut() == "" {
				t.Fatalf("placed on %q (%d), want eu-2 with a pin", r.server(), r.status)
			}
		}
		r := f.do(request{path: "/closestToMe"})
		assertJSON(t, r.body, map[string]any{"closestServerId": "eu-2", "region": "eu-west", "url": eu2.srv.URL, "load": 0.5})
	})
	t.Run("pinned clients get 503 with Retry-After", func(t *testing.T) {
		for range 5 {
			assertPinnedUnavailable(f.do(request{pin: tok}))
		}
		// No new connection was tried: the marking is counted once.
		if n := unreachableCount(t, f.admin, "eu-1") - marked; n != 1 {
			t.Fatalf("sessionpin_unreachable_total{server=eu-1} grew by %v, want 1", n)
		}
	})
	t.Run("a critical refresh moves off it", func(t *testing.T) {
		for _, c := range []struct{ closest, want string }{{"", "eu-2"}, {"eu-1", "eu-2"}} {
			body := `{"criticalTaskInProgress":true,"closestServerId":"` + c.closest + `"}`
			r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: tok, body: body})
			if r.status != http.StatusOK || r.server() != c.want || r.pinOut() == "" ||
				r.header.Get("X-Session-Server-Changed") != "1" || r.header.Get("X-Pin-Reason") != "failover" {
				t.Fatalf("closest %q: refresh %d to %q (changed %q, reason %q, pin %v), want a failover to %s",
					c.closest, r.status, r.server(), r.header.Get("X-Session-Server-Changed"), r.header.Get("X-Pin-Reason"), r.pinOut() != "", c.want)
			}
			if eu2.body() != body {
				t.Fatalf("the app got %q, want the refresh body", eu2.body())
			}
		}
	})
}

// TestUnreachableFoundByRefresh: when the request that finds a server cut
// off is a critical refresh, it gets 502 server_unreachable and no new pin,
// as docs/failures.md says; the server is then marked, so the next refresh
// moves the client.
func TestUnreachableFoundByRefresh(t *testing.T) {
	f := newFixture(t, "\t\tunreachable_for 10m")
	eu2 := newBackend(t, "eu-2")
	f.reg.put("eu-2", "eu-west", eu2.srv.URL, 0.5, false)
	f.waitRouted("eu-2", "eu-west")
	f.reg.put("eu-1", "eu-west", "http://"+freeClosedAddr(t), 0.0, false)
	f.waitListed("eu-1")
	tok := f.pinFor("eu-1", "eu-west")
	marked := unreachableCount(t, f.admin, "eu-1") // process-wide
	body := `{"criticalTaskInProgress":true}`

	r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: tok, body: body})
	if r.status != http.StatusBadGateway || r.pinOut() != "" {
		t.Fatalf("first refresh: %d (pin %v), want 502 and no pin", r.status, r.pinOut() != "")
	}
	assertJSON(t, r.body, map[string]any{"error": "server_unreachable", "server": "eu-1"})
	if n := unreachableCount(t, f.admin, "eu-1") - marked; n != 1 {
		t.Fatalf("sessionpin_unreachable_total{server=eu-1} grew by %v, want 1", n)
	}

	r = f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: tok, body: body})
	if r.status != http.StatusOK || r.server() != "eu-2" || r.pinOut() == "" || r.header.Get("X-Pin-Reason") != "failover" {
		t.Fatalf("second refresh: %d to %q (reason %q, pin %v), want a failover to eu-2",
			r.status, r.server(), r.header.Get("X-Pin-Reason"), r.pinOut() != "")
	}
}

// TestUnreachableRecovers: after unreachable_for, with the server back, one
// request tries it and it is used again, by its pinned clients and by
// placement.
func TestUnreachableRecovers(t *testing.T) {
	f := newFixture(t, "\t\tunreachable_for 1s")
	f.reg.put("eu-2", "eu-west", newBackend(t, "eu-2").srv.URL, 0.5, false)
	f.waitRouted("eu-2", "eu-west")
	addr := freeClosedAddr(t)
	f.reg.put("eu-1", "eu-west", "http://"+addr, 0.0, false)
	f.waitListed("eu-1")
	tok := f.pinFor("eu-1", "eu-west")
	if r := f.do(request{pin: tok}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("pinned to a refusing eu-1: %d, want 503", r.status)
	}
	if r := f.do(request{}); r.server() != "eu-2" {
		t.Fatalf("placed on %q (%d), want eu-2", r.server(), r.status)
	}

	// eu-1 comes back on its address.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on eu-1's address: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "eu-1 is back")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	poll.Until(t, eventuallyTimeout, "eu-1 used again by its pinned client", func() error {
		if r := f.do(request{pin: tok}); r.status != http.StatusOK || r.server() != "eu-1" || r.body != "eu-1 is back" {
			return fmt.Errorf("%d from %q: %s", r.status, r.server(), r.body)
		}
		return nil
	})
	for range 5 {
		if r := f.do(request{}); r.status != http.StatusOK || r.server() != "eu-1" {
			t.Fatalf("placed on %q (%d), want eu-1 again", r.server(), r.status)
		}
	}
	if r := f.do(request{path: "/closestToMe"}); !strings.Contains(r.body, `"closestServerId":"eu-1"`) {
		t.Fatalf("closestToMe: %s, want eu-1", r.body)
	}
}

// TestAppErrorsDoNotMark: a server that answers, even with 500 or 503, is
// reachable; only a failed connection marks it.
func TestAppErrorsDoNotMark(t *testing.T) {
	f := newFixture(t, "\t\tunreachable_for 10m")
	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.0, false)
	f.reg.put("eu-2", "eu-west", newBackend(t, "eu-2").srv.URL, 0.5, false)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("eu-2", "eu-west")
	tok := f.pinFor("eu-1", "eu-west")
	marked := unreachableCount(t, f.admin, "eu-1") // process-wide
	for _, status := range []string{"500", "502", "503", "504"} {
		r := f.do(request{path: "/?status=" + status, pin: tok})
		if strconv.Itoa(r.status) != status || r.header.Get("X-Backend") != "eu-1" {
			t.Fatalf("pinned ?status=%s: %d from %q, want the app's own answer", status, r.status, r.header.Get("X-Backend"))
		}
	}
	if r := f.do(request{pin: tok}); r.status != http.StatusOK || r.server() != "eu-1" {
		t.Fatalf("pinned after app errors: %d from %q, want 200 from eu-1", r.status, r.server())
	}
	for range 5 {
		if r := f.do(request{}); r.server() != "eu-1" {
			t.Fatalf("placed on %q, want eu-1: app errors must not mark it", r.server())
		}
	}
	if n := unreachableCount(t, f.admin, "eu-1") - marked; n != 0 {
		t.Fatalf("sessionpin_unreachable_total{server=eu-1} grew by %v, want 0", n)
	}
}

// blackHole returns a loopback address whose connections time out: a
// listener that never accepts, with its queue already full, so that the
// kernel drops further connection attempts as a firewall that drops would.
func blackHole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 16 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return addr // the queue is full: connecting now times out
		}
		if err != nil {
			t.Fatalf("filling the black hole's queue: %v", err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the kernel kept accepting connections into a full queue")
	return ""
}

// TestUnreachableOnConnectTimeout: a server whose connections time out
// (dropped, not refused) is marked like one that refuses them.
func TestUnreachableOnConnectTimeout(t *testing.T) {
	f := newFixture(t, "")
	err := loadCaddyfile(fmt.Sprintf(`{
	admin %s
	persist_config off
	session_pin {
		etcd %s
		prefix %s
	}
}

http://%s {
	session_pin {
		region eu-west
		key hs256 %s
		hysteresis 0
		slow_start 0
		unreachable_for 10m
	}
	reverse_proxy {
		dynamic session_pin
		transport http {
			dial_timeout 300ms
		}
	}
}
`, f.admin, f.etcd, f.prefix, f.httpAdr, testSecret))
	if err != nil {
		t.Fatal(err)
	}
	f.reg.put("eu-2", "eu-west", newBackend(t, "eu-2").srv.URL, 0.5, false)
	f.waitRouted("eu-2", "eu-west")
	f.reg.put("hole-1", "eu-west", "http://"+blackHole(t), 0.0, false)
	f.waitListed("hole-1")

	r := f.do(request{pin: f.pinFor("hole-1", "eu-west")})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "pinned_server_unavailable") {
		t.Fatalf("pinned to a black hole: %d %s, want 503 pinned_server_unavailable", r.status, r.body)
	}
	if n := unreachableCount(t, f.admin, "hole-1"); n != 1 {
		t.Fatalf("sessionpin_unreachable_total{server=hole-1} = %v, want 1", n)
	}
	for range 5 {
		if r := f.do(request{}); r.server() != "eu-2" {
			t.Fatalf("placed on %q (%d), want eu-2", r.server(), r.status)
		}
	}
}
