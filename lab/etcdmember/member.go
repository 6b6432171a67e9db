// Package etcdmember runs one member of the lab's three-region etcd cluster
// (the lab binary's etcd-member command), with heartbeat and election
// timeouts set for the distance between regions.
package etcdmember

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Config is one member.
type Config struct {
	Name           string
	Dir            string
	ClientURL      string // http://host:port
	PeerURL        string
	InitialCluster string // name=peerURL,...
	Heartbeat      time.Duration
	Election       time.Duration
}

// Run starts the member and serves until SIGTERM or SIGINT.
func Run(c Config) error {
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.Dir
	cu, err := url.Parse(c.ClientURL)
	if err != nil {
		return fmt.Errorf("client url: %w", err)
	}
	pu, err := url.Parse(c.PeerURL)
	if err != nil {
		return fmt.Errorf("peer url: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = c.InitialCluster
	cfg.InitialClusterToken = "sessionpin-lab"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.TickMs = uint(c.Heartbeat / time.Millisecond)
	cfg.ElectionMs = uint(c.Election / time.Millisecond)
	cfg.LogLevel = "warn"
	cfg.ListenMetricsUrls = nil
	// The settings docs/operations.md asks of a cluster sessionpin uses:
	// history compacted every 5 minutes and an explicit quota, so that the
	// soak measures what an operator who follows the docs would see.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	cfg.QuotaBackendBytes = 2 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", c.Name, err)
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "etcd member %s ready\n", c.Name)
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", c.Name, err)
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", c.Name, err)
	case <-ctx.Done():
		return nil
	}
}
