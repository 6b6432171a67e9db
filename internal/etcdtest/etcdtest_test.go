package etcdtest

import (
	"context"
	"crypto/tls"
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
