package chaos

import (
	"fmt"
	"sync"
	"time"
)

// nearMiss is the share of its bound past which a run flags a bound: a
// loaded machine that comes this close fails on a slightly worse day.
const nearMiss = 0.8

// margins keeps, for each timing bound of a run, the worst time it took, so
// that the run prints how close it came to failing and a near-miss shows
// before it becomes a failure.
type margins struct {
	mu    sync.Mutex
	order []string
	by    map[string]*margin
}

type margin struct {
	bound, worst time.Duration
	n            int
}

func newMargins() *margins { return &margins{by: map[string]*margin{}} }

// observe records that one event of kind name took took, against bound.
func (m *margins) observe(name string, took, bound time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.by[name]
	if !ok {
		g = &margin{bound: bound}
		m.by[name] = g
		m.order = append(m.order, name)
	}
	g.n++
	g.worst = max(g.worst, took)
}

// timed runs wait, which fails the test when it takes longer than bound,
// and observes how long it took.
func (m *margins) timed(name string, bound time.Duration, wait func()) {
	start := time.Now()
	wait()
	m.observe(name, time.Since(start), bound)
}

// lines describes each bound in the order first observed, e.g.
// "re-pin: worst 8.2 s of 12.3 s (margin 4.1 s, 37 samples)".
func (m *margins) lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.order))
	for _, name := range m.order {
		g := m.by[name]
		line := fmt.Sprintf("%s: worst %.1f s of %.1f s (margin %.1f s, %d samples)",
			name, g.worst.Seconds(), g.bound.Seconds(), (g.bound - g.worst).Seconds(), g.n)
		if float64(g.worst) > nearMiss*float64(g.bound) {
			line += fmt.Sprintf(" NEAR MISS: over %.0f%% of the bound", nearMiss*100)
		}
		out = append(out, line)
	}
	return out
}
