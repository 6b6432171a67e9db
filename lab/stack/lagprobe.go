package stack

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionpin/sessionpin/lab/topo"
)

// LagSample is how long one write to a primary took to be visible on one
// standby.
type LagSample struct {
	At  time.Time // when it became visible
	Lag time.Duration
}

type written struct {
	seq int64
	at  time.Time
}

// LagProbe writes a numbered row to every primary four times a second and
// watches every standby for it: the replication lag actually got, link
// delay and apply delay together, measured on the lab's one clock.
type LagProbe struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	written map[string][]written // by region, in seq order
	samples []LagSample
}

func startLagProbe(s *Stack) *LagProbe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &LagProbe{cancel: cancel, written: map[string][]written{}}
	for _, of := range topo.Regions {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.write(ctx, s, of) }()
		for _, at := range topo.Regions {
			if at != of {
				p.wg.Add(1)
				go func() { defer p.wg.Done(); p.watch(ctx, s, at, of) }()
			}
		}
	}
	return p
}

func (p *LagProbe) write(ctx context.Context, s *Stack, of string) {
	ns := s.Net.NS(topo.InfraHost(of))
	var c *pgx.Conn
	seq := time.Now().UnixMilli() * 10 // unique across lab restarts of a primary
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if c != nil {
				c.Close(context.Background())
			}
			return
		case <-t.C:
		}
		if c == nil {
			var err error
			if c, err = s.pgConn(ctx, ns, PrimaryDSN(of)); err != nil {
				c = nil
				continue
			}
		}
		seq++
		at := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Exec(wctx, `INSERT INTO lag_probe (seq) VALUES ($1)`, seq)
		cancel()
		if err != nil {
			c.Close(context.Background())
			c = nil
			continue
		}
		p.mu.Lock()
		p.written[of] = append(p.written[of], written{seq, at})
		p.mu.Unlock()
	}
}

func (p *LagProbe) watch(ctx context.Context, s *Stack, at, of string) {
	ns := s.Net.NS(topo.InfraHost(at))
	var c *pgx.Conn
	var seen int64
	next := 0 // index of the first write not yet seen here
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if c != nil {
				c.Close(context.Background())
			}
			return
		case <-t.C:
		}
		if c == nil {
			var err error
			if c, err = s.pgConn(ctx, ns, CopyDSN(at, of)); err != nil {
				c = nil
				continue
			}
		}
		var top *int64
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.QueryRow(qctx, `SELECT max(seq) FROM lag_probe`).Scan(&top)
		cancel()
		if err != nil {
			c.Close(context.Background())
			c = nil
			continue
		}
		now := time.Now()
		if top == nil || *top <= seen {
			continue
		}
		p.mu.Lock()
		ws := p.written[of]
		for ; next < len(ws) && ws[next].seq <= *top; next++ {
			if ws[next].seq > seen {
				p.samples = append(p.samples, LagSample{At: now, Lag: now.Sub(ws[next].at)})
			}
		}
		p.mu.Unlock()
		seen = *top
	}
}

// Stop ends the probe.
func (p *LagProbe) Stop() {
	p.cancel()
	p.wg.Wait()
}

// Percentiles returns the p50 and p99 lag of the samples seen in [from, to).
func (p *LagProbe) Percentiles(from, to time.Time) (p50, p99 time.Duration, n int) {
	p.mu.Lock()
	var ls []time.Duration
	for _, s := range p.samples {
		if !s.At.Before(from) && s.At.Before(to) {
			ls = append(ls, s.Lag)
		}
	}
	p.mu.Unlock()
	if len(ls) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i] < ls[j] })
	return ls[len(ls)*50/100], ls[min(len(ls)-1, len(ls)*99/100)], len(ls)
}

// Probe returns the stack's lag probe.
func (s *Stack) Probe() *LagProbe { return s.probe }
