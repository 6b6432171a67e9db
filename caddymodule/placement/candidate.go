package placement

// Candidate is what placement knows of one server when it places a new
// client: the server's own report, its declared size, and what this edge
// has done since the report.
type Candidate struct {
	// Load is the load the server last reported (0–1 utilisation by
	// convention).
	Load float64
	// Capacity is how many clients the server holds at load 1; 0 when it
	// declared none. It is also the server's weight: at equal load, a
	// server of twice the capacity takes twice the new clients.
	Capacity float64
	// Limit is the load at or above which the server takes no new clients;
	// 0 when it declared none.
	Limit float64
	// Placed is how many clients this edge has placed on the server since
	// the report that carried Load arrived (Placements.Since).
	Placed uint64
	// Unseen is how many more clients the server may hold than Load and
	// Placed say: the clients this edge placed just before the report
	// arrived, which it may not include, and those the other edges are
	// expected to have placed since (Placements.Since). Only the limit
	// counts them (AtLimit): a limit must hold even when the estimate is
	// wrong, while the choice among servers wants the likeliest estimate.
	Unseen float64
	// Ramp is the server's slow-start factor (SlowStart.Ramp): 1 for an
	// established server, less for one that has just joined. 0 is read as
	// 1, so that a zero Candidate is an established server.
	Ramp float64
}

// Estimate is the server's load as this edge estimates it now: the reported
// load plus, when the server declared a capacity, 1/capacity for each
// client this edge has placed there since the report. The estimate is what
// keeps an edge from sending every new client of a burst to the server that
// looked least loaded at the last heartbeat. Without a capacity a client's
// share of the load is unknown, and the reported load stands alone.
func (c Candidate) Estimate() float64 {
	if c.Capacity > 0 {
		return c.Load + float64(c.Placed)/c.Capacity
	}
	return c.Load
}

// AtLimit reports whether the server takes no new clients: it declared a
// limit and the load it may have reached it. For a server with a capacity,
// that is the estimate plus the clients it may hold unseen (Estimate,
// Unseen); for one without, the reported load alone.
func (c Candidate) AtLimit() bool {
	if c.Limit <= 0 {
		return false
	}
	worst := c.Estimate()
	if c.Capacity > 0 {
		worst += max(c.Unseen, 0) / c.Capacity
	}
	return worst >= c.Limit
}

// ramp is Ramp with 0 and out-of-range values read as established, so that
// a bad factor can only leave a server unramped, never starve it.
func (c Candidate) ramp() float64 {
	if c.Ramp > 0 {
		return min(c.Ramp, 1)
	}
	return 1
}
