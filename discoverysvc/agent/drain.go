package agent

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// drain keeps the server registered as draining for up to d, so pinned
// clients finish their work while new ones are placed elsewhere. It ends
// early when discovery reports the server drained, or when the app stops
// answering, because then nobody should be sent there.
func (r *agentRun) drain(d time.Duration) {
	quiet := r.agent.DrainQuiet
	if quiet == 0 {
		quiet = schema.DefaultQuiet
	}
	r.log.Info("draining", zap.Duration("drain_timeout", d), zap.Duration("quiet", quiet))
	start := time.Now()
	deadline := start.Add(d)
	for {
		progress := r.readProgress(context.Background())
		load, err := r.probe(context.Background())
		progress()
		if err != nil {
			r.noteHealth(err)
			return
		}
		if r.agent.Prometheus != nil {
			load = r.prometheusLoad(context.Background(), load)
		}
		if err := r.heartbeat(context.Background(), load, true); err != nil {
			r.discoveryFailed(err)
		} else {
			r.discoveryOK()
			if r.drained(start, quiet) {
				r.log.Info("drained: no pinned requests lately", zap.Duration("after", time.Since(start).Round(time.Millisecond)))
				return
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, r.interval))
		if time.Now().After(deadline) {
			return
		}
	}
}

// drained asks discovery whether the server, draining since start, is
// drained. The record's own drain has no start time in the registry, so the
// agent also waits out quiet from its own start: a client placed just before
// its draining write has had time to show up in the edges' reports. An
// operator drain that began before start kept new clients away already, and
// discovery judged quiet from its start, so its answer stands as is. Any
// failure counts as not drained: the drain then lasts until its timeout.
func (r *agentRun) drained(start time.Time, quiet time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), r.callTimeout())
	defer cancel()
	st, err := r.api.DrainStatus(ctx, r.agent.ID, quiet)
	if err != nil {
		return false
	}
	// Discovery judges with a longer period when an edge reports less
	// often than quiet: wait that out from start too.
	if judged, err := time.ParseDuration(st.Quiet); err == nil {
		quiet = max(quiet, judged)
	}
	return st.Drained && (time.Since(start) >= quiet || (st.Since != nil && !st.Since.After(start)))
}
