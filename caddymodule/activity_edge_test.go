package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// activity reads the edge's published activity; ok is false while there
// is none.
func (f *fixture) activity(edgeID string) (schema.Activity, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := f.reg.cli.Get(ctx, schema.EdgeKey(f.reg.prefix, edgeID))
	if err != nil || len(resp.Kvs) == 0 {
		return schema.Activity{}, false, err
	}
	a, err := schema.DecodeActivity(schema.EdgesPrefix(f.reg.prefix), resp.Kvs[0].Key, resp.Kvs[0].Value)
	return a, err == nil, err
}

func TestEdgePublishesPinnedActivity(t *testing.T) {
	f := newFixture(t, "")
	b := newBackend(t, "eu-1")
	f.reg.put("eu-1", "eu-west", b.srv.URL, 0.1, false)
	f.edge.appOpts = "\t\tedge_id edge-test\n\t\tactivity_interval 200ms"
	if err := f.load(""); err != nil {
		t.Fatal(err)
	}
	tok := f.pinFor("eu-1", "eu-west")
	var pinned uint64
	poll.Until(t, eventuallyTimeout, "a pinned request proxied", func() error {
		r := f.do(request{pin: tok})
		if r.status != http.StatusOK {
			return fmt.Errorf("status %d", r.status)
		}
		pinned++
		return nil
	})
	for range 4 {
		if r := f.do(request{pin: tok}); r.status != http.StatusOK {
			t.Fatalf("pinned request: %d %s", r.status, r.body)
		}
		pinned++
	}
	// Placed clients and unknown servers are not pinned activity.
	if r := f.do(request{}); r.status != http.StatusOK {
		t.Fatalf("placement: %d", r.status)
	}
	f.do(request{pin: f.pinFor("gone-1", "eu-west")})

	poll.Until(t, eventuallyTimeout, "the edge's report", func() error {
		a, ok, err := f.activity("edge-test")
		if !ok {
			return fmt.Errorf("no report (%v)", err)
		}
		s := a.Servers["eu-1"]
		if a.Region != "eu-west" || a.Interval() != 200*time.Millisecond || s.Minute != pinned || s.Last.IsZero() || len(a.Servers) != 1 {
			return fmt.Errorf("report %+v, want %d pinned in the minute", a, pinned)
		}
		return nil
	})

	// Bad options fail the config and name the option.
	for bad, opt := range map[string]string{"edge_id a/b": "edge_id", "activity_interval 10ms": "activity_interval", "activity_interval 61m": "activity_interval"} {
		f.edge.appOpts = "\t\t" + bad
		if err := f.load(""); err == nil || !strings.Contains(err.Error(), opt) {
			t.Errorf("%s: error %v", bad, err)
		}
	}
	// The edge's report leaves with it: Caddy's shutdown revokes the lease.
	f.edge.appOpts = ""
	if err := f.load(""); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, eventuallyTimeout, "the report to leave with its edge", func() error {
		if _, ok, _ := f.activity("edge-test"); ok {
			return fmt.Errorf("still there")
		}
		return nil
	})
}
