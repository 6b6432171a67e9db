package discoverysvc

import (
	"context"
	"net/http"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config configures the discovery service.
type Config struct {
	// Client is the etcd client the service reads and writes the registry
	// with. Required.
	Client *clientv3.Client
	// Prefix is the registry's etcd key prefix. Default: "/sessionpin/".
	Prefix string
	// Token is the admin token: every write. Agent tokens derived from it
	// (AgentToken) write one server's record each. Default: none, writes
	// are open to anyone who reaches the API.
	Token string
	// AllowLoopback lets servers register loopback URLs, for a demo or a
	// test on one host. Default: false.
	AllowLoopback bool
	// Renew, when set, renews a lease by a call into the etcd member the
	// process embeds (embedetcd.InProcess.Renew) instead of over kept
	// LeaseKeepAlive streams (see Registry.RenewWith). Default: streams.
	Renew func(ctx context.Context, id int64) (ttl, revision int64, err error)
	// Metrics receive the service's metrics. Default: NewMetrics(); pass
	// your own to time the etcd client's calls with it
	// (Metrics.EtcdDialOptions).
	Metrics *Metrics
	// Logger receives registrations, drains, outages and etcd errors.
	// Default: no logging.
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
	// the service answers; its AdminToken defaults to Token.
	Exposure Exposure
	// EtcdCompactRetention, when positive, makes the service compact
	// etcd's history itself, keeping this much, as Kubernetes' API server
	// does (serve --etcd-compact). Compaction is cluster-wide, so it is for
	// a cluster sessionpin has to itself. Default: 0, off: etcd compacts
	// itself (the embedded member does by default).
	EtcdCompactRetention time.Duration
}

// Service is the discovery service: the registry, the API over it, and the
// fleet (metrics, events stream and fleet page) fed by one registry watch,
// which also keeps the registry's copy of the servers.
type Service struct {
	registry *Registry
	fleet    *Fleet
	etcd     *EtcdStatus
	handler  http.Handler
}

// New wires the discovery service. Call Run to start its watch and serve
// Handler; the API answers before the watch has listed.
func New(cfg Config) *Service {
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	reg := NewRegistry(cfg.Client, cfg.Prefix)
	if cfg.Renew != nil {
		reg.RenewWith(cfg.Renew)
	}
	// etcd's size, revision rate and alarms, for /metrics and the page.
	etcd := NewEtcdStatus(EtcdStatusConfig{
		Client: cfg.Client, Prefix: cfg.Prefix, Metrics: cfg.Metrics, Logger: logger.Named("etcd"),
		CompactRetention: cfg.EtcdCompactRetention,
	})
	fleet := newFleet(fleetConfig{
		Client: cfg.Client, Prefix: cfg.Prefix, Registry: reg, Metrics: cfg.Metrics,
		Logger: logger.Named("fleet"), SubscriberBuffer: cfg.SubscriberBuffer, EventHistory: cfg.EventHistory,
		MaxSubscribers: cfg.MaxSubscribers, MaxSubscribersPerClient: cfg.MaxSubscribersPerClient,
		Exposure: cfg.Exposure,
		Etcd:     etcd,
	})
	api := NewAPI(reg, APIConfig{Token: cfg.Token, AllowLoopback: cfg.AllowLoopback, Logger: logger})
	return &Service{registry: reg, fleet: fleet, etcd: etcd, handler: fleet.Handler(api)}
}

// Handler serves the discovery API, /metrics, /v1/events and the fleet
// page.
func (s *Service) Handler() http.Handler { return s.handler }

// Run watches the registry and looks at etcd's size until ctx is done,
// then ends every events stream (see Fleet.Run). Stop it before the etcd
// client closes.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.etcd.Run(ctx) })
	s.fleet.Run(ctx)
	wg.Wait()
}

// Etcd is what the service last saw of etcd's size and alarms.
func (s *Service) Etcd() *EtcdStatus { return s.etcd }

// Registry is the service's registry.
func (s *Service) Registry() *Registry { return s.registry }

// Fleet is the service's fleet: its metrics and events hub.
func (s *Service) Fleet() *Fleet { return s.fleet }
