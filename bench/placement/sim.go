package main

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
)

// The model. Time advances in fixed steps. Servers heartbeat every
// heartbeat interval at their own phase, reporting load = clients /
// capacity; discovery writes a record only when the load moved by at least
// writeThreshold (as it does), and every edge sees a written record at once
// (the watch takes milliseconds, a heartbeat seconds). New clients arrive
// at a region's edges at random; each edge places them by the policy under
// test from what it sees: the records, and for the new rule its own tally
// of placements and when it saw each server join. Clients leave at random
// (exponential session lengths).
const (
	step           = 50 * time.Millisecond
	heartbeat      = 3 * time.Second
	writeThreshold = 0.02
	hysteresis     = 0.1
	sample         = 500 * time.Millisecond
)

// server is one backend server of the model.
type server struct {
	id       string
	region   string
	capacity float64
	limit    float64
	clients  int
	alive    bool
	phase    time.Duration // heartbeat phase
	// record is what discovery last wrote; present is false when the
	// server has no record (not yet joined, or gone).
	record  placement.Candidate
	present bool
	// gen counts record writes: an edge's tally belongs to one record.
	gen int
	// life counts starts: an edge that sees a new one has seen the server
	// join.
	life int
}

// edgeView is what one edge knows of one server besides the record.
type edgeView struct {
	gen        int
	life       int
	placements placement.Placements
	report     placement.Report
	joined     time.Duration
}

type edge struct {
	region   string
	fallback []string
	views    map[*server]*edgeView
}

// policy places one new client at edge e among the servers of the region
// it sees (sorted by reported load); it returns nil when none will take it.
type policy struct {
	name  string
	place func(m *model, e *edge, region []*server, rnd uint64) *server
}

type model struct {
	now       time.Duration
	rng       *rand.Rand
	servers   []*server
	edges     []*edge
	policy    policy
	slowStart placement.SlowStart
	session   time.Duration // mean session length
	// placements counts new clients placed on each server, for the
	// joining server's share.
	placements map[*server]int
	placedAll  map[string]int // by region
}

func newModel(p policy, seed uint64) *model {
	return &model{
		rng:        rand.New(rand.NewPCG(seed, seed^0x5eed)),
		policy:     p,
		slowStart:  placement.SlowStart{Window: defaultSlowStart},
		session:    10 * time.Minute,
		placements: map[*server]int{},
		placedAll:  map[string]int{},
	}
}

func (m *model) addServer(id, region string, capacity, limit float64) *server {
	s := &server{id: id, region: region, capacity: capacity, limit: limit, phase: time.Duration(m.rng.Int64N(int64(heartbeat)))}
	m.servers = append(m.servers, s)
	return s
}

func (m *model) addEdges(n int, region string, fallback ...string) {
	for range n {
		m.edges = append(m.edges, &edge{region: region, fallback: fallback, views: map[*server]*edgeView{}})
	}
}

// start brings a server up with its first record written.
func (m *model) start(s *server) {
	s.alive = true
	s.clients = 0
	s.life++
	m.write(s)
}

// stop takes a server down: its agent deregisters, and its clients lose it.
func (m *model) stop(s *server) int {
	s.alive, s.present = false, false
	n := s.clients
	s.clients = 0
	return n
}

func (s *server) load() float64 { return float64(s.clients) / s.capacity }

func (m *model) write(s *server) {
	s.record = placement.Candidate{Load: s.load(), Capacity: s.capacity, Limit: s.limit}
	s.present = true
	s.gen++
}

// tick advances one step: heartbeats, departures.
func (m *model) tick() {
	prev := m.now
	m.now += step
	for _, s := range m.servers {
		if !s.alive {
			continue
		}
		// Departures, Poisson with the session's rate.
		if s.clients > 0 {
			lambda := float64(s.clients) * float64(step) / float64(m.session)
			s.clients -= min(s.clients, poisson(m.rng, lambda))
		}
		// A heartbeat falls in (prev, now] when its phase does.
		if (m.now-s.phase)/heartbeat != (prev-s.phase)/heartbeat {
			if math.Abs(s.load()-s.record.Load) >= writeThreshold {
				m.write(s)
			}
		}
	}
}

// visible returns the servers of region edge e sees, least loaded first,
// updating e's views (tally per record, join time).
func (m *model) visible(e *edge, region string) []*server {
	var out []*server
	for _, s := range m.servers {
		if s.region != region {
			continue
		}
		if !s.present {
			continue
		}
		v := e.views[s]
		if v == nil {
			v = &edgeView{}
			e.views[s] = v
		}
		if v.life != s.life {
			v.life, v.joined, v.gen = s.life, m.now, -1
			if m.now == 0 {
				v.joined = -time.Hour // there before the edge: established
			}
		}
		if v.gen != s.gen {
			v.gen = s.gen
			v.report = v.placements.Received(s.record.Load, s.record.Capacity, m.now)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *server) int {
		if c := cmp.Compare(a.record.Load, b.record.Load); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return out
}

// arrive places one new client at edge e. It reports false when no server
// took it.
func (m *model) arrive(e *edge) bool {
	regions := append([]string{e.region}, e.fallback...)
	for _, r := range regions {
		list := m.visible(e, r)
		if len(list) == 0 {
			continue
		}
		s := m.policy.place(m, e, list, m.rng.Uint64())
		if s == nil {
			continue
		}
		e.views[s].placements.Add(m.now)
		m.placements[s]++
		m.placedAll[s.region]++
		if s.alive {
			s.clients++
		}
		return true
	}
	return false
}

// candidates is what the new rule sees at edge e.
func (m *model) candidates(e *edge, list []*server) []placement.Candidate {
	out := make([]placement.Candidate, len(list))
	for i, s := range list {
		v := e.views[s]
		c := s.record
		r := v.placements.Since(v.report, m.now)
		c.Placed, c.Unseen = r.Placed, r.Unseen(1)
		c.Ramp = m.slowStart.Ramp(m.now - v.joined)
		out[i] = c
	}
	return out
}

// fairness is the largest server's clients over its fair share by
// capacity, among the live servers of region: 1 is perfect.
func (m *model) fairness(region string) float64 {
	var total, capacity float64
	for _, s := range m.servers {
		if s.alive && s.region == region {
			total += float64(s.clients)
			capacity += s.capacity
		}
	}
	if total == 0 {
		return 1
	}
	worst := 0.0
	for _, s := range m.servers {
		if s.alive && s.region == region {
			worst = max(worst, float64(s.clients)/(total*s.capacity/capacity))
		}
	}
	return worst
}

func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
