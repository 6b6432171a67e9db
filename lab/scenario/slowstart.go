package scenario

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/sessionpin/sessionpin/lab/stack"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// Newcomers' defaults: a region's edge sees a new client arrive every
// third of a second, and each works for 8 s. With the app's 3 s load
// window a region then counts about 34 newcomers and its 6 clients
// (-clients) at once: about 20 a server, two thirds of the lab's capacity
// (30, limit 0.9, so 27 clients) while both servers of the region run,
// but more than one server's limit while one of them is drained, so that
// the limit binds during each restart.
const (
	DefaultNewcomerRate = 3.0
	NewcomerStay        = 8 * time.Second
)

// RampBin is the width of the bins a ramp is shown in; rampBins of them
// follow a return: the slow-start window and two bins more, to show the
// server once established.
const (
	RampBin  = 5 * time.Second
	rampBins = int(EdgeSlowStart/RampBin) + 2
)

// slowStart restarts every server in turn as rolling-restart does, while
// newcomers arrive, but leaves each region's servers alone for the
// slow-start window and two bins after each return, so that the returned
// server's ramp is seen against an established server of its region (the
// next restart of its region would leave it alone there, taking every new
// client whatever its ramp). Unlike rolling-restart, the drain is lifted
// before the server starts again, so that it returns active: its ramp
// starts when it registers, and so does the share counted.
func slowStart(ctx context.Context, e *Env) error {
	// The newcomers fill the servers up to their steady load first.
	if err := sleep(ctx, e.D(NewcomerStay+5*time.Second)); err != nil {
		return err
	}
	e.MarkRecovery()
	for _, h := range topo.Servers() {
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		// A quiet period longer than the edges' activity interval (5 s):
		// a newcomer keeps working on its server for its whole stay, and
		// a shorter one can judge the server drained from an edge's
		// report that is older than its last requests.
		out, err := e.Stack.Discoverysvc(wctx, h.Region, "drain", h.Name, "--wait", "--quiet", "6s", "--timeout", "40s", "--reason", "lab slow start")
		cancel()
		if err != nil && ctx.Err() == nil {
			e.Note("drain %s: %v: %s", h.Name, err, lastLine(out))
		}
		if err := e.Stack.StopServer(h.Name); err != nil {
			e.Note("%v", err)
		}
		if out, err := e.Stack.Discoverysvc(ctx, h.Region, "undrain", h.Name); err != nil && ctx.Err() == nil {
			e.Note("undrain %s: %v: %s", h.Name, err, lastLine(out))
		}
		if err := e.Stack.StartServer(ctx, h.Name); err != nil {
			return err
		}
		back, err := e.waitListed(ctx, h.Region, h.Name, 30*time.Second)
		if err != nil {
			return err
		}
		e.returned(h.Name, back)
		e.Note("%s back in the registry %.1fs after its drain began", h.Name, back.Sub(start).Seconds())
		if err := sleep(ctx, time.Until(back.Add(time.Duration(rampBins)*RampBin))); err != nil {
			return err
		}
	}
	return nil
}

// waitListed polls region r's discovery replica until it lists server id,
// and returns when it first did.
func (e *Env) waitListed(ctx context.Context, r, id string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if fleet, err := e.Stack.Fleet(ctx, r); err == nil {
			for _, sv := range fleet {
				if sv.ID == id {
					return time.Now(), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, errNotBack{id, timeout}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

type errNotBack struct {
	id      string
	timeout time.Duration
}

func (e errNotBack) Error() string {
	return "server " + e.id + " not back in the registry after " + e.timeout.String()
}

// returned records that server id came back to the registry at t.
func (e *Env) returned(id string, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.returns == nil {
		e.returns = map[string][]time.Time{}
	}
	e.returns[id] = append(e.returns[id], t)
}

// Returns are the servers' returns the timeline recorded.
func (e *Env) Returns() map[string][]time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string][]time.Time{}
	for id, ts := range e.returns {
		out[id] = append([]time.Time(nil), ts...)
	}
	return out
}

// sampleFleet lists the registry every interval until ctx ends, from the
// first region's replica that answers (a cut may silence one).
func sampleFleet(ctx context.Context, e *Env, interval time.Duration) []FleetSample {
	var out []FleetSample
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, r := range topo.Regions {
			if fleet, err := e.Stack.Fleet(ctx, r); err == nil {
				out = append(out, FleetSample{At: time.Now(), Servers: fleet})
				break
			}
		}
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
	}
}

// writeSlowStartTrace writes every newcomer's placement, every registry
// sample and every return to path (JSON, times in seconds from start).
func writeSlowStartTrace(path string, start time.Time, arrivals []Arrival, fleet []FleetSample, returns map[string][]time.Time) error {
	type arrival struct {
		AtS    float64 `json:"at_s"`
		Region string  `json:"region"`
		Server string  `json:"server"`
	}
	type sample struct {
		AtS     float64             `json:"at_s"`
		Servers []stack.ServerState `json:"servers"`
	}
	sec := func(t time.Time) float64 { return t.Sub(start).Seconds() }
	var out struct {
		Arrivals []arrival            `json:"arrivals"`
		Fleet    []sample             `json:"fleet"`
		Returns  map[string][]float64 `json:"returns"`
	}
	for _, a := range arrivals {
		out.Arrivals = append(out.Arrivals, arrival{sec(a.At), a.Region, a.Server})
	}
	for _, f := range fleet {
		out.Fleet = append(out.Fleet, sample{sec(f.At), f.Servers})
	}
	out.Returns = map[string][]float64{}
	for id, ts := range returns {
		for _, t := range ts {
			out.Returns[id] = append(out.Returns[id], sec(t))
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
