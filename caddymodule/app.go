// Package caddymodule is the sessionpin edge: Caddy modules that pin each
// client to one backend server through a signed token, place new clients on
// the least-loaded server of the edge's region, answer /closestToMe and
// rebalance clients at token refresh.
//
// Three modules work together:
//
//   - the app `session_pin` owns the etcd client and the one registry
//     watcher of the process (Caddyfile global option `session_pin`);
//   - the handler `http.handlers.session_pin` decides the target server of
//     each request (directive `session_pin`, ordered before reverse_proxy);
//   - the upstream source `http.reverse_proxy.upstreams.session_pin` hands
//     that decision to reverse_proxy (`reverse_proxy { dynamic session_pin }`).
//
// The package is a pure etcd client: it must never link the etcd server.
package caddymodule

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults of the app's configuration.
const (
	DefaultEtcdEndpoint = "127.0.0.1:2379"
	DefaultDialTimeout  = 5 * time.Second
)

// App is the `session_pin` app. It connects to the etcd registry and keeps
// one watch per process, which every session_pin handler routes from. The
// connection is shared through a usage pool keyed by this configuration, so
// a config reload with the same settings keeps the watch and its snapshot:
// routing never goes blind during a reload.
//
// The app is optional in the config: without it, handlers use the defaults
// below.
type App struct {
	// Etcd lists the etcd client endpoints (host:port or URLs).
	// Default: ["127.0.0.1:2379"].
	Etcd []string `json:"etcd,omitempty"`

	// Prefix is the etcd key prefix of the registry. Default: "/sessionpin/".
	Prefix string `json:"prefix,omitempty"`

	// DialTimeout bounds connecting and authenticating to etcd.
	// Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// Username and Password authenticate to etcd when auth is enabled.
	// Default: none.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// TLS configures client TLS to etcd. Default: plain TCP.
	TLS *EtcdTLS `json:"tls,omitempty"`

	// EdgeID names this edge in the pinned activity it publishes to
	// <prefix>edges/<edge_id>, which drains read to tell when a server's
	// clients are gone. 1-64 characters of [A-Za-z0-9._-]. Default: the
	// host name and a random suffix, drawn once per process.
	EdgeID string `json:"edge_id,omitempty"`

	// ActivityInterval is how often the edge publishes its pinned activity
	// (only when it changed; otherwise it only renews the key's lease of
	// three intervals). Default: 5s.
	ActivityInterval caddy.Duration `json:"activity_interval,omitempty"`

	// registry stays set after Cleanup: requests of this config still in
	// flight keep reading its last snapshot, which outlives the stopped
	// watch.
	registry *registryConn
	poolKey  string // set while this config holds the shared connection
	logger   *zap.Logger
}

// EtcdTLS holds PEM file paths for TLS to etcd.
type EtcdTLS struct {
	// CA is the CA bundle that signs the etcd server certificates.
	// Default: the system roots.
	CA string `json:"ca,omitempty"`
	// Cert and Key are the client certificate and key, for etcd clusters
	// that require client certificates. Default: none.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "session_pin",
		New: func() caddy.Module { return new(App) },
	}
}

// registries shares etcd connections across config reloads; the key is the
// connection configuration, so a reload that changes it opens a new watch
// and the old one is closed when the old config is cleaned up.
var registries = caddy.NewUsagePool()

// Provision applies defaults and joins (or opens) the shared registry
// connection. It never waits for etcd: an edge started before its registry
// is reachable answers 503 no_server_available until the watch syncs.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if len(a.Etcd) == 0 {
		a.Etcd = []string{DefaultEtcdEndpoint}
	}
	if a.Prefix == "" {
		a.Prefix = schema.DefaultPrefix
	}
	a.Prefix = schema.NormalizePrefix(a.Prefix)
	if a.DialTimeout == 0 {
		a.DialTimeout = caddy.Duration(DefaultDialTimeout)
	}
	if a.EdgeID == "" {
		a.EdgeID = processEdgeID()
	}
	if a.ActivityInterval == 0 {
		a.ActivityInterval = caddy.Duration(DefaultActivityInterval)
	}
	if err := a.Validate(); err != nil {
		return err
	}
	cfg, err := a.clientConfig()
	if err != nil {
		return err
	}
	admin := adminAddresses(ctx)
	key, err := a.key(admin)
	if err != nil {
		return err
	}
	val, _, err := registries.LoadOrNew(key, func() (caddy.Destructor, error) {
		return openRegistry(cfg, a.Prefix, a.EdgeID, time.Duration(a.ActivityInterval), admin), nil
	})
	if err != nil {
		return err
	}
	a.poolKey = key
	a.registry = val.(*registryConn)
	currentRegistry.Store(a.registry)
	return registerAppMetrics(ctx.GetMetricsRegistry())
}

// Validate checks the configuration; errors name the option. Provision
// runs it too, before connecting to etcd.
func (a *App) Validate() error {
	for i, ep := range a.Etcd {
		if strings.TrimSpace(ep) == "" {
			return fmt.Errorf("etcd: endpoint %d is empty", i+1)
		}
	}
	if a.DialTimeout < 0 {
		return errors.New("dial_timeout: must not be negative")
	}
	if (a.Username == "") != (a.Password == "") {
		return errors.New("username and password: set both or neither")
	}
	if a.TLS != nil && (a.TLS.Cert == "") != (a.TLS.Key == "") {
		return errors.New("tls: cert and key: set both or neither")
	}
	if a.EdgeID != "" && !schema.ValidName(a.EdgeID) {
		return fmt.Errorf("edge_id: %q must be 1-64 characters of [A-Za-z0-9._-]", a.EdgeID)
	}
	if a.ActivityInterval != 0 && time.Duration(a.ActivityInterval) < MinActivityInterval {
		return fmt.Errorf("activity_interval: must be at least %s", MinActivityInterval)
	}
	return nil
}

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

// Start implements caddy.App; the watch already runs from Provision.
func (a *App) Start() error { return nil }

// Stop implements caddy.App; the shared watch outlives a single config.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's use of the shared connection; the last
// user closes it.
func (a *App) Cleanup() error {
	if a.poolKey == "" {
		return nil
	}
	key := a.poolKey
	a.poolKey = ""
	_, err := registries.Delete(key)
	return err
}

// noteRegion tells the app a handler's region, which the edge reports
// with its activity.
func (a *App) noteRegion(region string) {
	if a.registry != nil {
		a.registry.region.Store(&region)
	}
}

// Snapshot is the registry as last seen; never nil.
func (a *App) Snapshot() *watch.Snapshot {
	if a.registry == nil {
		return watch.EmptySnapshot()
	}
	return a.registry.Snapshot()
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
	if w := rc.watcher.Load(); w != nil {
		if t := w.LastUpdate(); !t.IsZero() {
			return time.Since(t).Seconds()
		}
	}
	return time.Since(rc.started).Seconds()
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
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*registryConn)(nil)
)
