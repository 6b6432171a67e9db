// Package scenario is the lab's scripted timelines, each run with the same
// client traffic in every routing mode, and what they count.
package scenario

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/lab/stack"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// Env is what a timeline acts on.
type Env struct {
	Stack *stack.Stack
	Start time.Time
	Scale float64 // multiplies every phase length
	Lag   time.Duration
	Log   func(format string, args ...any)

	mu      sync.Mutex
	ref     time.Time
	phase   string
	notes   []string
	samples []sample
	returns map[string][]time.Time
}

// D scales a phase length.
func (e *Env) D(d time.Duration) time.Duration { return time.Duration(float64(d) * e.Scale) }

// MarkRecovery sets the moment the recovery time is measured from.
func (e *Env) MarkRecovery() {
	e.mu.Lock()
	e.ref = time.Now()
	e.mu.Unlock()
}

// SetPhase tags the workflows started from now on.
func (e *Env) SetPhase(p string) {
	e.mu.Lock()
	e.phase = p
	e.mu.Unlock()
}

// Phase returns the current phase tag.
func (e *Env) Phase() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.phase
}

// Note records something the timeline saw, for the results.
func (e *Env) Note(format string, args ...any) {
	s := fmt.Sprintf("%5.1fs ", time.Since(e.Start).Seconds()) + fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.notes = append(e.notes, s)
	e.mu.Unlock()
	e.Log("%s", s)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Scenario is a named timeline. Run acts while the clients send traffic;
// the run ends when Run returns and Tail has passed.
type Scenario struct {
	Name string
	What string
	Run  func(ctx context.Context, e *Env) error
	Tail time.Duration
	// Soak scenarios are run only when named.
	Soak bool
	// OnlyNamed scenarios, too, are run only when named.
	OnlyNamed bool
	// Newcomers: new clients arrive at every region's edge throughout
	// (Options.NewcomerRate), and the run reports the restarted servers'
	// ramps.
	Newcomers bool
}

// The scenarios, in the order make lab runs them.
var All = []Scenario{
	{Name: "steady", What: "steady traffic", Run: steady, Tail: 0},
	{Name: "rolling-restart", What: "every server drained (drain --wait), stopped and started, one after another", Run: rollingRestart, Tail: 5 * time.Second},
	{Name: "slow-start", What: "every server restarted in turn while new clients arrive, each left to ramp up for the slow-start window", Run: slowStart, Tail: 0, Newcomers: true, OnlyNamed: true},
	{Name: "kill", What: "one server killed with SIGKILL", Run: kill, Tail: 0},
	{Name: "cut-server", What: "one server cut off from its own region's edge only", Run: cutServer, Tail: 0},
	{Name: "cut-region", What: "ap-south cut off from the other two regions (etcd member included), then healed", Run: cutRegion, Tail: 0},
	{Name: "cut-leader", What: "the region of etcd's leader cut off, then healed", Run: cutLeader, Tail: 0},
	{Name: "lag-step", What: "replication lag stepped from about 0 to 10 s under traffic", Run: lagStep, Tail: 0},
	{Name: "soak", What: "30 minutes of steady traffic with a server restart every minute", Run: soak, Soak: true},
}

// Names returns the scenario names.
func Names() []string {
	var ns []string
	for _, s := range All {
		ns = append(ns, s.Name)
	}
	return ns
}

// Find returns the scenario called name.
func Find(name string) (Scenario, bool) {
	for _, s := range All {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// LagSteps are the apply delays of lag-step, one phase each.
var LagSteps = []time.Duration{0, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second, 10 * time.Second}

// MinLength is the shortest phase a scenario runs at scale 1, which a lag
// must stay below.
const MinLength = 15 * time.Second

func steady(ctx context.Context, e *Env) error { return sleep(ctx, e.D(15*time.Second)) }

func kill(ctx context.Context, e *Env) error {
	if err := sleep(ctx, e.D(8*time.Second)); err != nil {
		return err
	}
	id := topo.ServerID("us-east", 1)
	e.MarkRecovery()
	if err := e.Stack.KillServer(id); err != nil {
		return err
	}
	e.Note("killed %s (SIGKILL)", id)
	return sleep(ctx, e.D(15*time.Second))
}

func cutServer(ctx context.Context, e *Env) error {
	if err := sleep(ctx, e.D(8*time.Second)); err != nil {
		return err
	}
	sv := topo.ServerHost("us-east", 1)
	edge := topo.EdgeHost("us-east")
	e.MarkRecovery()
	if err := e.Stack.Net.Cut("server", prefix(edge), prefix(sv)); err != nil {
		return err
	}
	e.Note("cut %s from %s", sv.Name, edge.Name)
	if err := sleep(ctx, e.D(15*time.Second)); err != nil {
		return err
	}
	if err := e.Stack.Net.Heal("server"); err != nil {
		return err
	}
	e.Note("healed")
	return sleep(ctx, e.D(5*time.Second))
}

func cutOff(ctx context.Context, e *Env, region string, length time.Duration) error {
	var others []string
	for _, r := range topo.Regions {
		if r != region {
			others = append(others, r)
		}
	}
	for _, o := range others {
		if err := e.Stack.Net.Cut("region-"+o, topo.RegionPrefix(region), topo.RegionPrefix(o)); err != nil {
			return err
		}
	}
	e.Note("cut %s off from %s", region, strings.Join(others, " and "))
	err := sleep(ctx, length)
	for _, o := range others {
		if herr := e.Stack.Net.Heal("region-" + o); herr != nil && err == nil {
			err = herr
		}
	}
	e.MarkRecovery()
	e.Note("healed %s", region)
	return err
}

func cutRegion(ctx context.Context, e *Env) error {
	if err := sleep(ctx, e.D(8*time.Second)); err != nil {
		return err
	}
	if err := cutOff(ctx, e, "ap-south", 60*time.Second); err != nil {
		return err
	}
	return sleep(ctx, e.D(15*time.Second))
}

func cutLeader(ctx context.Context, e *Env) error {
	if err := sleep(ctx, e.D(8*time.Second)); err != nil {
		return err
	}
	leader, err := e.Stack.EtcdLeader(ctx)
	if err != nil {
		return err
	}
	e.Note("etcd leader in %s", leader)
	if err := cutOff(ctx, e, leader, e.D(20*time.Second)); err != nil {
		return err
	}
	if l, err := e.Stack.EtcdLeader(ctx); err == nil {
		e.Note("etcd leader after heal in %s", l)
	}
	return sleep(ctx, e.D(15*time.Second))
}

func lagStep(ctx context.Context, e *Env) error {
	for _, lag := range LagSteps {
		if err := e.Stack.SetLag(lag); err != nil {
			return err
		}
		e.SetPhase(lag.String())
		e.Note("apply delay %v", lag)
		if err := sleep(ctx, max(e.D(8*time.Second), lag+4*time.Second)); err != nil {
			return err
		}
	}
	return nil
}

func rollingRestart(ctx context.Context, e *Env) error {
	if err := sleep(ctx, e.D(5*time.Second)); err != nil {
		return err
	}
	e.MarkRecovery()
	for _, h := range topo.Servers() {
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		out, err := e.Stack.Discoverysvc(wctx, h.Region, "drain", h.Name, "--wait", "--quiet", "3s", "--timeout", "40s", "--reason", "lab rolling restart")
		cancel()
		if err != nil && ctx.Err() == nil {
			e.Note("drain %s: %v: %s", h.Name, err, lastLine(out))
		}
		if err := e.Stack.StopServer(h.Name); err != nil {
			e.Note("%v", err)
		}
		if err := e.Stack.StartServer(ctx, h.Name); err != nil {
			return err
		}
		if out, err := e.Stack.Discoverysvc(ctx, h.Region, "undrain", h.Name); err != nil {
			e.Note("undrain %s: %v: %s", h.Name, err, lastLine(out))
		}
		e.Note("restarted %s in %.1fs", h.Name, time.Since(start).Seconds())
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Notes returns what the timeline noted.
func (e *Env) Notes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.notes...)
}

// Ref returns the recovery reference, zero when the timeline set none.
func (e *Env) Ref() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ref
}
