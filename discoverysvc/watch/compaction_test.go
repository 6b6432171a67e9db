package watch_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// changeWhileCut adds d, changes a's load and removes b, then waits until
// the member's own compaction has passed every one of those changes, so
// that a watch cut off before them cannot resume.
func changeWhileCut(t *testing.T, ctx context.Context, c *clientv3.Client, reg *discoverysvc.Registry) {
	t.Helper()
	get, err := c.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	cut := get.Header.Revision
	if _, err := reg.Heartbeat(ctx, testServer("d", "us", 0.1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Heartbeat(ctx, testServer("a", "eu", 0.01), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deregister(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	etcdtest.WaitCompactedPast(t, ctx, c, cut+1, waitFor)
}

func registerABC(t *testing.T, ctx context.Context, reg *discoverysvc.Registry) {
	t.Helper()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := reg.Heartbeat(ctx, testServer(id, "eu", 0.5), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

// An edge's watcher cut off while the member's periodic compaction
// removes the history it would resume from lists again, with nothing
// missed, and keeps watching.
func TestWatcherRelistsAfterAutoCompaction(t *testing.T) {
	m := etcdtest.StartCompacting(t)
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	reg := discoverysvc.NewRegistry(c, "")
	registerABC(t, ctx, reg)
	proxy := etcdtest.StartCutProxy(t, m.Client)
	core, logs := observer.New(zapcore.InfoLevel)
	w := watch.NewWatcher(watch.WatcherConfig{Client: etcdtest.Dial(t, proxy.Addr()), Logger: zap.New(core), MaxBackoff: 200 * time.Millisecond})
	runWatcher(t, w)
	waitSynced(t, w)
	poll.True(t, waitFor, "initial servers", func() bool { return hasIDs(w, "a", "b", "c") })

	proxy.Cut()
	changeWhileCut(t, ctx, c, reg)
	proxy.Heal()

	poll.True(t, waitFor, "snapshot caught up", func() bool {
		a := w.Snapshot().Server("a")
		return hasIDs(w, "a", "c", "d") && a != nil && a.Load == 0.01
	})
	if logs.FilterMessage(etcdtest.MsgFellBehind).Len() == 0 {
		t.Fatal("caught up without noticing the compaction")
	}
	if _, err := reg.Heartbeat(ctx, testServer("e", "us", 0.2), time.Minute); err != nil {
		t.Fatal(err)
	}
	poll.True(t, waitFor, "event after the re-list", func() bool { return hasIDs(w, "a", "c", "d", "e") })
}
