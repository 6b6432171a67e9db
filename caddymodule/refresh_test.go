package caddymodule_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRefresh covers POST /auth/refresh: decisions (a)–(d) through
// the JSON body and through the headers, X-Session-Server-Changed, the body
// reaching the app byte for byte, no new pin when the upstream fails, and
// the refresh grace for expired pins.
func TestRefresh(t *testing.T) {
	f := newFixture(t, "hysteresis 0.1")
	servers := []struct {
		id, region string
		load       float64
		draining   bool
	}{
		{"eu-1", "eu-west", 0.25, false}, // within hysteresis of eu-2
		{"eu-2", "eu-west", 0.2, false},
		{"eu-3", "eu-west", 0.9, false}, // overloaded
		{"us-1", "us-east", 0.1, false},
		{"us-d", "us-east", 0.0, true},
	}
	backends := map[string]*backend{}
	for _, s := range servers {
		backends[s.id] = newBackend(t, s.id)
		f.reg.put(s.id, s.region, backends[s.id].srv.URL, s.load, s.draining)
	}
	for _, s := range servers {
		f.waitRouted(s.id, s.region)
	}

	now := time.Now()
	issue := func(id, region string, iat time.Time, ttl time.Duration) string {
		tok, err := f.keys.Issue(id, region, iat, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := func(id, region string) string { return issue(id, region, now, time.Hour) }
	euPlacement := []string{"eu-1", "eu-2"}

	type input struct {
		closest  string
		critical string // "", "true", "false"
	}
	cases := []struct {
		name        string
		pin         string
		in          input
		wantServers []string
		wantChanged bool
		wantReason  string
	}{
		{"a: critical keeps current", valid("eu-3", "eu-west"), input{"us-1", "true"}, []string{"eu-3"}, false, "refresh_keep"},
		{"a: critical keeps a draining current", valid("us-d", "us-east"), input{"eu-2", "true"}, []string{"us-d"}, false, "refresh_keep"},
		{"b: current gone moves to C even when critical", valid("gone-1", "eu-west"), input{"us-1", "true"}, []string{"us-1"}, true, "failover"},
		{"b: current gone, C draining: least-loaded of C's region", valid("gone-1", "eu-west"), input{"us-d", "false"}, []string{"us-1"}, true, "failover"},
		{"c: same region within hysteresis keeps current", valid("eu-1", "eu-west"), input{"eu-2", "false"}, []string{"eu-1"}, false, "refresh_keep"},
		{"c: same region, current overloaded, moves to the least loaded", valid("eu-3", "eu-west"), input{"eu-2", ""}, euPlacement, true, "refresh_move"},
		{"c: C in another region moves to C", valid("eu-1", "eu-west"), input{"us-1", "false"}, []string{"us-1"}, true, "refresh_move"},
		{"c: C in another region and draining: its region's least loaded", valid("eu-1", "eu-west"), input{"us-d", ""}, []string{"us-1"}, true, "refresh_move"},
		{"d: no pin is placement in the edge's region, whatever C", "", input{"us-1", "false"}, euPlacement, false, "placement"},
		{"d: no pin, no inputs", "", input{}, euPlacement, false, "placement"},
		{"expired within refresh_grace still counts", issue("eu-3", "eu-west", now.Add(-2*time.Hour), time.Hour), input{"", "true"}, []string{"eu-3"}, false, "refresh_keep"},
		{"expired beyond refresh_grace is no pin", issue("eu-3", "eu-west", now.Add(-800*time.Hour), time.Hour), input{"", "true"}, euPlacement, false, "placement"},
	}
	for _, c := range cases {
		for _, via := range []string{"body", "headers"} {
			t.Run(c.name+" via "+via, func(t *testing.T) {
				req := request{method: http.MethodPost, path: "/auth/refresh", pin: c.pin, headers: map[string]string{}}
				if via == "body" {
					var fields []string
					if c.in.closest != "" {
						fields = append(fields, `"closestServerId": "`+c.in.closest+`"`)
					}
					if c.in.critical != "" {
						fields = append(fields, `"criticalTaskInProgress": `+c.in.critical)
					}
					fields = append(fields, `"refreshToken": "app-owned ✓"`)
					req.body = "{ " + strings.Join(fields, ",\n ") + " }"
					// Headers saying the opposite must lose to the body.
					req.headers["X-Closest-Server"] = "eu-3"
					if c.in.critical == "true" {
						req.headers["X-Critical-Task"] = "false"
					}
				} else {
					req.body = "refresh_token=app-owned"
					if c.in.closest != "" {
						req.headers["X-Closest-Server"] = c.in.closest
					}
					if c.in.critical != "" {
						req.headers["X-Critical-Task"] = c.in.critical
					}
				}
				r := f.do(req)
				if r.status != http.StatusOK {
					t.Fatalf("status %d body %q", r.status, r.body)
				}
				if !slices.Contains(c.wantServers, r.server()) {
					t.Fatalf("refresh went to %q, want one of %v", r.server(), c.wantServers)
				}
				if r.pinOut() == "" {
					t.Fatal("refresh answered below 500 but issued no pin")
				}
				p, err := f.keys.Verify(r.pinOut())
				if err != nil || p.Server != r.server() {
					t.Fatalf("new pin %+v (%v) does not name %s", p, err, r.server())
				}
				if got := r.header.Get("X-Session-Server-Changed") == "1"; got != c.wantChanged {
					t.Errorf("X-Session-Server-Changed present = %v, want %v", got, c.wantChanged)
				}
				if got := r.header.Get("X-Pin-Reason"); got != c.wantReason {
					t.Errorf("{http.session_pin.reason} = %q, want %q", got, c.wantReason)
				}
				if got, want := r.header.Get("X-Pin-Moved"), strconv.FormatBool(c.wantChanged); got != want {
					t.Errorf("{http.session_pin.moved} = %q, want %q", got, want)
				}
				if got := backends[r.server()].body(); got != req.body {
					t.Errorf("app received body %q, want byte for byte %q", got, req.body)
				}
			})
		}
	}

	t.Run("upstream 5xx: no new pin", func(t *testing.T) {
		r := f.do(request{method: http.MethodPost, path: "/auth/refresh?status=502", pin: valid("eu-1", "eu-west"), body: `{"criticalTaskInProgress":true}`})
		if r.status != http.StatusBadGateway || r.server() != "eu-1" {
			t.Fatalf("got %d from %q, want the app's 502 from eu-1", r.status, r.server())
		}
		if r.pinOut() != "" || r.header.Get("Set-Cookie") != "" || r.header.Get("X-Session-Server-Changed") != "" {
			t.Fatalf("5xx refresh carried a new pin: %v", r.header)
		}
	})

	t.Run("upstream 4xx still re-pins", func(t *testing.T) {
		r := f.do(request{method: http.MethodPost, path: "/auth/refresh?status=401", pin: valid("eu-3", "eu-west"), body: `{"closestServerId":"us-1"}`})
		if r.status != http.StatusUnauthorized || r.server() != "us-1" || r.pinOut() == "" || r.header.Get("X-Session-Server-Changed") != "1" {
			t.Fatalf("got %d from %q pin %q changed %q", r.status, r.server(), r.pinOut(), r.header.Get("X-Session-Server-Changed"))
		}
	})

	hitsNow := func() int64 {
		var n int64
		for _, b := range backends {
			n += b.hits.Load()
		}
		return n
	}

	t.Run("bad input: 400 naming the field, nothing proxied", func(t *testing.T) {
		for _, bad := range []struct {
			body    string
			headers map[string]string
			field   string
		}{
			{`{"closestServerId": 5}`, nil, "closestServerId"},
			{`{"closestServerId": "127.0.0.1:9"}`, nil, "closestServerId"},
			{`{"criticalTaskInProgress": "yes"}`, nil, "criticalTaskInProgress"},
			{``, map[string]string{"X-Critical-Task": "maybe"}, "X-Critical-Task"},
			{``, map[string]string{"X-Closest-Server": "../etc"}, "X-Closest-Server"},
		} {
			before := hitsNow()
			r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: valid("eu-1", "eu-west"), body: bad.body, headers: bad.headers})
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, bad.field) || !strings.Contains(r.body, `"error"`) {
				t.Errorf("body %q headers %v: got %d %q, want 400 naming %s", bad.body, bad.headers, r.status, r.body, bad.field)
			}
			if hitsNow() != before || r.pinOut() != "" {
				t.Errorf("bad refresh was proxied or pinned")
			}
		}
	})

	t.Run("oversized body: 413, nothing proxied", func(t *testing.T) {
		before := hitsNow()
		r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: valid("eu-1", "eu-west"), body: `{"pad":"` + strings.Repeat("x", 64<<10) + `"}`})
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, `"error"`) {
			t.Fatalf("got %d %q, want 413 JSON", r.status, r.body)
		}
		if hitsNow() != before {
			t.Fatal("oversized refresh was proxied")
		}
	})

	t.Run("a body of exactly 64 KiB is read and passed on", func(t *testing.T) {
		prefix := `{"criticalTaskInProgress":true,"pad":"`
		body := prefix + strings.Repeat("y", 64<<10-len(prefix)-2) + `"}`
		r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: valid("eu-3", "eu-west"), body: body})
		if r.status != http.StatusOK || r.server() != "eu-3" || backends["eu-3"].body() != body {
			t.Fatalf("got %d from %q, body passed intact: %v", r.status, r.server(), backends["eu-3"].body() == body)
		}
	})

	t.Run("GET on the refresh path is an ordinary request", func(t *testing.T) {
		r := f.do(request{path: "/auth/refresh", pin: valid("eu-3", "eu-west"), headers: map[string]string{"X-Closest-Server": "us-1"}})
		if r.server() != "eu-3" || r.pinOut() != "" {
			t.Fatalf("got %q pin %q", r.server(), r.pinOut())
		}
	})
}
