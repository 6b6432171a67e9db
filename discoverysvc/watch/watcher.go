package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/backoff"
)

// WatcherConfig configures a registry Watcher.
type WatcherConfig struct {
	// Client is the etcd client to list and watch with. Required.
	Client *clientv3.Client
	// Prefix is the registry's etcd key prefix. Default: "/sessionpin/".
	Prefix string
	// Logger receives outages and malformed values. Default: no logging.
	Logger *zap.Logger
	// Attach derives each snapshot entry's Attachment (see BuildSnapshot).
	// Optional.
	Attach func(schema.Server) any
	// Refuse, when it returns an error for a valid record, keeps that
	// server out of the snapshot as if its value were malformed (and logs
	// it once): the edge's own rules of where it never sends traffic.
	// Optional.
	Refuse func(schema.Server) error
	// OnUpdate is called on the watcher goroutine after each snapshot swap,
	// e.g. to update metrics. It must not block. Optional.
	OnUpdate func(*Snapshot)
	// OnWatch is called on the watcher goroutine after every list and every
	// watch response, even one that changed no server, with the snapshot
	// and the operator drains' and edges' keys (see WatchUpdate). Setting it
	// makes each list read the edges' activity too, which the edge itself
	// never needs. It must not block. Optional.
	OnWatch func(WatchUpdate)
	// Raw, when set, is handed the server keys as the watch reads them,
	// before any decoding: the discovery service keeps its own copy of
	// their revisions and leases, which a snapshot does not hold. Its
	// methods run on the watcher goroutine and must not block. Optional.
	Raw RawHook
	// RawOnly skips building snapshots, so that only Raw is fed: for a
	// watch that routes nothing. Snapshot then stays EmptySnapshot().
	// Default: false.
	RawOnly bool
	// MinBackoff is the first delay before listing again after a failure.
	// Default: 100ms.
	MinBackoff time.Duration
	// MaxBackoff caps the delay between attempts while etcd is unreachable.
	// Default: 5s.
	MaxBackoff time.Duration
	// ListTimeout bounds one list of the registry, so an unreachable etcd
	// turns into a retry instead of a hang. Default: 5s.
	ListTimeout time.Duration
	// ProgressInterval is how often the watcher asks etcd to confirm that
	// the watch is current. A confirmation refreshes LastUpdate; a watch
	// that stays silent for three intervals counts as lost (the etcd client
	// would otherwise retry a dead connection without telling anyone), so
	// the outage is logged and the registry listed again. Default: 5s.
	ProgressInterval time.Duration
}

// DefaultProgressInterval is WatcherConfig.ProgressInterval's default.
const DefaultProgressInterval = 5 * time.Second

// WatchUpdate is what one list or one watch response brought, for
// WatcherConfig.OnWatch.
type WatchUpdate struct {
	// Snapshot is the snapshot after the update.
	Snapshot *Snapshot
	// Revision is the list's revision, or the latest of the response's
	// events.
	Revision int64
	// Listed is true after a list: Others then holds every drain and edge
	// key at Revision, as puts.
	Listed bool
	// Others are the events on keys that are not servers: operator drains
	// and the edges' activity.
	Others []*clientv3.Event
}

// RawHook receives the server keys as a Watcher reads them (see
// WatcherConfig.Raw).
type RawHook interface {
	// Listed is every key under the servers prefix at revision rev, after
	// each list of the registry.
	Listed(rev int64, kvs []*mvccpb.KeyValue)
	// Changed is the events of one watch response, on every key under the
	// registry's prefix; events at or before listed, the revision of the
	// last list, are in that list already.
	Changed(listed int64, events []*clientv3.Event)
	// Progressed is etcd's confirmation that nothing under the prefix
	// changed up to revision rev.
	Progressed(rev int64)
}

// Watcher keeps an immutable Snapshot of the registry up to date: it lists
// the servers and the operator drains, then watches the whole prefix from
// the next revision, applying each watch response as one update. One watch
// serves both kinds of key, so a drain costs the edge no second stream; the
// edges' activity keys ride the same watch and are skipped by key. Compaction or a lost watch leads to a fresh list;
// while etcd is unreachable the last snapshot stays in place and listing is
// retried with backoff. Readers call Snapshot, which never blocks.
type Watcher struct {
	cfg           WatcherConfig
	log           *zap.Logger
	serversPrefix string
	drainPrefix   string

	snap       atomic.Pointer[Snapshot]
	lastUpdate atomic.Int64 // unix nanoseconds; 0 before the first list
	synced     chan struct{}
	syncOnce   sync.Once

	// unreachable is set from the first failure of an outage until the
	// next successful list, so an outage is logged once. Run goroutine only.
	unreachable bool

	// malformed remembers the mod revision of each malformed value already
	// logged, so a bad key is logged once, not on every re-list. Only the
	// Run goroutine touches it.
	malformed map[string]int64
}

// NewWatcher returns a watcher; call Run to start it.
func NewWatcher(cfg WatcherConfig) *Watcher {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.ListTimeout <= 0 {
		cfg.ListTimeout = 5 * time.Second
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	cfg.Prefix = schema.NormalizePrefix(cfg.Prefix)
	w := &Watcher{
		cfg:           cfg,
		log:           cfg.Logger,
		serversPrefix: schema.ServersPrefix(cfg.Prefix),
		drainPrefix:   schema.DrainPrefix(cfg.Prefix),
		synced:        make(chan struct{}),
		malformed:     map[string]int64{},
	}
	w.snap.Store(EmptySnapshot())
	return w
}

// Snapshot returns the current snapshot: never nil, EmptySnapshot() before
// the first successful list. It does not lock and makes no etcd call.
func (w *Watcher) Snapshot() *Snapshot { return w.snap.Load() }

// Synced is closed after the first successful list.
func (w *Watcher) Synced() <-chan struct{} { return w.synced }

// LastUpdate is when the snapshot last changed or was confirmed current by
// a list or an etcd progress notification; zero before the first list.
func (w *Watcher) LastUpdate() time.Time {
	if n := w.lastUpdate.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Run lists and watches the registry until ctx is done. Call it once.
func (w *Watcher) Run(ctx context.Context) {
	retry := w.cfg.MinBackoff
	for ctx.Err() == nil {
		rev, err := w.list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.outage(err)
			wait := backoff.Jitter(retry)
			w.log.Debug("registry list failed, retrying", zap.Duration("retry_in", wait), zap.Error(err))
			if !backoff.Sleep(ctx, wait) {
				return
			}
			retry = min(2*retry, w.cfg.MaxBackoff)
			continue
		}
		if w.unreachable {
			w.unreachable = false
			w.log.Info("registry reachable again", zap.Int("servers", w.Snapshot().Len()), zap.Int64("revision", rev))
		}

		progressed, err := w.watch(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errCompacted):
			w.log.Info("registry watch fell behind compaction, listing again", zap.Int64("revision", w.Snapshot().Revision))
		case errors.Is(err, errWatchSilent):
			w.outage(err)
		default:
			w.log.Debug("registry watch ended, listing again", zap.Error(err))
		}
		// A watch that fails before delivering anything (no leader, say)
		// must not turn the loop into a busy list-watch spin.
		if progressed {
			retry = w.cfg.MinBackoff
		} else {
			if !backoff.Sleep(ctx, backoff.Jitter(retry)) {
				return
			}
			retry = min(2*retry, w.cfg.MaxBackoff)
		}
	}
}

var (
	errCompacted   = errors.New("watch revision compacted")
	errWatchSilent = errors.New("no answer on the watch for three progress intervals")
)

// outage logs the start of an outage, once, not per retry.
func (w *Watcher) outage(err error) {
	if w.unreachable {
		return
	}
	w.unreachable = true
	w.log.Warn("registry unreachable, routing from the last snapshot until it is back",
		zap.Int("servers", w.Snapshot().Len()), zap.Error(err))
}

// list reads every server and operator drain at one revision and swaps in
// a snapshot built from them. The edges' activity, the bulk of the prefix,
// is not read.
func (w *Watcher) list(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, w.cfg.ListTimeout)
	defer cancel()
	ops := []clientv3.Op{
		clientv3.OpGet(w.serversPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(w.drainPrefix, clientv3.WithPrefix()),
	}
	if w.cfg.OnWatch != nil {
		ops = append(ops, clientv3.OpGet(schema.EdgesPrefix(w.cfg.Prefix), clientv3.WithPrefix()))
	}
	resp, err := w.cfg.Client.Txn(lctx).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	serverKVs := resp.Responses[0].GetResponseRange().Kvs
	if w.cfg.Raw != nil {
		w.cfg.Raw.Listed(resp.Header.Revision, serverKVs)
		if w.cfg.RawOnly {
			w.listed(resp.Header.Revision, len(serverKVs))
			return resp.Header.Revision, nil
		}
	}
	servers := make([]schema.Server, 0, len(serverKVs))
	stillMalformed := make(map[string]int64)
	var drains map[string]bool
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		key := string(kv.Key)
		if schema.IDFromKey(w.drainPrefix, key) == "" {
			continue
		}
		d, err := schema.DecodeDrain(w.drainPrefix, kv.Key, kv.Value)
		if err != nil {
			w.logMalformed(key, kv.ModRevision, err)
			stillMalformed[key] = kv.ModRevision
			continue
		}
		if drains == nil {
			drains = map[string]bool{}
		}
		drains[d.ID] = true
	}
	for _, kv := range serverKVs {
		key := string(kv.Key)
		if schema.IDFromKey(w.serversPrefix, key) == "" {
			continue // a nested key is not a server
		}
		srv, err := w.decodeServer(kv.Key, kv.Value)
		if err != nil {
			w.logMalformed(key, kv.ModRevision, err)
			stillMalformed[key] = kv.ModRevision
			continue
		}
		servers = append(servers, srv)
	}
	w.malformed = stillMalformed
	w.publish(buildSnapshot(resp.Header.Revision, servers, drains, w.cfg.Attach))
	if w.cfg.OnWatch != nil {
		var others []*clientv3.Event
		for _, r := range resp.Responses[1:] {
			for _, kv := range r.GetResponseRange().Kvs {
				others = append(others, &clientv3.Event{Type: clientv3.EventTypePut, Kv: kv})
			}
		}
		w.cfg.OnWatch(WatchUpdate{Snapshot: w.Snapshot(), Revision: resp.Header.Revision, Listed: true, Others: others})
	}
	w.listed(resp.Header.Revision, len(serverKVs))
	return resp.Header.Revision, nil
}

// listed notes a successful list: the first one makes the watcher synced.
func (w *Watcher) listed(rev int64, keys int) {
	w.log.Debug("registry listed", zap.Int64("revision", rev), zap.Int("server_keys", keys))
	w.syncOnce.Do(func() { close(w.synced) })
}

// watch applies the changes made after revision rev (the list's) until the
// watch fails or ctx is done. progressed reports whether any response
// arrived.
func (w *Watcher) watch(ctx context.Context, rev int64) (progressed bool, err error) {
	// Requiring a leader makes a member cut off from its cluster end the
	// watch, instead of silently serving a stale view.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// The watch starts at rev itself, not rev+1: etcd answers no progress
	// request for a watch that starts in the future, so an idle registry
	// could never be confirmed. The events of rev are already in the
	// snapshot and apply skips them.
	wch := w.cfg.Client.Watch(wctx, w.cfg.Prefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithProgressNotify())
	tick := time.NewTicker(w.cfg.ProgressInterval)
	defer tick.Stop()
	heard := time.Now()
	for {
		select {
		case resp, ok := <-wch:
			if !ok {
				return progressed, errors.New("watch channel closed")
			}
			if resp.CompactRevision != 0 {
				return progressed, errCompacted
			}
			if err := resp.Err(); err != nil {
				return progressed, err
			}
			progressed = true
			heard = time.Now()
			if resp.IsProgressNotify() {
				w.lastUpdate.Store(heard.UnixNano())
				if w.cfg.Raw != nil {
					w.cfg.Raw.Progressed(resp.Header.Revision)
				}
			} else if len(resp.Events) > 0 {
				if w.cfg.Raw != nil {
					w.cfg.Raw.Changed(rev, resp.Events)
				}
				if !w.cfg.RawOnly {
					w.apply(rev, resp.Events)
				}
			}
		case <-tick.C:
			if time.Since(heard) >= 3*w.cfg.ProgressInterval {
				return progressed, errWatchSilent
			}
			// The request rides the watch's own stream (same context
			// metadata); it blocks while the client is reconnecting, so
			// bound it.
			pctx, pcancel := context.WithTimeout(wctx, w.cfg.ProgressInterval)
			_ = w.cfg.Client.RequestProgress(pctx)
			pcancel()
		}
	}
}

// apply turns one watch response's events into one snapshot update; events
// at or before listed, the revision of the last list, are already in it.
func (w *Watcher) apply(listed int64, events []*clientv3.Event) {
	changes := make([]Change, 0, len(events))
	var others []*clientv3.Event // kept only for OnWatch: the edge has no use for them
	keepOthers := w.cfg.OnWatch != nil
	var rev int64
	for _, ev := range events {
		if ev.Kv.ModRevision <= listed {
			continue
		}
		rev = max(rev, ev.Kv.ModRevision)
		key := string(ev.Kv.Key)
		if id := schema.IDFromKey(w.drainPrefix, key); id != "" {
			changes = append(changes, w.drainChange(id, ev))
			if keepOthers {
				others = append(others, ev)
			}
			continue
		}
		id := schema.IDFromKey(w.serversPrefix, key)
		if id == "" {
			if keepOthers { // an edge's activity or a key of no concern
				others = append(others, ev)
			}
			continue
		}
		if ev.Type == clientv3.EventTypeDelete {
			delete(w.malformed, key)
			changes = append(changes, Change{ID: id})
			continue
		}
		srv, err := w.decodeServer(ev.Kv.Key, ev.Kv.Value)
		if err != nil {
			// Drop the server rather than keep routing to a record its
			// owner has since overwritten with something we cannot read.
			w.logMalformed(key, ev.Kv.ModRevision, err)
			changes = append(changes, Change{ID: id})
			continue
		}
		delete(w.malformed, key)
		changes = append(changes, Change{ID: id, Server: &srv})
	}
	cur := w.Snapshot()
	if len(changes) > 0 {
		w.publish(cur.Apply(max(rev, cur.Revision), changes))
	}
	if w.cfg.OnWatch != nil && (len(changes) > 0 || len(others) > 0) {
		w.cfg.OnWatch(WatchUpdate{Snapshot: w.Snapshot(), Revision: max(rev, cur.Revision), Others: others})
	}
}

// drainChange turns an event on a drain key into a change. A malformed
// drain is ignored like any malformed value: the server is not drained by
// it.
func (w *Watcher) drainChange(id string, ev *clientv3.Event) Change {
	key := string(ev.Kv.Key)
	drained := false
	if ev.Type == clientv3.EventTypeDelete {
		delete(w.malformed, key)
	} else if _, err := schema.DecodeDrain(w.drainPrefix, ev.Kv.Key, ev.Kv.Value); err != nil {
		w.logMalformed(key, ev.Kv.ModRevision, err)
	} else {
		delete(w.malformed, key)
		drained = true
	}
	return Change{ID: id, Drain: &drained}
}

func (w *Watcher) publish(s *Snapshot) {
	w.snap.Store(s)
	w.lastUpdate.Store(time.Now().UnixNano())
	if w.cfg.OnUpdate != nil {
		w.cfg.OnUpdate(s)
	}
}

// decodeServer is DecodeServer followed by the Refuse rule.
func (w *Watcher) decodeServer(key, value []byte) (schema.Server, error) {
	srv, err := schema.DecodeServer(w.serversPrefix, key, value)
	if err == nil && w.cfg.Refuse != nil {
		if rerr := w.cfg.Refuse(srv); rerr != nil {
			return schema.Server{}, fmt.Errorf("server %q: %w", srv.ID, rerr)
		}
	}
	return srv, err
}

func (w *Watcher) logMalformed(key string, modRev int64, err error) {
	if seen, ok := w.malformed[key]; ok && seen == modRev {
		return
	}
	w.malformed[key] = modRev
	w.log.Warn("ignoring malformed registry value", zap.String("key", key),
		zap.Int64("mod_revision", modRev), zap.Error(err))
}
