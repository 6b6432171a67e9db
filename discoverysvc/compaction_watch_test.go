package discoverysvc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// msgFellBehind is what a watch logs when the history it needs is
// compacted away.
const msgFellBehind = "registry watch fell behind compaction, listing again"

// compactingMember runs a member that compacts its history every second,
// as the embedded one does every few minutes.
func compactingMember(t *testing.T) *etcdtest.Member {
	t.Helper()
	return etcdtest.StartWith(t, func(c *embedetcd.Config) { c.CompactionRetention = time.Second })
}

// changeWhileCut adds d, changes a's load and removes b, then writes
// elsewhere until the member's own compaction has passed every one of
// those changes, so that a watch cut off before them cannot resume.
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
	i := 0
	poll.Until(t, waitFor, "the changes compacted away", func() error {
		i++
		if _, err := c.Put(ctx, fmt.Sprintf("/other/%d", i%10), "x"); err != nil {
			return err
		}
		_, err := c.Get(ctx, "any", clientv3.WithRev(cut+1))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil
		}
		return fmt.Errorf("revision %d still readable (%v)", cut+1, err)
	})
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
	m := compactingMember(t)
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
	if logs.FilterMessage(msgFellBehind).Len() == 0 {
		t.Fatal("caught up without noticing the compaction")
	}
	if _, err := reg.Heartbeat(ctx, testServer("e", "us", 0.2), time.Minute); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, metrics, us, "= 2", func(v float64) bool { return v == 2 })
}
