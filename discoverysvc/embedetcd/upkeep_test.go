package embedetcd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// tinyQuota fills in a few dozen writes of fillValue.
const tinyQuota = 2 << 20

var fillValue = strings.Repeat("x", 64<<10)

// waitFor is the deadline of conditions that depend only on the machine
// being reasonably responsive.
const waitFor = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fill overwrites one key until etcd refuses with NOSPACE: history, not
// live data, fills the file, as it does in a registry that never compacts.
func fill(t *testing.T, ctx context.Context, c *clientv3.Client) {
	t.Helper()
	for i := 0; i < 10_000; i++ {
		_, err := c.Put(ctx, "filler", fillValue)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			return
		}
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	t.Fatal("quota never reached")
}

func hasNoSpace(t *testing.T, ctx context.Context, c *clientv3.Client) bool {
	t.Helper()
	resp, err := c.AlarmList(ctx)
	if err != nil {
		t.Fatalf("alarm list: %v", err)
	}
	for _, a := range resp.Alarms {
		if a.Alarm == etcdserverpb.AlarmType_NOSPACE {
			return true
		}
	}
	return false
}

// Under NOSPACE etcd refuses puts and new leases but still renews leases
// (renewal is not a write through consensus) and serves reads; the
// operator's way out (compact, defragment, disarm) lets writes resume. The
// member's own upkeep is held off so that the alarm stays up.
func TestNoSpaceRenewsLeasesAndRefusesWrites(t *testing.T) {
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) {
		c.QuotaBytes = tinyQuota
		c.CompactionRetention = -1
		c.UpkeepInterval = time.Hour
	})
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	lease, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "server", "eu-1", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}

	fill(t, ctx, c)
	if !hasNoSpace(t, ctx, c) {
		t.Fatal("quota reached but no NOSPACE alarm")
	}
	if _, err := c.Put(ctx, "other", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put under NOSPACE: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	if _, err := c.Grant(ctx, 60); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("grant under NOSPACE: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	ka, err := c.KeepAliveOnce(ctx, lease.ID)
	if err != nil || ka.TTL <= 0 {
		t.Fatalf("lease renewal over gRPC under NOSPACE: %v (ttl %v)", err, ka)
	}
	in := m.Etcd().InProcessClient(nil)
	defer in.Close()
	if ttl, _, err := in.Renew(ctx, int64(lease.ID)); err != nil || ttl <= 0 {
		t.Fatalf("in-process lease renewal under NOSPACE: ttl %d, %v", ttl, err)
	}
	get, err := c.Get(ctx, "server")
	if err != nil || len(get.Kvs) != 1 {
		t.Fatalf("read under NOSPACE: %v %v", get, err)
	}

	// What an operator does: compact, defragment, disarm.
	if _, err := c.Compact(ctx, get.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if _, err := c.Defragment(ctx, m.Client); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	if _, err := c.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatalf("disarm: %v", err)
	}
	if _, err := c.Put(ctx, "other", "v"); err != nil {
		t.Fatalf("put after disarm: %v", err)
	}
}

// The embedded member gets out of NOSPACE on its own: its upkeep compacts
// the history away, defragments and disarms the alarm.
func TestUpkeepRecoversFromNoSpace(t *testing.T) {
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) {
		c.QuotaBytes = tinyQuota
		c.CompactionRetention = -1
		c.UpkeepInterval = 100 * time.Millisecond
	})
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	fill(t, ctx, c)
	poll.Until(t, waitFor, "writes to resume", func() error {
		_, err := c.Put(ctx, "after", "v")
		return err
	})
	if hasNoSpace(t, ctx, c) {
		t.Fatal("writes resumed with the alarm still up")
	}
	status, err := c.Status(ctx, m.Client)
	if err != nil {
		t.Fatal(err)
	}
	if status.DbSize > tinyQuota/2 {
		t.Fatalf("database %d bytes after recovery, quota %d", status.DbSize, tinyQuota)
	}
}

// A file that is mostly free space after a compaction is defragmented.
func TestUpkeepDefragmentsMostlyFreeFile(t *testing.T) {
	const quota = 64 << 20 // defragments for 1 MiB or more
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) {
		c.QuotaBytes = quota
		c.CompactionRetention = -1
		c.UpkeepInterval = 100 * time.Millisecond
	})
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	var rev int64
	for range 64 { // 4 MiB of history
		put, err := c.Put(ctx, "filler", fillValue)
		if err != nil {
			t.Fatal(err)
		}
		rev = put.Header.Revision
	}
	// The backend commits its writes in batches, so the file reaches its
	// size a moment after the last put has been answered.
	var before *clientv3.StatusResponse
	poll.Until(t, waitFor, "the database to hold the 4 MiB written", func() error {
		st, err := c.Status(ctx, m.Client)
		if err != nil {
			return err
		}
		if st.DbSize < 4<<20 {
			return fmt.Errorf("database only %d bytes after writing 4 MiB", st.DbSize)
		}
		before = st
		return nil
	})
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, waitFor, "defragmentation", func() error {
		s, err := c.Status(ctx, m.Client)
		if err != nil {
			return err
		}
		if s.DbSize > before.DbSize/2 {
			return fmt.Errorf("database still %d bytes", s.DbSize)
		}
		return nil
	})
}

// The member compacts its history by itself, every retention.
func TestMemberCompactsPeriodically(t *testing.T) {
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) { c.CompactionRetention = time.Second })
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	first, err := c.Put(ctx, "k", "1")
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, waitFor, "first revision compacted", func() error {
		// Writes move the revisions the compactor samples.
		if _, err := c.Put(ctx, "k", "2"); err != nil {
			return err
		}
		_, err := c.Get(ctx, "k", clientv3.WithRev(first.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil
		}
		return errors.New("revision still readable")
	})
}
