package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
)

// PrometheusLoad takes a server's load from Prometheus instead of from the
// app's health body, for operators who already collect it: an instant
// query whose result holds one sample per server, labelled with the
// server's id. Every agent of a fleet can run the same query; each picks
// its own server's sample.
//
// The agent reads it rather than discovery because the load then travels
// the path it always has: the heartbeat, with its lease-only renewals while
// the load holds and the same write rule for every source. Discovery stays
// stateless and never writes a server's record on its own.
type PrometheusLoad struct {
	// URL is the base URL of Prometheus' HTTP API, e.g.
	// http://prometheus:9090. Required.
	URL string
	// Query is a PromQL instant query whose result is a vector with one
	// sample per server, e.g. max by (server) (app_load). Required.
	Query string
	// Label is the label of each sample that carries the server id.
	// Default: "server".
	Label string
}

// DefaultLoadLabel is PrometheusLoad's default Label.
const DefaultLoadLabel = "server"

// maxPrometheusBody bounds a query's answer: one sample per server is a
// few hundred bytes each, and the agent must not buffer an arbitrary body.
const maxPrometheusBody = 4 << 20

func (p *PrometheusLoad) label() string {
	if p.Label == "" {
		return DefaultLoadLabel
	}
	return p.Label
}

// validate checks the source; errors name the agent's flags.
func (p *PrometheusLoad) validate() error {
	if err := validateHTTPURL(p.URL, false); err != nil {
		return fmt.Errorf("load-prometheus: %w", err)
	}
	if p.Query == "" {
		return errors.New("load-query: is required with --load-prometheus")
	}
	if !model.LegacyValidation.IsValidLabelName(p.label()) {
		return fmt.Errorf("load-label: %q is not a Prometheus label name", p.label())
	}
	return nil
}

// read asks Prometheus for the query once and returns id's load.
func (p *PrometheusLoad) read(ctx context.Context, rt http.RoundTripper, id string) (float64, error) {
	c, err := promapi.NewClient(promapi.Config{Address: p.URL, RoundTripper: limitedBody{rt}})
	if err != nil {
		return 0, fmt.Errorf("prometheus client: %w", err)
	}
	v, _, err := promv1.NewAPI(c).Query(ctx, p.Query, time.Time{})
	if err != nil {
		return 0, fmt.Errorf("prometheus query: %w", err)
	}
	return LoadFromVector(v, p.label(), id)
}

// LoadFromVector picks id's load from a query's result: the one sample of
// the vector whose label is id. Anything else (not a vector, no such
// sample, two of them, a value that is not a finite number >= 0) is an
// error, so that a wrong query never reports a load.
func LoadFromVector(v model.Value, label, id string) (float64, error) {
	vec, ok := v.(model.Vector)
	if !ok {
		kind := "nothing"
		if v != nil {
			kind = v.Type().String()
		}
		return 0, fmt.Errorf("query result is %s, not a vector", kind)
	}
	found := false
	var load float64
	for _, s := range vec {
		if s == nil || string(s.Metric[model.LabelName(label)]) != id {
			continue
		}
		if found {
			return 0, fmt.Errorf("query result has more than one sample with %s=%q", label, id)
		}
		found = true
		load = float64(s.Value)
	}
	if !found {
		return 0, fmt.Errorf("query result has no sample with %s=%q", label, id)
	}
	if math.IsNaN(load) || math.IsInf(load, 0) || load < 0 {
		return 0, fmt.Errorf("load %v for %s=%q is not a finite number >= 0", load, label, id)
	}
	return load, nil
}

// limitedBody cuts a response body off at maxPrometheusBody: the client
// library reads whole bodies.
type limitedBody struct{ rt http.RoundTripper }

func (l limitedBody) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := l.rt
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &capped{r: io.LimitReader(resp.Body, maxPrometheusBody+1), c: resp.Body}
	return resp, nil
}

type capped struct {
	r io.Reader
	c io.Closer
	n int64
}

func (c *capped) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if c.n > maxPrometheusBody {
		return n, fmt.Errorf("prometheus answer larger than %d bytes", maxPrometheusBody)
	}
	return n, err
}

func (c *capped) Close() error { return c.c.Close() }

// prometheusLoad returns the load to report when the agent reads it from
// Prometheus: the query's answer, else the last good one, else (before any)
// fallback, the agent's own measure. A failing Prometheus is logged once
// until it answers again.
func (r *agentRun) prometheusLoad(ctx context.Context, fallback float64) float64 {
	p := r.agent.Prometheus
	ctx, cancel := context.WithTimeout(ctx, r.interval/2)
	defer cancel()
	var rt http.RoundTripper
	if r.client != nil {
		rt = r.client.Transport
	}
	load, err := p.read(ctx, rt, r.agent.ID)
	if err != nil {
		if r.promFailing == "" {
			kept := fallback
			if r.promGood {
				kept = r.promLoad
			}
			r.log.Warn("prometheus load unavailable; keeping the last good load", zap.String("prometheus", p.URL),
				zap.Float64("load", kept), zap.Error(err))
		}
		r.promFailing = err.Error()
		if r.promGood {
			return r.promLoad
		}
		return fallback
	}
	if r.promFailing != "" {
		r.log.Info("prometheus load available again", zap.Float64("load", load))
		r.promFailing = ""
	}
	r.promGood, r.promLoad = true, load
	return load
}
