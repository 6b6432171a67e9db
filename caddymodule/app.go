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
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

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
	// three intervals), from 100ms to 1h. Default: 5s.
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
	if a.ActivityInterval != 0 && (time.Duration(a.ActivityInterval) < MinActivityInterval || time.Duration(a.ActivityInterval) > schema.MaxActivityInterval) {
		return fmt.Errorf("activity_interval: must be between %s and %s", MinActivityInterval, schema.MaxActivityInterval)
	}
	return nil
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

// confirmed is when the snapshot was last confirmed current; zero while
// there is none.
func (a *App) confirmed() time.Time {
	if a.registry == nil {
		return time.Time{}
	}
	return a.registry.confirmed()
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
