// Package etcdtest runs real etcd members inside tests: one member, or a
// cluster of several, on free loopback ports with data in t.TempDir().
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
)

// Member is one etcd member of a test.
type Member struct {
	t      testing.TB
	cfg    embedetcd.Config
	etcd   *embedetcd.Etcd
	Name   string
	Client string // client host:port
	Peer   string // peer host:port
}

// FreePort returns a loopback host:port that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start runs a single-member etcd that stops when the test ends.
func Start(t testing.TB) *Member {
	t.Helper()
	return StartCluster(t, 1)[0]
}

// StartWith runs a single-member etcd whose configuration configure
// changes (a quota, a compaction retention), stopping when the test ends.
func StartWith(t testing.TB, configure func(*embedetcd.Config)) *Member {
	t.Helper()
	return startCluster(t, 1, configure)[0]
}

// StartCluster runs an n-member etcd cluster that stops when the test ends.
func StartCluster(t testing.TB, n int) []*Member {
	t.Helper()
	return startCluster(t, n, nil)
}

func startCluster(t testing.TB, n int, configure func(*embedetcd.Config)) []*Member {
	t.Helper()
	members := make([]*Member, n)
	var initial []string
	for i := range members {
		m := &Member{t: t, Name: fmt.Sprintf("m%d", i), Client: FreePort(t), Peer: FreePort(t)}
		members[i] = m
		initial = append(initial, m.Name+"=http://"+m.Peer)
	}
	dir := t.TempDir()
	errs := make(chan error, n)
	for _, m := range members {
		m.cfg = embedetcd.Config{
			Name:           m.Name,
			Dir:            dir + "/" + m.Name,
			ClientAddr:     m.Client,
			PeerAddr:       m.Peer,
			InitialCluster: strings.Join(initial, ","),
			ClusterToken:   "sessionpin-test",
			StartTimeout:   60 * time.Second,
		}
		if configure != nil {
			configure(&m.cfg)
		}
		go func(m *Member) {
			e, err := embedetcd.Start(m.cfg)
			m.etcd = e
			errs <- err
		}(m)
	}
	for range members {
		if err := <-errs; err != nil {
			t.Fatalf("start etcd: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.Stop()
		}
	})
	return members
}

// Endpoints lists the client addresses of members.
func Endpoints(members []*Member) []string {
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = m.Client
	}
	return out
}

// Stop stops the member; Restart brings it back with its data.
func (m *Member) Stop() {
	if m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

// Restart starts a stopped member again on the same ports and data.
func (m *Member) Restart() {
	m.t.Helper()
	m.Stop()
	cfg := m.cfg
	var err error
	for i := 0; i < 50; i++ { // the ports can take a moment to be released
		if m.etcd, err = embedetcd.Start(cfg); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("restart etcd %s: %v", m.Name, err)
}

// Etcd returns the running member (nil when stopped).
func (m *Member) Etcd() *embedetcd.Etcd { return m.etcd }

// NewClient returns a client for the given members, closed when the test
// ends.
func NewClient(t testing.TB, members ...*Member) *clientv3.Client {
	t.Helper()
	return newClient(t, "etcd client", clientv3.Config{Endpoints: Endpoints(members)})
}

// newClient opens a client with cfg, closed when the test ends, and makes
// sure it reaches etcd; what names it in failures.
func newClient(t testing.TB, what string, cfg clientv3.Config) *clientv3.Client {
	t.Helper()
	cfg.DialTimeout = 5 * time.Second
	cfg.Logger = zap.NewNop()
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "health-probe"); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return c
}

// Dial returns a client of endpoint, closed when the test ends, without
// waiting for etcd to answer: the endpoint may be a proxy that is cut, or
// a member that is not up yet.
func Dial(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
