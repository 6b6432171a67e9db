package discoverysvc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testServer(id, region string, load float64) schema.Server {
	return schema.Server{ID: id, Region: region, URL: "http://127.0.0.1:9001", Load: load}
}

// currentRevision reads the etcd store revision.
func currentRevision(t *testing.T, c *clientv3.Client) int64 {
	t.Helper()
	resp, err := c.Get(testContext(t), "revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func TestRegistryRegisterHeartbeatListDeregister(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")

	res, err := reg.Heartbeat(ctx, testServer("eu-1", "eu-west", 0.25), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !res.Written || res.Server.Load != 0.25 {
		t.Fatalf("first heartbeat: %+v", res)
	}
	if _, err := reg.Heartbeat(ctx, testServer("us-1", "us-east", 0.5), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Heartbeat(ctx, testServer("eu-0", "eu-west", 0.75), 0); err != nil {
		t.Fatal(err)
	}

	drained := testServer("eu-1", "eu-west", 0.25)
	drained.Draining = true
	res, err = reg.Heartbeat(ctx, drained, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || !res.Written || !res.Server.Draining {
		t.Fatalf("draining heartbeat: %+v", res)
	}

	rev, all, err := reg.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if rev == 0 || len(all) != 3 || all[0].ID != "eu-0" || all[1].ID != "eu-1" || all[2].ID != "us-1" {
		t.Fatalf("list all at %d: %+v", rev, all)
	}
	if !all[1].Draining {
		t.Fatalf("eu-1 not draining in list: %+v", all[1])
	}
	_, eu, err := reg.List(ctx, "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	if len(eu) != 2 || eu[0].ID != "eu-0" || eu[1].ID != "eu-1" {
		t.Fatalf("list eu-west: %+v", eu)
	}

	get, err := c.Get(ctx, schema.ServerKey(schema.DefaultPrefix, "eu-1"))
	if err != nil {
		t.Fatal(err)
	}
	lease := clientv3.LeaseID(get.Kvs[0].Lease)
	if lease == clientv3.NoLease {
		t.Fatal("registered without a lease")
	}

	found, err := reg.Deregister(ctx, "eu-1")
	if err != nil || !found {
		t.Fatalf("deregister: found=%v err=%v", found, err)
	}
	found, err = reg.Deregister(ctx, "eu-1")
	if err != nil || found {
		t.Fatalf("second deregister: found=%v err=%v", found, err)
	}
	_, all, err = reg.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("after deregister: %+v", all)
	}
	ttl, err := c.TimeToLive(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL != -1 {
		t.Fatalf("lease of a deregistered server still alive: ttl %d", ttl.TTL)
	}
	if err := reg.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryBadInputChangesNothing(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "/bad/")
	before := currentRevision(t, c)

	cases := []struct {
		name  string
		srv   schema.Server
		ttl   time.Duration
		field string
	}{
		{"empty id", testServer("", "eu", 0), 0, "id"},
		{"id with slash", testServer("a/b", "eu", 0), 0, "id"},
		{"bad region", testServer("a", "eu west", 0), 0, "region"},
		{"ftp url", schema.Server{ID: "a", Region: "eu", URL: "ftp://x"}, 0, "url"},
		{"url with query", schema.Server{ID: "a", Region: "eu", URL: "http://x/?q=1"}, 0, "url"},
		{"negative load", testServer("a", "eu", -1), 0, "load"},
		{"ttl too short", testServer("a", "eu", 0), time.Second / 2, "ttl"},
		{"ttl too long", testServer("a", "eu", 0), 2 * time.Hour, "ttl"},
		{"negative ttl", testServer("a", "eu", 0), -time.Second, "ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reg.Heartbeat(ctx, tc.srv, tc.ttl)
			var fe *schema.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v, want a field error on %q", err, tc.field)
			}
		})
	}
	if _, err := reg.Deregister(ctx, "../x"); err == nil {
		t.Error("deregister accepted a bad id")
	}
	if _, _, err := reg.List(ctx, "bad region"); err == nil {
		t.Error("list accepted a bad region")
	}
	if after := currentRevision(t, c); after != before {
		t.Fatalf("bad input wrote to etcd: revision %d -> %d", before, after)
	}
}

func TestRegistryServerThatStopsHeartbeatingIsGoneWithin4s(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	if _, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	poll.True(t, 4*time.Second, "server with ttl 2s gone after its last heartbeat", func() bool {
		_, servers, err := reg.List(ctx, "")
		return err == nil && len(servers) == 0
	})
	t.Logf("gone %v after the last heartbeat", time.Since(last).Round(time.Millisecond))
}

func TestRegistryLeaseOnlyHeartbeatDoesNotRaiseRevision(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	srv := testServer("eu-1", "eu", 0.3)
	if _, err := reg.Heartbeat(ctx, srv, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	before := currentRevision(t, c)
	for range 3 {
		res, err := reg.Heartbeat(ctx, srv, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Written || res.Created {
			t.Fatalf("unchanged heartbeat wrote: %+v", res)
		}
	}
	if after := currentRevision(t, c); after != before {
		t.Fatalf("lease-only heartbeats raised the revision %d -> %d", before, after)
	}
}

// A server that keeps heartbeating stays registered for many lifetimes of
// its lease, on that same lease: heartbeats renew it. A registry that let
// the lease lapse and re-created the key would also list the server after
// each heartbeat, so the test checks the key was never re-created (its
// create revision) and never moved to another lease.
func TestRegistryHeartbeatRenewsTheLease(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	srv := testServer("eu-1", "eu", 0)
	const ttl = 2 * time.Second
	if _, err := reg.Heartbeat(ctx, srv, ttl); err != nil {
		t.Fatal(err)
	}
	key := schema.ServerKey("", srv.ID)
	first, err := c.Get(ctx, key)
	if err != nil || len(first.Kvs) != 1 {
		t.Fatalf("get after the first heartbeat: %v %v", first, err)
	}
	lease, created := first.Kvs[0].Lease, first.Kvs[0].CreateRevision
	still := func(when string) {
		t.Helper()
		get, err := c.Get(ctx, key)
		switch {
		case err != nil:
			t.Fatalf("%s: %v", when, err)
		case len(get.Kvs) == 0:
			t.Fatalf("%s: the heartbeating server is gone", when)
		case get.Kvs[0].CreateRevision != created:
			t.Fatalf("%s: key re-created at revision %d (first created at %d): the lease lapsed", when, get.Kvs[0].CreateRevision, created)
		case get.Kvs[0].Lease != lease:
			t.Fatalf("%s: key moved from lease %x to %x", when, lease, get.Kvs[0].Lease)
		}
	}
	// A heartbeat every quarter lease, as agents do, for four lifetimes.
	tick := time.NewTicker(ttl / 4)
	defer tick.Stop()
	start := time.Now()
	for time.Since(start) < 4*ttl {
		<-tick.C
		res, err := reg.Heartbeat(ctx, srv, ttl)
		if err != nil {
			t.Fatal(err)
		}
		after := fmt.Sprintf("heartbeat %v after the first", time.Since(start).Round(time.Millisecond))
		if res.Created || res.Written {
			t.Fatalf("%s wrote the key (created %v): an unchanged server only renews", after, res.Created)
		}
		still(after)
	}
	// Past a whole lifetime since the first heartbeat, the lease is alive
	// only because heartbeats renewed it.
	if left := remainingTTL(t, c, clientv3.LeaseID(lease)); left <= 0 {
		t.Fatalf("lease has %d s left after %v of heartbeats", left, 4*ttl)
	}
}

func TestRegistryMinTTLRaisedByEtcdIsNotATTLChange(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	srv := testServer("eu-1", "eu", 0)
	if _, err := reg.Heartbeat(ctx, srv, schema.MinTTL); err != nil {
		t.Fatal(err)
	}
	// etcd raises a 1s lease to its own minimum; the renewal must still
	// count as the same TTL and write nothing.
	res, err := reg.Heartbeat(ctx, srv, schema.MinTTL)
	if err != nil || res.Written {
		t.Fatalf("renewal at MinTTL: %+v %v", res, err)
	}
}

func TestRegistryLoadChangeBelowEpsilonWritesNothing(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	if _, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0.10), 0); err != nil {
		t.Fatal(err)
	}

	before := currentRevision(t, c)
	res, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0.119), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written || res.Server.Load != 0.10 {
		t.Fatalf("load move of 0.019 was written: %+v", res)
	}
	if after := currentRevision(t, c); after != before {
		t.Fatalf("revision moved %d -> %d", before, after)
	}

	for _, load := range []float64{0.12, 0.10, 0.5} { // up by 0.02 exactly, down, up
		res, err = reg.Heartbeat(ctx, testServer("eu-1", "eu", load), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Written || res.Server.Load != load {
			t.Fatalf("load move to %v not written: %+v", load, res)
		}
	}
	_, servers, err := reg.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if servers[0].Load != 0.5 {
		t.Fatalf("stored load %v, want 0.5", servers[0].Load)
	}
}

func TestRegistrySecondReplicaRenewsLeaseOfFirst(t *testing.T) {
	m := etcdtest.Start(t)
	c1, c2 := etcdtest.NewClient(t, m), etcdtest.NewClient(t, m)
	ctx := testContext(t)
	first, second := NewRegistry(c1, ""), NewRegistry(c2, "")
	srv := testServer("eu-1", "eu", 0.2)
	if _, err := first.Heartbeat(ctx, srv, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	get, err := c1.Get(ctx, schema.ServerKey("", "eu-1"))
	if err != nil {
		t.Fatal(err)
	}
	lease := get.Kvs[0].Lease
	before := currentRevision(t, c1)

	res, err := second.Heartbeat(ctx, srv, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written || res.Created {
		t.Fatalf("second replica rewrote instead of renewing: %+v", res)
	}
	get, err = c2.Get(ctx, schema.ServerKey("", "eu-1"))
	if err != nil {
		t.Fatal(err)
	}
	if get.Kvs[0].Lease != lease {
		t.Fatalf("lease changed %x -> %x", lease, get.Kvs[0].Lease)
	}
	if after := currentRevision(t, c2); after != before {
		t.Fatalf("renewal by the second replica raised the revision %d -> %d", before, after)
	}

	// A load change through the second replica keeps the lease too.
	srv.Load = 0.9
	if res, err = second.Heartbeat(ctx, srv, 5*time.Second); err != nil || !res.Written {
		t.Fatalf("load change: %+v %v", res, err)
	}
	if get, err = c2.Get(ctx, schema.ServerKey("", "eu-1")); err != nil || get.Kvs[0].Lease != lease {
		t.Fatalf("load change moved the lease: %v %v", get.Kvs, err)
	}
}

func TestRegistryTTLChangeGrantsNewLeaseAndRevokesOld(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	srv := testServer("eu-1", "eu", 0)
	if _, err := reg.Heartbeat(ctx, srv, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	get, err := c.Get(ctx, schema.ServerKey("", "eu-1"))
	if err != nil {
		t.Fatal(err)
	}
	old := clientv3.LeaseID(get.Kvs[0].Lease)

	res, err := reg.Heartbeat(ctx, srv, 5*time.Second)
	if err != nil || !res.Written {
		t.Fatalf("ttl change: %+v %v", res, err)
	}
	get, err = c.Get(ctx, schema.ServerKey("", "eu-1"))
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(get.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != 5 {
		t.Fatalf("new lease granted ttl %d (%v), want 5", ttl.GrantedTTL, err)
	}
	if ttl, err := c.TimeToLive(ctx, old); err != nil || ttl.TTL != -1 {
		t.Fatalf("old lease not revoked: ttl %d %v", ttl.TTL, err)
	}
}

func TestRegistryAdoptsKeyWrittenWithoutLease(t *testing.T) {
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	key := schema.ServerKey("", "eu-1")
	if _, err := c.Put(ctx, key, `{"id":"eu-1","region":"eu","url":"http://127.0.0.1:9001","load":0}`); err != nil {
		t.Fatal(err)
	}
	res, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0), 0)
	if err != nil || !res.Written || res.Created {
		t.Fatalf("heartbeat over a lease-less key: %+v %v", res, err)
	}
	get, err := c.Get(ctx, key)
	if err != nil || get.Kvs[0].Lease == 0 {
		t.Fatalf("key still without a lease: %v %v", get.Kvs, err)
	}
}

func TestRegistryConcurrentHeartbeatsFromReplicas(t *testing.T) {
	m := etcdtest.Start(t)
	ctx := testContext(t)
	regs := []*Registry{NewRegistry(etcdtest.NewClient(t, m), ""), NewRegistry(etcdtest.NewClient(t, m), "")}
	// Two replicas heartbeat one server at once (the create races too), with
	// loads that force a write each time.
	errs := make(chan error, len(regs))
	for i, reg := range regs {
		go func() {
			for j := range 10 {
				if _, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", float64(i*10+j)/10), 0); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range regs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c := etcdtest.NewClient(t, m)
	get, err := c.Get(ctx, schema.ServerKey("", "eu-1"))
	if err != nil || len(get.Kvs) != 1 {
		t.Fatalf("%v %v", get, err)
	}
	// Every lease but the key's own must have been revoked or never granted.
	leases, err := c.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != 1 || int64(leases.Leases[0].ID) != get.Kvs[0].Lease {
		t.Fatalf("leftover leases: %v, key lease %x", leases.Leases, get.Kvs[0].Lease)
	}
}

// waitFor is the deadline of conditions that only depend on the machine
// being reasonably responsive (watch delivery, reconnects), not on a TTL.
const waitFor = 20 * time.Second
