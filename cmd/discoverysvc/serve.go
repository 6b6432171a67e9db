package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// shutdownTimeout bounds how long in-flight API requests may finish after a
// signal; heartbeats are quick, so this is generous.
const shutdownTimeout = 10 * time.Second

// serveConfig is the command line of "discoverysvc serve".
type serveConfig struct {
	listen string

	etcd                      string
	etcdUser, etcdPassword    string
	etcdCA, etcdCert, etcdKey string
	prefix                    string
	token, readToken          string
	allowLoopback             bool

	// What is public, and under which names (see discoverysvc.Exposure).
	publicRead bool
	allowHosts string

	// Hostile load: how many connections and subscribers, and how long a
	// connection may idle or take to send its headers.
	maxConns, maxSubs, maxSubsPerClient int
	readHeaderTimeout, idleTimeout      time.Duration

	dataDir, etcdListen, etcdPeerListen               string
	etcdListenCert, etcdListenKey, etcdListenClientCA string
	etcdCompactionRetention                           time.Duration
	etcdQuotaBytes                                    int64
	etcdCompact                                       bool

	logLevel string
}

// embeddedOnly are the flags of the embedded etcd; externalOnly and
// clientTLS need --etcd (discovery calls an embedded etcd in-process, with
// no user and no certificate).
var (
	embeddedOnly = []string{"data-dir", "etcd-listen", "etcd-peer-listen", "etcd-listen-cert", "etcd-listen-key", "etcd-client-ca",
		"etcd-quota-bytes"}
	externalOnly = []string{"etcd-user", "etcd-password", "etcd-compact"}
	clientTLS    = []string{"etcd-ca", "etcd-cert", "etcd-key"}
	listenTLS    = []string{"etcd-listen-cert", "etcd-listen-key", "etcd-client-ca"}
)

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var c serveConfig
	fs := newFlagSet("serve", "serve [flags]", stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:7070", "`host:port` of the HTTP API")
	fs.StringVar(&c.etcd, "etcd", "", "`endpoints` of an existing etcd cluster, host:port,... (default: start an embedded single-node etcd)")
	fs.StringVar(&c.etcdUser, "etcd-user", "", "etcd `user` (with --etcd)")
	fs.StringVar(&c.etcdPassword, "etcd-password", "", "etcd `password` (with --etcd; default $"+envEtcdPassword+")")
	fs.StringVar(&c.etcdCA, "etcd-ca", "", "PEM `file` of the CA that signed etcd's certificate (with --etcd)")
	fs.StringVar(&c.etcdCert, "etcd-cert", "", "PEM client certificate `file` for etcd, with --etcd-key (with --etcd)")
	fs.StringVar(&c.etcdKey, "etcd-key", "", "PEM client key `file` for etcd, with --etcd-cert (with --etcd)")
	fs.StringVar(&c.prefix, "prefix", schema.DefaultPrefix, "etcd key `prefix` of the registry")
	token := addSecretFlag(fs, "token", envToken, "the admin bearer `token`: every write, and reads; agents get theirs from \"discoverysvc token\" (none: writes and reads are open)")
	readToken := addSecretFlag(fs, "read-token", envReadToken, "a read-only bearer `token` for dashboards and the fleet page: reads GET /v1/events and GET /v1/servers, writes nothing")
	fs.BoolVar(&c.publicRead, "public-read", false, "let anyone who reaches the API read GET /v1/events and GET /v1/servers without a token (every server's URL), for a private network")
	fs.StringVar(&c.allowHosts, "allow-host", "", "more `names`, comma-separated, that requests may be addressed to (Host); IP addresses, localhost and the --listen host always are")
	fs.IntVar(&c.maxConns, "max-connections", discoverysvc.DefaultMaxConnections, "most open connections to the API; more are closed at once (lowered to fit the open-file limit)")
	fs.IntVar(&c.maxSubs, "max-subscribers", discoverysvc.DefaultMaxSubscribers, "most GET /v1/events subscribers; more get 503 with Retry-After")
	fs.IntVar(&c.maxSubsPerClient, "max-subscribers-per-client", discoverysvc.DefaultMaxSubscribersPerClient, "most GET /v1/events subscribers from one client address; more get 503 with Retry-After")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", discoverysvc.DefaultReadHeaderTimeout, "how long a connection may take to send a request's headers")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", discoverysvc.DefaultIdleTimeout, "how long a kept-alive connection may wait for its next request")
	fs.BoolVar(&c.allowLoopback, "allow-loopback", false, "let servers register loopback URLs (127.0.0.1, localhost), for a demo or tests on one host")
	fs.StringVar(&c.dataDir, "data-dir", "./data/etcd", "`dir` of the embedded etcd's data")
	fs.StringVar(&c.etcdListen, "etcd-listen", "127.0.0.1:2379", "client `host:port` of the embedded etcd, where edges connect; beyond loopback only with --etcd-listen-cert, --etcd-listen-key and --etcd-client-ca")
	fs.StringVar(&c.etcdPeerListen, "etcd-peer-listen", "127.0.0.1:2380", "peer `host:port` of the embedded etcd (loopback: a single member has no peers)")
	fs.StringVar(&c.etcdListenCert, "etcd-listen-cert", "", "PEM server certificate `file` of the embedded etcd (with --etcd-listen-key and --etcd-client-ca)")
	fs.StringVar(&c.etcdListenKey, "etcd-listen-key", "", "PEM server key `file` of the embedded etcd")
	fs.StringVar(&c.etcdListenClientCA, "etcd-client-ca", "", "PEM `file` of the CA whose client certificates the embedded etcd accepts; no other client connects")
	fs.DurationVar(&c.etcdCompactionRetention, "etcd-compaction-retention", embedetcd.DefaultCompactionRetention, "`duration` of history etcd keeps: every retention the embedded etcd (or, with --etcd-compact, discovery) compacts away what is older; a watch cut off for less resumes where it was")
	fs.BoolVar(&c.etcdCompact, "etcd-compact", false, "with --etcd: discovery compacts the cluster's history itself, keeping --etcd-compaction-retention (off: compaction is cluster-wide, and a shared cluster's other users may need its history; configure etcd's own --auto-compaction-retention instead)")
	fs.Int64Var(&c.etcdQuotaBytes, "etcd-quota-bytes", embedetcd.DefaultQuotaBytes, "`bytes` the embedded etcd's database may reach before etcd refuses writes (its NOSPACE alarm)")
	fs.StringVar(&c.logLevel, "log-level", "info", "`level` of the logs: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := setFlags(fs)
	var err error
	var warnings []string
	for _, sf := range []struct {
		flag *secretFlag
		dst  *string
	}{{token, &c.token}, {readToken, &c.readToken}} {
		var onCommandLine bool
		if *sf.dst, onCommandLine, err = sf.flag.resolve(set); err != nil {
			return err
		}
		if onCommandLine {
			warnings = append(warnings, sf.flag.warning())
		}
	}
	if c.readToken != "" && c.readToken == c.token {
		return flagError("read-token", "must differ from the admin token")
	}
	for name, v := range map[string]int{"max-connections": c.maxConns, "max-subscribers": c.maxSubs, "max-subscribers-per-client": c.maxSubsPerClient} {
		if v < 1 {
			return flagError(name, "%d: want at least 1", v)
		}
	}
	for name, v := range map[string]time.Duration{"read-header-timeout": c.readHeaderTimeout, "idle-timeout": c.idleTimeout} {
		if v <= 0 {
			return flagError(name, "%s: want a positive duration", v)
		}
	}
	if c.etcd != "" {
		fromEnv(set, "etcd-password", &c.etcdPassword, envEtcdPassword)
	}
	if err := c.validate(set); err != nil {
		return err
	}
	logger, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	defer logger.Sync()
	for _, w := range warnings {
		logger.Warn(w)
	}
	return serve(ctx, c, logger)
}

// validate checks the flags before anything starts.
func (c *serveConfig) validate(set map[string]bool) error {
	if err := validateHostPort(c.listen); err != nil {
		return flagError("listen", "%v", err)
	}
	if c.prefix == "" {
		return flagError("prefix", "must not be empty")
	}
	if set["etcd"] {
		eps := splitList(c.etcd)
		if len(eps) == 0 {
			return flagError("etcd", "no endpoints given")
		}
		for _, ep := range eps {
			if err := validateEndpoint(ep); err != nil {
				return flagError("etcd", "endpoint %q: %v", ep, err)
			}
		}
		for _, name := range embeddedOnly {
			if set[name] {
				return flagError(name, "configures the embedded etcd, which --etcd replaces")
			}
		}
		if set["etcd-compaction-retention"] && !c.etcdCompact {
			return flagError("etcd-compaction-retention", "with --etcd needs --etcd-compact (discovery compacts an external cluster only when told to)")
		}
		if c.etcdCompactionRetention <= 0 {
			return flagError("etcd-compaction-retention", "must be a positive duration, such as 5m")
		}
		if c.etcdPassword != "" && c.etcdUser == "" {
			return flagError("etcd-password", "needs --etcd-user")
		}
		if c.etcdUser != "" && c.etcdPassword == "" {
			return flagError("etcd-user", "needs --etcd-password or $%s", envEtcdPassword)
		}
		return c.validateClientTLS()
	}
	for _, name := range externalOnly {
		if set[name] {
			return flagError(name, "needs --etcd (the embedded etcd has no users, and compacts itself)")
		}
	}
	for _, name := range clientTLS {
		if set[name] {
			return flagError(name, "needs --etcd (discovery calls its embedded etcd in-process, without a certificate; other clients show theirs to --etcd-client-ca)")
		}
	}
	given := 0
	for _, name := range listenTLS {
		if set[name] {
			given++
		}
	}
	if given != 0 && given != len(listenTLS) {
		for _, name := range listenTLS {
			if !set[name] {
				return flagError(name, "--etcd-listen-cert, --etcd-listen-key and --etcd-client-ca go together")
			}
		}
	}
	tls := given == len(listenTLS)
	if c.dataDir == "" {
		return flagError("data-dir", "must not be empty")
	}
	if err := validateHostPort(c.etcdListen); err != nil {
		return flagError("etcd-listen", "%v", err)
	}
	if err := validateHostPort(c.etcdPeerListen); err != nil {
		return flagError("etcd-peer-listen", "%v", err)
	}
	if c.etcdCompactionRetention <= 0 {
		return flagError("etcd-compaction-retention", "must be a positive duration, such as 5m")
	}
	if c.etcdQuotaBytes <= 0 {
		return flagError("etcd-quota-bytes", "must be a positive number of bytes")
	}
	if c.etcdListen == c.etcdPeerListen {
		return flagError("etcd-peer-listen", "must differ from --etcd-listen")
	}
	// Anyone who reaches a plain etcd port can rewrite the registry, and
	// with it where every edge sends traffic.
	if !tls && !loopbackHostPort(c.etcdListen) {
		return flagError("etcd-listen", "%s is not a loopback address: an etcd reachable from other hosts needs --etcd-listen-cert, --etcd-listen-key and --etcd-client-ca, so that only clients with a certificate from that CA connect", c.etcdListen)
	}
	if !loopbackHostPort(c.etcdPeerListen) {
		return flagError("etcd-peer-listen", "%s is not a loopback address: the embedded etcd is a single member, with no peers to listen for", c.etcdPeerListen)
	}
	return nil
}

// validateClientTLS checks the certificate flags of discovery's own etcd
// client.
func (c *serveConfig) validateClientTLS() error {
	if (c.etcdCert == "") != (c.etcdKey == "") {
		return flagError("etcd-cert", "--etcd-cert and --etcd-key go together")
	}
	return nil
}

// compactRetention is the history discovery keeps when it compacts etcd
// itself; 0 when it leaves compaction to etcd (always for the embedded
// member, which compacts itself).
func (c *serveConfig) compactRetention() time.Duration {
	if c.etcd != "" && c.etcdCompact {
		return c.etcdCompactionRetention
	}
	return 0
}

// embeddedTLS reports whether the embedded etcd serves mutual TLS.
func (c *serveConfig) embeddedTLS() bool { return c.etcdListenCert != "" }

// loopbackHostPort reports whether addr listens on loopback only.
func loopbackHostPort(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host != "" && schema.IsLoopbackHost(host)
}

func validateHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("bad port in %q", addr)
	}
	return nil
}

// validateEndpoint accepts what the etcd client does: host:port or an
// http(s) URL.
func validateEndpoint(ep string) error {
	if !strings.Contains(ep, "://") {
		return validateHostPort(ep)
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be host:port or an http(s) URL")
	}
	return nil
}

// serve runs the API until ctx ends or something fatal happens, then shuts
// down in order: stop taking requests, let in-flight ones finish, close the
// etcd client, stop the embedded etcd.
func serve(ctx context.Context, c serveConfig, logger *zap.Logger) error {
	// Before etcd starts: its files count against the same limit.
	soft, raised, err := raiseFileLimit()
	if err != nil {
		logger.Warn("open-file limit", zap.Error(err))
	} else if raised {
		logger.Info("raised the open-file limit to its hard limit", zap.Uint64("limit", soft))
	}
	maxConns, maxSubs, err := sizeConnections(soft, c.maxConns, c.maxSubs)
	if err != nil {
		return err
	}
	if maxConns < c.maxConns || maxSubs < c.maxSubs {
		logger.Warn("limits lowered to fit the open-file limit, keeping files for etcd",
			zap.Uint64("open_file_limit", soft), zap.Int("reserve", fileReserve),
			zap.Int("max_connections", maxConns), zap.Int("max_subscribers", maxSubs))
	}
	metrics := discoverysvc.NewMetrics()
	var store *etcdStore
	if c.etcd == "" {
		store, err = startEmbedded(c, logger, metrics)
	} else {
		store, err = dialEtcd(c, logger, metrics)
	}
	if err != nil {
		return err
	}
	defer store.close()

	// One watch feeds /metrics, /v1/events, the fleet page and the
	// registry's copy of the servers (which spares a heartbeat that changes
	// nothing its etcd read). It stops before the etcd client closes, and
	// its end closes the events streams so that the HTTP shutdown does not
	// wait for them.
	svc := discoverysvc.New(discoverysvc.Config{
		Client: store.client, Prefix: c.prefix, Token: c.token, AllowLoopback: c.allowLoopback,
		Renew: store.renew, Metrics: metrics, Logger: logger,
		MaxSubscribers: maxSubs, MaxSubscribersPerClient: c.maxSubsPerClient,
		Exposure: discoverysvc.Exposure{
			ReadToken: c.readToken, PublicRead: c.publicRead,
			Listen: c.listen, Hosts: splitList(c.allowHosts),
		},
		EtcdCompactRetention: c.compactRetention(),
	})
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := svc.Registry().Ping(pingCtx); err != nil {
		// Start anyway: /healthz reports it, and etcd may come up later.
		logger.Warn("etcd not answering yet; serving 503 until it does", zap.Strings("etcd", store.endpoints), zap.Error(err))
	}
	cancel()
	if c.token == "" {
		logger.Warn("no token: anyone who can reach the API can register servers and read the fleet; set --token-file or $" + envToken)
	} else if c.readToken == "" && !c.publicRead {
		logger.Info("reading the fleet (GET /v1/events, GET /v1/servers, the fleet page's data) needs the admin token; give dashboards a --read-token-file")
	}

	fleetCtx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan struct{})
	go func() {
		defer close(fleetDone)
		svc.Run(fleetCtx)
	}()
	defer func() {
		stopFleet()
		<-fleetDone
	}()

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	ln = discoverysvc.LimitListener(ln, maxConns, metrics)
	srv := &http.Server{
		Handler:           svc.Handler(),
		ReadHeaderTimeout: c.readHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       c.idleTimeout,
		ErrorLog:          zap.NewStdLog(logger.Named("http")),
	}
	srv.RegisterOnShutdown(stopFleet)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("discovery serving", zap.String("listen", ln.Addr().String()),
		zap.String("fleet_page", "http://"+ln.Addr().String()+"/"),
		zap.Strings("etcd", store.endpoints), zap.String("prefix", schema.NormalizePrefix(c.prefix)),
		zap.Bool("embedded_etcd", c.etcd == ""), zap.Bool("token", c.token != ""))

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-served:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-store.failed:
		runErr = fmt.Errorf("embedded etcd: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", zap.Error(err))
	}
	return runErr
}
