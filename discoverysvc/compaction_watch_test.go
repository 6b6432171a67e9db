package discoverysvc

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

// changeWhileCut adds d, changes a's load and removes b, then waits until
// the member's own compaction has passed every one of those changes, so
// that a watch cut off before them cannot resume.
func changeWhileCut(t *testing.T, ctx context.Context, c *clientv3.Client, reg *Registry) {
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

func registerABC(t *testing.T, ctx context.Context, reg *Registry) {
	t.Helper()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := reg.Heartbeat(ctx, testServer(id, "eu", 0.5), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

// Discovery's own watch (the fleet's metrics, events and page) does the
// same.
func TestFleetWatchRelistsAfterAutoCompaction(t *testing.T) {
	m := etcdtest.StartCompacting(t)
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	reg := NewRegistry(c, "")
	registerABC(t, ctx, reg)
	proxy := etcdtest.StartCutProxy(t, m.Client)
	core, logs := observer.New(zapcore.InfoLevel)
	metrics := NewMetrics()
	fleet := newFleet(fleetConfig{Client: etcdtest.Dial(t, proxy.Addr()), Metrics: metrics, Logger: zap.New(core)})
	fleetCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fleet.Run(fleetCtx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	eu, us := `sessionpin_discovery_servers{region="eu",state="active"}`, `sessionpin_discovery_servers{region="us",state="active"}`
	waitGauge(t, metrics, eu, "= 3", func(v float64) bool { return v == 3 })

	proxy.Cut()
	changeWhileCut(t, ctx, c, reg)
	proxy.Heal()

	waitGauge(t, metrics, eu, "= 2", func(v float64) bool { return v == 2 })
	waitGauge(t, metrics, us, "= 1", func(v float64) bool { return v == 1 })
	if logs.FilterMessage(etcdtest.MsgFellBehind).Len() == 0 {
		t.Fatal("caught up without noticing the compaction")
	}
	if _, err := reg.Heartbeat(ctx, testServer("e", "us", 0.2), time.Minute); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, metrics, us, "= 2", func(v float64) bool { return v == 2 })
}
