package discoverysvc

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// runningRegistry is a registry whose watch-fed copy runs until the test
// ends.
func runningRegistry(t *testing.T, c *clientv3.Client) *Registry {
	t.Helper()
	reg := NewRegistry(c, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Run(ctx, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return reg
}

// copyAt waits until reg's copy has server id at mod revision modRev (0:
// until the copy is listed at all).
func copyAt(t *testing.T, reg *Registry, id string, modRev int64) {
	t.Helper()
	poll.True(t, 10*time.Second, "the registry's copy to catch up", func() bool {
		hd, _, ok := reg.heads.get(id)
		return ok && hd.modRev >= modRev
	})
}

// registryWithCopy is a running registry whose copy has been listed, and a
// second etcd client for raw reads and writes behind its back.
func registryWithCopy(t *testing.T) (*Registry, *clientv3.Client) {
	t.Helper()
	m := etcdtest.Start(t)
	reg, raw := runningRegistry(t, etcdtest.NewClient(t, m)), etcdtest.NewClient(t, m)
	copyAt(t, reg, "", 0)
	return reg, raw
}

// heartbeatSeen sends srv's heartbeat through reg and waits until reg's
// copy holds the write, read back through c.
func heartbeatSeen(t *testing.T, reg *Registry, c *clientv3.Client, srv schema.Server, ttl time.Duration) {
	t.Helper()
	if _, err := reg.Heartbeat(testContext(t), srv, ttl); err != nil {
		t.Fatal(err)
	}
	copyAt(t, reg, srv.ID, modRevision(t, c, srv.ID))
}

func modRevision(t *testing.T, c *clientv3.Client, id string) int64 {
	t.Helper()
	get, err := c.Get(testContext(t), schema.ServerKey("", id))
	if err != nil || len(get.Kvs) != 1 {
		t.Fatalf("read %s: %v %v", id, get, err)
	}
	return get.Kvs[0].ModRevision
}

// A replica started after the server registered serves its heartbeats from
// its copy: the lease is renewed, nothing is read or written.
func TestRegistryCopyStartedAfterRegistrationRenewsWithoutReading(t *testing.T) {
	m := etcdtest.Start(t)
	c1 := etcdtest.NewClient(t, m)
	c2, calls := etcdtest.NewCountingClient(t, m)
	ctx := testContext(t)
	srv := testServer("eu-1", "eu", 0.3)
	if _, err := NewRegistry(c1, "").Heartbeat(ctx, srv, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	late := runningRegistry(t, c2)
	copyAt(t, late, "eu-1", modRevision(t, c1, "eu-1"))
	before := currentRevision(t, c1)
	for range 3 {
		srv.Load = 0.31 // below LoadEpsilon: a renewal
		res, err := late.Heartbeat(ctx, srv, 5*time.Second)
		if err != nil || res.Written || res.Created || res.Server.Load != 0.3 {
			t.Fatalf("unchanged heartbeat: %+v %v", res, err)
		}
	}
	if n := calls.OK("Range"); n != 0 {
		t.Errorf("%d heartbeats read etcd with a current copy", n)
	}
	if after := currentRevision(t, c1); after != before {
		t.Fatalf("lease-only heartbeats raised the revision %d -> %d", before, after)
	}
	assertLeaseRenewed(t, c1, "eu-1", 5)
}

// assertLeaseRenewed checks that id's lease has most of its ttl left.
func assertLeaseRenewed(t *testing.T, c *clientv3.Client, id string, ttl int64) {
	t.Helper()
	get, err := c.Get(testContext(t), schema.ServerKey("", id))
	if err != nil || len(get.Kvs) != 1 {
		t.Fatalf("read %s: %v %v", id, get, err)
	}
	left, err := c.TimeToLive(testContext(t), clientv3.LeaseID(get.Kvs[0].Lease))
	if err != nil || left.TTL < ttl-2 {
		t.Fatalf("lease of %s has %d s left (%v), want about %d", id, left.TTL, err, ttl)
	}
}

// A replica that has not listed yet answers like one without a copy.
func TestRegistryCopyNotYetListedReads(t *testing.T) {
	c, calls := etcdtest.NewCountingClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "") // Run not called: the copy stays unlisted
	srv := testServer("eu-1", "eu", 0.3)
	for i := range 2 {
		res, err := reg.Heartbeat(ctx, srv, 5*time.Second)
		if err != nil || res.Created != (i == 0) {
			t.Fatalf("heartbeat %d: %+v %v", i, res, err)
		}
	}
	if n := calls.OK("Range"); n != 2 {
		t.Fatalf("%d reads, want one per heartbeat", n)
	}
}

// A raw etcd write is honoured at once, whether or not the copy has seen
// it: the heartbeat's load differs from what is stored, so it is written.
func TestRegistryCopyHonoursRawWrites(t *testing.T) {
	reg, raw := registryWithCopy(t)
	ctx := testContext(t)
	srv := testServer("eu-1", "eu", 0.3)
	heartbeatSeen(t, reg, raw, srv, 5*time.Second)
	get, err := raw.Get(ctx, schema.ServerKey("", "eu-1"))
	if err != nil {
		t.Fatal(err)
	}
	lease := clientv3.LeaseID(get.Kvs[0].Lease)
	for i, waitForCopy := range []bool{false, true, false, true} {
		put, err := raw.Put(ctx, schema.ServerKey("", "eu-1"), schema.EncodeServer(testServer("eu-1", "eu", 0.9)), clientv3.WithLease(lease))
		if err != nil {
			t.Fatal(err)
		}
		if waitForCopy {
			copyAt(t, reg, "eu-1", put.Header.Revision)
		}
		res, err := reg.Heartbeat(ctx, srv, 5*time.Second)
		if err != nil || !res.Written || res.Server.Load != 0.3 {
			t.Fatalf("round %d: heartbeat over a raw write: %+v %v", i, res, err)
		}
		_, servers, err := reg.List(ctx, "")
		if err != nil || len(servers) != 1 || servers[0].Load != 0.3 {
			t.Fatalf("round %d: stored %+v %v, want load 0.3", i, servers, err)
		}
	}
}

// Two replicas with copies serve one server alternately: every heartbeat
// that moves the load is written, whichever replica wrote the last one and
// however far its copy has got, and unchanged ones write nothing.
func TestRegistryCopyTwoReplicasAlternate(t *testing.T) {
	m := etcdtest.Start(t)
	c1, c2 := etcdtest.NewClient(t, m), etcdtest.NewClient(t, m)
	ctx := testContext(t)
	regs := []*Registry{runningRegistry(t, c1), runningRegistry(t, c2)}
	copyAt(t, regs[0], "", 0)
	copyAt(t, regs[1], "", 0)
	for i := range 20 {
		load := 0.1 + 0.4*float64(i%2)
		res, err := regs[i%2].Heartbeat(ctx, testServer("eu-1", "eu", load), 5*time.Second)
		if err != nil || !res.Written || res.Server.Load != load {
			t.Fatalf("heartbeat %d: %+v %v", i, res, err)
		}
		_, servers, err := regs[(i+1)%2].List(ctx, "")
		if err != nil || len(servers) != 1 || servers[0].Load != load {
			t.Fatalf("heartbeat %d: stored %+v %v, want load %v", i, servers, err, load)
		}
	}
	rev := modRevision(t, c1, "eu-1")
	copyAt(t, regs[0], "eu-1", rev)
	copyAt(t, regs[1], "eu-1", rev)
	before := currentRevision(t, c1)
	for i := range 10 {
		res, err := regs[i%2].Heartbeat(ctx, testServer("eu-1", "eu", 0.5), 5*time.Second)
		if err != nil || res.Written {
			t.Fatalf("unchanged heartbeat %d: %+v %v", i, res, err)
		}
	}
	if after := currentRevision(t, c1); after != before {
		t.Fatalf("lease-only heartbeats raised the revision %d -> %d", before, after)
	}
	assertLeaseRenewed(t, c1, "eu-1", 5)
}

// A TTL change seen through the copy moves the key to a new lease, and a
// lease revoked behind the copy's back is replaced, not renewed in vain.
func TestRegistryCopyLeaseChanges(t *testing.T) {
	reg, raw := registryWithCopy(t)
	ctx := testContext(t)
	srv := testServer("eu-1", "eu", 0.3)
	heartbeatSeen(t, reg, raw, srv, 30*time.Second)
	res, err := reg.Heartbeat(ctx, srv, 5*time.Second)
	if err != nil || !res.Written {
		t.Fatalf("ttl change: %+v %v", res, err)
	}
	assertLeaseRenewed(t, raw, "eu-1", 5)

	get, err := raw.Get(ctx, schema.ServerKey("", "eu-1"))
	if err != nil {
		t.Fatal(err)
	}
	copyAt(t, reg, "eu-1", get.Kvs[0].ModRevision)
	if _, err := raw.Revoke(ctx, clientv3.LeaseID(get.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	res, err = reg.Heartbeat(ctx, srv, 5*time.Second)
	if err != nil || !res.Created {
		t.Fatalf("heartbeat after the lease was revoked: %+v %v", res, err)
	}
	assertLeaseRenewed(t, raw, "eu-1", 5)
}

// In the discovery service one watch serves the fleet page and the
// registry's copy: with a Fleet running, unchanged heartbeats read nothing.
func TestRegistryCopyKeptByTheFleetWatch(t *testing.T) {
	c, calls := etcdtest.NewCountingClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	f := newFleet(fleetConfig{Client: c, Registry: reg})
	fctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(fctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	srv := testServer("eu-1", "eu", 0.3)
	heartbeatSeen(t, reg, c, srv, 5*time.Second)
	reads := calls.OK("Range")
	for range 3 {
		if res, err := reg.Heartbeat(ctx, srv, 5*time.Second); err != nil || res.Written {
			t.Fatalf("unchanged heartbeat: %+v %v", res, err)
		}
	}
	if n := calls.OK("Range") - reads; n != 0 {
		t.Errorf("%d unchanged heartbeats read etcd with the fleet's watch keeping the copy", n)
	}
	// Run does not start a second watch on a copy the fleet keeps.
	rctx, rcancel := context.WithCancel(context.Background())
	rcancel()
	reg.Run(rctx, nil)
}
