package scenario

import (
	"sort"
	"time"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/lab/results"
	"github.com/sessionpin/sessionpin/lab/stack"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// The edge's placement settings in the lab: the root Caddyfile sets
// neither, so they are caddymodule's defaults (a test holds them equal).
const (
	EdgeSlowStart  = 15 * time.Second
	EdgeHysteresis = 0.1
)

// edgeSlowStart is the ramp the lab's edges apply.
var edgeSlowStart = placement.SlowStart{Window: EdgeSlowStart}

// FleetSample is the registry at one moment.
type FleetSample struct {
	At      time.Time
	Servers []stack.ServerState
}

// Arrival is a newcomer's placement by the edge of Region: Server is ""
// when its login failed.
type Arrival struct {
	At     time.Time
	Region string
	Server string
}

// RampShare is the share of a region's new clients slow start gives a
// server age after its return, at equal loads: its capacity times its
// ramp over that plus the capacities of the region's other servers
// (others). A capacity of 0 weighs 1, as every server then does.
func RampShare(ss placement.SlowStart, age time.Duration, capacity float64, others []float64) float64 {
	w := func(c float64) float64 {
		if c > 0 {
			return c
		}
		return 1
	}
	own := w(capacity) * ss.Ramp(age)
	total := own
	for _, c := range others {
		total += w(c)
	}
	return own / total
}

// ruleDraws is how many draws RuleShare averages over.
const ruleDraws = 1024

// RuleShare is the share of a region's new clients the edge's placement
// rule (placement.Choose) gives server i of servers, by the loads,
// capacities, limits and ramps the candidates carry: the fraction of
// ruleDraws consecutive draws that choose it. 0 when i is out of range.
func RuleShare(servers []placement.Candidate, i int, hysteresis float64) float64 {
	if i < 0 || i >= len(servers) {
		return 0
	}
	// Choose wants the candidates least loaded first.
	order := make([]int, len(servers))
	for k := range order {
		order[k] = k
	}
	sort.SliceStable(order, func(a, b int) bool { return servers[order[a]].Load < servers[order[b]].Load })
	sorted := make([]placement.Candidate, len(servers))
	at := 0
	for k, o := range order {
		sorted[k] = servers[o]
		if o == i {
			at = k
		}
	}
	hits := 0
	for rnd := uint64(0); rnd < ruleDraws; rnd++ {
		if placement.Choose(sorted, hysteresis, rnd) == at {
			hits++
		}
	}
	return float64(hits) / ruleDraws
}

// latest is the last sample at or before t; nil when there is none.
func latest(samples []FleetSample, t time.Time) *FleetSample {
	k := sort.Search(len(samples), func(k int) bool { return samples[k].At.After(t) })
	if k == 0 {
		return nil
	}
	return &samples[k-1]
}

// placedSpan is how long the edge counts a placement at most (3 to 6 s;
// caddymodule's placedSpan): the middle is taken.
const placedSpan = 4500 * time.Millisecond

// placed estimates the edge's own count of the clients it placed on a
// server since its last load report, as of t: the newcomers region's edge
// placed on server since the sample in which the server's current load
// first showed (its report), within placedSpan. The refreshes the edge
// moved there also count at the edge; the lab does not see them, and they
// are few beside the newcomers.
func placed(samples []FleetSample, k int, id, region string, t time.Time, arrivals []Arrival) uint64 {
	load := func(s FleetSample) (float64, bool) {
		for _, sv := range s.Servers {
			if sv.ID == id {
				return sv.Load, true
			}
		}
		return 0, false
	}
	cur, ok := load(samples[k])
	if !ok {
		return 0
	}
	first := k
	for first > 0 {
		if l, ok := load(samples[first-1]); !ok || l != cur {
			break
		}
		first--
	}
	from := samples[first].At
	if f := t.Add(-placedSpan); f.After(from) {
		from = f
	}
	n := uint64(0)
	for _, a := range arrivals {
		if a.Region == region && a.Server == id && !a.At.Before(from) && a.At.Before(t) {
			n++
		}
	}
	return n
}

// candidates are region's servers as its edge's placement sees them at t,
// from the last registry sample before t: the reported load, the declared
// capacity and limit, the clients the edge placed since the report
// (placed), and the ramp from each server's last return before t
// (returns); and the index of server among them (-1 when it is not
// listed).
func candidates(samples []FleetSample, region, server string, t time.Time, returns map[string][]time.Time, arrivals []Arrival) ([]placement.Candidate, int) {
	k := sort.Search(len(samples), func(k int) bool { return samples[k].At.After(t) }) - 1
	if k < 0 {
		return nil, -1
	}
	var out []placement.Candidate
	at := -1
	for _, sv := range samples[k].Servers {
		if sv.Region != region || sv.Draining {
			continue
		}
		c := placement.Candidate{Load: sv.Load, Capacity: sv.Capacity, Limit: sv.Limit, Ramp: 1,
			Placed: placed(samples, k, sv.ID, region, t, arrivals)}
		if back, ok := lastBefore(returns[sv.ID], t); ok {
			c.Ramp = edgeSlowStart.Ramp(t.Sub(back))
		}
		if sv.ID == server {
			at = len(out)
		}
		out = append(out, c)
	}
	return out, at
}

// othersAtLimit reports whether every server of cs but i is at its limit.
func othersAtLimit(cs []placement.Candidate, i int) bool {
	n := 0
	for k, c := range cs {
		if k == i {
			continue
		}
		if !c.AtLimit() {
			return false
		}
		n++
	}
	return n > 0
}

func lastBefore(ts []time.Time, t time.Time) (time.Time, bool) {
	var last time.Time
	for _, x := range ts {
		if !x.After(t) && x.After(last) {
			last = x
		}
	}
	return last, !last.IsZero()
}

// RampOf bins the placements of server's region's newcomers (arrivals)
// from back, its return, on: n bins of width. Each bin has the server's
// share of the region's newcomers placed in it, beside RampShare,
// RuleShare and PeersAtLimit averaged over those placements (at the bin's
// middle when there are none), from the registry samples, the arrivals
// (for the edge's own count) and every server's returns. start is the
// run's start.
func RampOf(server string, back, start time.Time, width time.Duration, n int, arrivals []Arrival, samples []FleetSample, returns map[string][]time.Time) results.Ramp {
	region := topo.ServerRegion(server)
	r := results.Ramp{Server: server, Region: region, ReturnedAtS: back.Sub(start).Seconds()}
	for b := range n {
		from, to := back.Add(time.Duration(b)*width), back.Add(time.Duration(b+1)*width)
		bin := results.RampBin{FromS: (time.Duration(b) * width).Seconds(), ToS: (time.Duration(b+1) * width).Seconds()}
		var at []time.Time
		for _, a := range arrivals {
			if a.Region != region || a.Server == "" || a.At.Before(from) || !a.At.Before(to) {
				continue
			}
			bin.Placements++
			if a.Server == server {
				bin.OnServer++
			}
			at = append(at, a.At)
		}
		if len(at) == 0 {
			at = []time.Time{from.Add(width / 2)}
		} else {
			bin.Share = float64(bin.OnServer) / float64(bin.Placements)
		}
		for _, t := range at {
			bin.RampShare += rampShareAt(server, region, back, t, samples)
			cs, i := candidates(samples, region, server, t, returns, arrivals)
			bin.RuleShare += RuleShare(cs, i, EdgeHysteresis)
			if othersAtLimit(cs, i) {
				bin.PeersAtLimit++
			}
		}
		bin.RampShare /= float64(len(at))
		bin.RuleShare /= float64(len(at))
		bin.PeersAtLimit /= float64(len(at))
		r.Bins = append(r.Bins, bin)
	}
	return r
}

// rampShareAt is RampShare for server at t, with the capacities the
// registry listed last (every server weighing alike before any sample).
func rampShareAt(server, region string, back, t time.Time, samples []FleetSample) float64 {
	own, others := 0.0, []float64(nil)
	if s := latest(samples, t); s != nil {
		for _, sv := range s.Servers {
			switch {
			case sv.ID == server:
				own = sv.Capacity
			case sv.Region == region && !sv.Draining:
				others = append(others, sv.Capacity)
			}
		}
	}
	if others == nil {
		for _, h := range topo.Servers() {
			if h.Region == region && h.Name != server {
				others = append(others, own)
			}
		}
	}
	return RampShare(edgeSlowStart, t.Sub(back), own, others)
}

// Peak is the highest load over limit among samples (the highest load
// when no server declares a limit), with the share of samples in which
// some server was at or above its limit; nil without samples.
func Peak(samples []FleetSample, start time.Time) *results.LoadPeak {
	if len(samples) == 0 {
		return nil
	}
	p := &results.LoadPeak{Samples: len(samples)}
	best, atLimit := -1.0, 0
	for _, s := range samples {
		hit := false
		for _, sv := range s.Servers {
			v := sv.Load
			if sv.Limit > 0 {
				v = sv.Load / sv.Limit
				hit = hit || sv.Load >= sv.Limit
			}
			if v > best {
				best = v
				p.Server, p.Load, p.Limit, p.AtS = sv.ID, sv.Load, sv.Limit, s.At.Sub(start).Seconds()
				p.Ratio = 0
				if sv.Limit > 0 {
					p.Ratio = v
				}
			}
		}
		if hit {
			atLimit++
		}
	}
	p.AtLimitShare = float64(atLimit) / float64(len(samples))
	return p
}
