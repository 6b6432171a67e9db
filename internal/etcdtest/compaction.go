package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// MsgFellBehind is what a registry watch logs when the history it needs
// has been compacted away and it lists again.
const MsgFellBehind = "registry watch fell behind compaction, listing again"

// StartCompacting runs a member that compacts its history every second,
// as the embedded one does every few minutes, so that a test sees a watch
// fall behind a compaction without waiting for one.
func StartCompacting(t *testing.T) *Member {
	t.Helper()
	return StartWith(t, func(c *embedetcd.Config) { c.CompactionRetention = time.Second })
}

// WaitCompactedPast writes outside the registry until the member's own
// compaction has removed revision rev, so that a watch cut off before rev
// cannot resume from it.
func WaitCompactedPast(t *testing.T, ctx context.Context, c *clientv3.Client, rev int64, timeout time.Duration) {
	t.Helper()
	i := 0
	poll.Until(t, timeout, "the changes compacted away", func() error {
		i++
		if _, err := c.Put(ctx, fmt.Sprintf("/other/%d", i%10), "x"); err != nil {
			return err
		}
		_, err := c.Get(ctx, "any", clientv3.WithRev(rev))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil
		}
		return fmt.Errorf("revision %d still readable (%v)", rev, err)
	})
}
