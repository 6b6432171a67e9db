package discoverysvc

import (
	"context"
	"sync"
)

// Hub turns the registry snapshots of one watch into the events of
// GET /v1/events and fans them out to every subscriber. Each change is
// encoded once and the same bytes go to every subscriber, so a subscriber
// costs a channel and a connection, not a copy of the fleet.
//
// A subscriber whose channel is full is dropped, never waited for: one slow
// client must not hold back the others, and a dropped EventSource reconnects
// with Last-Event-ID and resumes from the hub's history.
type Hub struct {
	buffer     int
	maxHistory int
	metrics    *Metrics

	ready     chan struct{} // closed at the first publish
	readyOnce sync.Once

	mu     sync.Mutex
	closed bool
	state  *Snapshot
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

func newHub(buffer, history int, m *Metrics) *Hub {
	if buffer <= 0 {
		buffer = DefaultSubscriberBuffer
	}
	if history <= 0 {
		history = DefaultEventHistory
	}
	return &Hub{
		buffer:     buffer,
		maxHistory: history,
		metrics:    m,
		ready:      make(chan struct{}),
		state:      EmptySnapshot(),
		subs:       map[*subscription]struct{}{},
	}
}

// Ready is closed once the hub has the registry's state.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// State is the last snapshot published.
func (h *Hub) State() *Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// Subscribers is how many clients follow the hub.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// publish takes the watcher's new snapshot, turns what changed into one
// batch and offers it to every subscriber. It runs on the watcher's
// goroutine and never blocks on a subscriber.
func (h *Hub) publish(next *Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.state
	h.state = next
	h.full = nil
	first := false
	h.readyOnce.Do(func() {
		first = true
		close(h.ready)
	})
	if first {
		// The first list is the initial state, which every subscriber
		// gets in full; history starts after it.
		h.historyFrom = next.Revision
		return
	}
	changes := next.Diff(prev)
	if len(changes) == 0 {
		return // a rewrite of the same values: nothing to tell
	}
	b := &eventBatch{rev: next.Revision}
	b.wire = appendID(appendServerChanges(nil, b.rev, changes), b.rev)
	if len(h.history) == h.maxHistory {
		h.historyFrom = h.history[0].rev
		h.history[0] = nil
		h.history = h.history[1:]
	}
	h.history = append(h.history, b)
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
		return s, initial
	}
	if h.full == nil {
		h.full = h.encodeFullLocked()
	}
	return s, [][]byte{h.full}
}

// encodeFullLocked encodes the current state as a reset, one event per
// server, and synced.
func (h *Hub) encodeFullLocked() []byte {
	rev := h.state.Revision
	buf := appendEvent(make([]byte, 0, 64+h.state.Len()*160), EventReset, revisionEvent{Revision: rev})
	for _, e := range h.state.Servers() {
		buf = appendEvent(buf, EventServerAdded, serverEvent{Revision: rev, Server: e.Server})
	}
	buf = appendEvent(buf, EventSynced, revisionEvent{Revision: rev})
	return appendID(buf, rev)
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
