package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
)

// defaultSlowStart is the edge's default slow_start window.
const defaultSlowStart = 15 * time.Second

// The policies compared.
var policies = []policy{
	{"today", func(m *model, e *edge, list []*server, rnd uint64) *server {
		// Uniform among servers within hysteresis of the least reported
		// load, knowing nothing of capacities.
		c := make([]placement.Candidate, len(list))
		for i, s := range list {
			c[i] = placement.Candidate{Load: s.record.Load}
		}
		return at(list, placement.Choose(c, hysteresis, rnd))
	}},
	{"least-loaded", func(m *model, e *edge, list []*server, rnd uint64) *server {
		return list[0] // sorted by reported load
	}},
	{"two-choices", func(m *model, e *edge, list []*server, rnd uint64) *server {
		if len(list) == 1 {
			return list[0]
		}
		n := uint64(len(list))
		i, j := rnd%n, (rnd/n)%(n-1)
		if j >= i {
			j++
		}
		a, b := list[i], list[j]
		if b.record.Load < a.record.Load {
			return b
		}
		return a
	}},
	{"sessionpin", func(m *model, e *edge, list []*server, rnd uint64) *server {
		return at(list, placement.Choose(m.candidates(e, list), hysteresis, rnd))
	}},
}

func at(list []*server, i int) *server {
	if i < 0 {
		return nil
	}
	return list[i]
}

// A region of ten servers of mixed sizes, 20,000 clients of capacity in
// all, each taking no new clients above load 0.9.
var capacities = []float64{1000, 1000, 1500, 1500, 2000, 2000, 2000, 2500, 3000, 3500}

const (
	limit       = 0.9
	edgesPer    = 5
	arrivalRate = 40.0 // new clients a second per region
	session     = 150 * time.Second
	eventAt     = 20 * time.Second
	runFor      = 80 * time.Second
	burstSize   = 10000
)

// scenario sets up a model and returns the events to run at eventAt.
type scenario struct {
	name, title string
	setup       func(m *model) (event func(m *model, sched *schedule))
	// joining is the server whose share of new clients is reported.
	joining string
	// from is when, after the event, the peak and settling are measured
	// from.
	from time.Duration
}

// schedule holds the new clients to come, by time, each at an edge.
type schedule struct {
	at      []time.Duration
	edge    []*edge
	restart []restart
}

func (s *schedule) add(t time.Duration, e *edge) {
	s.at = append(s.at, t)
	s.edge = append(s.edge, e)
}

// spread schedules n clients over [from, from+over) at random edges of
// region.
func (m *model) spread(sched *schedule, n int, region string, from, over time.Duration) {
	var edges []*edge
	for _, e := range m.edges {
		if e.region == region {
			edges = append(edges, e)
		}
	}
	for range n {
		sched.add(from+time.Duration(m.rng.Int64N(int64(over))), edges[m.rng.IntN(len(edges))])
	}
}

func region(m *model, name string, n int) []*server {
	var out []*server
	for i := range n {
		s := m.addServer(fmt.Sprintf("%s-%d", name, i+1), name, capacities[i%len(capacities)], limit)
		out = append(out, s)
	}
	return out
}

// steady fills servers with the clients of the steady state, in
// proportion to capacity with Poisson noise, and writes their records.
func (m *model) steady(servers []*server) {
	var capacity float64
	for _, s := range servers {
		capacity += s.capacity
	}
	total := arrivalRate * session.Seconds()
	for _, s := range servers {
		m.start(s)
		s.clients = poisson(m.rng, total*s.capacity/capacity)
		m.write(s)
	}
}

var scenarios = []scenario{
	{name: "burst", title: "10,000 new clients in 1 s",
		setup: func(m *model) func(*model, *schedule) {
			m.steady(region(m, "a", 10))
			m.addEdges(edgesPer, "a")
			return func(m *model, sched *schedule) {
				m.spread(sched, burstSize, "a", eventAt, time.Second)
			}
		}},
	{name: "join", title: "a server joins", joining: "a-11",
		setup: func(m *model) func(*model, *schedule) {
			m.steady(region(m, "a", 10))
			m.addEdges(edgesPer, "a")
			joiner := m.addServer("a-11", "a", 2000, limit)
			return func(m *model, _ *schedule) { m.start(joiner) }
		}},
	{name: "failover", title: "a region fails over",
		setup: func(m *model) func(*model, *schedule) {
			m.steady(region(m, "a", 10))
			b := region(m, "b", 10)
			m.steady(b)
			m.addEdges(edgesPer, "a")
			m.addEdges(edgesPer, "b", "a")
			return func(m *model, sched *schedule) {
				lost := 0
				for _, s := range b {
					lost += m.stop(s)
				}
				// The failed region's clients come back within 5 s,
				// through their own edges, which fall back.
				m.spread(sched, lost, "b", eventAt, 5*time.Second)
			}
		}},
	{name: "restart", title: "the fleet restarts", from: 3 * time.Second,
		setup: func(m *model) func(*model, *schedule) {
			a := region(m, "a", 10)
			m.steady(a)
			m.addEdges(edgesPer, "a")
			return func(m *model, sched *schedule) {
				lost := 0
				for _, s := range a {
					lost += m.stop(s)
				}
				// Servers are back within 2–3 s; their clients retry
				// within 10 s.
				for _, s := range a {
					sched.restart = append(sched.restart, restart{eventAt + 2*time.Second + time.Duration(m.rng.Int64N(int64(time.Second))), s})
				}
				m.spread(sched, lost, "a", eventAt+2*time.Second, 10*time.Second)
			}
		}},
}

type restart struct {
	at time.Duration
	s  *server
}

// result is one scenario under one policy.
type result struct {
	scenario, policy string
	times            []float64 // seconds since the event
	fairness         []float64 // largest server over its fair share
	peak             float64   // the largest fairness from the event on
	settle           float64   // seconds from the event until fairness stays at or below settleAt; -1 never
	joinShare        float64   // the joining server's share of new clients in its first joinWindow
	joinAfter        float64   // its share in the joinWindow after the slow-start window
	joinFair         float64   // its fair share (by capacity)
	unplaced         int
}

const (
	settleAt   = 1.10
	joinWindow = 10 * time.Second
)

func run(sc scenario, p policy, seed uint64) result {
	m := newModel(p, seed)
	event := sc.setup(m)
	res := result{scenario: sc.name, policy: p.name, settle: -1}
	sched := &schedule{}
	regions := map[string][]*edge{}
	var order []string
	for _, e := range m.edges {
		if regions[e.region] == nil {
			order = append(order, e.region)
		}
		regions[e.region] = append(regions[e.region], e)
	}
	var retry []*edge
	var joinBase map[string]int
	var joinServer *server
	for _, s := range m.servers {
		if s.id == sc.joining {
			joinServer = s
		}
	}
	next := 0
	for m.now < runFor {
		m.tick()
		if m.now == eventAt {
			event(m, sched)
			idx := make([]int, len(sched.at))
			for i := range idx {
				idx[i] = i
			}
			slices.SortFunc(idx, func(a, b int) int { return int(sched.at[a] - sched.at[b]) })
			at, ed := make([]time.Duration, len(idx)), make([]*edge, len(idx))
			for i, j := range idx {
				at[i], ed[i] = sched.at[j], sched.edge[j]
			}
			sched.at, sched.edge = at, ed
			slices.SortFunc(sched.restart, func(a, b restart) int { return int(a.at - b.at) })
			joinBase = map[string]int{"a": m.placedAll["a"]}
		}
		for len(sched.restart) > 0 && sched.restart[0].at <= m.now {
			m.start(sched.restart[0].s)
			sched.restart = sched.restart[1:]
		}
		// Baseline arrivals, then the scheduled ones, then retries.
		var now []*edge
		for _, r := range order {
			for range poisson(m.rng, arrivalRate*step.Seconds()) {
				es := regions[r]
				now = append(now, es[m.rng.IntN(len(es))])
			}
		}
		for next < len(sched.at) && sched.at[next] <= m.now {
			now = append(now, sched.edge[next])
			next++
		}
		now = append(now, retry...)
		retry = retry[:0]
		m.rng.Shuffle(len(now), func(i, j int) { now[i], now[j] = now[j], now[i] })
		for _, e := range now {
			if !m.arrive(e) {
				retry = append(retry, e)
			}
		}
		if joinServer != nil && m.now == eventAt+joinWindow {
			placed := m.placedAll["a"] - joinBase["a"]
			res.joinShare = float64(m.placements[joinServer]) / float64(placed)
			var capacity float64
			for _, s := range m.servers {
				if s.region == "a" {
					capacity += s.capacity
				}
			}
			res.joinFair = joinServer.capacity / capacity
		}
		if joinServer != nil && m.now == eventAt+defaultSlowStart {
			joinBase["after"] = m.placedAll["a"]
			joinBase["afterJoiner"] = m.placements[joinServer]
		}
		if joinServer != nil && m.now == eventAt+defaultSlowStart+joinWindow {
			res.joinAfter = float64(m.placements[joinServer]-joinBase["afterJoiner"]) / float64(m.placedAll["a"]-joinBase["after"])
		}
		if m.now >= eventAt-5*time.Second && m.now%sample == 0 {
			f := m.fairness("a")
			t := (m.now - eventAt).Seconds()
			res.times = append(res.times, t)
			res.fairness = append(res.fairness, f)
			if t >= sc.from.Seconds() {
				res.peak = max(res.peak, f)
				if f > settleAt {
					res.settle = -1
				} else if res.settle < 0 {
					res.settle = t
				}
			}
		}
	}
	res.unplaced = len(retry)
	return res
}
