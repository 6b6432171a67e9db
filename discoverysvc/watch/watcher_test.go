package watch_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// The watcher's debug messages for a list that succeeded and one that
// failed: the tests count lists by them.
const (
	msgListed     = "registry listed"
	msgListFailed = "registry list failed, retrying"
)

// waitFor is the deadline of conditions that only depend on the machine
// being reasonably responsive (watch delivery, reconnects), not on a TTL.
const waitFor = 20 * time.Second

// runWatcher starts w and stops it when the test ends.
func runWatcher(t *testing.T, w *watch.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func waitSynced(t *testing.T, w *watch.Watcher) {
	t.Helper()
	select {
	case <-w.Synced():
	case <-time.After(waitFor):
		t.Fatal("watcher never synced")
	}
}

// snapshotIDs lists the ids in the watcher's snapshot.
func snapshotIDs(w *watch.Watcher) []string {
	var ids []string
	for _, e := range w.Snapshot().Servers() {
		ids = append(ids, e.ID)
	}
	return ids
}

func hasIDs(w *watch.Watcher, ids ...string) bool {
	got := snapshotIDs(w)
	if len(got) == 0 && len(ids) == 0 {
		return true
	}
	return reflect.DeepEqual(got, ids)
}

func TestWatcherSnapshotFollowsPutsDeletesAndLeaseExpiry(t *testing.T) {
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	reg := discoverysvc.NewRegistry(c, "/fleet")
	if _, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0.5), 0); err != nil {
		t.Fatal(err)
	}

	var updates atomic.Int64
	core, logs := observer.New(zapcore.DebugLevel)
	w := watch.NewWatcher(watch.WatcherConfig{
		Client:   etcdtest.NewClient(t, m),
		Logger:   zap.New(core),
		Prefix:   "/fleet/",
		Attach:   func(s schema.Server) any { return "upstream:" + s.ID },
		OnUpdate: func(*watch.Snapshot) { updates.Add(1) },
	})
	if s := w.Snapshot(); s == nil || s.Len() != 0 {
		t.Fatalf("snapshot before the first list: %v", s)
	}
	runWatcher(t, w)
	waitSynced(t, w)
	if !hasIDs(w, "eu-1") {
		t.Fatalf("after list: %v", snapshotIDs(w))
	}
	if got := w.Snapshot().Server("eu-1").Attachment; got != "upstream:eu-1" {
		t.Fatalf("attachment %v", got)
	}
	if w.LastUpdate().IsZero() || updates.Load() == 0 {
		t.Fatal("no update recorded after the first list")
	}

	// Puts: a new server, a load change that reorders the region.
	if _, err := reg.Heartbeat(ctx, testServer("eu-2", "eu", 0.1), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0.05), 0); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "eu-1 least loaded of eu", func() bool {
		r := w.Snapshot().Region("eu")
		return r != nil && len(r.Active) == 2 && r.Active[0].ID == "eu-1" && r.Active[1].ID == "eu-2"
	})
	if got := w.Snapshot().Server("eu-2").Attachment; got != "upstream:eu-2" {
		t.Fatalf("attachment after a watch event: %v", got)
	}

	// Draining moves a server out of Active.
	drained := testServer("eu-2", "eu", 0.1)
	drained.Draining = true
	if _, err := reg.Heartbeat(ctx, drained, 0); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "eu-2 draining", func() bool {
		r := w.Snapshot().Region("eu")
		return r != nil && len(r.Active) == 1 && len(r.Draining) == 1 && r.Draining[0].ID == "eu-2"
	})

	// Delete.
	if _, err := reg.Deregister(ctx, "eu-2"); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "eu-2 gone after deregister", func() bool { return hasIDs(w, "eu-1") })

	// Lease expiry: a server that stops heartbeating leaves the snapshot.
	if _, err := reg.Heartbeat(ctx, testServer("us-1", "us", 0), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "us-1 in snapshot", func() bool { return hasIDs(w, "eu-1", "us-1") })
	poll.True(t, waitFor, "us-1 gone after its lease expired", func() bool { return hasIDs(w, "eu-1") })
	if w.Snapshot().Region("us") != nil {
		t.Fatal("empty region us kept in the snapshot")
	}
	if n := logs.FilterMessage(msgListed).Len(); n != 1 {
		t.Fatalf("watcher listed %d times; events should have been enough", n)
	}
}

func TestWatcherHonoursForeignPutsAndIgnoresMalformedValues(t *testing.T) {
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	core, logs := observer.New(zapcore.WarnLevel)
	w := watch.NewWatcher(watch.WatcherConfig{Client: etcdtest.NewClient(t, m), Logger: zap.New(core)})
	runWatcher(t, w)
	waitSynced(t, w)

	key := func(id string) string { return schema.ServerKey("", id) }
	// As `etcdctl put` would write it: no lease, an extra field.
	if _, err := c.Put(ctx, key("eu-1"), `{"id":"eu-1","region":"eu","url":"https://eu-1.example.com","load":0.3,"zone":"a"}`); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "etcdctl-style value in snapshot", func() bool { return hasIDs(w, "eu-1") })
	if e := w.Snapshot().Server("eu-1"); e == nil || dialOf(e) != "eu-1.example.com:443" || e.Load != 0.3 {
		t.Fatalf("entry %+v", e)
	}

	bad := map[string]string{
		"bad-json":    `{"id":"bad-json",`,
		"bad-url":     `{"id":"bad-url","region":"eu","url":"ftp://x","load":0}`,
		"id-mismatch": `{"id":"eu-1","region":"eu","url":"http://127.0.0.1:1","load":0}`,
	}
	for id, v := range bad {
		if _, err := c.Put(ctx, key(id), v); err != nil {
			t.Fatal(err)
		}
	}
	// A nested key is not a server and is not even logged.
	if _, err := c.Put(ctx, key("eu-2")+"/meta", `{}`); err != nil {
		t.Fatal(err)
	}
	// A marker put after the bad ones proves they were processed.
	if _, err := c.Put(ctx, key("marker"), `{"id":"marker","region":"eu","url":"http://127.0.0.1:2","load":1}`); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "marker in snapshot", func() bool { return hasIDs(w, "eu-1", "marker") })
	if n := logs.FilterMessage("ignoring malformed registry value").Len(); n != len(bad) {
		t.Fatalf("%d malformed values logged, want %d: %v", n, len(bad), logs.All())
	}

	// A valid server overwritten with garbage is dropped, not kept stale.
	if _, err := c.Put(ctx, key("eu-1"), `not json`); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "corrupted eu-1 dropped", func() bool { return hasIDs(w, "marker") })

	// Registry.List agrees with the watcher.
	_, listed, err := discoverysvc.NewRegistry(c, "").List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != "marker" {
		t.Fatalf("list: %+v", listed)
	}
}

func TestWatcherSurvivesEtcdRestartAndKeepsLastSnapshot(t *testing.T) {
	m := etcdtest.Start(t)
	ctx := testContext(t)
	reg := discoverysvc.NewRegistry(etcdtest.NewClient(t, m), "")
	if _, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	w := watch.NewWatcher(watch.WatcherConfig{Client: etcdtest.NewClient(t, m), MaxBackoff: 500 * time.Millisecond})
	runWatcher(t, w)
	waitSynced(t, w)

	m.Stop()
	// While etcd is down the watcher keeps routing from what it had.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !hasIDs(w, "eu-1") {
			t.Fatalf("snapshot lost while etcd is down: %v", snapshotIDs(w))
		}
	}
	m.Restart()

	if _, err := reg.Heartbeat(ctx, testServer("eu-2", "eu", 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "server registered after the restart reaches the snapshot", func() bool {
		return hasIDs(w, "eu-1", "eu-2")
	})
	if _, err := reg.Deregister(ctx, "eu-1"); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "deregister after the restart reaches the snapshot", func() bool {
		return hasIDs(w, "eu-2")
	})
}

func TestWatcherStartedWithoutEtcdSyncsWhenItAppears(t *testing.T) {
	m := etcdtest.Start(t)
	if _, err := discoverysvc.NewRegistry(etcdtest.NewClient(t, m), "").Heartbeat(testContext(t), testServer("eu-1", "eu", 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	m.Stop()

	core, logs := observer.New(zapcore.WarnLevel)
	w := watch.NewWatcher(watch.WatcherConfig{
		Client:      etcdtest.Dial(t, m.Client),
		Logger:      zap.New(core),
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  50 * time.Millisecond,
		ListTimeout: 200 * time.Millisecond,
	})
	runWatcher(t, w)
	poll.True(t, waitFor, "outage logged", func() bool {
		return logs.FilterMessageSnippet("unreachable").Len() > 0
	})
	select {
	case <-w.Synced():
		t.Fatal("synced without etcd")
	default:
	}
	if w.Snapshot().Len() != 0 || !w.LastUpdate().IsZero() {
		t.Fatal("snapshot not empty without etcd")
	}

	m.Restart()
	waitSynced(t, w)
	if !hasIDs(w, "eu-1") {
		t.Fatalf("after etcd came up: %v", snapshotIDs(w))
	}
	if n := logs.FilterMessageSnippet("unreachable").Len(); n != 1 {
		t.Fatalf("outage logged %d times, want once", n)
	}
}

func TestWatcherRelistsWithNoGapAfterCompactionWhileBehind(t *testing.T) {
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	reg := discoverysvc.NewRegistry(c, "")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := reg.Heartbeat(ctx, testServer(id, "eu", 0.5), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	proxy := etcdtest.StartCutProxy(t, m.Client)
	core, logs := observer.New(zapcore.DebugLevel)
	w := watch.NewWatcher(watch.WatcherConfig{Client: etcdtest.Dial(t, proxy.Addr()), Logger: zap.New(core), MaxBackoff: 200 * time.Millisecond})
	runWatcher(t, w)
	waitSynced(t, w)
	poll.True(t, waitFor, "initial servers", func() bool { return hasIDs(w, "a", "b", "c") })
	lists := logs.FilterMessage(msgListed).Len()

	proxy.Cut()
	// While the watcher is cut off: add, change, remove, then compact away
	// the history it would need to catch up.
	if _, err := reg.Heartbeat(ctx, testServer("d", "us", 0.1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Heartbeat(ctx, testServer("a", "eu", 0.01), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deregister(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // history the watcher misses
		if _, err := c.Put(ctx, fmt.Sprintf("/other/%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	rev := etcdtest.Revision(t, c)
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	proxy.Heal()

	poll.True(t, waitFor, "snapshot caught up after compaction", func() bool {
		s := w.Snapshot()
		a := s.Server("a")
		return hasIDs(w, "a", "c", "d") && a != nil && a.Load == 0.01 && s.Revision >= rev
	})
	if logs.FilterMessage(msgListed).Len() <= lists {
		t.Fatal("watcher caught up without listing again")
	}
	// And it keeps watching after the re-list.
	if _, err := reg.Heartbeat(ctx, testServer("e", "us", 0.2), time.Minute); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "event after re-list", func() bool { return hasIDs(w, "a", "c", "d", "e") })
}

func TestWatcherDetectsSilentOutageOnceAndConfirmsWhileIdle(t *testing.T) {
	m := etcdtest.Start(t)
	ctx := testContext(t)
	reg := discoverysvc.NewRegistry(etcdtest.NewClient(t, m), "")
	if _, err := reg.Heartbeat(ctx, testServer("eu-1", "eu", 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	proxy := etcdtest.StartCutProxy(t, m.Client)
	core, logs := observer.New(zapcore.DebugLevel)
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("%s %s %v", e.Time.Format("15:04:05.000"), e.Message, e.ContextMap())
			}
		}
	})
	w := watch.NewWatcher(watch.WatcherConfig{
		Client:           etcdtest.Dial(t, proxy.Addr()),
		Logger:           zap.New(core),
		MaxBackoff:       100 * time.Millisecond,
		ListTimeout:      200 * time.Millisecond,
		ProgressInterval: 100 * time.Millisecond,
	})
	runWatcher(t, w)
	waitSynced(t, w)

	// Idle registry: progress notifications still confirm the snapshot.
	synced := w.LastUpdate()
	poll.True(t, waitFor, "LastUpdate refreshed by progress notifications", func() bool {
		return w.LastUpdate().After(synced)
	})

	// The etcd client retries a cut connection silently; the watcher must
	// notice, say so once, and keep its snapshot through the retries.
	proxy.Cut()
	poll.True(t, waitFor, "outage logged and retried", func() bool {
		return logs.FilterMessageSnippet("unreachable").Len() > 0 && logs.FilterMessage(msgListFailed).Len() >= 3
	})
	if !hasIDs(w, "eu-1") {
		t.Fatalf("snapshot lost during the outage: %v", snapshotIDs(w))
	}
	proxy.Heal()
	poll.True(t, waitFor, "back after the outage", func() bool {
		return logs.FilterMessage("registry reachable again").Len() == 1
	})
	if _, err := reg.Heartbeat(ctx, testServer("eu-2", "eu", 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "event after the outage", func() bool { return hasIDs(w, "eu-1", "eu-2") })
	if n := logs.FilterMessageSnippet("unreachable").Len(); n != 1 {
		t.Fatalf("outage logged %d times, want once", n)
	}
}

func TestWatcherConcurrentReadersDuringUpdates(t *testing.T) {
	m := etcdtest.Start(t)
	ctx := testContext(t)
	reg := discoverysvc.NewRegistry(etcdtest.NewClient(t, m), "")
	w := watch.NewWatcher(watch.WatcherConfig{Client: etcdtest.NewClient(t, m)})
	runWatcher(t, w)
	waitSynced(t, w)

	stop := make(chan struct{})
	var readers sync.WaitGroup
	var inconsistent atomic.Value
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Walk a snapshot the way the edge does and check it is
				// self-consistent.
				s := w.Snapshot()
				n := 0
				for _, name := range s.RegionNames() {
					r := s.Region(name)
					for _, e := range append(append([]*watch.Entry{}, r.Active...), r.Draining...) {
						if s.Server(e.ID) != e {
							inconsistent.Store(fmt.Sprintf("%s in region %s but not by id", e.ID, name))
						}
						n++
					}
				}
				if n != s.Len() {
					inconsistent.Store(fmt.Sprintf("regions hold %d servers, snapshot %d", n, s.Len()))
				}
				runtime.Gosched() // leave the two shared cores to the writer too
			}
		}()
	}
	for i := range 60 {
		srv := testServer(fmt.Sprintf("s%d", i%12), []string{"eu", "us", "ap"}[i%3], float64(i%7)/10)
		srv.Draining = i%5 == 0
		if _, err := reg.Heartbeat(ctx, srv, time.Minute); err != nil {
			t.Fatal(err)
		}
		if i%9 == 0 {
			if _, err := reg.Deregister(ctx, srv.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, want, err := reg.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "snapshot matches the registry", func() bool {
		got := w.Snapshot().Servers()
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if !got[i].Server.Same(want[i]) {
				return false
			}
		}
		return true
	})
	close(stop)
	readers.Wait()
	if msg := inconsistent.Load(); msg != nil {
		t.Fatal(msg)
	}
}

// dialOf is the address an edge dials for the entry.
func dialOf(e *watch.Entry) string {
	d, _ := schema.DialAddress(e.URL)
	return d
}

// TestWatcherOnWatchHandsOverDrainsAndEdges: with OnWatch set, a list
// hands over every drain and edge key at its revision, and a watch response
// that touches only an edge's key is handed over too, though it changes no
// server.
func TestWatcherOnWatchHandsOverDrainsAndEdges(t *testing.T) {
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, v := range map[string]string{
		schema.ServerKey("", "eu-1"): `{"id":"eu-1","region":"eu","url":"http://10.0.0.1:80","load":0}`,
		schema.DrainKey("", "eu-1"):  `{"id":"eu-1","since":"2026-01-01T00:00:00Z"}`,
		schema.EdgeKey("", "edge-a"): `{"edge":"edge-a","at":"2026-01-01T00:00:00Z","servers":{}}`,
		"/sessionpin/unrelated":      "x",
	} {
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		updates []watch.WatchUpdate
	)
	w := watch.NewWatcher(watch.WatcherConfig{Client: c, OnWatch: func(u watch.WatchUpdate) {
		mu.Lock()
		defer mu.Unlock()
		updates = append(updates, u)
	}})
	runWatcher(t, w)
	waitSynced(t, w)
	mu.Lock()
	first := updates[0]
	mu.Unlock()
	keys := map[string]bool{}
	for _, ev := range first.Others {
		keys[string(ev.Kv.Key)] = true
	}
	if !first.Listed || first.Snapshot.Len() != 1 || !keys[schema.DrainKey("", "eu-1")] || !keys[schema.EdgeKey("", "edge-a")] || len(keys) != 2 {
		t.Fatalf("after the list: listed %v, %d servers, others %v", first.Listed, first.Snapshot.Len(), keys)
	}
	if _, err := c.Put(ctx, schema.EdgeKey("", "edge-a"), `{"edge":"edge-a","at":"2026-01-01T00:00:05Z","servers":{}}`); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the edge's write to be handed over", func() error {
		mu.Lock()
		defer mu.Unlock()
		last := updates[len(updates)-1]
		if last.Listed || len(last.Others) != 1 || string(last.Others[0].Kv.Key) != schema.EdgeKey("", "edge-a") {
			return fmt.Errorf("%d updates, last listed %v with %d others", len(updates), last.Listed, len(last.Others))
		}
		if last.Snapshot != w.Snapshot() || last.Revision <= first.Revision {
			return fmt.Errorf("last update: revision %d, snapshot current %v", last.Revision, last.Snapshot == w.Snapshot())
		}
		return nil
	})
}

// TestWatcherRefusedEntryIsDroppedAndLoggedOnce: an entry the Refuse rule
// turns down (the edge's own admin port, here) stays out of the snapshot
// whether it was there at the first list or arrives as an event, and each
// such value is logged once: not again on every re-list after an outage,
// which would flood an edge's log for as long as the entry stays in etcd.
func TestWatcherRefusedEntryIsDroppedAndLoggedOnce(t *testing.T) {
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	put := func(id, url string) {
		t.Helper()
		if _, err := c.Put(ctx, schema.ServerKey("", id), `{"id":"`+id+`","region":"eu","url":"`+url+`","load":0}`); err != nil {
			t.Fatal(err)
		}
	}
	put("admin", "http://127.0.0.1:2019")
	put("eu-1", "http://10.0.0.1:9001")

	proxy := etcdtest.StartCutProxy(t, m.Client)
	core, logs := observer.New(zapcore.DebugLevel)
	w := watch.NewWatcher(watch.WatcherConfig{
		Client:           etcdtest.Dial(t, proxy.Addr()),
		Logger:           zap.New(core),
		MaxBackoff:       100 * time.Millisecond,
		ListTimeout:      200 * time.Millisecond,
		ProgressInterval: 100 * time.Millisecond,
		Refuse: func(s schema.Server) error {
			if strings.HasSuffix(s.URL, ":2019") {
				return errors.New("names the admin endpoint")
			}
			return nil
		},
	})
	runWatcher(t, w)
	waitSynced(t, w)
	refusedLogs := func(id string) int {
		return logs.FilterMessage("ignoring malformed registry value").
			FilterField(zap.String("key", schema.ServerKey("", id))).Len()
	}
	if !hasIDs(w, "eu-1") || refusedLogs("admin") != 1 {
		t.Fatalf("first list: snapshot %v, refusal of admin logged %d times, want [eu-1] and once", snapshotIDs(w), refusedLogs("admin"))
	}

	// A known server overwritten to point at the admin port is dropped,
	// not kept with its old address.
	put("eu-1", "http://127.0.0.1:2019")
	poll.True(t, waitFor, "eu-1 dropped once it names the admin port", func() bool { return hasIDs(w) })
	if n := refusedLogs("eu-1"); n != 1 {
		t.Fatalf("refusal of eu-1 logged %d times, want once", n)
	}

	// An outage makes the watcher list again; the refused values are the
	// same, so nothing more is logged.
	lists := logs.FilterMessage(msgListed).Len()
	proxy.Cut()
	poll.True(t, waitFor, "outage noticed", func() bool { return logs.FilterMessageSnippet("unreachable").Len() > 0 })
	proxy.Heal()
	poll.True(t, waitFor, "listed again after the outage", func() bool { return logs.FilterMessage(msgListed).Len() > lists })
	put("eu-2", "http://10.0.0.2:9001")
	poll.True(t, waitFor, "eu-2 in the snapshot", func() bool { return hasIDs(w, "eu-2") })
	if a, e := refusedLogs("admin"), refusedLogs("eu-1"); a != 1 || e != 1 {
		t.Errorf("after a re-list: refusals logged %d (admin) and %d (eu-1) times, want once each", a, e)
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testServer(id, region string, load float64) schema.Server {
	return schema.Server{ID: id, Region: region, URL: "http://127.0.0.1:9001", Load: load}
}
