package scenario

import (
	"context"
	"time"

	"github.com/sessionpin/sessionpin/lab/results"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// soak runs 30 minutes (scaled) of steady traffic, restarts one server a
// minute, and samples the edges', discovery's and agents' memory, threads
// and open files and etcd's database size every 30 s.
func soak(ctx context.Context, e *Env) error {
	end := time.Now().Add(e.D(30 * time.Minute))
	nextRestart := time.Now().Add(e.D(time.Minute))
	servers := topo.Servers()
	i := 0
	for time.Now().Before(end) {
		e.sample(ctx)
		if err := sleep(ctx, e.D(30*time.Second)); err != nil {
			return err
		}
		if time.Now().After(nextRestart) {
			id := servers[i%len(servers)].Name
			i++
			if err := e.Stack.StopServer(id); err != nil {
				e.Note("%v", err)
			}
			if err := e.Stack.StartServer(ctx, id); err != nil {
				return err
			}
			nextRestart = nextRestart.Add(e.D(time.Minute))
		}
	}
	e.sample(ctx)
	return nil
}

func (e *Env) sample(ctx context.Context) {
	vals := map[string]float64{}
	for kind, u := range e.Stack.Usage() {
		vals[kind+"_rss_kb"] = u.RSSKB
		vals[kind+"_threads"] = u.Threads
		vals[kind+"_open_files"] = u.FDs
	}
	for kind, n := range e.Stack.Goroutines(ctx) {
		vals[kind+"_goroutines"] = n
	}
	if n, err := e.Stack.EtcdDBSize(ctx, "us-east"); err == nil {
		vals["etcd_db_bytes"] = float64(n)
	}
	e.mu.Lock()
	e.samples = append(e.samples, sample{time.Now(), vals})
	e.mu.Unlock()
}

type sample struct {
	at   time.Time
	vals map[string]float64
}

// SoakResult fits a line to each sampled value: its slope per hour.
func (e *Env) SoakResult() *results.Soak {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.samples) < 2 {
		return nil
	}
	r := &results.Soak{Samples: len(e.samples), Slopes: map[string]float64{}, LaterSlopes: map[string]float64{},
		First: e.samples[0].vals, Last: e.samples[len(e.samples)-1].vals}
	for k := range e.samples[0].vals {
		r.Slopes[k] = slopeOf(e.samples, k)
		r.LaterSlopes[k] = slopeOf(e.samples[len(e.samples)/2:], k)
	}
	for _, s := range e.samples {
		r.Series = append(r.Series, results.SoakSample{Seconds: s.at.Sub(e.samples[0].at).Seconds(), Values: s.vals})
	}
	return r
}

// slopeOf is the slope per hour of value k over samples.
func slopeOf(samples []sample, k string) float64 {
	var xs, ys []float64
	for _, s := range samples {
		if v, ok := s.vals[k]; ok {
			xs = append(xs, s.at.Sub(samples[0].at).Hours())
			ys = append(ys, v)
		}
	}
	return slope(xs, ys)
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
