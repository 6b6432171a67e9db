package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// putSized writes a record with a capacity and a limit straight into etcd.
func (r *registry) putSized(id, region, url string, load, capacity, limit float64) {
	r.t.Helper()
	v, err := json.Marshal(schema.Server{ID: id, Region: region, URL: url, Load: load, Capacity: capacity, Limit: limit})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.cli.Put(ctx, schema.ServerKey(r.prefix, id), string(v)); err != nil {
		r.t.Fatalf("put %s: %v", id, err)
	}
}

// limitFixture is an edge of eu-west (with opts) whose fallback, us-east,
// has one server, us-1, routed; eu-1, the eu-west server the tests put
// with a limit, is the returned backend.
func limitFixture(t *testing.T, opts string) (*fixture, *backend) {
	f := newFixture(t, "\t\tfallback_regions us-east\n\t\tslow_start 0"+opts)
	eu, us := newBackend(t, "eu-1"), newBackend(t, "us-1")
	f.reg.put("us-1", "us-east", us.srv.URL, 0.9, false)
	f.waitRouted("us-1", "us-east")
	return f, eu
}

// TestLimitSendsToFallback: the edge counts the clients it places on a
// server between load reports; once that count brings the server to its
// limit, new clients and /closestToMe go to the fallback region although
// the server's report still says load 0, and the server's next report
// starts the count again.
func TestLimitSendsToFallback(t *testing.T) {
	f, eu := limitFixture(t, "")
	// Capacity 4, limit 0.5: two placements by this edge reach it.
	f.reg.putSized("eu-1", "eu-west", eu.srv.URL, 0, 4, 0.5)
	f.waitListed("eu-1")

	// The edge forgets a placement a few seconds later, so on a slow
	// machine the count may fall back below the limit: try again until
	// the fallback is seen right after the limit was reached.
	poll.Until(t, eventuallyTimeout, "new clients sent to the fallback at the limit", func() error {
		var placed []string
		for range 3 {
			r := f.do(request{})
			if r.status != http.StatusOK {
				return fmt.Errorf("placement answered %d: %s", r.status, r.body)
			}
			placed = append(placed, r.server())
		}
		c := f.do(request{path: "/closestToMe"})
		if placed[0] != "eu-1" || placed[2] != "us-1" || !strings.Contains(c.body, `"closestServerId":"us-1"`) {
			return fmt.Errorf("placed on %v, closest %s", placed, c.body)
		}
		return nil
	})

	// A new load report is a new count, once the placements made in the
	// second before it arrived (which it may not include yet) are too old
	// to count.
	f.reg.putSized("eu-1", "eu-west", eu.srv.URL, 0.01, 4, 0.5)
	poll.Until(t, eventuallyTimeout, "the region's server again after its report", func() error {
		if r := f.do(request{}); r.server() != "eu-1" {
			return fmt.Errorf("placed on %q", r.server())
		}
		return nil
	})
}

// TestLimitExpectsOtherEdges: a load that rose between two reports by more
// than this edge placed there is other edges placing; the edge expects as
// many again before the next report, so the server is at its limit for
// new clients and /closestToMe before its report says so, and takes them
// again once that expectation is too old to hold.
func TestLimitExpectsOtherEdges(t *testing.T) {
	f, eu := limitFixture(t, "")
	closest := func(want string) func() error {
		return func() error {
			c := f.do(request{path: "/closestToMe"})
			if !strings.Contains(c.body, want) {
				return fmt.Errorf("closest %s, want %s", c.body, want)
			}
			return nil
		}
	}
	// The two reports must reach the edge within PlacedMaxAge of each
	// other for the rise to tell: put the second as soon as the edge shows
	// the first.
	f.reg.putSized("eu-1", "eu-west", eu.srv.URL, 0.1, 10, 0.5)
	poll.Until(t, eventuallyTimeout, "eu-1 closest at load 0.1", closest(`"closestServerId":"eu-1","region":"eu-west","url":"`+eu.srv.URL+`","load":0.1}`))

	// Two clients more that this edge did not place: with two more
	// expected, 0.3 + 0.2 reaches the limit of 0.5.
	f.reg.putSized("eu-1", "eu-west", eu.srv.URL, 0.3, 10, 0.5)
	poll.Until(t, eventuallyTimeout, "the fallback while others are expected to fill eu-1", closest(`"closestServerId":"us-1"`))
	poll.Until(t, eventuallyTimeout, "eu-1 again once the expectation is old", closest(`"closestServerId":"eu-1"`))
}

// TestLimitEdgesKeepsRoom: with limit_edges 3, the edge keeps room below a
// server's limit for two other edges placing as many clients as it did, so
// it stops placing there well before its own count reaches the limit.
func TestLimitEdgesKeepsRoom(t *testing.T) {
	f, eu := limitFixture(t, "\n\t\tlimit_edges 3")
	// 2 clients of a limit of 5: room for one placement by each of three
	// edges (2 + 3 = 5), not for a second by this one.
	f.reg.putSized("eu-1", "eu-west", eu.srv.URL, 0.2, 10, 0.5)
	f.waitListed("eu-1")
	// Nothing was placed yet (waitListed sends no client), so the count
	// is known: the first client goes to eu-1, the second may not.
	var placed []string
	for range 2 {
		r := f.do(request{})
		if r.status != http.StatusOK {
			t.Fatalf("placement answered %d: %s", r.status, r.body)
		}
		placed = append(placed, r.server())
	}
	if placed[0] != "eu-1" || placed[1] != "us-1" {
		t.Fatalf("placed on %v, want eu-1 then us-1", placed)
	}
}

// TestNewServerRamps: a server that joins while the edge runs takes only
// its slow-start share of new clients at first, however idle it reports
// itself.
func TestNewServerRamps(t *testing.T) {
	// eu-1 is registered before the edge starts: in its first list, so
	// established.
	m := etcdtest.Start(t)
	prefix := "/" + t.Name() + "/"
	f := &fixture{reg: &registry{t: t, cli: etcdtest.NewClient(t, m), prefix: prefix}, member: m}
	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.5, false)
	f.edge = startEdge(t, m.Client, prefix, "\t\tslow_start 1h\n\t\thysteresis 0")
	f.keys = testKeyring(t)
	f.waitRouted("eu-1", "eu-west")
	f.reg.put("eu-2", "eu-west", newBackend(t, "eu-2").srv.URL, 0, false)
	poll.Until(t, eventuallyTimeout, "eu-2 listed", func() error {
		for range 50 {
			if r := f.do(request{path: "/closestToMe"}); strings.Contains(r.body, `"eu-2"`) {
				return nil
			}
		}
		return errString("eu-2 never answered as closest")
	})
	// Its ramp starts at a tenth: of 200 new clients it takes about 9%
	// (0.1 / 1.1), where least loaded alone would give it all.
	n := 0
	for range 200 {
		if r := f.do(request{}); r.server() == "eu-2" {
			n++
		}
	}
	if n == 0 || n > 50 {
		t.Fatalf("the joining server took %d of 200 new clients, want some but no more than a quarter", n)
	}
}
