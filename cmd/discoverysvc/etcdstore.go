package main

import (
	"context"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
)

// etcdStore is discovery's way to its etcd: a client, and for the etcd it
// embeds, the member behind it.
type etcdStore struct {
	client    *clientv3.Client
	endpoints []string // for the logs
	// renew is an in-process member's lease renewal, which the registry
	// calls instead of keeping renewal streams; nil for a remote etcd.
	renew func(ctx context.Context, id int64) (ttl, revision int64, err error)
	// failed reports the embedded member's fatal error; nil for a remote
	// etcd.
	failed <-chan error
	close  func() // the client, then the member
}

// startEmbedded starts the embedded etcd member and a client that calls it
// in-process: every heartbeat is a lease renewal, and over loopback gRPC
// the transport would cost more than the renewal. Edges and other
// replicas still connect to --etcd-listen.
func startEmbedded(c serveConfig, logger *zap.Logger, metrics *discoverysvc.Metrics) (*etcdStore, error) {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	ec := embedetcd.Config{Dir: c.dataDir, ClientAddr: c.etcdListen, PeerAddr: c.etcdPeerListen,
		CompactionRetention: c.etcdCompactionRetention, QuotaBytes: c.etcdQuotaBytes, Logger: logger.Named("etcd")}
	if c.embeddedTLS() {
		ec.TLS = &embedetcd.TLS{CertFile: c.etcdListenCert, KeyFile: c.etcdListenKey, ClientCAFile: c.etcdListenClientCA}
	}
	member, err := embedetcd.Start(ec)
	if err != nil {
		return nil, err
	}
	logger.Info("embedded etcd started", zap.String("client", c.etcdListen),
		zap.String("peer", c.etcdPeerListen), zap.String("data_dir", c.dataDir), zap.Bool("mtls", c.embeddedTLS()),
		zap.Duration("compaction_retention", c.etcdCompactionRetention), zap.Int64("quota_bytes", c.etcdQuotaBytes))
	in := member.InProcessClient(metrics.ObserveEtcdCall)
	return &etcdStore{
		client: in.Client, endpoints: []string{member.Endpoint}, renew: in.Renew, failed: member.Err(),
		close: func() {
			in.Close()
			member.Close()
			logger.Info("embedded etcd stopped")
		},
	}, nil
}

// dialEtcd connects to the etcd cluster of --etcd.
func dialEtcd(c serveConfig, logger *zap.Logger, metrics *discoverysvc.Metrics) (*etcdStore, error) {
	// Keep-alive pings find a half-open connection to etcd within 15 s;
	// the registry's lease renewals share long-lived streams on it. 10 s
	// stays above etcd's default --grpc-keepalive-min-time (5 s).
	spec := &clientv3.ConfigSpec{DialTimeout: 5 * time.Second, KeepAliveTime: 10 * time.Second, KeepAliveTimeout: 5 * time.Second,
		Endpoints: splitList(c.etcd)}
	if c.etcdUser != "" {
		spec.Auth = &clientv3.AuthConfig{Username: c.etcdUser, Password: c.etcdPassword}
	}
	if c.etcdCA != "" || c.etcdCert != "" {
		spec.Secure = &clientv3.SecureConfig{Cacert: c.etcdCA, Cert: c.etcdCert, Key: c.etcdKey}
	}
	// etcd's client logs every reconnect attempt; /healthz and our own logs
	// say what an operator needs.
	etcdLogger := logger.Named("etcd").WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel))
	cfg, err := clientv3.NewClientConfig(spec, etcdLogger)
	if err != nil {
		return nil, &usageError{err: fmt.Errorf("--etcd-ca/--etcd-cert/--etcd-key: %w", err)}
	}
	cfg.Logger = etcdLogger
	cfg.DialOptions = append(cfg.DialOptions, metrics.EtcdDialOptions()...)
	client, err := clientv3.New(*cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return &etcdStore{client: client, endpoints: spec.Endpoints, close: func() { client.Close() }}, nil
}
