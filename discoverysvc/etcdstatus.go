package discoverysvc

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults of the look at etcd's size and history.
const (
	// DefaultEtcdStatusInterval is how often discovery reads etcd's size,
	// revision and alarms: often enough for a dashboard, and a Status and
	// an AlarmList call are cheap.
	DefaultEtcdStatusInterval = 15 * time.Second
	// DefaultUncompactedAfter is the age past which a revision that is
	// still readable shows that the cluster does not compact. A cluster
	// compacting with a periodic retention of up to an hour has compacted
	// away every revision twice that old.
	DefaultUncompactedAfter = 2 * time.Hour
	// uncompactedMinRevisions is how much history must have grown before
	// an uncompacted cluster is worth a warning: an idle one loses nothing
	// by keeping its few revisions.
	uncompactedMinRevisions = 1000
	// statusCallTimeout bounds the status call to one member.
	statusCallTimeout = 5 * time.Second
)

// EtcdStatusConfig configures an EtcdStatus.
type EtcdStatusConfig struct {
	// Client is the etcd client to look through. Required.
	Client *clientv3.Client
	// Prefix is the registry's etcd key prefix, which the check for
	// compaction reads (the one range discovery may read on a cluster
	// with access control). Default: "/sessionpin/".
	Prefix string
	// Metrics receive the sessionpin_discovery_etcd_* gauges. Required.
	Metrics *Metrics
	// Logger receives alarms, a cluster that does not compact, and the
	// compactions discovery does. Default: no logging.
	Logger *zap.Logger
	// Interval between looks. Default: DefaultEtcdStatusInterval.
	Interval time.Duration
	// UncompactedAfter: a revision this old that can still be read, with
	// the history grown since, means the cluster keeps all its history.
	// Default: DefaultUncompactedAfter.
	UncompactedAfter time.Duration
	// CompactRetention, when positive, makes discovery compact the
	// cluster's history itself, keeping this much, as Kubernetes' API
	// server does. Compaction is cluster-wide: on a cluster shared with
	// others, their history goes too. Default: 0, off.
	CompactRetention time.Duration
}

// EtcdStatus is what discovery knows of its etcd's size and health: it
// reads them every interval, publishes them as metrics and to the fleet
// page, warns when the cluster keeps its whole history, and compacts the
// history itself when told to.
type EtcdStatus struct {
	cfg    EtcdStatusConfig
	logger *zap.Logger
	g      etcdGauges

	mu      sync.Mutex
	current EtcdState
	// seen are the revisions read at each look, oldest first, for the
	// revision rate, the compaction check and discovery's own compaction.
	seen []revisionAt
	// first is the first revision read, kept until it is compacted: while
	// it can be read, all the history since discovery started is kept.
	first *revisionAt
	// compactedAt is when discovery last compacted; compacted the
	// revision it compacted to.
	compactedAt time.Time
	compacted   int64
}

// EtcdState is one look at etcd.
type EtcdState struct {
	// At is when the look was taken; zero before the first.
	At time.Time `json:"at"`
	// DBSize is the largest database file of the members, in bytes.
	DBSize int64 `json:"db_size"`
	// DBSizeInUse is the part of it that holds data; the rest is free
	// space that only a defragmentation gives back.
	DBSizeInUse int64 `json:"db_size_in_use"`
	// Quota is the size at which etcd raises NOSPACE; 0 when unknown.
	Quota int64 `json:"quota,omitempty"`
	// Revision is the cluster's revision.
	Revision int64 `json:"revision"`
	// RevisionsPerSecond is the rate of writes since the previous look.
	RevisionsPerSecond float64 `json:"revisions_per_second"`
	// Alarms are the raised alarms ("NOSPACE", "CORRUPT"), one per type.
	Alarms []string `json:"alarms,omitempty"`
	// alarmed counts the members raising each alarm.
	alarmed map[string]int
	// Uncompacted is true when the cluster keeps its whole history while
	// it grows: nothing compacts it.
	Uncompacted bool `json:"uncompacted,omitempty"`
}

type revisionAt struct {
	at  time.Time
	rev int64
}

type etcdGauges struct {
	size, inUse, quota, rate, uncompacted prometheus.Gauge
	alarms                                *prometheus.GaugeVec
}

// alarmTypes are etcd's alarms, each shown in the metrics at 0 until
// raised.
var alarmTypes = []pb.AlarmType{pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT}

// NewEtcdStatus returns an EtcdStatus with its gauges registered; Run
// starts the looks.
func NewEtcdStatus(cfg EtcdStatusConfig) *EtcdStatus {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultEtcdStatusInterval
	}
	if cfg.UncompactedAfter <= 0 {
		cfg.UncompactedAfter = DefaultUncompactedAfter
	}
	s := &EtcdStatus{cfg: cfg, logger: cfg.Logger}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "sessionpin_discovery_etcd_" + name, Help: help})
	}
	s.g = etcdGauges{
		size:  gauge("db_size_bytes", "Size of etcd's database file (the largest of the members): what its quota counts."),
		inUse: gauge("db_size_in_use_bytes", "Part of etcd's database file that holds data; the rest is free space a defragmentation gives back."),
		quota: gauge("db_quota_bytes", "Size of etcd's database at which etcd raises NOSPACE and refuses writes; 0 when etcd does not say."),
		rate:  gauge("revisions_per_second", "Writes to etcd per second (the revision's rate), over the last look."),
		uncompacted: gauge("history_uncompacted", "1 when etcd keeps its whole history while it grows: nothing compacts the cluster, "+
			"and its database will grow until etcd refuses writes."),
		alarms: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sessionpin_discovery_etcd_alarms",
			Help: "etcd's raised alarms by type (NOSPACE: the database is full and etcd refuses writes); the number of members raising it.",
		}, []string{"alarm"}),
	}
	for _, a := range alarmTypes {
		s.g.alarms.WithLabelValues(a.String())
	}
	cfg.Metrics.reg.MustRegister(s.g.size, s.g.inUse, s.g.quota, s.g.rate, s.g.uncompacted, s.g.alarms)
	return s
}

// State returns the latest look.
func (s *EtcdStatus) State() EtcdState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.current
	st.Alarms = slices.Clone(st.Alarms)
	st.alarmed = nil
	return st
}

// Run looks at etcd every interval until ctx is done.
func (s *EtcdStatus) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.look(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// look reads etcd's status and alarms once, then checks compaction. A
// failed read leaves the last state in place: the registry's own health
// tells that etcd does not answer.
func (s *EtcdStatus) look(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Interval)
	defer cancel()
	st, err := s.read(ctx)
	if err != nil {
		return
	}
	s.mu.Lock()
	prev := s.current
	if n := len(s.seen); n > 0 {
		last := s.seen[n-1]
		if dt := st.At.Sub(last.at).Seconds(); dt > 0 {
			st.RevisionsPerSecond = float64(st.Revision-last.rev) / dt
		}
	}
	s.seen = append(s.seen, revisionAt{st.At, st.Revision})
	if prev.At.IsZero() {
		s.first = &revisionAt{st.At, st.Revision}
	}
	s.mu.Unlock()

	st.Uncompacted = s.checkCompaction(ctx, st, prev.Uncompacted)
	if s.cfg.CompactRetention > 0 {
		s.compact(ctx, st.At)
	}
	s.forget(st.At)
	s.logAlarms(prev.Alarms, st.Alarms)

	s.mu.Lock()
	s.current = st
	s.mu.Unlock()
	s.g.size.Set(float64(st.DBSize))
	s.g.inUse.Set(float64(st.DBSizeInUse))
	s.g.quota.Set(float64(st.Quota))
	s.g.rate.Set(st.RevisionsPerSecond)
	s.g.uncompacted.Set(boolGauge(st.Uncompacted))
	for _, a := range alarmTypes {
		s.g.alarms.WithLabelValues(a.String()).Set(float64(st.alarmed[a.String()]))
	}
}

// read takes the status of every member the client knows (the largest
// database counts: NOSPACE is raised by any member) and the alarms.
func (s *EtcdStatus) read(ctx context.Context) (EtcdState, error) {
	c := s.cfg.Client
	endpoints := c.Endpoints()
	if len(endpoints) == 0 {
		endpoints = []string{""} // an in-process client has one member and no address
	}
	var st EtcdState
	answered := false
	for _, ep := range endpoints {
		// One member that does not answer must not use up the look.
		epCtx, cancel := context.WithTimeout(ctx, min(s.cfg.Interval, statusCallTimeout))
		resp, err := c.Status(epCtx, ep)
		cancel()
		if err != nil {
			continue
		}
		answered = true
		st.DBSize = max(st.DBSize, resp.DbSize)
		st.DBSizeInUse = max(st.DBSizeInUse, resp.DbSizeInUse)
		st.Quota = max(st.Quota, resp.DbSizeQuota)
		st.Revision = max(st.Revision, resp.Header.GetRevision())
	}
	if !answered {
		return EtcdState{}, errors.New("no etcd member answered a status request")
	}
	alarms, err := c.AlarmList(ctx)
	if err != nil {
		return EtcdState{}, err
	}
	st.alarmed = map[string]int{}
	for _, a := range alarms.Alarms {
		st.Alarms = append(st.Alarms, a.Alarm.String())
		st.alarmed[a.Alarm.String()]++
	}
	slices.Sort(st.Alarms)
	st.Alarms = slices.Compact(st.Alarms)
	st.At = time.Now()
	return st, nil
}

// revisionBefore returns the latest revision seen at or before t.
func (s *EtcdStatus) revisionBefore(t time.Time) (revisionAt, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found revisionAt
	ok := false
	for _, r := range s.seen {
		if r.at.After(t) {
			break
		}
		found, ok = r, true
	}
	return found, ok
}

// forget drops the revisions no check needs any more, keeping the latest
// one older than every horizon.
func (s *EtcdStatus) forget(now time.Time) {
	horizon := max(s.cfg.UncompactedAfter, s.cfg.CompactRetention)
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := now.Add(-horizon)
	i := 0
	for i+1 < len(s.seen) && !s.seen[i+1].at.After(cut) {
		i++
	}
	s.seen = s.seen[i:]
}

// logAlarms logs alarms as they are raised and cleared.
func (s *EtcdStatus) logAlarms(before, now []string) {
	for _, a := range now {
		if !slices.Contains(before, a) {
			s.logger.Warn("etcd alarm raised", zap.String("alarm", a), zap.String("meaning", alarmMeaning(a)))
		}
	}
	for _, a := range before {
		if !slices.Contains(now, a) {
			s.logger.Info("etcd alarm cleared", zap.String("alarm", a))
		}
	}
}

func alarmMeaning(a string) string {
	if a == pb.AlarmType_NOSPACE.String() {
		return "the database reached its quota: etcd refuses writes (registrations, changed heartbeats, drains) until it is compacted, defragmented and the alarm disarmed; routing and lease renewals go on"
	}
	return "see etcd's documentation"
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// serve answers GET /v1/registry with the latest look at etcd, for the
// fleet page: sizes, not addresses or errors, so it needs no token.
func (s *EtcdStatus) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, http.MethodGet, http.MethodHead)
		return
	}
	st := s.State()
	if st.At.IsZero() {
		writeError(w, http.StatusServiceUnavailable, errRegistryUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
