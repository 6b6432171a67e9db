package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// DefaultAgentInterval is how often the agent probes the app and heartbeats.
// With the default 10 s lease, three heartbeats fit in one lease, so a single
// lost heartbeat never drops a healthy server.
const DefaultAgentInterval = 3 * time.Second

// Agent is the heartbeat sidecar for an unchanged app: it probes the app's
// health URL every Interval and, while the app answers 2xx, heartbeats the
// server to the discovery API. When the app stops answering, the agent
// deregisters it at once, so it leaves routing now rather than at lease
// expiry. Fields are read once by Run and must not change while it runs.
type Agent struct {
	// ID of the server in the registry. Required.
	ID string
	// Region of the server. Required.
	Region string
	// URL is the server's public URL, where edges proxy to. Required.
	URL string
	// HealthURL is probed with GET; a 2xx answer means healthy. Required.
	HealthURL string
	// Discovery is the base URL of the discovery API, e.g.
	// http://127.0.0.1:7070. Required.
	Discovery string
	// Token is the discovery API's bearer token, if it has one: the agent
	// token of ID (see AgentToken) rather than the admin token.
	Token string
	// InsecureHTTP lets the agent send Token over plain http to a
	// discovery address that is not loopback, where anyone on the path
	// could read it. Default: false, such a configuration is refused.
	InsecureHTTP bool
	// Interval between probes and heartbeats. Default: 3s.
	Interval time.Duration
	// Load, when set, is reported as the server's load. When nil, the load
	// is the top-level "load" number of the app's JSON health body, or 0
	// when it has none (see LoadFromHealth).
	Load *float64
	// Prometheus, when set, is where the load comes from instead (see
	// PrometheusLoad); until its first answer, the load is as without it.
	// Default: nil.
	Prometheus *PrometheusLoad
	// Capacity is how many clients the server holds at load 1, its weight
	// when edges place new clients: at equal load, a server of twice the
	// capacity takes twice the new clients. Default: 0, not declared.
	Capacity float64
	// Limit is the load at or above which the server takes no new clients.
	// Default: 0, none.
	Limit float64
	// TTL is the lease of the registration, in whole seconds; it must be
	// longer than Interval. Default: 0, the discovery service's default (10s).
	TTL time.Duration
	// DrainTimeout bounds how long, after Run's context ends, the server
	// stays registered as draining (pinned clients keep reaching it, new
	// ones go elsewhere) before it is deregistered. The agent deregisters
	// sooner once discovery reports the server drained: no edge has seen a
	// pinned request to it for DrainQuiet since the drain began. Default: 0,
	// deregister at once.
	DrainTimeout time.Duration
	// DrainQuiet is the quiet period that makes a draining server drained.
	// Default: 60s.
	DrainQuiet time.Duration
	// Origin names where the writes made through this server commit (its
	// database primary), for data-aware moves. Default: Region when
	// Progress has a source, else none (the server takes no part).
	Origin string
	// Progress are the sources of how far the server's copy of the data
	// has caught up with each origin it replicates from, read at every
	// heartbeat (see ProgressSource). Two sources that report one origin
	// are both heeded: the larger lag, or unknown, is reported. Default:
	// none, the server takes no part in data-aware moves.
	Progress []ProgressSource
	// Logger receives the agent's logs. Default: no logging.
	Logger *zap.Logger
	// Client makes the probes and the API calls; every request carries its
	// own deadline. Default: a client on http.DefaultTransport.
	Client *http.Client
}

// Validate checks the agent's configuration. The error is a *FieldError whose
// Field is the option's command-line name (id, region, url, health-url,
// discovery, interval, load, ttl, drain-timeout).
func (a *Agent) Validate() error {
	for _, req := range []struct{ field, v string }{{"id", a.ID}, {"region", a.Region}, {"url", a.URL}} {
		if req.v == "" {
			return &schema.FieldError{Field: req.field, Reason: "is required"}
		}
	}
	// The agent's record must pass the registry's own checks.
	if err := (schema.Server{ID: a.ID, Region: a.Region, URL: a.URL}).Validate(); err != nil {
		return err
	}
	if err := validateHTTPURL(a.HealthURL, true); err != nil {
		return &schema.FieldError{Field: "health-url", Reason: err.Error()}
	}
	if err := validateHTTPURL(a.Discovery, false); err != nil {
		return &schema.FieldError{Field: "discovery", Reason: err.Error()}
	}
	if a.Token != "" && !a.InsecureHTTP && !tokenSafeOver(a.Discovery) {
		return &schema.FieldError{Field: "discovery", Reason: "plain http to a host that is not loopback would show the token to anyone on the path; use https (or --insecure-http to accept that)"}
	}
	if a.Interval < 0 {
		return &schema.FieldError{Field: "interval", Reason: "must not be negative"}
	}
	if a.Load != nil && (math.IsNaN(*a.Load) || math.IsInf(*a.Load, 0) || *a.Load < 0) {
		return &schema.FieldError{Field: "load", Reason: "must be a finite number >= 0"}
	}
	if err := schema.ValidateSize(schema.Server{Capacity: a.Capacity, Limit: a.Limit}); err != nil {
		return err
	}
	if a.Prometheus != nil {
		if a.Load != nil {
			return &schema.FieldError{Field: "load", Reason: "a fixed load and --load-prometheus exclude each other"}
		}
		if err := a.Prometheus.validate(); err != nil {
			field, reason, _ := strings.Cut(err.Error(), ": ")
			return &schema.FieldError{Field: field, Reason: reason}
		}
	}
	if a.TTL != 0 && (a.TTL%time.Second != 0 || a.TTL < schema.MinTTL || a.TTL > schema.MaxTTL) {
		return &schema.FieldError{Field: "ttl", Reason: fmt.Sprintf("must be whole seconds from %s to %s", schema.MinTTL, schema.MaxTTL)}
	}
	if ttl, interval := a.ttl(), a.interval(); ttl <= interval {
		return &schema.FieldError{Field: "ttl", Reason: fmt.Sprintf("lease %s must be longer than the interval %s, or the server drops out between heartbeats", ttl, interval)}
	}
	if a.DrainTimeout < 0 {
		return &schema.FieldError{Field: "drain-timeout", Reason: "must not be negative"}
	}
	if a.DrainQuiet < 0 || a.DrainQuiet > schema.MaxQuiet {
		return &schema.FieldError{Field: "drain-quiet", Reason: fmt.Sprintf("must be between 0 and %s", schema.MaxQuiet)}
	}
	return a.validateProgress()
}

// validateProgress checks the origin and that no two PostgreSQL sources
// name one origin.
func (a *Agent) validateProgress() error {
	if a.Origin != "" && !schema.ValidName(a.Origin) {
		return &schema.FieldError{Field: "origin", Reason: schema.NameRule}
	}
	seen := map[string]bool{}
	for _, src := range a.Progress {
		for _, o := range src.Origins() {
			if seen[o] {
				return &schema.FieldError{Field: "progress-postgres", Reason: fmt.Sprintf("origin %q given more than once", o)}
			}
			seen[o] = true
		}
	}
	if len(seen) > schema.MaxOrigins {
		return &schema.FieldError{Field: "progress-postgres", Reason: fmt.Sprintf("at most %d origins", schema.MaxOrigins)}
	}
	return nil
}

// origin is the origin to report.
func (a *Agent) origin() string {
	if a.Origin == "" && len(a.Progress) > 0 {
		return a.Region
	}
	return a.Origin
}

func (a *Agent) interval() time.Duration {
	if a.Interval == 0 {
		return DefaultAgentInterval
	}
	return a.Interval
}

func (a *Agent) ttl() time.Duration {
	if a.TTL == 0 {
		return schema.DefaultTTL
	}
	return a.TTL
}

// validateHTTPURL accepts an absolute http(s) URL with a host; the health URL
// may carry a query, the discovery base URL may not.
func validateHTTPURL(raw string, queryOK bool) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := schema.ParseHTTPURL(raw)
	if err != nil {
		return err
	}
	if u.Hostname() == "" {
		return errors.New("must have a host")
	}
	if u.Fragment != "" || (!queryOK && (u.RawQuery != "" || u.ForceQuery)) {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

// tokenSafeOver reports whether a bearer token may travel to the
// discovery base URL: over https, or plain http that stays on this host.
func tokenSafeOver(discovery string) bool {
	u, err := url.Parse(discovery)
	return err == nil && (u.Scheme == "https" || schema.IsLoopbackHost(u.Hostname()))
}

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
	return st.Drained && (time.Since(start) >= quiet || (st.Since != nil && !st.Since.After(start)))
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
