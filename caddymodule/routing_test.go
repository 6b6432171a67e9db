package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/internal/poll"
)

// TestRouting covers the routing of ordinary requests against a real
// Caddy, a real etcd and real backends: placement by region and load, pins
// honoured across regions and while draining, no new pin on pinned
// requests, header and cookie, and registry changes reaching routing
// without a restart.
func TestRouting(t *testing.T) {
	f := newFixture(t, "")
	eu1, eu2, us1 := newBackend(t, "eu-1"), newBackend(t, "eu-2"), newBackend(t, "us-1")
	f.reg.put("eu-1", "eu-west", eu1.srv.URL, 0.5, false)
	f.reg.put("eu-2", "eu-west", eu2.srv.URL, 0.2, false)
	f.reg.put("us-1", "us-east", us1.srv.URL, 0.0, false)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("eu-2", "eu-west")
	f.waitRouted("us-1", "us-east")

	var placed string
	t.Run("no pin is placed on the least-loaded server of the edge's region", func(t *testing.T) {
		r := f.do(request{path: "/hello"})
		if r.status != http.StatusOK || r.server() != "eu-2" || !strings.HasPrefix(r.body, "eu-2:") {
			t.Fatalf("got %d server %q body %q, want 200 from eu-2 (us-1 is less loaded but in another region)", r.status, r.server(), r.body)
		}
		placed = r.pinOut()
		if placed == "" {
			t.Fatal("placement issued no X-Session-Pin")
		}
		if got := r.header.Get("X-Session-Server-URL"); got != eu2.srv.URL {
			t.Errorf("X-Session-Server-URL = %q, want %q", got, eu2.srv.URL)
		}
		cookie := r.header.Get("Set-Cookie")
		want := "sessionpin=" + placed + "; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"
		if cookie != want {
			t.Errorf("Set-Cookie = %q, want %q", cookie, want)
		}
		if r.header.Get("X-Session-Server-Changed") != "" {
			t.Error("placement must not say X-Session-Server-Changed")
		}
		if got, want := r.header.Get("X-Pin-Route"), "eu-2 eu-west "+eu2.srv.URL; got != want {
			t.Errorf("placeholders server/region/url = %q, want %q", got, want)
		}
		if got := r.header.Get("X-Pin-Reason"); got != "placement" {
			t.Errorf("{http.session_pin.reason} = %q, want placement", got)
		}
	})

	t.Run("the issued pin keeps the client on its server and issues no new pin", func(t *testing.T) {
		f.reg.put("eu-1", "eu-west", eu1.srv.URL, 0.0, false) // eu-1 is now least loaded
		poll.Until(t, eventuallyTimeout, "eu-1 least loaded", func() error {
			if r := f.do(request{path: "/closestToMe"}); !strings.Contains(r.body, `"eu-1"`) {
				return errString(r.body)
			}
			return nil
		})
		for range 3 {
			r := f.do(request{pin: placed, headers: map[string]string{"X-App": "kept"}})
			if r.server() != "eu-2" || r.status != http.StatusOK {
				t.Fatalf("pinned request went to %q (%d), want eu-2", r.server(), r.status)
			}
			if got := eu2.header(); got.Get("X-Session-Pin") != "" || got.Get("X-App") != "kept" {
				t.Fatalf("the app got X-Session-Pin %q and X-App %q; want the pin kept from it, other headers passed", got.Get("X-Session-Pin"), got.Get("X-App"))
			}
			if r.pinOut() != "" || r.header.Get("Set-Cookie") != "" {
				t.Fatalf("pinned request got a new pin: %v", r.header)
			}
			if got := r.header.Get("X-Pin-Reason"); got != "pinned" {
				t.Fatalf("{http.session_pin.reason} = %q, want pinned", got)
			}
		}
	})

	t.Run("the pin cookie works like the header", func(t *testing.T) {
		r := f.do(request{cookie: placed})
		if r.server() != "eu-2" || r.pinOut() != "" {
			t.Fatalf("cookie pin: server %q new pin %q", r.server(), r.pinOut())
		}
	})

	t.Run("the header wins over the cookie", func(t *testing.T) {
		r := f.do(request{pin: f.pinFor("us-1", "us-east"), cookie: placed})
		if r.server() != "us-1" {
			t.Fatalf("server %q, want us-1 from the header", r.server())
		}
	})

	t.Run("a pin to another region is honoured", func(t *testing.T) {
		r := f.do(request{pin: f.pinFor("us-1", "us-east")})
		if r.status != http.StatusOK || r.server() != "us-1" || !strings.HasPrefix(r.body, "us-1:") {
			t.Fatalf("got %d %q %q, want us-1", r.status, r.server(), r.body)
		}
	})

	t.Run("a pin to a draining server is honoured; new clients avoid it", func(t *testing.T) {
		f.reg.put("eu-1", "eu-west", eu1.srv.URL, 0.0, true)
		poll.Until(t, eventuallyTimeout, "eu-1 draining", func() error {
			if r := f.do(request{path: "/closestToMe"}); !strings.Contains(r.body, `"eu-2"`) {
				return errString(r.body)
			}
			return nil
		})
		r := f.do(request{pin: f.pinFor("eu-1", "eu-west")})
		if r.status != http.StatusOK || r.server() != "eu-1" {
			t.Fatalf("pinned to draining eu-1: got %d %q", r.status, r.server())
		}
		for range 5 {
			if r := f.do(request{}); r.server() != "eu-2" {
				t.Fatalf("new client placed on %q, want eu-2 (eu-1 drains)", r.server())
			}
		}
	})

	t.Run("client-sent session headers change nothing", func(t *testing.T) {
		r := f.do(request{headers: map[string]string{
			"X-Session-Server":     "us-1",
			"X-Session-Server-URL": us1.srv.URL,
			"X-Closest-Server":     "us-1",
			"X-Critical-Task":      "true",
		}})
		if r.server() != "eu-2" || r.pinOut() == "" {
			t.Fatalf("got server %q pin %q, want placement on eu-2", r.server(), r.pinOut())
		}
	})

	t.Run("pinned server gone: 503 with Retry-After and JSON, never proxied", func(t *testing.T) {
		usPin := f.pinFor("us-1", "us-east")
		f.reg.delete("us-1")
		f.waitGone("us-1", "us-east")
		before := us1.hits.Load()
		r := f.do(request{pin: usPin})
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", r.status)
		}
		if got := r.header.Get("Retry-After"); got != "30" {
			t.Errorf("Retry-After = %q, want 30", got)
		}
		if got := r.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		assertJSON(t, r.body, map[string]any{"error": "pinned_server_unavailable", "server": "us-1", "retryAfterSeconds": 30.0})
		if r.pinOut() != "" || r.header.Get("X-Session-Server") != "" {
			t.Errorf("503 carried session headers: %v", r.header)
		}
		if us1.hits.Load() != before {
			t.Error("the request reached the removed server")
		}
	})

	t.Run("no server in the region: placed on the least-loaded anywhere", func(t *testing.T) {
		f.reg.put("us-2", "us-east", newBackend(t, "us-2").srv.URL, 0.7, false)
		f.reg.put("ap-1", "ap-south", newBackend(t, "ap-1").srv.URL, 0.3, false)
		f.reg.delete("eu-2")
		f.reg.delete("eu-1")
		f.waitGone("eu-1", "eu-west")
		f.waitGone("eu-2", "eu-west")
		f.waitRouted("ap-1", "ap-south")
		r := f.do(request{})
		if r.status != http.StatusOK || r.server() != "ap-1" || r.pinOut() == "" {
			t.Fatalf("got %d %q pin %q, want ap-1 with a pin", r.status, r.server(), r.pinOut())
		}
	})

	t.Run("no server at all: 503 no_server_available", func(t *testing.T) {
		f.reg.delete("us-2")
		f.reg.delete("ap-1")
		f.waitGone("ap-1", "ap-south")
		f.waitGone("us-2", "us-east")
		r := f.do(request{path: "/x"})
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "30" {
			t.Fatalf("got %d Retry-After %q, want 503 30", r.status, r.header.Get("Retry-After"))
		}
		assertJSON(t, r.body, map[string]any{"error": "no_server_available"})
	})
}

// TestClosestToMe covers GET /closestToMe: answered by the edge, no-store,
// the server placement would choose, 503 when none.
func TestClosestToMe(t *testing.T) {
	f := newFixture(t, "")
	r := f.do(request{path: "/closestToMe"})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("empty registry: status %d, want 503", r.status)
	}
	assertJSON(t, r.body, map[string]any{"error": "no_server_available"})

	eu2 := newBackend(t, "eu-2")
	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.5, false)
	f.reg.put("eu-2", "eu-west", eu2.srv.URL, 0.1, false)
	f.reg.put("us-1", "us-east", newBackend(t, "us-1").srv.URL, 0.0, false)
	f.waitRouted("eu-2", "eu-west")
	f.waitRouted("eu-1", "eu-west")
	r = f.do(request{path: "/closestToMe"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d body %q", r.status, r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	assertJSON(t, r.body, map[string]any{"closestServerId": "eu-2", "region": "eu-west", "url": eu2.srv.URL, "load": 0.1})
	if eu2.hits.Load() != 1 { // the one waitRouted request
		t.Errorf("closestToMe reached a backend")
	}
	if r.pinOut() != "" {
		t.Error("closestToMe issued a pin")
	}
}

// TestUnreachableServer: a server that is in the registry but refuses
// connections gives a JSON error and never a new pin: 503
// pinned_server_unavailable to its pinned clients, 502 server_unreachable
// to the placed request that found out.
func TestUnreachableServer(t *testing.T) {
	f := newFixture(t, "")
	f.reg.put("dead-1", "eu-west", "http://"+freeClosedAddr(t), 0.1, false)
	tok := f.pinFor("dead-1", "eu-west")
	poll.Until(t, eventuallyTimeout, "dead-1 in the snapshot", func() error {
		r := f.do(request{path: "/closestToMe"})
		if r.status != http.StatusOK {
			return errString(r.body)
		}
		return nil
	})
	// A placed request to an unreachable server gets no pin.
	r := f.do(request{})
	assertJSON(t, r.body, map[string]any{"error": "server_unreachable", "server": "dead-1"})
	if r.status != http.StatusBadGateway || r.server() != "dead-1" || r.pinOut() != "" {
		t.Errorf("placement on a dead server: %d server %q pin %q", r.status, r.server(), r.pinOut())
	}
	r = f.do(request{pin: tok})
	assertJSON(t, r.body, map[string]any{"error": "pinned_server_unavailable", "server": "dead-1", "retryAfterSeconds": 30.0})
	if r.status != http.StatusServiceUnavailable || r.pinOut() != "" {
		t.Errorf("pinned to a dead server: %d pin %q", r.status, r.pinOut())
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// assertJSON checks that body is exactly the JSON object want.
func assertJSON(t *testing.T, body string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	if len(got) != len(want) {
		t.Fatalf("body %s, want %v", body, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("body %s: %s = %v, want %v", body, k, got[k], v)
		}
	}
}
