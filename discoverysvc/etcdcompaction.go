package discoverysvc

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// How discovery sees whether its etcd compacts, and compacts it when told
// to (EtcdStatusConfig.CompactRetention).

// checkCompaction reports whether the cluster keeps its whole history
// while it grows: a revision at least UncompactedAfter old can still be
// read, and uncompactedMinRevisions or more have been written since. The
// revision checked is the first discovery read, while that one lasts
// (history kept since discovery started), else the one read
// UncompactedAfter ago. It logs the change once each way.
func (s *EtcdStatus) checkCompaction(ctx context.Context, st EtcdState, was bool) bool {
	horizon := st.At.Add(-s.cfg.UncompactedAfter)
	s.mu.Lock()
	first := s.first
	s.mu.Unlock()
	old, ok := s.revisionBefore(horizon)
	if first != nil && !first.at.After(horizon) {
		old, ok = *first, true
	}
	if !ok {
		return was // not running long enough to tell
	}
	_, err := s.cfg.Client.Get(ctx, schema.NormalizePrefix(s.cfg.Prefix), clientv3.WithRev(old.rev), clientv3.WithCountOnly())
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		if first != nil && old == *first {
			s.mu.Lock()
			s.first = nil // compacted for good: the window's revision decides from now on
			s.mu.Unlock()
			return s.checkCompaction(ctx, st, was)
		}
		if was {
			s.logger.Info("etcd history is compacted again")
		}
		return false
	case err != nil:
		return was
	}
	uncompacted := st.Revision-old.rev >= uncompactedMinRevisions
	if uncompacted && !was {
		s.logger.Warn("etcd keeps its whole history: nothing compacts the cluster, and its database will grow until etcd refuses writes; "+
			"set etcd's --auto-compaction-retention, or give discovery --etcd-compact",
			zap.Int64("readable_revision", old.rev), zap.Duration("age", st.At.Sub(old.at).Round(time.Second)),
			zap.Int64("revisions_since", st.Revision-old.rev))
	}
	return uncompacted
}

// compact compacts the cluster, once a retention, to the last revision
// seen a retention ago: between one and two retentions of history stay
// readable, as with etcd's own periodic compaction. Several replicas doing
// so compact to nearly the same revision; the later ones find it
// compacted.
func (s *EtcdStatus) compact(ctx context.Context, now time.Time) {
	target, ok := s.revisionBefore(now.Add(-s.cfg.CompactRetention))
	s.mu.Lock()
	due := now.Sub(s.compactedAt) >= s.cfg.CompactRetention && target.rev > s.compacted
	s.mu.Unlock()
	if !ok || !due {
		return
	}
	_, err := s.cfg.Client.Compact(ctx, target.rev)
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		s.logger.Warn("etcd compaction failed", zap.Int64("revision", target.rev), zap.Error(err))
		return
	}
	if err == nil {
		s.logger.Info("etcd history compacted", zap.Int64("revision", target.rev), zap.Duration("retention", s.cfg.CompactRetention))
	}
	s.mu.Lock()
	s.compactedAt, s.compacted = now, target.rev
	s.mu.Unlock()
}
