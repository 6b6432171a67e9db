package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// putData writes a server that declares its write origin and its lag
// behind the other origin (a negative lag is unknown progress).
func (r *registry) putData(id, region, url, other string, lag time.Duration) {
	r.t.Helper()
	p := schema.Progress{LagMS: lag.Milliseconds()}
	if lag < 0 {
		p = schema.Progress{Unknown: true}
	}
	etcdtest.PutServer(r.t, r.cli, r.prefix, schema.Server{ID: id, Region: region, URL: url, Load: 0.1,
		Origin: region, Progress: map[string]schema.Progress{other: p}})
}

// wrotePin is a pin for id carrying a write at origin, at.
func (f *fixture) wrotePin(id, region, origin string, at time.Time) string {
	f.t.Helper()
	now := time.Now()
	tok, err := f.keys.Sign(pin.Pin{Server: id, Region: region, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		LastWrite: pin.Write{At: at, Origin: origin}})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// TestWriteIsRecordedInThePin: a write (an unsafe method answered below
// 500) to a server that declares its origin comes back with the client's
// pin re-signed: same server and times, the write's time and origin. A
// read, a failed write, and a write to a server that takes no part get no
// new pin.
func TestWriteIsRecordedInThePin(t *testing.T) {
	f := newFixture(t, "")
	f.reg.putData("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, "us-east", 0)
	f.reg.put("eu-p", "eu-west", newBackend(t, "eu-p").srv.URL, 0.1, false)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("eu-p", "eu-west")
	poll.Until(t, eventuallyTimeout, "the edge to see eu-1's origin", func() error {
		if r := f.do(request{method: http.MethodPost, pin: f.pinFor("eu-1", "eu-west")}); r.pinOut() == "" {
			return fmt.Errorf("no pin on a write (status %d)", r.status)
		}
		return nil
	})

	old := f.pinFor("eu-1", "eu-west")
	was, err := f.keys.Verify(old)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	r := f.do(request{method: http.MethodPut, path: "/orders/1", pin: old, body: "x"})
	if r.status != http.StatusOK || r.pinOut() == "" {
		t.Fatalf("write: status %d, pin %q", r.status, r.pinOut())
	}
	got, err := f.keys.Verify(r.pinOut())
	if err != nil {
		t.Fatal(err)
	}
	if got.Server != "eu-1" || !got.IssuedAt.Equal(was.IssuedAt) || !got.ExpiresAt.Equal(was.ExpiresAt) {
		t.Errorf("re-signed pin %+v changed the server or times of %+v", got, was)
	}
	if got.LastWrite.Origin != "eu-west" || got.LastWrite.At.Before(before.Truncate(time.Millisecond)) || got.LastWrite.At.After(time.Now()) {
		t.Errorf("last write %+v, want eu-west between %s and now", got.LastWrite, before)
	}
	if c := r.header.Values("Set-Cookie"); len(c) != 1 {
		t.Errorf("Set-Cookie %q, want the re-signed pin", c)
	}
	for name, req := range map[string]request{
		"a read":                              {pin: old},
		"a write the app failed":              {method: http.MethodPost, path: "/?status=503", pin: old},
		"a write to a server not taking part": {method: http.MethodPost, pin: f.pinFor("eu-p", "eu-west")},
	} {
		if r := f.do(req); r.pinOut() != "" {
			t.Errorf("%s: status %d came with a new pin", name, r.status)
		}
	}
}

// TestRefreshHeldUntilCaughtUp: a refresh that would move a client to a
// server whose copy lags the client's last write keeps the client (and
// says why); once the server reports that it caught up, the same refresh
// moves the client.
func TestRefreshHeldUntilCaughtUp(t *testing.T) {
	f := newFixture(t, "\t\tclock_skew 100ms")
	eu, us := newBackend(t, "eu-1"), newBackend(t, "us-1")
	f.reg.putData("eu-1", "eu-west", eu.srv.URL, "us-east", 0)
	f.reg.putData("us-1", "us-east", us.srv.URL, "eu-west", time.Hour)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("us-1", "us-east")
	tok := f.wrotePin("eu-1", "eu-west", "eu-west", time.Now())
	refresh := request{method: http.MethodPost, path: "/auth/refresh", pin: tok,
		headers: map[string]string{"X-Closest-Server": "us-1", "X-Critical-Task": "false"}}

	before := scrape(t, f.admin)
	poll.Until(t, eventuallyTimeout, "a held move", func() error {
		r := f.do(refresh)
		if r.server() != "eu-1" || r.header.Get("X-Session-Hold") != "catching_up" || r.header.Get("X-Session-Server-Changed") != "" {
			return fmt.Errorf("status %d server %q hold %q", r.status, r.server(), r.header.Get("X-Session-Hold"))
		}
		p, err := f.keys.Verify(r.pinOut())
		if err != nil || p.Server != "eu-1" || p.LastWrite.Origin != "eu-west" {
			return fmt.Errorf("kept pin %+v (%v) lost the server or the write", p, err)
		}
		return nil
	})
	if d := counterDelta(t, f, before, `sessionpin_moves_held_total{outcome="kept"}`); d < 1 {
		t.Errorf("moves held (kept) rose by %v, want at least 1", d)
	}

	f.reg.putData("us-1", "us-east", us.srv.URL, "eu-west", 0)
	poll.Until(t, eventuallyTimeout, "the move once us-1 caught up", func() error {
		r := f.do(refresh)
		if r.server() != "us-1" || r.header.Get("X-Session-Hold") != "" || r.header.Get("X-Session-Server-Changed") != "1" {
			return fmt.Errorf("status %d server %q hold %q", r.status, r.server(), r.header.Get("X-Session-Hold"))
		}
		p, err := f.keys.Verify(r.pinOut())
		if err != nil || p.Server != "us-1" || p.LastWrite.Origin != "eu-west" {
			return fmt.Errorf("new pin %+v (%v): want us-1 carrying the write", p, err)
		}
		return nil
	})
}

// TestFailoverWaitsForCatchUp: when the pinned server is gone and no server
// holds the client's last write, the refresh answers 503 catching_up with
// a Retry-After from the expected catch-up; once a server catches up the
// client moves there. Past catch_up_limit, an unknown progress no longer
// holds the client, and the move is counted as unsafe.
func TestFailoverWaitsForCatchUp(t *testing.T) {
	f := newFixture(t, "\t\tclock_skew 100ms\n\t\tcatch_up_limit 3s")
	us := newBackend(t, "us-1")
	f.reg.putData("us-1", "us-east", us.srv.URL, "eu-west", 20*time.Second)
	f.waitRouted("us-1", "us-east")
	poll.Until(t, eventuallyTimeout, "the edge to see us-1's lag", func() error {
		r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: f.wrotePin("gone", "eu-west", "eu-west", time.Now())})
		if r.status != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d server %q", r.status, r.server())
		}
		return nil
	})

	before := scrape(t, f.admin)
	r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: f.wrotePin("gone", "eu-west", "eu-west", time.Now())})
	secs, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != http.StatusServiceUnavailable || !jsonHas(r.body, "error", "catching_up") || !jsonHas(r.body, "server", "gone") || secs < 19 || secs > 21 {
		t.Fatalf("status %d Retry-After %q body %s, want 503 catching_up about 20s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r.pinOut() != "" {
		t.Error("a 503 came with a new pin")
	}
	if d := counterDelta(t, f, before, `sessionpin_moves_held_total{outcome="wait"}`); d != 1 {
		t.Errorf("moves held (wait) rose by %v, want 1", d)
	}

	f.reg.putData("us-1", "us-east", us.srv.URL, "eu-west", 0)
	poll.Until(t, eventuallyTimeout, "the failover once us-1 caught up", func() error {
		r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: f.wrotePin("gone", "eu-west", "eu-west", time.Now().Add(-200*time.Millisecond))})
		if r.status != http.StatusOK || r.server() != "us-1" || r.header.Get("X-Pin-Reason") != "failover" {
			return fmt.Errorf("status %d server %q reason %q", r.status, r.server(), r.header.Get("X-Pin-Reason"))
		}
		if r.header.Get("X-Session-Unsafe-Move") != "" {
			return fmt.Errorf("a safe move announced as unsafe")
		}
		return nil
	})

	// Unknown progress: held within the limit, moved (unsafe) past it.
	f.reg.putData("us-1", "us-east", us.srv.URL, "eu-west", -1)
	poll.Until(t, eventuallyTimeout, "the edge to see us-1's unknown progress", func() error {
		r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: f.wrotePin("gone", "eu-west", "eu-west", time.Now())})
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "30" {
			return fmt.Errorf("status %d Retry-After %q, want 503 with retry_after's 30", r.status, r.header.Get("Retry-After"))
		}
		return nil
	})
	before = scrape(t, f.admin)
	r = f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: f.wrotePin("gone", "eu-west", "eu-west", time.Now().Add(-4*time.Second))})
	if r.status != http.StatusOK || r.server() != "us-1" {
		t.Fatalf("past the limit: status %d server %q, want the move", r.status, r.server())
	}
	if r.header.Get("X-Session-Unsafe-Move") != "1" || r.header.Get("X-Session-Server-Changed") != "1" {
		t.Errorf("the unsafe move is not announced: X-Session-Unsafe-Move %q, X-Session-Server-Changed %q",
			r.header.Get("X-Session-Unsafe-Move"), r.header.Get("X-Session-Server-Changed"))
	}
	if d := counterDelta(t, f, before, `sessionpin_unsafe_moves_total`); d != 1 {
		t.Errorf("unsafe moves rose by %v, want 1", d)
	}
}

// TestCatchUpOff: with catch_up_limit 0, writes are not recorded and moves
// ignore progress, as before data-aware moves.
func TestCatchUpOff(t *testing.T) {
	f := newFixture(t, "\t\tcatch_up_limit 0")
	eu, us := newBackend(t, "eu-1"), newBackend(t, "us-1")
	f.reg.putData("eu-1", "eu-west", eu.srv.URL, "us-east", 0)
	f.reg.putData("us-1", "us-east", us.srv.URL, "eu-west", time.Hour)
	f.waitRouted("eu-1", "eu-west")
	f.waitRouted("us-1", "us-east")
	if r := f.do(request{method: http.MethodPost, pin: f.pinFor("eu-1", "eu-west")}); r.pinOut() != "" {
		t.Error("a write was recorded with data-aware moves off")
	}
	r := f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: f.wrotePin("eu-1", "eu-west", "eu-west", time.Now()),
		headers: map[string]string{"X-Closest-Server": "us-1", "X-Critical-Task": "false"}})
	if r.server() != "us-1" || r.header.Get("X-Session-Hold") != "" {
		t.Errorf("refresh went to %q (hold %q), want the move to us-1", r.server(), r.header.Get("X-Session-Hold"))
	}
}

// counterDelta is how much a counter of the edge's /metrics rose since
// before (absent counts as 0).
func counterDelta(t *testing.T, f *fixture, before, series string) float64 {
	t.Helper()
	now, _ := metrictest.Value(scrape(t, f.admin), series)
	was, _ := metrictest.Value(before, series)
	return now - was
}

// jsonHas reports whether body is a JSON object whose key is the string v.
func jsonHas(body, key, v string) bool {
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		return false
	}
	return m[key] == v
}

// TestOldViewHoldsProgress: an edge cut off from etcd cannot see a server's
// copy fall behind, so once its view is older than two of the watch's
// progress intervals it counts the progress it last saw as of then, not
// now: a write made after that is covered by no one, and a write made
// before it still is. Healed, the edge trusts its view again.
func TestOldViewHoldsProgress(t *testing.T) {
	m := etcdtest.Start(t)
	proxy := etcdtest.StartCutProxy(t, m.Client)
	prefix := "/" + t.Name() + "/"
	f := &fixture{reg: &registry{t: t, cli: etcdtest.NewClient(t, m), prefix: prefix}, member: m, keys: testKeyring(t)}
	f.edge = startEdge(t, proxy.Addr(), prefix, "\t\tclock_skew 100ms\n\t\tcatch_up_limit 5m\n\t\thysteresis 0\n\t\tslow_start 0")
	us := newBackend(t, "us-1")
	f.reg.putData("us-1", "us-east", us.srv.URL, "eu-west", 0)
	f.waitRouted("us-1", "us-east")

	refresh := func(wrote time.Time) response {
		return f.do(request{method: http.MethodPost, path: "/auth/refresh", pin: f.wrotePin("gone", "eu-west", "eu-west", wrote)})
	}
	if r := refresh(time.Now().Add(-time.Second)); r.status != http.StatusOK || r.server() != "us-1" {
		t.Fatalf("with a current view: status %d server %q, want the failover to us-1", r.status, r.server())
	}

	cut := time.Now()
	proxy.Cut()
	poll.Until(t, 45*time.Second, "the cut edge to stop trusting new progress", func() error {
		r := refresh(time.Now().Add(-time.Second))
		if r.status != http.StatusServiceUnavailable || !jsonHas(r.body, "error", "catching_up") || r.header.Get("Retry-After") != "30" {
			return fmt.Errorf("status %d Retry-After %q body %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		return nil
	})
	if r := refresh(cut.Add(-10 * time.Second)); r.status != http.StatusOK || r.server() != "us-1" {
		t.Errorf("a write made before the view's confirmation: status %d server %q, want the failover", r.status, r.server())
	}

	proxy.Heal()
	poll.Until(t, 45*time.Second, "the healed edge to trust its view again", func() error {
		if r := refresh(time.Now().Add(-time.Second)); r.status != http.StatusOK || r.server() != "us-1" {
			return fmt.Errorf("status %d server %q", r.status, r.server())
		}
		return nil
	})
}
