package discoverysvc

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

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
		if _, err := c.Put(ctx, ServerKey("", id), `{"id":"`+id+`","region":"eu","url":"`+url+`","load":0}`); err != nil {
			t.Fatal(err)
		}
	}
	put("admin", "http://127.0.0.1:2019")
	put("eu-1", "http://10.0.0.1:9001")

	proxy := etcdtest.StartCutProxy(t, m.Client)
	core, logs := observer.New(zapcore.DebugLevel)
	w := NewWatcher(WatcherConfig{
		Client:           newClient(t, proxy.Addr()),
		Logger:           zap.New(core),
		MaxBackoff:       100 * time.Millisecond,
		ListTimeout:      200 * time.Millisecond,
		ProgressInterval: 100 * time.Millisecond,
		Refuse: func(s Server) error {
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
			FilterField(zap.String("key", ServerKey("", id))).Len()
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
