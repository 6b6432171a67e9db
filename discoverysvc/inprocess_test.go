package discoverysvc

import (
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// The registry over the in-process client that discovery uses for the etcd
// it embeds: registrations reach a network client (as an edge's), an
// unchanged heartbeat renews the lease by a direct call without a write,
// also when a replica over the network serves every other heartbeat, a
// server that stops heartbeating expires, and every unary call is timed
// for /metrics.
func TestRegistryOverInProcessClient(t *testing.T) {
	m := etcdtest.Start(t)
	var mu sync.Mutex
	calls := map[string]int{}
	in := m.Etcd().InProcessClient(func(call string, d time.Duration) {
		mu.Lock()
		calls[call]++
		mu.Unlock()
	})
	t.Cleanup(func() { in.Close() })
	edge := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	reg := NewRegistry(in.Client, "")
	reg.RenewWith(in.Renew)
	other := NewRegistry(edge, "")

	srv := testServer("eu-1", "eu", 0.3)
	const ttl = 2 * time.Second
	res, err := reg.Heartbeat(ctx, srv, ttl)
	if err != nil || !res.Created {
		t.Fatalf("first heartbeat: %+v, %v", res, err)
	}
	get, err := edge.Get(ctx, schema.ServerKey("", srv.ID))
	if err != nil || len(get.Kvs) != 1 {
		t.Fatalf("a network client does not see the registration: %v, %v", get, err)
	}
	lease := clientv3.LeaseID(get.Kvs[0].Lease)
	before := currentRevision(t, edge)
	// Heartbeats for two lifetimes of the lease, first from this replica
	// alone (the lease lives on only if its direct renewals work), then
	// alternating with a replica over the network; none writes.
	tick := time.NewTicker(ttl / 4)
	defer tick.Stop()
	beat := func(d time.Duration, alternate bool) {
		t.Helper()
		start := time.Now()
		for k := 0; time.Since(start) < d; k++ {
			<-tick.C
			replica := reg
			if alternate && k%2 == 1 {
				replica = other
			}
			res, err := replica.Heartbeat(ctx, srv, ttl)
			if err != nil {
				t.Fatal(err)
			}
			if res.Written || res.Created {
				t.Fatalf("unchanged heartbeat wrote: %+v", res)
			}
		}
	}
	beat(2*ttl, false)
	if left := remainingTTL(t, edge, lease); left <= 0 {
		t.Fatalf("lease has %d s left after %v of in-process heartbeats", left, 2*ttl)
	}
	beat(ttl, true)
	if after := currentRevision(t, edge); after != before {
		t.Fatalf("lease-only heartbeats raised the revision %d -> %d", before, after)
	}
	if left := remainingTTL(t, edge, lease); left <= 0 {
		t.Fatalf("lease has %d s left after heartbeats from both replicas", left)
	}
	poll.True(t, 2*ttl+2*time.Second, "the server gone once its heartbeats stop", func() bool {
		get, err := edge.Get(ctx, schema.ServerKey("", srv.ID))
		return err == nil && len(get.Kvs) == 0
	})

	mu.Lock()
	defer mu.Unlock()
	for _, call := range []string{"Range", "Txn", "LeaseGrant"} {
		if calls[call] == 0 {
			t.Errorf("no %s call timed: %v", call, calls)
		}
	}
}
