package caddymodule

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

// testPublisher is an edge's publisher over a tracker of n servers whose
// ticks the test drives with its own clock.
type testPublisher struct {
	*activityPublisher
	client *clientv3.Client
	calls  *etcdtest.Calls
	snap   *watch.Snapshot
	now    time.Time
}

// The publisher's etcd calls are counted on c (see etcdtest.NewCountingClient).
func newTestPublisher(tb testing.TB, c *clientv3.Client, calls *etcdtest.Calls, edge string, n int) *testPublisher {
	tb.Helper()
	servers := make([]schema.Server, n)
	for i := range servers {
		servers[i] = schema.Server{ID: fmt.Sprintf("srv-%05d", i), Region: "eu", URL: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250)}
	}
	tr := newActivityTracker()
	tp := &testPublisher{client: c, calls: calls, snap: watch.BuildSnapshot(1, servers, tr.attach), now: time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)}
	tp.activityPublisher = &activityPublisher{
		client:   c,
		key:      schema.EdgeKey("", edge),
		edge:     edge,
		region:   func() string { return "eu" },
		interval: DefaultActivityInterval,
		tracker:  tr,
		alive:    func(id string) bool { return tp.snap.Server(id) != nil },
		log:      zap.NewNop(),
	}
	tp.slots = int(activityWindow / DefaultActivityInterval)
	return tp
}

// hit counts n pinned requests to server i, as the handler does.
func (tp *testPublisher) hit(i int, n uint64) {
	targetOf(tp.snap.Server(fmt.Sprintf("srv-%05d", i))).activity.pinned.Add(n)
}

// tick runs one publishing interval and returns the etcd writes it made.
func (tp *testPublisher) tick(tb testing.TB) int64 {
	tb.Helper()
	tp.now = tp.now.Add(tp.interval)
	before := tp.calls.OK("Put")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp.publish(ctx, tp.now)
	if tp.failing {
		tb.Fatal("publishing failed")
	}
	return tp.calls.OK("Put") - before
}

func (tp *testPublisher) value(tb testing.TB) (schema.Activity, int) {
	tb.Helper()
	resp, err := tp.client.Get(context.Background(), tp.key)
	if err != nil || len(resp.Kvs) != 1 {
		tb.Fatalf("get %s: %v %v", tp.key, resp, err)
	}
	a, err := schema.DecodeActivity(schema.EdgesPrefix(""), resp.Kvs[0].Key, resp.Kvs[0].Value)
	if err != nil {
		tb.Fatal(err)
	}
	return a, len(resp.Kvs[0].Value)
}

func TestActivityPublisherWritesOnlyChanges(t *testing.T) {
	m := etcdtest.Start(t)
	c, calls := etcdtest.NewCountingClient(t, m)
	tp := newTestPublisher(t, c, calls, "edge-a", 3)
	if w := tp.tick(t); w != 1 {
		t.Fatalf("first tick wrote %d times, want 1 (the empty report)", w)
	}
	if a, _ := tp.value(t); len(a.Servers) != 0 || a.Region != "eu" {
		t.Fatalf("first report %+v", a)
	}
	if w := tp.tick(t); w != 0 || calls.Streams("LeaseKeepAlive") != 1 {
		t.Fatalf("an idle tick wrote %d times, renewed %d", w, calls.Streams("LeaseKeepAlive"))
	}
	tp.hit(1, 5)
	tp.hit(2, 1)
	if w := tp.tick(t); w != 1 {
		t.Fatalf("a busy tick wrote %d times", w)
	}
	a, _ := tp.value(t)
	if s := a.Servers["srv-00001"]; s.Pinned != 5 || s.Minute != 5 || !s.Last.Equal(tp.now) || len(a.Servers) != 2 {
		t.Fatalf("report %+v", a)
	}
	tp.hit(1, 2)
	tp.tick(t)
	if a, _ := tp.value(t); a.Servers["srv-00001"].Pinned != 2 || a.Servers["srv-00001"].Minute != 7 || a.Servers["srv-00002"].Pinned != 0 {
		t.Fatalf("second busy report %+v", a)
	}
	lastSeen := tp.now
	// Quiet from here: the minute count drains out of the window, one write
	// per interval that changes it, then nothing but renewals.
	writes := int64(0)
	for range int(activityWindow/tp.interval) + 3 {
		writes += tp.tick(t)
	}
	if writes == 0 || writes > 3 {
		t.Fatalf("%d writes while the window drained", writes)
	}
	if w := tp.tick(t); w != 0 {
		t.Fatalf("a quiet tick after the window wrote %d times", w)
	}
	if a, _ := tp.value(t); a.Servers["srv-00001"].Minute != 0 || !a.Servers["srv-00001"].Last.Equal(lastSeen) {
		t.Fatalf("quiet report %+v", a)
	}
	// After ten idle minutes the server drops out of the report.
	for range int(activityIdle / tp.interval) {
		tp.tick(t)
	}
	if a, _ := tp.value(t); len(a.Servers) != 0 {
		t.Fatalf("idle servers still reported: %+v", a)
	}
}

func TestActivityTrackerForgetsOnlyServersThatLeft(t *testing.T) {
	m := etcdtest.Start(t)
	c, calls := etcdtest.NewCountingClient(t, m)
	tp := newTestPublisher(t, c, calls, "edge-a", 2)
	tp.hit(0, 1)
	tp.tick(t)
	// srv-00000 leaves the registry; its count stays reported while recent.
	tp.snap = tp.snap.Apply(2, []watch.Change{{ID: "srv-00000"}})
	for range int(activityIdle/tp.interval) + 2 {
		tp.tick(t)
	}
	if _, ok := tp.tracker.counters["srv-00000"]; ok {
		t.Fatal("the counter of a server long gone is kept")
	}
	if _, ok := tp.tracker.counters["srv-00001"]; !ok {
		t.Fatal("the counter of a registered server was dropped")
	}
	// A server that comes back gets a counter the publisher sees.
	srv := schema.Server{ID: "srv-00000", Region: "eu", URL: "http://10.0.0.9:8080"}
	tp.snap = tp.snap.Apply(3, []watch.Change{{ID: srv.ID, Server: &srv}})
	tp.hit(0, 3)
	tp.tick(t)
	if a, _ := tp.value(t); a.Servers["srv-00000"].Pinned != 3 {
		t.Fatalf("report %+v", a)
	}
}

func TestActivityPublisherRecoversALostLease(t *testing.T) {
	m := etcdtest.Start(t)
	c, calls := etcdtest.NewCountingClient(t, m)
	tp := newTestPublisher(t, c, calls, "edge-a", 1)
	tp.tick(t)
	if _, err := c.Revoke(context.Background(), tp.lease); err != nil {
		t.Fatal(err)
	}
	if w := tp.tick(t); w != 1 {
		t.Fatalf("after losing its lease the edge wrote %d times, want 1", w)
	}
	tp.value(t)
}

// BenchmarkActivityPublish10k is one interval of an edge whose clients are
// pinned to 10,000 servers, each busy in every interval, among 4 edges: one
// etcd write per edge per interval. The value size is reported as bytes/write.
func BenchmarkActivityPublish10k(b *testing.B) {
	m := etcdtest.Start(b)
	c, calls := etcdtest.NewCountingClient(b, m)
	edges := make([]*testPublisher, 4)
	for i := range edges {
		edges[i] = newTestPublisher(b, c, calls, fmt.Sprintf("edge-%d", i), 10_000)
	}
	var size int
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for _, e := range edges {
			for i := range 10_000 {
				e.hit(i, uint64(1+(i+n)%50))
			}
			if w := e.tick(b); w != 1 {
				b.Fatalf("%d writes in one interval", w)
			}
		}
	}
	b.StopTimer()
	_, size = edges[0].value(b)
	if size >= schema.MaxActivityLen {
		b.Fatalf("value of %d bytes", size)
	}
	b.ReportMetric(float64(size), "bytes/write")
	b.ReportMetric(4, "writes/interval")
	// An unchanged interval costs no write at all.
	for _, e := range edges {
		for range int(activityWindow/e.interval) + 1 {
			e.tick(b)
		}
		if w := e.tick(b); w != 0 {
			b.Fatalf("%d writes in an unchanged interval", w)
		}
	}
}

// BenchmarkHandlerPinnedCounting is BenchmarkHandlerPinnedHS256 with the
// snapshot's targets attached by the registry's activity tracker, as in a
// running edge: the pinned path's count is one atomic add.
func BenchmarkHandlerPinnedCounting(b *testing.B) {
	h := benchHandler(b)
	var servers []schema.Server
	for _, e := range h.app.Snapshot().Servers() {
		servers = append(servers, e.Server)
	}
	h.app = appWith(watch.BuildSnapshot(1, servers, newActivityTracker().attach))
	tok, err := h.keyring.Issue("srv-7", "us-east", time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	rb := &requestBatch{b: b, tok: tok}
	w := &discardWriter{h: make(map[string][]string)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.ServeHTTP(w, rb.next(), ok200); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := targetOf(h.app.Snapshot().Server("srv-7")).activity.pinned.Load(); got != uint64(b.N) {
		b.Fatalf("counted %d pinned requests of %d", got, b.N)
	}
}
