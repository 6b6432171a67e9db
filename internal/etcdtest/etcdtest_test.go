package etcdtest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/internal/testcert"
)

func TestSingleMemberPutGetAndRestart(t *testing.T) {
	m := Start(t)
	c := NewClient(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	m.Restart()
	resp, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart got %v", resp.Kvs)
	}
}

// A TLS member serves a client with a certificate of its CA and refuses
// one without.
func TestStartTLS(t *testing.T) {
	ca := testcert.NewCA(t, "etcd")
	m := StartTLS(t, ca, true)
	c := NewTLSClient(t, m, ca, ca.Issue("edge"))
	if _, err := c.Put(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	anon, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.Client},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         &tls.Config{RootCAs: Roots(t, ca)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := anon.Get(ctx, "k"); err == nil {
		t.Fatal("a client without a certificate read from an etcd that requires one")
	}
}

// The cut proxy forwards, closes accepted connections while cut, refuses
// dials while refusing, and forwards again after each heal.
func TestCutProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p := StartCutProxy(t, l.Addr().String())
	echo := func() error {
		c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		return nil
	}
	if err := echo(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := echo(); err == nil {
		t.Fatal("an echo got through a cut proxy")
	}
	p.Heal()
	if err := echo(); err != nil {
		t.Fatalf("after heal: %v", err)
	}
	p.Refuse()
	if err := echo(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialling a refusing proxy: %v, want connection refused", err)
	}
	p.Heal()
	if err := echo(); err != nil {
		t.Fatalf("after heal from refuse: %v", err)
	}
}

// A counting client counts each call by method and outcome, and each
// stream it opens, from zero after its own health probe.
func TestCountingClientCountsCalls(t *testing.T) {
	m := Start(t)
	c, calls := NewCountingClient(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n := calls.OK("Range"); n != 0 {
		t.Fatalf("%d reads counted before any, want the probe left out", n)
	}
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	g, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.KeepAliveOnce(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "k", "v", clientv3.WithLease(g.ID+1)); err == nil {
		t.Fatal("put with an unknown lease succeeded")
	}
	got := [...]int64{calls.OK("Put"), calls.OK("Range"), calls.OK("LeaseGrant"), calls.Streams("LeaseKeepAlive"), calls.Failed("Put"), calls.Failed("Range")}
	if want := [...]int64{1, 2, 1, 1, 1, 0}; got != want {
		t.Fatalf("put, range, grant, keep-alive streams, failed put, failed range = %v, want %v", got, want)
	}
}
