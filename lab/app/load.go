package app

import (
	"sync"
	"time"
)

// ClientHeader names the lab client a request comes from. It is the lab's
// own header, sent by the lab's clients alone: the app counts the clients
// it serves by it, and knows nothing of how the edge pins them.
const ClientHeader = "X-Lab-Client"

// maxClientID bounds the client ids counted, so that a request cannot make
// the app keep an arbitrarily long key.
const maxClientID = 64

// DefaultLoadWindow is how long a client counts in a server's load after
// its last request: longer than the longest pause between two requests of
// a working lab client (its think times and a refresh), so that a client
// at work never drops out, and short enough that a client gone elsewhere
// stops counting within a few heartbeats.
const DefaultLoadWindow = 3 * time.Second

// recent counts the distinct clients served within a window.
type recent struct {
	window time.Duration

	mu   sync.Mutex
	last map[string]time.Time
}

func newRecent(window time.Duration) *recent {
	if window <= 0 {
		window = DefaultLoadWindow
	}
	return &recent{window: window, last: map[string]time.Time{}}
}

// seen records a request from client id at now; an empty or overlong id is
// not counted.
func (r *recent) seen(id string, now time.Time) {
	if id == "" || len(id) > maxClientID {
		return
	}
	r.mu.Lock()
	if now.After(r.last[id]) {
		r.last[id] = now
	}
	r.mu.Unlock()
}

// count returns how many clients were served within the window before now,
// forgetting the others.
func (r *recent) count(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range r.last {
		if now.Sub(at) >= r.window {
			delete(r.last, id)
		}
	}
	return len(r.last)
}

// Load is the load a server reports: the distinct clients it served within
// the window over its capacity (the clients it holds at load 1); 0 when it
// was told no capacity.
func Load(clients int, capacity float64) float64 {
	if !(capacity > 0) {
		return 0
	}
	return float64(clients) / capacity
}
