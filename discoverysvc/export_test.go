package discoverysvc

import (
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// Accessors that only the tests need.

// State is the last snapshot the hub took.
func (h *Hub) State() *watch.Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}
