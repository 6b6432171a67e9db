package walkthrough

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/examples/internal/demostack"
)

// TestDemo runs against a real stack: embedded etcd, the discovery API, four
// demo backends with agents and a real Caddy with two edges. Replication is
// slowed to an hour, so any hop in the middle of a workflow shows.
func TestDemo(t *testing.T) {
	st := demostack.Start(t, demostack.Options{})

	// Without pinning the workflow breaks: this is what the demo proves.
	t.Run("HopBreaksWorkflow", func(t *testing.T) { testHopBreaksWorkflow(t, st) })
	t.Run("Walkthrough", func(t *testing.T) { testWalkthrough(t, st) })
}

func testWalkthrough(t *testing.T, st *demostack.Stack) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := Run(ctx, Config{EdgeA: st.EdgeA, EdgeB: st.EdgeB, Discovery: st.Discovery, Admins: st.Admins, Fast: true, Out: &out})
	t.Logf("timeline:\n%s", out.String())
	if err != nil {
		t.Fatalf("walkthrough failed: %v", err)
	}
	for _, want := range []string{
		"pinned to ",
		"edge B (another region) proxied to",
		"stayed on ",
		"the workflow never hopped",
		ServerChangedMessage,
		"although it is draining",
		"the drain did not cut the workflow",
		"drained: true",
		"--wait --quiet 6s` returns",
		"takes new clients again",
		"503 pinned_server_unavailable",
		"Reconnecting…",
		"back in business",
		"All steps passed.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	// The stopped server was brought back and registers again.
	for id := range st.Backends {
		st.WaitRegistered(t, id, true)
	}
}

func testHopBreaksWorkflow(t *testing.T, st *demostack.Stack) {
	ctx := context.Background()
	s := &session{client: http.DefaultClient}
	r, err := s.call(ctx, "POST", st.EdgeA+"/auth/login", map[string]any{"user": "bob"})
	if err != nil || r.status != 200 {
		t.Fatalf("login: %v %+v", err, r)
	}
	s.access = r.str("accessToken")
	pinned := s.server
	if st.Backends[pinned].Region != "eu-west" {
		t.Fatalf("login through the eu-west edge pinned to %s", pinned)
	}
	r, err = s.call(ctx, "POST", st.EdgeA+"/orders", nil)
	if err != nil || r.status != 201 || r.servedBy != pinned {
		t.Fatalf("create order: %v %+v", err, r)
	}
	id := r.str("id")

	// Step 2 sent straight to another server of the same region.
	var other *demostack.Backend
	for _, b := range st.Backends {
		if b.ID != pinned && b.Region == st.Backends[pinned].Region {
			other = b
		}
	}
	hop := &session{client: http.DefaultClient, access: s.access}
	r, err = hop.call(ctx, "POST", other.URL+"/orders/"+id+"/items", map[string]any{"sku": "tea", "qty": 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusNotFound || r.servedBy != other.ID || r.str("error") != "order_not_found" ||
		!strings.Contains(r.str("message"), "not found on "+other.ID+": replication lag") {
		t.Fatalf("step on %s: want 404 order_not_found, got %s", other.ID, r.describe())
	}

	// Step 2 through the other region's edge without the pin, as plain geo
	// routing would send it: placed on a server that has not got the order.
	r, err = hop.call(ctx, "POST", st.EdgeB+"/orders/"+id+"/items", map[string]any{"sku": "tea", "qty": 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusNotFound || r.servedBy == pinned {
		t.Fatalf("unpinned step via edge B: want 404 from another server, got %s", r.describe())
	}

	// With the pin, the same step through the same edge works.
	r, err = s.call(ctx, "POST", st.EdgeB+"/orders/"+id+"/items", map[string]any{"sku": "tea", "qty": 1})
	if err != nil || r.status != 200 || r.servedBy != pinned {
		t.Fatalf("pinned step via edge B: %v %s", err, r.describe())
	}
	if items, _ := r.body["items"].([]any); len(items) != 1 {
		t.Fatalf("order after pinned step: %v", r.body)
	}
}
