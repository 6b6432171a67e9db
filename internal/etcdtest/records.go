package etcdtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// PutServer writes srv's record under prefix straight to etcd, as any etcd
// client could (no registry, no validation, no lease unless opts give one),
// and returns the write's revision.
func PutServer(t testing.TB, c *clientv3.Client, prefix string, srv schema.Server, opts ...clientv3.OpOption) int64 {
	t.Helper()
	v, err := json.Marshal(srv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Put(ctx, schema.ServerKey(prefix, srv.ID), string(v), opts...)
	if err != nil {
		t.Fatalf("put server %s: %v", srv.ID, err)
	}
	return resp.Header.Revision
}

// Revision is etcd's current store revision: unchanged means nothing was
// written.
func Revision(t testing.TB, c *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}
