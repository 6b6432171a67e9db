package scenario

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/lab/client"
	"github.com/sessionpin/sessionpin/lab/results"
	"github.com/sessionpin/sessionpin/lab/stack"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// Options are the knobs of a run.
type Options struct {
	ClientsPerRegion int
	Scale            float64
	Lag              time.Duration
	// Careless is the share of clients that never set the critical flag.
	Careless float64
	// Roam is the share of clients that travel: every few workflows they
	// change between their region's edge and the next region's (Roams).
	Roam float64
	// NewcomerRate is how many new clients arrive at each region's edge
	// a second in the scenarios that have them (Scenario.Newcomers).
	NewcomerRate float64
	Log          func(format string, args ...any)
}

// Reset brings the lab back to its start: no cuts, the lag, every server
// running, registered and undrained.
func Reset(ctx context.Context, st *stack.Stack, o Options) error {
	for _, name := range []string{"server", "region-us-east", "region-eu-west", "region-ap-south"} {
		_ = st.Net.Heal(name)
	}
	if err := st.SetLag(o.Lag); err != nil {
		return err
	}
	if err := st.EnsureServers(ctx); err != nil {
		return err
	}
	for _, h := range topo.Servers() {
		_, _ = st.Discoverysvc(ctx, h.Region, "undrain", h.Name)
	}
	return st.WaitRegistered(ctx, len(topo.Servers()), 60*time.Second)
}

// Run runs scenario sc in mode with fresh edges and returns its row.
func Run(ctx context.Context, st *stack.Stack, sc Scenario, mode string, o Options) (results.Row, error) {
	row := results.Row{Scenario: sc.Name, Mode: mode}
	if err := Reset(ctx, st, o); err != nil {
		return row, fmt.Errorf("reset before %s/%s: %w", sc.Name, mode, err)
	}
	if err := st.StartEdges(ctx, mode); err != nil {
		return row, err
	}
	env := &Env{Stack: st, Start: time.Now(), Scale: o.Scale, Lag: o.Lag, Log: o.Log}
	env.SetPhase(o.Lag.String())
	tally := client.NewTally()
	cctx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	n := 0
	// Every client dials from the region of the edge it talks to: a
	// traveller is in the region it travelled to.
	dial := st.TravellerDialer()
	kinds := Kinds(len(topo.Regions)*o.ClientsPerRegion, o.Careless, o.Roam)
	for ri, r := range topo.Regions {
		for i := 0; i < o.ClientsPerRegion; i++ {
			// sessionpin's clients carry the pin in a header, so that
			// the run shows they keep the newest one the edge gives.
			co := client.Options{Header: stack.IsSessionpin(mode), Careless: kinds[n].Careless, RegionOf: topo.ServerRegion}
			if co.Careless {
				row.CarelessClients++
			}
			if kinds[n].Roaming {
				co.Roam = client.Roam{Edge: stack.EdgeURL(Roams(ri)), Every: client.RoamEvery(n)}
				row.RoamingClients++
			}
			c := client.New(n, stack.EdgeURL(r), dial, tally, env.Phase, co)
			n++
			wg.Add(1)
			go func() { defer wg.Done(); c.Run(cctx) }()
		}
	}
	row.Clients = n
	// Newcomers, in the scenarios that have them: a steady stream of new
	// clients at every region's edge.
	var amu sync.Mutex
	var arrivals []Arrival
	var nc *results.Newcomers
	if sc.Newcomers && o.NewcomerRate > 0 {
		nc = &results.Newcomers{PerRegionPerSecond: o.NewcomerRate, StaySeconds: NewcomerStay.Seconds(), Refused: map[string]int{}}
		interval := time.Duration(float64(time.Second) / o.NewcomerRate)
		for _, r := range topo.Regions {
			next := func(k int) *client.Newcomer {
				return &client.Newcomer{ID: fmt.Sprintf("newcomer-%s-%d", r, k), Edge: stack.EdgeURL(r), Header: stack.IsSessionpin(mode), Stay: NewcomerStay, Dial: dial}
			}
			placed := func(p client.Placement) {
				amu.Lock()
				defer amu.Unlock()
				arrivals = append(arrivals, Arrival{At: p.At, Region: r, Server: p.Server})
				nc.WorkErrors += p.WorkErrors
				switch {
				case p.Server == "":
					nc.Refused[p.Error]++
				case topo.ServerRegion(p.Server) != r:
					nc.PlacedElsewhere++
					nc.Placed++
				default:
					nc.Placed++
				}
			}
			wg.Add(1)
			go func() { defer wg.Done(); client.Arrivals(cctx, interval, next, placed) }()
		}
	}
	// The registry, sampled for the servers' loads against their limits.
	fleetc := make(chan []FleetSample, 1)
	go func() { fleetc <- sampleFleet(cctx, env, 500*time.Millisecond) }()
	// Phase boundaries, for lag-step.
	type mark struct {
		at    time.Time
		phase string
	}
	var marks []mark
	var mmu sync.Mutex
	lastPhase := env.Phase()
	tick := time.NewTicker(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- sc.Run(cctx, env) }()
	var runErr error
loop:
	for {
		select {
		case runErr = <-done:
			break loop
		case <-tick.C:
			if p := env.Phase(); p != lastPhase {
				mmu.Lock()
				marks = append(marks, mark{time.Now(), p})
				mmu.Unlock()
				lastPhase = p
			}
		}
	}
	tick.Stop()
	if runErr == nil && sc.Tail > 0 {
		_ = sleep(ctx, sc.Tail)
	}
	end := time.Now()
	stopClients()
	wg.Wait()
	fleet := <-fleetc
	if stack.IsSessionpin(mode) {
		// Before the next run restarts the edges and their counts.
		if n, err := st.EdgeCounter(ctx, "sessionpin_unsafe_moves_total"); err == nil {
			row.UnsafeMoves = &n
		}
	}
	if runErr != nil && ctx.Err() == nil {
		return row, fmt.Errorf("%s/%s: %w", sc.Name, mode, runErr)
	}
	if ctx.Err() != nil {
		return row, ctx.Err()
	}

	row.Workflows, row.Completed = tally.Workflows, tally.Completed
	row.StaleSteps, row.StaleAfterMove, row.StaleAnnounced = tally.StaleSteps, tally.StaleAfterMove, tally.StaleAnnounced
	row.WrongServerSteps, row.Moves, row.MovesAcrossRegions = tally.WrongServer, tally.Moves, tally.MovesAcross
	row.HeldMoves, row.CatchUpWaits, row.CatchUpWaitSeconds = tally.HeldMoves, tally.CatchUpWaits, tally.CatchUpWait.Seconds()
	if row.CarelessClients > 0 {
		row.Careless = countsOf(tally.Careless)
	}
	if row.RoamingClients > 0 {
		row.Roaming = countsOf(tally.Roaming)
	}
	row.ErrorsByReason = tally.Errors
	row.DurationSeconds = end.Sub(env.Start).Seconds()
	row.RecoverySeconds = Recovery(tally.Events, env.Ref(), end)
	p50, p99, ns := st.Probe().Percentiles(env.Start, end)
	row.LagP50MS, row.LagP99MS, row.LagSamples = ms(p50), ms(p99), ns
	row.Notes = env.Notes()
	row.Soak = env.SoakResult()
	row.PeakLoad = Peak(fleet, env.Start)
	if nc != nil {
		if len(nc.Refused) == 0 {
			nc.Refused = nil
		}
		row.Newcomers = nc
		sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].At.Before(arrivals[j].At) })
		returns := env.Returns()
		// The raw material, for a closer look than the bins give.
		if err := writeSlowStartTrace(filepath.Join(st.Logs(), sc.Name+"-"+mode+"-trace.json"), env.Start, arrivals, fleet, returns); err != nil {
			o.Log("%v", err)
		}
		for _, h := range topo.Servers() {
			for _, back := range returns[h.Name] {
				row.Ramps = append(row.Ramps, RampOf(h.Name, back, env.Start, RampBin, rampBins, arrivals, fleet, returns))
			}
		}
	}
	if sc.Name == "lag-step" {
		for i, m := range marks {
			to := end
			if i+1 < len(marks) {
				to = marks[i+1].at
			}
			// The lag reaches the new delay only for writes after the
			// change: measure the phase's second half.
			from := m.at.Add(to.Sub(m.at) / 2)
			p50, p99, _ := st.Probe().Percentiles(from, to)
			d, _ := time.ParseDuration(m.phase)
			ph := results.Phase{ApplyDelayMS: ms(d), LagP50MS: ms(p50), LagP99MS: ms(p99),
				Workflows: tally.Started[m.phase], Failed: tally.Failed[m.phase]}
			if ph.Workflows > 0 {
				ph.FailureRate = float64(ph.Failed) / float64(ph.Workflows)
			}
			row.Phases = append(row.Phases, ph)
		}
	}
	return row, nil
}

// Roams is the region the travellers of region index i travel to: the
// next in order.
func Roams(i int) string { return topo.Regions[(i+1)%len(topo.Regions)] }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Recovery is how long after ref every client was served again: for each
// client that failed at or after ref, the time of its first success after
// its last failure; the largest of these. 0 when ref is zero or no client
// failed after it; -1 when a client never succeeded again before end.
func Recovery(events []client.Event, ref, end time.Time) float64 {
	if ref.IsZero() {
		return 0
	}
	sorted := append([]client.Event(nil), events...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].At.Before(sorted[j].At) })
	lastFail := map[int]time.Time{}
	for _, e := range sorted {
		if !e.OK && !e.At.Before(ref) {
			lastFail[e.Client] = e.At
		}
	}
	worst := 0.0
	for c, lf := range lastFail {
		back := time.Time{}
		for _, e := range sorted {
			if e.Client == c && e.OK && e.At.After(lf) {
				back = e.At
				break
			}
		}
		if back.IsZero() {
			return -1
		}
		worst = max(worst, back.Sub(ref).Seconds())
	}
	_ = end
	return worst
}

// countsOf is one kind of client's share of the counts, as
// lab-results.json gives it.
func countsOf(k client.Counts) *results.Counts {
	return &results.Counts{Workflows: k.Workflows, Completed: k.Completed, StaleSteps: k.StaleSteps,
		StaleAfterMove: k.StaleAfterMove, StaleAnnounced: k.StaleAnnounced, WrongServerSteps: k.WrongServer,
		Moves: k.Moves, MovesAcrossRegions: k.MovesAcross, HeldMoves: k.HeldMoves, CatchUpWaits: k.CatchUpWaits}
}
