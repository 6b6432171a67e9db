package embedetcd

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"
)

// Defaults of the member's history and size.
const (
	// DefaultCompactionRetention keeps five to ten minutes of history: an
	// edge or discovery replica whose watch is cut off that long (etcd
	// restarted, a network blip) resumes from where it was instead of
	// listing everything again, and a busy fleet's history stays a few
	// minutes of heartbeats. Kubernetes compacts its etcd as often.
	DefaultCompactionRetention = 5 * time.Minute
	// DefaultQuotaBytes is far above what a compacted registry needs, so
	// reaching it means compaction is not keeping up, and well below a
	// disk's size, so the member stops writing before the disk fills.
	DefaultQuotaBytes = 1 << 30
	// DefaultUpkeepInterval is how often the member looks at its size.
	// The look costs two reads of counters; what it may start (a
	// defragmentation) is rare.
	DefaultUpkeepInterval = time.Minute
)

// upkeepTimeout bounds one round of upkeep's calls into the member.
const upkeepTimeout = time.Minute

// startUpkeep runs the upkeep every interval until Close.
func (m *Etcd) startUpkeep(interval time.Duration) {
	m.stopUpkeep = make(chan struct{})
	m.upkeepDone = make(chan struct{})
	go func() {
		defer close(m.upkeepDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-m.stopUpkeep:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), upkeepTimeout)
				m.upkeep(ctx)
				cancel()
			}
		}
	}()
}

// upkeep does one round: a full member compacts all its history away
// (etcd's own way out of NOSPACE, done by hand on a cluster), a member
// whose file is mostly free space is defragmented, and a full member
// whose file is back well under its quota has its alarm disarmed, so
// that writes resume without anyone stepping in.
func (m *Etcd) upkeep(ctx context.Context) {
	s := m.e.Server
	full := m.alarmed(pb.AlarmType_NOSPACE)
	if full {
		rev := s.KV().Rev()
		_, err := s.Compact(ctx, &pb.CompactionRequest{Revision: rev, Physical: true})
		switch {
		case err == nil:
			m.logger.Warn("etcd database full: compacted all history", zap.Int64("revision", rev))
		case errors.Is(err, mvcc.ErrCompacted):
		default:
			m.logger.Warn("etcd database full: compaction failed", zap.Int64("revision", rev), zap.Error(err))
			return
		}
	}
	be := s.Backend()
	size, inUse := be.Size(), be.SizeInUse()
	if shouldDefrag(size, inUse, m.quota, full) {
		start := time.Now()
		err := s.Defragment()
		took := time.Since(start)
		if err != nil {
			m.logger.Warn("etcd defragmentation failed", zap.Duration("took", took), zap.Error(err))
			return
		}
		after := s.Backend().Size()
		m.logger.Info("etcd defragmented", zap.Int64("size_before", size), zap.Int64("size_after", after),
			zap.Int64("in_use", inUse), zap.Duration("took", took))
		size = after
	}
	if full && canDisarm(size, m.quota) {
		m.disarmNoSpace(ctx, size)
	}
}

// alarmed reports whether an alarm of type a is raised.
func (m *Etcd) alarmed(a pb.AlarmType) bool {
	for _, am := range m.e.Server.Alarms() {
		if am.Alarm == a {
			return true
		}
	}
	return false
}

// disarmNoSpace disarms every NOSPACE alarm of the cluster.
func (m *Etcd) disarmNoSpace(ctx context.Context, size int64) {
	s := m.e.Server
	for _, am := range s.Alarms() {
		if am.Alarm != pb.AlarmType_NOSPACE {
			continue
		}
		req := &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: am.MemberID, Alarm: am.Alarm}
		if _, err := s.Alarm(ctx, req); err != nil {
			m.logger.Warn("etcd NOSPACE alarm: disarm failed", zap.Error(err))
			return
		}
	}
	m.logger.Warn("etcd NOSPACE alarm disarmed: writes resume", zap.Int64("size", size), zap.Int64("quota", m.quota))
}

// shouldDefrag decides whether a database file of size bytes, of which
// inUse hold data, is worth defragmenting. Defragmentation rewrites the
// file and blocks the member's reads and writes while it does, so it runs
// only when at least three quarters of the file are free space, or when
// the member is full and the free space is what would let it write again;
// and never to win back less than a sixty-fourth of the quota, which is
// not worth the pause. Periodic compaction alone keeps between one and two
// retentions of history, so a steady registry's file is up to half free
// after each compaction and fills again: three quarters leaves that
// alone and catches a file grown by a burst that has passed.
func shouldDefrag(size, inUse, quota int64, full bool) bool {
	free := size - inUse
	if free <= 0 || free < quota/64 {
		return false
	}
	return full || free >= size-size/4
}

// canDisarm reports whether a full member's file of size bytes has room
// again: a quarter of the quota, so that the alarm is not raised again by
// the next few writes.
func canDisarm(size, quota int64) bool {
	return size <= quota-quota/4
}
