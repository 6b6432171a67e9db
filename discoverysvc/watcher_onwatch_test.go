package discoverysvc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

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
		ServerKey("", "eu-1"):   `{"id":"eu-1","region":"eu","url":"http://10.0.0.1:80","load":0}`,
		DrainKey("", "eu-1"):    `{"id":"eu-1","since":"2026-01-01T00:00:00Z"}`,
		EdgeKey("", "edge-a"):   `{"edge":"edge-a","at":"2026-01-01T00:00:00Z","servers":{}}`,
		"/sessionpin/unrelated": "x",
	} {
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		updates []WatchUpdate
	)
	w := NewWatcher(WatcherConfig{Client: c, OnWatch: func(u WatchUpdate) {
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
	if !first.Listed || first.Snapshot.Len() != 1 || !keys[DrainKey("", "eu-1")] || !keys[EdgeKey("", "edge-a")] || len(keys) != 2 {
		t.Fatalf("after the list: listed %v, %d servers, others %v", first.Listed, first.Snapshot.Len(), keys)
	}
	if _, err := c.Put(ctx, EdgeKey("", "edge-a"), `{"edge":"edge-a","at":"2026-01-01T00:00:05Z","servers":{}}`); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the edge's write to be handed over", func() error {
		mu.Lock()
		defer mu.Unlock()
		last := updates[len(updates)-1]
		if last.Listed || len(last.Others) != 1 || string(last.Others[0].Kv.Key) != EdgeKey("", "edge-a") {
			return fmt.Errorf("%d updates, last listed %v with %d others", len(updates), last.Listed, len(last.Others))
		}
		if last.Snapshot != w.Snapshot() || last.Revision <= first.Revision {
			return fmt.Errorf("last update: revision %d, snapshot current %v", last.Revision, last.Snapshot == w.Snapshot())
		}
		return nil
	})
}
