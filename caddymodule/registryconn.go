package caddymodule

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// The registry connection: one etcd client and one registry watcher per
// process, shared through Caddy's usage pool by every config that names
// the same connection settings, so that a reload keeps routing.

// registries shares etcd connections across config reloads; the key is the
// connection configuration, so a reload that changes it opens a new watch
// and the old one is closed when the old config is cleaned up.
var registries = caddy.NewUsagePool()

// key identifies the connection in the usage pool. The admin addresses
// are part of it because the registry's dial guard is built from them.
func (a *App) key(admin []string) (string, error) {
	b, err := json.Marshal(struct {
		Etcd        []string
		Prefix      string
		DialTimeout caddy.Duration
		Username    string
		Password    string
		TLS         *EtcdTLS
		EdgeID      string
		Interval    caddy.Duration
		Admin       []string
	}{a.Etcd, a.Prefix, a.DialTimeout, a.Username, a.Password, a.TLS, a.EdgeID, a.ActivityInterval, admin})
	return string(b), err
}

func (a *App) clientConfig() (clientv3.Config, error) {
	cfg := clientv3.Config{
		Endpoints:   a.Etcd,
		DialTimeout: time.Duration(a.DialTimeout),
		Username:    a.Username,
		Password:    a.Password,
		// The client logs every failed dial at warn level; the registry
		// logs outages once, so keep etcd's own logger quiet.
		Logger: caddy.Log().Named("session_pin.etcd").WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)),
	}
	if a.TLS != nil {
		tc, err := a.TLS.config()
		if err != nil {
			return cfg, err
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

func (t *EtcdTLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("tls: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ca: no certificates in %s", t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: cert/key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// currentRegistry is the most recently provisioned connection; the
// seconds-since-update gauge reports on it.
var currentRegistry atomic.Pointer[registryConn]

// registryConn is one etcd client and its registry watcher, shared by every
// config that names the same connection settings.
type registryConn struct {
	// snap is the watcher's latest snapshot, stored on each swap.
	snap    atomic.Pointer[watch.Snapshot]
	watcher atomic.Pointer[watch.Watcher]
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	client  atomic.Pointer[clientv3.Client]
	logger  *zap.Logger

	edgeID   string
	interval time.Duration
	region   atomic.Pointer[string] // the handlers' region, for the activity value
	tracker  *activityTracker
}

// openRegistry starts connecting in the background. With credentials,
// clientv3.New authenticates and so blocks; without, it returns at once.
// Either way Caddy's start is never held up by etcd.
func openRegistry(cfg clientv3.Config, prefix, edgeID string, interval time.Duration, admin []string) *registryConn {
	ctx, cancel := context.WithCancel(context.Background())
	rc := &registryConn{
		started:  time.Now(),
		cancel:   cancel,
		done:     make(chan struct{}),
		edgeID:   edgeID,
		interval: interval,
		tracker:  newActivityTracker(),
		// The connection outlives the config that opened it, so it logs
		// through Caddy's default logger rather than a config's.
		logger: caddy.Log().Named("session_pin.registry"),
	}
	go rc.run(ctx, cfg, prefix, admin)
	return rc
}

func (rc *registryConn) run(ctx context.Context, cfg clientv3.Config, prefix string, admin []string) {
	defer close(rc.done)
	// Built here, not in Provision: it may resolve the names of the admin
	// and etcd addresses, and Caddy's start waits for no lookup.
	guard := newDialGuard(admin, cfg.Endpoints)
	cfg.Context = ctx
	backoff := 100 * time.Millisecond
	var client *clientv3.Client
	for {
		var err error
		client, err = clientv3.New(cfg)
		if err == nil {
			break
		}
		rc.logger.Warn("connecting to etcd", zap.Strings("endpoints", cfg.Endpoints), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	rc.client.Store(client)
	defer client.Close()
	w := watch.NewWatcher(watch.WatcherConfig{
		Client: client,
		Prefix: prefix,
		Logger: rc.logger,
		Attach: rc.tracker.attach,
		Refuse: guard.check,
		OnUpdate: func(s *watch.Snapshot) {
			rc.snap.Store(s)
			updateRegistryMetrics(s)
		},
	})
	rc.watcher.Store(w)
	pub := &activityPublisher{
		client:   client,
		key:      schema.EdgeKey(prefix, rc.edgeID),
		edge:     rc.edgeID,
		region:   rc.regionName,
		interval: rc.interval,
		tracker:  rc.tracker,
		alive:    func(id string) bool { return w.Snapshot().Server(id) != nil },
		log:      rc.logger,
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		pub.run(ctx)
	}()
	w.Run(ctx)
	<-published // its last act revokes the lease; the client must still be open
}

func (rc *registryConn) regionName() string {
	if r := rc.region.Load(); r != nil {
		return *r
	}
	return ""
}

// Snapshot is the current registry snapshot; empty until the first list.
func (rc *registryConn) Snapshot() *watch.Snapshot {
	if s := rc.snap.Load(); s != nil {
		return s
	}
	return watch.EmptySnapshot()
}

// secondsSinceUpdate is the age of the snapshot; before the first list, the
// time since connecting began, so an edge that never syncs raises alerts.
func (rc *registryConn) secondsSinceUpdate() float64 {
	if t := rc.confirmed(); !t.IsZero() {
		return time.Since(t).Seconds()
	}
	return time.Since(rc.started).Seconds()
}

// confirmed is when the snapshot last changed or was confirmed current by
// etcd; zero before the first list.
func (rc *registryConn) confirmed() time.Time {
	if w := rc.watcher.Load(); w != nil {
		return w.LastUpdate()
	}
	return time.Time{}
}

// Destruct stops the watch and closes the etcd client; the usage pool calls
// it when the last config using the connection is unloaded.
func (rc *registryConn) Destruct() error {
	rc.cancel()
	<-rc.done
	currentRegistry.CompareAndSwap(rc, nil)
	return nil
}

// Interface guards
var _ caddy.Destructor = (*registryConn)(nil)
