package discoverysvc

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// fleetConfig configures a Fleet.
type fleetConfig struct {
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
	// MaxSubscribers bounds the events subscribers in total, and
	// MaxSubscribersPerClient those of one client address; beyond either
	// a subscriber gets 503 with Retry-After. Defaults:
	// DefaultMaxSubscribers, DefaultMaxSubscribersPerClient; negative: no
	// limit.
	MaxSubscribers, MaxSubscribersPerClient int
	// Exposure says who may read the fleet, and under which Host names
	// the service answers.
	Exposure Exposure
	// Etcd, when set, is served on GET /v1/registry for the fleet page:
	// etcd's size and alarms. Default: none (404).
	Etcd *EtcdStatus
}

// Fleet is what lets an operator see the fleet: the metrics, the events
// stream and the fleet page, all fed by one registry watch per process
// however many clients follow them.
type Fleet struct {
	exposure Exposure
	watcher  *watch.Watcher
	hub      *Hub
	metrics  *Metrics
	etcd     *EtcdStatus
}

// newFleet returns a fleet; call Run to start its watch. New builds the
// service's.
func newFleet(cfg fleetConfig) *Fleet {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	f := &Fleet{metrics: cfg.Metrics, etcd: cfg.Etcd}
	f.hub = newHub(cfg.Prefix, cfg.SubscriberBuffer, cfg.EventHistory, cfg.Metrics)
	f.hub.limit = newSubscriberLimit(orDefault(cfg.MaxSubscribers, DefaultMaxSubscribers),
		orDefault(cfg.MaxSubscribersPerClient, DefaultMaxSubscribersPerClient))
	f.exposure = cfg.Exposure
	wcfg := watch.WatcherConfig{
		Client:  cfg.Client,
		Prefix:  cfg.Prefix,
		Logger:  cfg.Logger,
		OnWatch: f.hub.update,
	}
	if cfg.Registry != nil {
		cfg.Metrics.ObserveRegistry(cfg.Registry)
		// The same watch keeps the registry's copy, which spares its
		// unchanged heartbeats an etcd read: one watch per process.
		if cfg.Registry.prefix == schema.NormalizePrefix(cfg.Prefix) {
			if cfg.Registry.heads.claim() {
				wcfg.Raw = cfg.Registry.heads
			}
			// And the edges' activity the hub decodes spares a drain
			// status decoding every edge's value per request.
			cfg.Registry.edges.CompareAndSwap(nil, f.hub)
		}
	}
	f.watcher = watch.NewWatcher(wcfg)
	cfg.Metrics.reg.MustRegister(&fleetCollector{hub: f.hub})
	return f
}

// Run watches the registry until ctx is done, then ends every events
// stream: a stream never goes idle, so a graceful HTTP shutdown would wait
// for it in vain.
func (f *Fleet) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(drainedCheckInterval)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				f.hub.tick(now)
			case <-ctx.Done():
				return
			}
		}
	}()
	f.watcher.Run(ctx)
	<-done
	f.hub.close()
}

// drainedCheckInterval is how often the draining servers are judged again:
// one becomes drained when its quiet period passes, which no etcd write
// announces.
const drainedCheckInterval = time.Second

// Hub is the fan-out of the events stream.
func (f *Fleet) Hub() *Hub { return f.hub }

// Metrics are the metrics served on /metrics.
func (f *Fleet) Metrics() *Metrics { return f.metrics }

// Handler serves the fleet's endpoints in front of the discovery API:
//
//	GET /metrics     the metrics, Prometheus text format
//	GET /v1/events   Server-Sent Events: the fleet's state, then its changes
//	GET /v1/registry etcd's size, revision rate and alarms (with fleetConfig.Etcd)
//	GET /            the fleet page (its script and style under /fleet/)
//
// Every other path goes to api. Every request is counted in the metrics,
// and first passes the exposure's Host and read checks (see Exposure).
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
	if f.etcd != nil {
		mux.HandleFunc("/v1/registry", f.etcd.serve)
	}
	mux.HandleFunc("/{$}", serveFleetPage)
	mux.HandleFunc("/fleet/", serveFleetAssets)
	mux.Handle("/", api)
	// The API's admin token reads too, unless the exposure names one.
	e := f.exposure
	if a, ok := api.(*apiHandler); ok && e.AdminToken == "" {
		e.AdminToken = a.token
	}
	return f.metrics.Instrument(e.compile().guard(mux))
}

// fleetCollector reports the fleet as the hub last saw it, at scrape time,
// so a heartbeat costs the metrics nothing.
type fleetCollector struct {
	hub *Hub
}

var (
	serversDesc = prometheus.NewDesc("sessionpin_discovery_servers",
		"Registered servers by region and state (active, draining, drained).",
		[]string{"region", "state"}, nil)
	pinnedDesc = prometheus.NewDesc("sessionpin_discovery_pinned_requests_per_minute",
		"Pinned requests to the server in the last minute, summed over the edges' activity reports.",
		[]string{"server"}, nil)
)

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- serversDesc
	ch <- pinnedDesc
	describeProgress(ch)
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.hub.view()
	for _, name := range v.state.RegionNames() {
		r := v.state.Region(name)
		drained := 0
		for _, e := range r.Draining {
			if v.pinned[e.ID].Drained {
				drained++
			}
		}
		ch <- prometheus.MustNewConstMetric(serversDesc, prometheus.GaugeValue, float64(len(r.Active)), name, "active")
		ch <- prometheus.MustNewConstMetric(serversDesc, prometheus.GaugeValue, float64(len(r.Draining)-drained), name, "draining")
		ch <- prometheus.MustNewConstMetric(serversDesc, prometheus.GaugeValue, float64(drained), name, "drained")
	}
	for id, p := range v.pinned {
		ch <- prometheus.MustNewConstMetric(pinnedDesc, prometheus.GaugeValue, float64(p.PinnedLastMinute), id)
	}
	collectProgress(ch, v.state)
}
