package discoverysvc

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// drainFixture is a registry whose drain status may come from a fleet's
// watch, beside a plain registry that always reads and decodes the values:
// the two must always agree.
type drainFixture struct {
	reg, plain *Registry
	calls      *etcdtest.Calls // the registry's etcd calls
	raw        *clientv3.Client
	fleet      *Fleet
}

// newDrainFixture runs a fleet for the registry whose watch goes through
// fleetClient, and drains eu-1.
func newDrainFixture(t *testing.T, m *etcdtest.Member, fleetClient *clientv3.Client) *drainFixture {
	t.Helper()
	c, calls := etcdtest.NewCountingClient(t, m)
	f := &drainFixture{reg: NewRegistry(c, ""), calls: calls, raw: etcdtest.NewClient(t, m)}
	f.plain = NewRegistry(f.raw, "")
	f.fleet = newFleet(fleetConfig{Client: fleetClient, Registry: f.reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.fleet.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := f.plain.Drain(testContext(t), "eu-1", "test"); err != nil {
		t.Fatal(err)
	}
	return f
}

// putActivity writes edge's report that it saw minute pinned requests to
// server, the last at last.
func (f *drainFixture) putActivity(t *testing.T, edge, server string, minute uint64, last time.Time) {
	t.Helper()
	servers := map[string]schema.ServerActivity{server: {Pinned: minute, Minute: minute, Last: last}}
	value := schema.AppendActivity(nil, edge, "eu", 0, time.Now(), schema.AppendServers(nil, servers))
	if _, err := f.raw.Put(testContext(t), schema.EdgeKey("", edge), string(value)); err != nil {
		t.Fatal(err)
	}
}

// status is the registry's drain status of eu-1, checked against the plain
// registry's; decoded reports whether the registry read the values.
func (f *drainFixture) status(t *testing.T) (st client.DrainStatus, decoded bool) {
	t.Helper()
	reads := f.calls.OK("Range")
	st, err := f.reg.DrainStatus(testContext(t), "eu-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.plain.DrainStatus(testContext(t), "eu-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("drain status %+v, reading the values gives %+v", st, want)
	}
	return st, f.calls.OK("Range") > reads
}

// With the fleet's watch current, a drain status takes the edges' decoded
// activity from it and reads only their keys; malformed values and other
// servers' reports count as they do when the values are read.
func TestDrainStatusTakesActivityFromTheFleetWatch(t *testing.T) {
	m := etcdtest.Start(t)
	f := newDrainFixture(t, m, etcdtest.NewClient(t, m))
	last := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	f.putActivity(t, "edge-a", "eu-1", 5, last)
	f.putActivity(t, "edge-b", "eu-1", 7, last.Add(-time.Second))
	f.putActivity(t, "edge-c", "eu-2", 100, last)
	if _, err := f.raw.Put(testContext(t), schema.EdgeKey("", "edge-d"), `{"edge":"edge-d","servers":{"eu-1":{"pinned":-4}}}`); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "a drain status from the watch", func() bool {
		_, decoded := f.status(t)
		return !decoded
	})
	st, _ := f.status(t)
	if st.EdgesReporting != 3 || st.PinnedLastMinute != 12 || st.LastPinned == nil || !st.LastPinned.Equal(last) {
		t.Fatalf("status %+v", st)
	}
	// Every change is seen: a new report, an edge that leaves.
	f.putActivity(t, "edge-a", "eu-1", 9, last)
	if _, err := f.raw.Delete(testContext(t), schema.EdgeKey("", "edge-b")); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "the new reports from the watch", func() bool {
		_, decoded := f.status(t)
		return !decoded
	})
	if st, _ := f.status(t); st.EdgesReporting != 2 || st.PinnedLastMinute != 9 {
		t.Fatalf("after the changes: %+v", st)
	}
}

// A replica whose fleet has not listed yet, or whose watch fell behind,
// reads and decodes the values: its answer is never older than etcd's.
func TestDrainStatusReadsWhenTheWatchIsBehind(t *testing.T) {
	m := etcdtest.Start(t)
	proxy := etcdtest.StartCutProxy(t, m.Client)
	proxy.Cut()
	f := newDrainFixture(t, m, etcdtest.Dial(t, proxy.Addr()))
	last := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	f.putActivity(t, "edge-a", "eu-1", 5, last)
	if st, decoded := f.status(t); !decoded || st.PinnedLastMinute != 5 {
		t.Fatalf("before the fleet listed: decoded %v, status %+v", decoded, st)
	}

	proxy.Heal()
	poll.True(t, waitFor, "a drain status from the watch", func() bool {
		_, decoded := f.status(t)
		return !decoded
	})
	proxy.Cut()
	// A new version of a report the watch holds, and a new edge.
	f.putActivity(t, "edge-a", "eu-1", 6, last)
	if st, decoded := f.status(t); !decoded || st.PinnedLastMinute != 6 {
		t.Fatalf("with the watch cut off, after edge-a reported again: decoded %v, status %+v", decoded, st)
	}
	for i := range 2 {
		f.putActivity(t, fmt.Sprintf("edge-%d", i), "eu-1", uint64(10+i), last)
		if st, decoded := f.status(t); !decoded || st.EdgesReporting != 2+i {
			t.Fatalf("with the watch cut off, after edge-%d reported: decoded %v, status %+v", i, decoded, st)
		}
	}
}

// BenchmarkRegistryDrainStatus10k is one drain status over 4 edges whose
// reports name 10,000 servers each, etcd read included: "read" decodes the
// values per status (a registry without a fleet), "watch" takes them from
// the fleet's watch, which decoded each once when it changed.
func BenchmarkRegistryDrainStatus10k(b *testing.B) {
	m := etcdtest.Start(b)
	raw := etcdtest.NewClient(b, m)
	now := time.Now()
	for e := range 4 {
		servers := map[string]schema.ServerActivity{}
		for i := range 10_000 {
			servers[fmt.Sprintf("srv-%05d", i)] = schema.ServerActivity{Pinned: uint64(i % 50), Minute: uint64(i % 600), Last: now}
		}
		value := schema.AppendActivity(nil, fmt.Sprintf("edge-%d", e), "eu", 0, now, schema.AppendServers(nil, servers))
		if _, err := raw.Put(context.Background(), schema.EdgeKey("", fmt.Sprintf("edge-%d", e)), string(value)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := NewRegistry(raw, "").Drain(context.Background(), "srv-04242", ""); err != nil {
		b.Fatal(err)
	}
	watched := NewRegistry(etcdtest.NewClient(b, m), "")
	fleet := newFleet(fleetConfig{Client: etcdtest.NewClient(b, m), Registry: watched})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fleet.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	<-fleet.Hub().Ready()
	for name, reg := range map[string]*Registry{"read": NewRegistry(raw, ""), "watch": watched} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				st, err := reg.DrainStatus(context.Background(), "srv-04242", time.Minute)
				if err != nil || st.EdgesReporting != 4 {
					b.Fatalf("%+v %v", st, err)
				}
			}
		})
	}
}
