package caddymodule

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// DefaultUnreachableFor is how long a server this edge failed to connect to
// is kept out of its routing before one request tries it again.
const DefaultUnreachableFor = 10 * time.Second

// reachability is whether this edge can connect to one server. A registry
// entry says a server is alive; it cannot say that every edge has a route
// to it. When a connection fails (refused, no route, or timed out while
// connecting) the server is marked unreachable at this edge for a while,
// and for this edge it is then not alive: never placed, never kept at
// refresh, and its pinned clients are told to refresh. An HTTP answer,
// whatever its status, never marks: the server was reached.
//
// Caddy's passive health checks keep a failure count per dial address too,
// but they are off unless configured, count any proxy error including
// slow or 5xx answers when so configured, and live where only
// reverse_proxy's own selection sees them; placement runs before
// reverse_proxy, so the state lives here, reached from the snapshot entry.
// A request to a reachable server pays one atomic load for it.
type reachability struct {
	// until ends the current mark, in Unix nanoseconds; 0 while the server
	// is reachable. Once it has passed, the first request admitted moves it
	// forward and tries the server (a trial) while the others keep away.
	until atomic.Int64
}

// usable reports whether a request may be sent to the server: it is
// reachable, or its mark has run out and admit will choose the request
// that tries it.
func (r *reachability) usable() bool {
	u := r.until.Load()
	return u == 0 || time.Now().UnixNano() >= u
}

// admit claims the server for one request. ok is false while the server is
// marked, or when another request has just claimed the trial. trial is
// non-zero when this request is the one that tries the server again after
// its mark ran out; the trial holds the server for lease, so that if it
// never answers another request tries.
func (r *reachability) admit(lease time.Duration) (trial int64, ok bool) {
	u := r.until.Load()
	if u == 0 {
		return 0, true
	}
	now := time.Now().UnixNano()
	if now < u {
		return 0, false
	}
	next := now + int64(lease)
	if !r.until.CompareAndSwap(u, next) {
		return 0, false
	}
	return next, true
}

// failed records a failed connection: the server is marked for d from now,
// or longer if a mark already runs longer. It reports whether the server
// counted as reachable until then, that is, whether this is a new marking
// rather than a renewal.
func (r *reachability) failed(d time.Duration) bool {
	next := time.Now().UnixNano() + int64(d)
	for {
		u := r.until.Load()
		if u >= next {
			return false
		}
		if r.until.CompareAndSwap(u, next) {
			return u == 0
		}
	}
}

// answered ends the trial that reached the server, unless a failure seen
// meanwhile renewed the mark.
func (r *reachability) answered(trial int64) {
	r.until.CompareAndSwap(trial, 0)
}

// isConnectFailure reports whether err from reverse_proxy means that no
// connection to the server could be made: the request never left the edge.
// It is the same distinction Caddy makes to decide that a retry is safe.
func isConnectFailure(err error) bool {
	var de reverseproxy.DialError
	return errors.As(err, &de)
}

// reachableAtEdge is placement's view of which servers this edge may use.
func reachableAtEdge(e *watch.Entry) bool {
	t := targetOf(e)
	return t != nil && t.reach.usable()
}

// reachabilities keeps each server's reachability across the snapshot
// updates that rebuild its entry (any change of its load does), for as long
// as a snapshot holds the server. It is process-wide, like the edge's view
// of its network, so a config reload keeps what the edge learned.
var reachabilities = reachabilityStore{m: map[reachKey]weak.Pointer[reachability]{}}

// reachabilityStore maps a server's id and address to its reachability.
// Entries hold their reachability weakly: once no snapshot refers to a
// server any more, its state is collected and its entry removed, so ids
// that come and go do not pile up.
type reachabilityStore struct {
	mu sync.Mutex
	m  map[reachKey]weak.Pointer[reachability]
}

// reachKey includes the address: a server that moved is a new route.
type reachKey struct{ id, dial string }

// get returns the reachability of the server id at dial. It is called when
// a snapshot entry is built, never per request.
func (s *reachabilityStore) get(id, dial string) *reachability {
	k := reachKey{id, dial}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.m[k].Value(); r != nil {
		return r
	}
	r := new(reachability)
	s.m[k] = weak.Make(r)
	runtime.AddCleanup(r, s.forget, k)
	return r
}

func (s *reachabilityStore) forget(k reachKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k].Value() == nil {
		delete(s.m, k)
	}
}
