package discoverysvc

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// FleetConfig configures a Fleet.
type FleetConfig struct {
	// Client is the etcd client the fleet watches the registry with.
	// Required.
	Client *clientv3.Client
	// Prefix is the registry's etcd key prefix. Default: "/sessionpin/".
	Prefix string
	// Registry, when set, has its heartbeats counted in the metrics.
	Registry *Registry
	// Metrics receive the fleet's gauges and the hub's counters. Default:
	// NewMetrics().
	Metrics *Metrics
	// Logger receives the watch's outages. Default: no logging.
	Logger *zap.Logger
	// SubscriberBuffer is how many revisions an events subscriber may fall
	// behind before it is dropped. Default: DefaultSubscriberBuffer.
	SubscriberBuffer int
	// EventHistory is how many revisions are kept for clients resuming
	// with Last-Event-ID. Default: DefaultEventHistory.
	EventHistory int
}

// Fleet is what lets an operator see the fleet: the metrics, the events
// stream and the fleet page, all fed by one registry watch per process
// however many clients follow them.
type Fleet struct {
	watcher *Watcher
	hub     *Hub
	metrics *Metrics
}

// NewFleet returns a fleet; call Run to start its watch.
func NewFleet(cfg FleetConfig) *Fleet {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	f := &Fleet{metrics: cfg.Metrics}
	f.hub = newHub(cfg.SubscriberBuffer, cfg.EventHistory, cfg.Metrics)
	f.watcher = NewWatcher(WatcherConfig{
		Client:   cfg.Client,
		Prefix:   cfg.Prefix,
		Logger:   cfg.Logger,
		OnUpdate: f.hub.publish,
	})
	if cfg.Registry != nil {
		cfg.Metrics.ObserveRegistry(cfg.Registry)
	}
	cfg.Metrics.reg.MustRegister(&fleetCollector{hub: f.hub})
	return f
}

// Run watches the registry until ctx is done, then ends every events
// stream: a stream never goes idle, so a graceful HTTP shutdown would wait
// for it in vain.
func (f *Fleet) Run(ctx context.Context) {
	f.watcher.Run(ctx)
	f.hub.close()
}

// Hub is the fan-out of the events stream.
func (f *Fleet) Hub() *Hub { return f.hub }

// Metrics are the metrics served on /metrics.
func (f *Fleet) Metrics() *Metrics { return f.metrics }

// Handler serves the fleet's endpoints in front of the discovery API:
//
//	GET /metrics     the metrics, Prometheus text format
//	GET /v1/events   Server-Sent Events: the fleet's state, then its changes
//	GET /            the fleet page (its script and style under /fleet/)
//
// Every other path goes to api. Every request is counted in the metrics.
func (f *Fleet) Handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	metrics := f.metrics.Handler()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, r, http.MethodGet, http.MethodHead)
			return
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/v1/events", f.hub.serveEvents)
	mux.HandleFunc("/{$}", serveFleetPage)
	mux.HandleFunc("/fleet/", serveFleetAssets)
	mux.Handle("/", api)
	return f.metrics.Instrument(mux)
}

// fleetCollector reports the servers of the hub's current state at scrape
// time, so a heartbeat costs the metrics nothing.
type fleetCollector struct {
	hub *Hub
}

var serversDesc = prometheus.NewDesc("sessionpin_discovery_servers",
	"Registered servers by region and state (active, draining).",
	[]string{"region", "state"}, nil)

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- serversDesc }

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.hub.State()
	for _, name := range s.RegionNames() {
		r := s.Region(name)
		ch <- prometheus.MustNewConstMetric(serversDesc, prometheus.GaugeValue, float64(len(r.Active)), name, "active")
		ch <- prometheus.MustNewConstMetric(serversDesc, prometheus.GaugeValue, float64(len(r.Draining)), name, "draining")
	}
}
