package discoverysvc

// Accessors that only the tests need.

// State is the last snapshot the hub took.
func (h *Hub) State() *Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// OperatorDrained reports whether an operator drain names server id,
// whether or not it is registered.
func (s *Snapshot) OperatorDrained(id string) bool { return s.drains[id] }
