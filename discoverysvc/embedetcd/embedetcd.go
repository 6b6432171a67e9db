// Package embedetcd starts an in-process etcd member. discoverysvc serve uses
// it when no --etcd is given, so one command gives a registry that edges can
// connect to; the tests use it for a real etcd without a separate binary.
//
// It is the only package of sessionpin that links the etcd server; the Caddy
// plugin must never import it.
package embedetcd

import (
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config describes one member.
type Config struct {
	// Name of the member. Default: "default".
	Name string
	// Dir holds the member's data. Required.
	Dir string
	// ClientAddr is host:port for clients. Default: 127.0.0.1:2379.
	ClientAddr string
	// PeerAddr is host:port for peers. Default: 127.0.0.1:2380.
	PeerAddr string
	// InitialCluster is "name=http://peer,..." for a multi-member cluster;
	// empty for a single member.
	InitialCluster string
	// ClusterToken names the cluster. Default: "sessionpin".
	ClusterToken string
	// LogLevel is etcd's own log level. Default: "error", because etcd is
	// chatty and the discovery service logs what matters.
	LogLevel string
	// StartTimeout bounds the wait for the member to be ready. Default: 30s.
	StartTimeout time.Duration
	// TLS, when set, makes the client address serve TLS and accept only
	// clients with a certificate from ClientCAFile. Default: plain.
	TLS *TLS
	// CompactionRetention is how much history the member keeps: every
	// retention it compacts away the revisions older than one retention,
	// so between one and two retentions of history are readable. A
	// watcher cut off for less than that resumes where it was; one cut
	// off longer lists again. Negative: never compact (a test of a
	// cluster that does not). Default: DefaultCompactionRetention.
	CompactionRetention time.Duration
	// QuotaBytes is the size the database file may reach; at it etcd
	// raises its NOSPACE alarm and refuses writes until the alarm is
	// disarmed. Default: DefaultQuotaBytes.
	QuotaBytes int64
	// UpkeepInterval is how often the member checks whether its database
	// is mostly free space (and then defragments it) or full (and then
	// frees it and disarms the alarm). Default: DefaultUpkeepInterval.
	UpkeepInterval time.Duration
	// Logger receives the upkeep's actions: defragmentation, a NOSPACE
	// alarm and its recovery. Default: none.
	Logger *zap.Logger
}

// TLS is the server side of mutual TLS on the client address.
type TLS struct {
	// CertFile and KeyFile are the member's PEM certificate and key. etcd
	// also dials itself with them, so the certificate should allow client
	// authentication too.
	CertFile, KeyFile string
	// ClientCAFile is the PEM CA whose client certificates are accepted.
	ClientCAFile string
}

// Etcd is a running member.
type Etcd struct {
	e *embed.Etcd
	// closing silences etcd's logs once Close starts: a member that stops
	// logs its listeners failing with "server closed" at error level, which
	// is how it shuts down, not a fault.
	closing *atomic.Bool
	// quota is the database size at which etcd raises NOSPACE.
	quota  int64
	logger *zap.Logger
	// stopUpkeep ends the upkeep loop; upkeepDone is closed when it has.
	stopUpkeep chan struct{}
	upkeepDone chan struct{}
	// Endpoint is the client address, host:port.
	Endpoint string
}

// Start starts a member and waits until it serves clients.
func Start(c Config) (*Etcd, error) {
	if c.Dir == "" {
		return nil, errors.New("embedded etcd: data dir is required")
	}
	if c.Name == "" {
		c.Name = "default"
	}
	if c.ClientAddr == "" {
		c.ClientAddr = "127.0.0.1:2379"
	}
	if c.PeerAddr == "" {
		c.PeerAddr = "127.0.0.1:2380"
	}
	if c.ClusterToken == "" {
		c.ClusterToken = "sessionpin"
	}
	if c.LogLevel == "" {
		c.LogLevel = "error"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.CompactionRetention == 0 {
		c.CompactionRetention = DefaultCompactionRetention
	}
	if c.QuotaBytes == 0 {
		c.QuotaBytes = DefaultQuotaBytes
	}
	if c.QuotaBytes < 0 {
		return nil, fmt.Errorf("embedded etcd: quota %d bytes is negative", c.QuotaBytes)
	}
	if c.UpkeepInterval <= 0 {
		c.UpkeepInterval = DefaultUpkeepInterval
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	scheme := "http"
	if c.TLS != nil {
		scheme = "https"
	}
	curl, err := url.Parse(scheme + "://" + c.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: client address %q: %w", c.ClientAddr, err)
	}
	purl, err := url.Parse("http://" + c.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: peer address %q: %w", c.PeerAddr, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.Dir
	cfg.ListenClientUrls = []url.URL{*curl}
	cfg.AdvertiseClientUrls = []url.URL{*curl}
	if c.TLS != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       c.TLS.CertFile,
			KeyFile:        c.TLS.KeyFile,
			TrustedCAFile:  c.TLS.ClientCAFile,
			ClientCertAuth: true,
		}
	}
	cfg.ListenPeerUrls = []url.URL{*purl}
	cfg.AdvertisePeerUrls = []url.URL{*purl}
	cfg.InitialClusterToken = c.ClusterToken
	if c.InitialCluster != "" {
		cfg.InitialCluster = c.InitialCluster
	} else {
		cfg.InitialCluster = cfg.InitialClusterFromName(c.Name)
	}
	cfg.QuotaBackendBytes = c.QuotaBytes
	if c.CompactionRetention > 0 {
		cfg.AutoCompactionMode = embed.CompactorModePeriodic
		cfg.AutoCompactionRetention = c.CompactionRetention.String()
	}
	cfg.LogLevel = c.LogLevel
	cfg.Logger = "zap"
	closing := new(atomic.Bool)
	level, err := zapcore.ParseLevel(c.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: log level %q: %w", c.LogLevel, err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	lg, err := zc.Build(zap.WrapCore(func(core zapcore.Core) zapcore.Core {
		return &shutdownQuietCore{Core: core, closing: closing}
	}))
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: logger: %w", err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(c.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after %s", c.StartTimeout)
	}
	m := &Etcd{e: e, Endpoint: c.ClientAddr, closing: closing, quota: c.QuotaBytes, logger: c.Logger}
	m.startUpkeep(c.UpkeepInterval)
	return m, nil
}

// Err reports a fatal error of the running member.
func (m *Etcd) Err() <-chan error { return m.e.Err() }

// Close stops the member and releases its ports.
func (m *Etcd) Close() {
	close(m.stopUpkeep)
	<-m.upkeepDone
	m.closing.Store(true)
	m.e.Close()
}

// shutdownQuietCore drops everything below fatal once the member is closing.
type shutdownQuietCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c *shutdownQuietCore) With(f []zapcore.Field) zapcore.Core {
	return &shutdownQuietCore{Core: c.Core.With(f), closing: c.closing}
}

func (c *shutdownQuietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.closing.Load() && e.Level < zapcore.FatalLevel {
		return ce
	}
	return c.Core.Check(e, ce)
}

// Server gives tests access to the underlying member (compaction, leader).
func (m *Etcd) Server() *embed.Etcd { return m.e }
