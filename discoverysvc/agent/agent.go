package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// Run heartbeats until ctx ends, then drains (when DrainTimeout > 0) and
// deregisters. It returns an error for a bad configuration, or when the
// final deregistration failed (the lease then expires on its own).
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Validate(); err != nil {
		return err
	}
	r := &agentRun{
		agent:    a,
		interval: a.interval(),
		client:   a.Client,
		log:      a.Logger,
	}
	if r.client == nil {
		r.client = &http.Client{}
	}
	r.api = &client.Client{Base: a.Discovery, Token: a.Token, HTTP: r.client}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	r.log = r.log.With(zap.String("id", a.ID))
	r.backoff = r.minBackoff()
	r.load = 1
	r.progress = newProgressReader(a.Progress, r.log)
	defer closeSources(a.Progress)
	return r.run(ctx)
}

// listing is what the agent knows about its server's registration.
type listing int

const (
	listingUnknown listing = iota // at start: a previous run may have left it
	listingYes
	listingNo
)

// agentRun is the state of one Run.
type agentRun struct {
	agent    *Agent
	interval time.Duration
	client   *http.Client // the probes'
	api      *client.Client
	log      *zap.Logger

	listed  listing
	appUp   *bool     // last health verdict; nil before the first probe
	outage  time.Time // when discovery became unreachable; zero while reachable
	backoff time.Duration
	refusal string // last 4xx answer of discovery, logged once

	// load is the last valid load read from the app's health body, kept
	// while the body reports nonsense. Before any, it is 1, the top of the
	// conventional range: a server that cannot say how busy it is must not
	// look idle. badLoad is set while the body's load is invalid, so that
	// a streak of them is logged once.
	load    float64
	badLoad bool

	// promLoad is the last load Prometheus gave (promGood once it gave
	// one); promFailing is its last error while it fails, logged once.
	promLoad    float64
	promGood    bool
	promFailing string

	progress *progressReader
	// lastProgress is what the latest read of the progress sources gave,
	// sent with every heartbeat until the next read.
	lastProgress map[string]schema.Progress
}

func (r *agentRun) run(ctx context.Context) error {
	r.log.Info("agent started", zap.String("region", r.agent.Region), zap.String("url", r.agent.URL),
		zap.String("health_url", r.agent.HealthURL), zap.String("discovery", r.agent.Discovery),
		zap.Duration("interval", r.interval))
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.stop()
		case <-timer.C:
		}
		// A round in flight is not cut short by ctx: an interrupted PUT could
		// still land in etcd after stop's DELETE and leave the server
		// registered until its lease expires.
		timer.Reset(r.round(ctx, context.WithoutCancel(ctx)))
	}
}

// round probes the app once and heartbeats or deregisters accordingly. It
// returns the wait before the next round: the interval, or a shorter backoff
// while discovery is unreachable, because the lease keeps running out. Its
// requests use ctx, which outlives runCtx; when runCtx ends during the
// probe, the round is skipped and stop takes over.
func (r *agentRun) round(runCtx, ctx context.Context) time.Duration {
	progress := r.readProgress(ctx)
	load, err := r.probe(ctx)
	progress()
	if runCtx.Err() != nil {
		return r.interval
	}
	if err != nil && slowProbe(err) {
		// A probe that timed out says the app is slow, not that it is down:
		// skip this heartbeat and let the lease decide if it lasts. Dropping
		// the server at once would break its clients' workflows whenever the
		// host is briefly overloaded.
		r.log.Warn("health probe timed out; heartbeat skipped", zap.Error(err))
		return r.interval
	}
	r.noteHealth(err)
	if err == nil && r.agent.Prometheus != nil {
		load = r.prometheusLoad(ctx, load)
	}
	if err != nil {
		if r.listed == listingNo {
			return r.interval
		}
		if err := r.deregister(ctx); err != nil {
			return r.discoveryFailed(err)
		}
		r.discoveryOK()
		r.listed = listingNo
		return r.interval
	}
	if err := r.heartbeat(ctx, load, false); err != nil {
		return r.discoveryFailed(err)
	}
	r.discoveryOK()
	if r.listed != listingYes {
		r.log.Info("registered", zap.Float64("load", load))
	}
	r.listed = listingYes
	return r.interval
}

// stop drains and deregisters after Run's context ended. It uses fresh
// contexts: the run's own is already done.
func (r *agentRun) stop() error {
	if drain := r.agent.DrainTimeout; drain > 0 && r.listed == listingYes {
		r.drain(drain)
	}
	if r.listed == listingNo {
		r.log.Info("agent stopped")
		return nil
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(r.minBackoff() << attempt)
		}
		if err = r.deregister(context.Background()); err == nil {
			r.log.Info("agent stopped")
			return nil
		}
	}
	r.log.Warn("could not deregister; the lease expires on its own", zap.Duration("ttl", r.agent.ttl()), zap.Error(err))
	return fmt.Errorf("deregister %s: %w", r.agent.ID, err)
}

// heartbeat PUTs the server's record to discovery.
func (r *agentRun) heartbeat(ctx context.Context, load float64, draining bool) error {
	body := client.HeartbeatRequest{Region: &r.agent.Region, URL: &r.agent.URL, Load: &load, Draining: &draining}
	if r.agent.Capacity > 0 {
		body.Capacity = &r.agent.Capacity
	}
	if r.agent.Limit > 0 {
		body.Limit = &r.agent.Limit
	}
	if r.agent.TTL > 0 {
		ttl := float64(r.agent.TTL / time.Second)
		body.TTL = &ttl
	}
	if origin := r.agent.origin(); origin != "" {
		body.Origin = &origin
	}
	body.Progress = r.lastProgress
	ctx, cancel := context.WithTimeout(ctx, r.callTimeout())
	defer cancel()
	return r.api.Heartbeat(ctx, r.agent.ID, body)
}

// deregister DELETEs the server; unknown already counts as done.
func (r *agentRun) deregister(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.callTimeout())
	defer cancel()
	found, err := r.api.Deregister(ctx, r.agent.ID)
	if err != nil {
		return err
	}
	if found {
		r.log.Info("deregistered")
	}
	return nil
}

// callTimeout bounds one call to discovery.
func (r *agentRun) callTimeout() time.Duration { return max(r.interval, 2*time.Second) }

// discoveryFailed records a failed call and returns the wait before the
// next try. An outage is logged once, not on every retry.
func (r *agentRun) discoveryFailed(err error) time.Duration {
	if se, ok := errors.AsType[*client.StatusError](err); ok && se.Refused() {
		if r.refusal != se.Error() {
			r.refusal = se.Error()
			r.log.Error("discovery refused the request", zap.Int("status", se.Status), zap.String("error", se.Message))
		}
		return r.interval
	}
	if r.outage.IsZero() {
		r.outage = time.Now()
		r.backoff = r.minBackoff()
		r.log.Warn("discovery unreachable; retrying with backoff", zap.String("discovery", r.agent.Discovery), zap.Error(err))
	}
	wait := r.backoff
	r.backoff = min(r.backoff*2, r.interval)
	// Jitter keeps a fleet of agents from retrying in lockstep after an outage.
	return wait/2 + rand.N(wait/2+1)
}

func (r *agentRun) discoveryOK() {
	r.refusal = ""
	if !r.outage.IsZero() {
		r.log.Info("discovery reachable again", zap.Duration("outage", time.Since(r.outage).Round(time.Millisecond)))
		r.outage = time.Time{}
	}
	r.backoff = r.minBackoff()
}

func (r *agentRun) minBackoff() time.Duration { return max(r.interval/16, 10*time.Millisecond) }

// noteHealth logs the app's health when it changes.
func (r *agentRun) noteHealth(err error) {
	up := err == nil
	if r.appUp != nil && *r.appUp == up {
		return
	}
	r.appUp = &up
	if up {
		r.log.Info("app healthy")
	} else {
		r.log.Warn("app unhealthy; leaving the registry", zap.String("health_url", r.agent.HealthURL), zap.Error(err))
	}
}
