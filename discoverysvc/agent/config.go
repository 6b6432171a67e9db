package agent

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

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
