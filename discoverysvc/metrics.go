package discoverysvc

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// Heartbeat results, the values of the result label of
// sessionpin_discovery_heartbeats_total.
const (
	HeartbeatWritten  = "written"  // the record was written to etcd
	HeartbeatRenewed  = "renewed"  // only the lease was renewed: nothing changed
	HeartbeatRejected = "rejected" // refused: bad input or credentials
	HeartbeatFailed   = "failed"   // etcd did not answer
)

// Metrics are the discovery service's Prometheus metrics. They live in a
// registry of their own, not the process-global one, so that a process (or
// a test) running several discovery services reports each apart, and the
// etcd server embedded in the same process does not mix its metrics in.
type Metrics struct {
	reg *prometheus.Registry

	heartbeats  map[string]prometheus.Counter
	requests    *prometheus.CounterVec
	etcdLatency *prometheus.HistogramVec
	subscribers prometheus.Gauge
	dropped     prometheus.Counter
	limits      *limitMetrics
}

// NewMetrics returns the metrics with every collector registered. The fleet
// gauges (servers, pinned activity) are added by the Fleet that reads them.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	hb := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionpin_discovery_heartbeats_total",
		Help: "Heartbeats (PUT /v1/servers/{id}) by result: written, renewed (lease only, nothing changed), rejected (bad input or credentials), failed (etcd did not answer).",
	}, []string{"result"})
	m.heartbeats = map[string]prometheus.Counter{}
	for _, r := range []string{HeartbeatWritten, HeartbeatRenewed, HeartbeatRejected, HeartbeatFailed} {
		m.heartbeats[r] = hb.WithLabelValues(r) // every result shows, at 0 until it happens
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionpin_discovery_api_requests_total",
		Help: "HTTP requests to the discovery service by method and status code.",
	}, []string{"method", "code"})
	m.etcdLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sessionpin_discovery_etcd_request_duration_seconds",
		Help:    "Duration of the discovery service's unary etcd calls (Range, Txn, Put, LeaseGrant, ...), by call.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"call"})
	m.subscribers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sessionpin_discovery_events_subscribers",
		Help: "Clients currently following GET /v1/events.",
	})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sessionpin_discovery_events_dropped_total",
		Help: "Subscribers of GET /v1/events dropped because they did not keep up.",
	})
	m.reg.MustRegister(hb, m.requests, m.etcdLatency, m.subscribers, m.dropped,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.limits = newLimitMetrics(m.reg)
	return m
}

// Registry is the Prometheus registry the metrics live in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// CountHeartbeat counts one heartbeat with the given result.
func (m *Metrics) CountHeartbeat(result string) {
	if c, ok := m.heartbeats[result]; ok {
		c.Inc()
	}
}

// ObserveRegistry counts the written and lease-only heartbeats of reg. Only
// the registry knows which a heartbeat was; refusals and failures are
// counted from the API's answers by Instrument.
func (m *Metrics) ObserveRegistry(reg *Registry) {
	reg.observeHeartbeats(func(res HeartbeatResult) {
		if res.Written {
			m.CountHeartbeat(HeartbeatWritten)
		} else {
			m.CountHeartbeat(HeartbeatRenewed)
		}
	})
}

// EtcdDialOptions are the etcd client dial options that time every unary
// call (clientv3.Config.DialOptions). Streamed calls (watches, the lease
// renewals on kept streams) are long-lived and not timed.
func (m *Metrics) EtcdDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(m.timeEtcdCall)}
}

func (m *Metrics) timeEtcdCall(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	// "/etcdserverpb.KV/Range" -> "Range": a fixed set, from etcd's protocol.
	m.ObserveEtcdCall(method[strings.LastIndexByte(method, '/')+1:], time.Since(start))
	return err
}

// ObserveEtcdCall records one etcd call that took d, by the method's name
// in etcd's protocol ("Range", "Txn", "LeaseGrant", …). EtcdDialOptions
// call it for a remote etcd; an in-process client of the embedded member
// calls it itself.
func (m *Metrics) ObserveEtcdCall(call string, d time.Duration) {
	m.etcdLatency.WithLabelValues(call).Observe(d.Seconds())
}

// Instrument counts every request of next by method and status code, and
// the heartbeats next refused or failed.
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := rec.status
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(methodLabel(r.Method), strconv.Itoa(code)).Inc()
		if r.Method == http.MethodPut && isServerPath(r.URL.Path) {
			switch {
			case code >= 500:
				m.CountHeartbeat(HeartbeatFailed)
			case code >= 400:
				m.CountHeartbeat(HeartbeatRejected)
			}
		}
	})
}

// isServerPath reports whether path is /v1/servers/<id>, the heartbeat's
// path, rather than a path below a server such as its drain.
func isServerPath(path string) bool {
	id, ok := strings.CutPrefix(path, "/v1/servers/")
	return ok && !strings.Contains(id, "/")
}

// methodLabel keeps the label's values to a fixed set: the method is
// whatever a client sent.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost,
		http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

// statusRecorder remembers the status code written through it. Unwrap lets
// http.ResponseController reach the connection (flushes and write deadlines
// of the events stream).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
