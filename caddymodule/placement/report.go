package placement

import "time"

// ReportDelay is how long before a load report reaches the edge the
// server may have measured it: the agent's reading, its heartbeat, the
// registry write committed by a quorum of etcd members that may sit in
// other regions, and the watch. A client placed within this of a report's
// arrival may be missing from it, so the limit keeps counting it against
// the new report too (Recent.Late, Candidate.Unseen); counting one twice
// for a moment costs less than a server past its limit.
const ReportDelay = time.Second

// PlacedMaxAge is how long one placement counts toward a server's
// estimated load at most. A report that would have included it may never
// come: discovery writes a load only once it has moved enough. By then the
// server's own report includes the client, or the clients that left since
// have made up for it.
const PlacedMaxAge = 5 * time.Second

// Report is one load report of a server as an edge received it, with what
// the edge learnt from it about the other edges placing there.
type Report struct {
	// Load and Capacity are the record's.
	Load, Capacity float64
	// At is when the edge received the report, a monotonic time (the
	// Tally's clock); 0 when the edge has seen no report.
	At time.Duration
	// Others is how many clients the other edges placed on the server, net
	// of the clients that left, between the report before and this one:
	// the rise of its load in clients beyond what this edge placed itself.
	// It is 0 when nothing is known (the first report, a capacity
	// unknown or changed, reports too far apart to tell) or when the load
	// rose no more than this edge's own placements explain. It is an
	// estimate, and may be low: this edge's placements are taken as
	// reaching a report ReportDelay after they were made, so when reports
	// travel faster some of them are counted against the wrong rise. A
	// limit that must hold counts on limit_edges, not on this.
	Others float64
	// Gap is the time between the report before and this one.
	Gap time.Duration
}

// Placements follows one server at one edge: the clients the edge placed
// there (a Tally) and the load reports it received. It lives as long as
// the edge knows the server, across the record changes that rebuild
// everything else.
//
// Add and Since may run on any goroutine; Received must be called by one
// goroutine at a time, the one that applies registry changes.
type Placements struct {
	tally Tally
	last  Report
}

// Add counts one client placed on the server at now.
func (p *Placements) Add(now time.Duration) { p.tally.Add(now) }

// Received takes the server's record as a load report received at now and
// returns the Report the edge holds from then on. A record whose load and
// capacity equal the last report's is not a new report (the same record
// applied again, or one that changed in another field while the load did
// not move); the last report stands, and with it the placements counted
// against it.
func (p *Placements) Received(load, capacity float64, now time.Duration) Report {
	prev := p.last
	if prev.At != 0 && load == prev.Load && capacity == prev.Capacity {
		return prev
	}
	r := Report{Load: load, Capacity: capacity, At: max(now, 1)}
	if prev.At != 0 && capacity == prev.Capacity {
		r.Gap = r.At - prev.At
		r.Others = othersPlaced(prev, r, p.tally.Count(prev.At-ReportDelay, r.At-ReportDelay))
	}
	p.last = r
	return r
}

// othersPlaced is Report.Others: the rise in clients from prev to r beyond
// own, this edge's placements that the rise could include. Reports further
// apart than PlacedMaxAge say nothing: the Tally no longer holds all of
// the edge's own placements between them.
func othersPlaced(prev, r Report, own uint64) float64 {
	if r.Gap > PlacedMaxAge {
		return 0
	}
	rise := (r.Load - prev.Load) * r.Capacity
	return max(0, rise-float64(own))
}

// Recent is what an edge knows, at some moment, of the clients placed on a
// server since its last load report (Placements.Since).
type Recent struct {
	// Placed is this edge's placements since the report arrived.
	Placed uint64
	// Late is this edge's placements within ReportDelay before the report
	// arrived, which the report may not include.
	Late uint64
	// Others is how many clients the other edges are expected to have
	// placed since the report: as many as between the last two reports,
	// at the same pace, never more.
	Others float64
}

// Unseen is Candidate.Unseen: the clients the server may hold beyond the
// report and this edge's placements since, for an edge that keeps room for
// edges - 1 others (Edge.LimitEdges): the late placements, and the others'
// expected placements or the room kept for them, whichever is more.
func (r Recent) Unseen(edges int) float64 {
	room := float64(max(edges-1, 0)) * (float64(r.Placed) + float64(r.Late) + 1)
	return float64(r.Late) + max(r.Others, room)
}

// Since returns what the edge knows at now of the clients placed on the
// server since report r, counting none older than PlacedMaxAge.
func (p *Placements) Since(r Report, now time.Duration) Recent {
	oldest := now - PlacedMaxAge
	placed, sinceLate := p.tally.Count2(max(r.At, oldest), max(r.At-ReportDelay, oldest), now)
	return Recent{Placed: placed, Late: sinceLate - placed, Others: r.expectedOthers(now)}
}

// expectedOthers is the part of r.Others that the other edges, placing at
// the pace they did between the last two reports, have placed by now; none
// once the report is older than PlacedMaxAge.
func (r Report) expectedOthers(now time.Duration) float64 {
	age := now - r.At
	if age >= PlacedMaxAge {
		return 0
	}
	// The share of the gap gone by since r, from 0 to 1; a gap of 0 (two
	// reports at once) is gone at once.
	gone := 1.0
	if r.Gap > 0 {
		gone = min(max(float64(age)/float64(r.Gap), 0), 1)
	}
	return r.Others * gone
}
