package placement

import "math"

// Choose returns the index in c of the server a new client goes to, or -1
// when there is none: c is empty, or every server is at its limit. c must
// be sorted by reported Load, least first, as a snapshot region's active
// servers are. It is the rule Edge.Place applies to each region in turn,
// exported for tests and simulations that hold their own servers.
//
// The rule, where a server's weight is its capacity times its slow-start
// ramp:
//
//   - A server at its limit (Candidate.AtLimit) takes no new client; the
//     others are the servers considered.
//   - The band is the servers considered whose estimated load
//     (Candidate.Estimate) is within hysteresis of the least estimate among
//     established servers (among all, when every server is in slow start).
//   - The band takes the client, drawn by weight, unless the band's share
//     of the weight of the servers considered is below 1/BandBoost: then
//     the band takes BandBoost times its share, and the rest of the clients
//     are drawn by weight from all the servers considered. So a server far
//     below the others (one that has just come out of slow start) takes
//     several times its share until it catches up, but not every client of
//     every edge until its next load report.
//
// A server that declared no capacity weighs as the mean capacity of the
// servers considered that did (as 1 when none did). When no server
// considered declared a capacity or a limit and none is in slow start, the
// band is drawn uniformly and takes every client: the rule before
// capacities existed. When every server is in slow start (a fresh start, a
// fleet restart) the ramps are ignored: there is no established server to
// hold new clients back for.
func Choose(c []Candidate, hysteresis float64, rnd uint64) int {
	return choose(len(c), func(i int) (Candidate, bool) { return c[i], true }, hysteresis, rnd, false)
}

// BandBoost bounds how much more than its share of the weight the band
// takes: the power of two choices gives the least loaded of a pair about
// twice its share, and twice is what makes stale loads harmless there too.
const BandBoost = 2

// choose is Choose over n servers that at describes; at reports false for a
// server that may not take the client at all (this edge cannot reach it).
// plain promises that no server declares a capacity or a limit and none is
// in slow start, so the scan may stop past the band.
func choose(n int, at func(int) (Candidate, bool), hysteresis float64, rnd uint64, plain bool) int {
	h := clampHysteresis(hysteresis)
	// Pass 1: the band's floor, the least estimate among established
	// servers (among all when none is established), and the mean declared
	// capacity. With plain, estimates are reported loads, which are
	// sorted, so the scan stops at the first server above the band.
	established, all := math.Inf(1), math.Inf(1)
	var declared, nDeclared float64
	end, special, anyRamping, least := n, false, false, -1
	for i := range n {
		c, ok := at(i)
		if !ok || c.AtLimit() {
			continue
		}
		if plain && c.Load > established+h {
			end = i
			break
		}
		est := c.Estimate()
		if c.ramp() == 1 {
			established = min(established, est)
		} else {
			anyRamping = true
		}
		if est < all {
			all, least = est, i
		}
		if c.Capacity > 0 {
			declared += c.Capacity
			nDeclared++
		}
		special = special || c.Capacity > 0 || c.Limit > 0
	}
	if least < 0 {
		return -1
	}
	unweighted := 1.0
	if nDeclared > 0 {
		unweighted = declared / nDeclared
	}
	// When every server is in slow start (a fresh start, a fleet restart)
	// there is no established server to hold the new clients back for:
	// the ramps are ignored.
	rampAll := math.IsInf(established, 1)
	floor := established
	if rampAll {
		floor = all
	} else {
		special = special || anyRamping
	}
	weight := func(c Candidate) float64 {
		w := unweighted
		if c.Capacity > 0 {
			w = c.Capacity
		}
		if rampAll {
			return w
		}
		return w * c.ramp()
	}
	limit := floor + h
	considered := func(i int) (Candidate, bool) {
		c, ok := at(i)
		return c, ok && !c.AtLimit()
	}

	if !special {
		// Today's rule: uniform over the band, by integer arithmetic so
		// that every member is chosen equally often over any period of rnd
		// that is a multiple of the band's size.
		k := uint64(0)
		for i := range end {
			if c, ok := considered(i); ok && c.Load <= limit {
				k++
			}
		}
		if k == 0 {
			// at reads live state, which may change between passes:
			// least was usable a moment ago.
			return least
		}
		pick := rnd % k
		for i := range end {
			if c, ok := considered(i); ok && c.Load <= limit {
				if pick == 0 {
					return i
				}
				pick--
			}
		}
		return least
	}

	// Pass 2: the weights of the band and of every server considered.
	var bandW, allW float64
	for i := range end {
		c, ok := considered(i)
		if !ok {
			continue
		}
		w := weight(c)
		allW += w
		if c.Estimate() <= limit {
			bandW += w
		}
	}
	// A Weyl step spreads consecutive rnd over [0, 1), so that tables
	// walking rnd from 0 see every part of the draw.
	u := float64((rnd*0x9e3779b97f4a7c15)>>11) / (1 << 53)
	// The band takes the client with probability share, else every server
	// considered is drawn from by weight; u is rescaled to the draw made.
	share := min(1, BandBoost*bandW/allW)
	inBand := u < share
	total := allW
	if inBand {
		u /= share
		total = bandW
	} else {
		u = (u - share) / (1 - share)
	}
	target := u * total
	// With no member at all, at changed between passes: least was usable
	// a moment ago.
	last := least
	for i := range end {
		c, ok := considered(i)
		if !ok || (inBand && c.Estimate() > limit) {
			continue
		}
		w := weight(c)
		last = i
		if target < w {
			return i
		}
		target -= w
	}
	// Rounding left the draw past the last member: take it.
	return last
}
