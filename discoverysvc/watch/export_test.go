package watch

// Accessors that only the tests need.

// OperatorDrained reports whether an operator drain names server id,
// whether or not it is registered.
func (s *Snapshot) OperatorDrained(id string) bool { return s.drains[id] }
