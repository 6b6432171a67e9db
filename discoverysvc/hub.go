package discoverysvc

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// Hub turns the updates of one registry watch into the events of
// GET /v1/events and fans them out to every subscriber. Each change is
// encoded once and the same bytes go to every subscriber, so a subscriber
// costs a channel and a connection, not a copy of the fleet.
//
// A subscriber whose channel is full is dropped, never waited for: one slow
// client must not hold back the others, and a dropped EventSource reconnects
// with Last-Event-ID and resumes from the hub's history.
type Hub struct {
	limit       *subscriberLimit // nil: none
	buffer      int
	maxHistory  int
	metrics     *Metrics
	prefix      string
	drainPrefix string
	edgesPrefix string

	ready     chan struct{} // closed at the first update
	readyOnce sync.Once

	mu     sync.Mutex
	closed bool
	state  *watch.Snapshot
	// drains are the operator drains by server id; activity is the last
	// report of each live edge, by edge id; edgeRevs is the mod revision of
	// every edge key the hub holds, malformed values included, so that a
	// reader can tell whether activity is what etcd holds.
	drains   map[string]schema.Drain
	activity map[string]schema.Activity
	edgeRevs map[string]int64
	// pinned is each server's pinned traffic as last sent, by server id;
	// a server with no traffic and no drain has none.
	pinned map[string]PinnedActivity
	subs   map[*subscription]struct{}
	// history holds the last batches, oldest first; it has every batch
	// after revision historyFrom, so a client that saw historyFrom or
	// later can resume without a full state.
	history     []*eventBatch
	historyFrom int64
	// full caches the encoding of the current full state, so a thousand
	// clients connecting at once encode the fleet once.
	full []byte
}

// PinnedActivity is a server's pinned traffic as the live edges report it,
// the data of an "activity" event.
type PinnedActivity struct {
	// PinnedLastMinute sums the pinned requests the edges proxied to the
	// server in the last minute.
	PinnedLastMinute uint64 `json:"pinned_last_minute"`
	// LastPinned is the latest pinned request any edge saw, nil when none
	// remembers one.
	LastPinned *time.Time `json:"last_pinned"`
	// Edges is how many edges report traffic to the server.
	Edges int `json:"edges"`
	// Drained is true when the server is draining and judged drained with
	// the default quiet period.
	Drained bool `json:"drained"`
}

func (p PinnedActivity) equal(q PinnedActivity) bool {
	if (p.LastPinned == nil) != (q.LastPinned == nil) {
		return false
	}
	if p.LastPinned != nil && !p.LastPinned.Equal(*q.LastPinned) {
		return false
	}
	return p.PinnedLastMinute == q.PinnedLastMinute && p.Edges == q.Edges && p.Drained == q.Drained
}

// eventBatch is the events of one revision, encoded. Read only once made.
type eventBatch struct {
	rev  int64
	wire []byte
}

// subscription is one client of the hub.
type subscription struct {
	ch chan *eventBatch
	// ctx ends when the hub drops the subscriber.
	ctx    context.Context
	cancel context.CancelFunc
}

// Hub defaults.
const (
	// DefaultSubscriberBuffer is how many revisions a subscriber may fall
	// behind before it is dropped.
	DefaultSubscriberBuffer = 256
	// DefaultEventHistory is how many revisions the hub keeps for clients
	// that resume with Last-Event-ID.
	DefaultEventHistory = 1024
)

func newHub(prefix string, buffer, history int, m *Metrics) *Hub {
	if buffer <= 0 {
		buffer = DefaultSubscriberBuffer
	}
	if history <= 0 {
		history = DefaultEventHistory
	}
	prefix = schema.NormalizePrefix(prefix)
	return &Hub{
		buffer:      buffer,
		maxHistory:  history,
		metrics:     m,
		prefix:      prefix,
		drainPrefix: schema.DrainPrefix(prefix),
		edgesPrefix: schema.EdgesPrefix(prefix),
		ready:       make(chan struct{}),
		state:       watch.EmptySnapshot(),
		drains:      map[string]schema.Drain{},
		activity:    map[string]schema.Activity{},
		edgeRevs:    map[string]int64{},
		pinned:      map[string]PinnedActivity{},
		subs:        map[*subscription]struct{}{},
	}
}

// Ready is closed once the hub has the registry's state.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Subscribers is how many clients follow the hub.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// update takes one list or watch response of the fleet's watcher, turns
// what changed into one batch and offers it to every subscriber. It runs on
// the watcher's goroutine and never blocks on a subscriber.
func (h *Hub) update(u watch.WatchUpdate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.state
	h.state = u.Snapshot
	h.full = nil
	touched := map[string]bool{} // servers whose pinned activity may differ now

	var drainEvents []byte
	rev := u.Snapshot.Revision
	if u.Listed {
		drains, activity, edgeRevs := map[string]schema.Drain{}, map[string]schema.Activity{}, map[string]int64{}
		for _, ev := range u.Others {
			h.applyOther(ev, drains, activity, edgeRevs, nil)
		}
		for id, d := range drains {
			if old, ok := h.drains[id]; !ok || old != d {
				drainEvents = appendEvent(drainEvents, EventDrainStarted, drainEvent{Revision: rev, Drain: d})
				touched[id] = true
			}
		}
		for id := range h.drains {
			if _, ok := drains[id]; !ok {
				drainEvents = appendEvent(drainEvents, EventDrainEnded, drainEndedEvent{Revision: rev, ID: id})
				touched[id] = true
			}
		}
		for edge, a := range h.activity {
			if b, ok := activity[edge]; !ok || !maps.Equal(a.Servers, b.Servers) {
				touchServers(touched, a)
			}
		}
		for _, a := range activity {
			touchServers(touched, a)
		}
		h.drains, h.activity, h.edgeRevs = drains, activity, edgeRevs
	} else {
		for _, ev := range u.Others {
			before, had := h.drains[schema.IDFromKey(h.drainPrefix, string(ev.Kv.Key))]
			id := h.applyOther(ev, h.drains, h.activity, h.edgeRevs, touched)
			if id == "" {
				continue
			}
			now, has := h.drains[id]
			switch {
			case has && (!had || now != before):
				drainEvents = appendEvent(drainEvents, EventDrainStarted, drainEvent{Revision: rev, Drain: now})
			case had && !has:
				drainEvents = appendEvent(drainEvents, EventDrainEnded, drainEndedEvent{Revision: rev, ID: id})
			}
			touched[id] = true
		}
	}
	changes := u.Snapshot.Diff(prev)
	for _, c := range changes {
		touched[c.ID] = true
	}
	activityEvents := h.refreshPinnedLocked(nil, rev, touched, time.Now())

	first := false
	h.readyOnce.Do(func() {
		first = true
		close(h.ready)
	})
	if first {
		// The first list is the initial state, which every subscriber
		// gets in full; history starts after it.
		h.historyFrom = rev
		return
	}
	wire := appendServerChanges(nil, rev, changes)
	wire = append(wire, drainEvents...)
	wire = append(wire, activityEvents...)
	if len(wire) == 0 {
		return // a lease renewal, a rewrite of the same values: nothing to tell
	}
	h.sendLocked(&eventBatch{rev: rev, wire: appendID(wire, rev)}, true)
}

// applyOther applies one drain or edge event to drains, or to activity and
// edgeRevs. It returns the server id of a drain event, "" for anything
// else; the servers an edge reports about, before and after, go into
// touched. A malformed value counts as no value: its drain does not drain,
// its edge does not report.
func (h *Hub) applyOther(ev *clientv3.Event, drains map[string]schema.Drain, activity map[string]schema.Activity, edgeRevs map[string]int64, touched map[string]bool) string {
	key := string(ev.Kv.Key)
	if id := schema.IDFromKey(h.drainPrefix, key); id != "" {
		delete(drains, id)
		if ev.Type == clientv3.EventTypePut {
			if d, err := schema.DecodeDrain(h.drainPrefix, ev.Kv.Key, ev.Kv.Value); err == nil {
				drains[id] = d
			}
		}
		return id
	}
	if edge := schema.IDFromKey(h.edgesPrefix, key); edge != "" {
		if touched != nil {
			touchServers(touched, activity[edge])
		}
		delete(activity, edge)
		delete(edgeRevs, edge)
		if ev.Type == clientv3.EventTypePut {
			edgeRevs[edge] = ev.Kv.ModRevision
			if a, err := schema.DecodeActivity(h.edgesPrefix, ev.Kv.Key, ev.Kv.Value); err == nil {
				activity[edge] = a
				if touched != nil {
					touchServers(touched, a)
				}
			}
		}
	}
	return ""
}

// reportsAt returns what each edge reports about server id, from the
// decoded activity the hub holds, when that is exactly what etcd holds
// under the edge keys of keys (a keys-only read, which carries each key's
// mod revision). ok is false when the hub holds another version of any of
// them, or none (its watch is behind, or has not listed yet): the caller
// then decodes the values itself.
func (h *Hub) reportsAt(keys []*mvccpb.KeyValue, id string) (reports []schema.ServerReport, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, kv := range keys {
		edge := schema.IDFromKey(h.edgesPrefix, string(kv.Key))
		if edge == "" {
			continue // not an edge key: a reader of the values skips it too
		}
		if rev, held := h.edgeRevs[edge]; !held || rev != kv.ModRevision {
			return nil, false
		}
		if a, valid := h.activity[edge]; valid {
			s, seen := a.Servers[id]
			reports = append(reports, schema.ServerReport{Edge: a.Edge, Seen: seen, Server: s, Interval: a.Interval()})
		}
	}
	return reports, true
}

func touchServers(touched map[string]bool, a schema.Activity) {
	for id := range a.Servers {
		touched[id] = true
	}
}

// refreshPinnedLocked recomputes the pinned activity of the touched
// servers at now and appends an "activity" event for each that changed.
func (h *Hub) refreshPinnedLocked(buf []byte, rev int64, touched map[string]bool, now time.Time) []byte {
	ids := slices.Sorted(maps.Keys(touched))
	for _, id := range ids {
		p, ok := h.pinnedOfLocked(id, now)
		old, had := h.pinned[id]
		switch {
		case ok && had && p.equal(old):
			continue
		case ok:
			h.pinned[id] = p
		case had:
			delete(h.pinned, id)
		default:
			continue
		}
		buf = appendEvent(buf, EventActivity, activityEvent{Revision: rev, ID: id, PinnedActivity: p})
	}
	return buf
}

// pinnedOfLocked judges server id's pinned traffic from every edge's last
// report; ok is false for a server with neither traffic nor a drain.
func (h *Hub) pinnedOfLocked(id string, now time.Time) (PinnedActivity, bool) {
	var reports []schema.ServerReport
	seen := 0
	for _, a := range h.activity {
		s, ok := a.Servers[id]
		if ok {
			seen++
		}
		reports = append(reports, schema.ServerReport{Edge: a.Edge, Seen: ok, Server: s, Interval: a.Interval()})
	}
	var drain *schema.Drain
	if d, ok := h.drains[id]; ok {
		drain = &d
	}
	var srv *schema.Server
	if e := h.state.Server(id); e != nil {
		r := e.Record()
		srv = &r
	}
	if seen == 0 && drain == nil && (srv == nil || !srv.Draining) {
		return PinnedActivity{}, false
	}
	st := JudgeDrain(id, drain, srv, reports, schema.DefaultQuiet, now)
	return PinnedActivity{PinnedLastMinute: st.PinnedLastMinute, LastPinned: st.LastPinned, Edges: seen, Drained: st.Drained}, true
}

// tick re-judges the draining servers: a server becomes drained with the
// passing of time, without any write to etcd.
func (h *Hub) tick(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	touched := map[string]bool{}
	for id := range h.drains {
		touched[id] = true
	}
	for id, p := range h.pinned {
		if e := h.state.Server(id); e != nil && e.Draining && !p.Drained {
			touched[id] = true
		}
	}
	wire := h.refreshPinnedLocked(nil, h.state.Revision, touched, now)
	if len(wire) == 0 {
		return
	}
	h.full = nil
	// No id and no place in the history: the revision did not change, and
	// a client resuming gets every drained server anew (see subscribe).
	h.sendLocked(&eventBatch{rev: h.state.Revision, wire: wire}, false)
}

// sendLocked offers b to every subscriber, dropping those that are full.
func (h *Hub) sendLocked(b *eventBatch, remember bool) {
	if remember {
		if len(h.history) == h.maxHistory {
			h.historyFrom = h.history[0].rev
			h.history[0] = nil
			h.history = h.history[1:]
		}
		h.history = append(h.history, b)
	}
	for s := range h.subs {
		select {
		case s.ch <- b:
		default:
			h.dropLocked(s)
		}
	}
}

// subscribe registers a subscriber and returns what it must be sent first:
// the events after revision last when the history still has them, else the
// full state. The initial data and the channel are taken under one lock,
// so nothing falls between them.
func (h *Hub) subscribe(last int64, resume bool) (*subscription, [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{ch: make(chan *eventBatch, h.buffer), ctx: ctx, cancel: cancel}
	if h.closed {
		cancel()
		return s, nil
	}
	h.subs[s] = struct{}{}
	if h.metrics != nil {
		h.metrics.subscribers.Inc()
	}
	if resume && last >= h.historyFrom && last <= h.state.Revision {
		var initial [][]byte
		for _, b := range h.history {
			if b.rev > last {
				initial = append(initial, b.wire)
			}
		}
		// Becoming drained is no revision of its own, so the history
		// lacks it: say it again.
		var drained []byte
		for _, id := range slices.Sorted(maps.Keys(h.pinned)) {
			if p := h.pinned[id]; p.Drained {
				drained = appendEvent(drained, EventActivity, activityEvent{Revision: h.state.Revision, ID: id, PinnedActivity: p})
			}
		}
		if len(drained) > 0 {
			initial = append(initial, drained)
		}
		return s, initial
	}
	if h.full == nil {
		h.full = h.encodeFullLocked()
	}
	return s, [][]byte{h.full}
}

// encodeFullLocked encodes the current state: a reset, one event per
// server, drain and server with pinned activity, and synced.
func (h *Hub) encodeFullLocked() []byte {
	rev := h.state.Revision
	buf := appendEvent(make([]byte, 0, 64+h.state.Len()*160), EventReset, revisionEvent{Revision: rev})
	for _, e := range h.state.Servers() {
		buf = appendEvent(buf, EventServerAdded, serverEvent{Revision: rev, Server: e.Server})
	}
	for _, id := range slices.Sorted(maps.Keys(h.drains)) {
		buf = appendEvent(buf, EventDrainStarted, drainEvent{Revision: rev, Drain: h.drains[id]})
	}
	for _, id := range slices.Sorted(maps.Keys(h.pinned)) {
		buf = appendEvent(buf, EventActivity, activityEvent{Revision: rev, ID: id, PinnedActivity: h.pinned[id]})
	}
	buf = appendEvent(buf, EventSynced, revisionEvent{Revision: rev})
	return appendID(buf, rev)
}

// fleetView is what the metrics read at scrape time.
type fleetView struct {
	state  *watch.Snapshot
	pinned map[string]PinnedActivity
}

func (h *Hub) view() fleetView {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fleetView{state: h.state, pinned: maps.Clone(h.pinned)}
}

// close ends every subscription, now and to come: the service is
// shutting down, and a stream would otherwise keep its connection busy.
func (h *Hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		s.cancel()
		if h.metrics != nil {
			h.metrics.subscribers.Dec()
		}
	}
}

// unsubscribe removes s when its client is gone.
func (h *Hub) unsubscribe(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		if h.metrics != nil {
			h.metrics.subscribers.Dec()
		}
	}
	s.cancel()
}

func (h *Hub) dropLocked(s *subscription) {
	delete(h.subs, s)
	s.cancel()
	if h.metrics != nil {
		h.metrics.subscribers.Dec()
		h.metrics.dropped.Inc()
	}
}
