package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	etcdlease "go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
	"google.golang.org/grpc"
)

// InProcess is an etcd client that calls the member's services as
// functions: no socket, no HTTP/2 framing, no TLS, no goroutine hand-off
// per message. The discovery service uses it for the member it embeds,
// because every heartbeat is a lease renewal and gRPC over loopback costs
// more CPU than the renewal itself. Other processes (edges, other
// replicas) still connect to the client address.
type InProcess struct {
	*clientv3.Client
	// Renew renews a lease once, as one request on a LeaseKeepAlive
	// stream would, but as a function call on the caller's goroutine:
	// the TTL granted (0 when the lease is gone) and the store revision
	// just before the renewal.
	Renew func(ctx context.Context, id int64) (ttl, revision int64, err error)
}

// InProcessClient returns a client of this member that makes no network
// call. observe, when not nil, is told how long each unary call took, by
// the method's name in etcd's protocol ("Range", "Txn", "LeaseGrant", …),
// as a gRPC interceptor on a remote client would be. The caller closes it
// before the member.
func (m *Etcd) InProcessClient(observe func(call string, d time.Duration)) InProcess {
	s := m.e.Server
	// v3client builds the watcher, maintenance and cluster services with
	// the care their in-process use needs; the two services the registry
	// calls on every heartbeat are replaced by timed ones.
	c := v3client.New(s)
	lease := adapter.LeaseServerToLeaseClient(v3rpc.NewQuotaLeaseServer(s))
	kv := adapter.KvServerToKvClient(v3rpc.NewQuotaKVServer(s))
	if observe != nil {
		lease = timedLease{lease, observe}
		kv = timedKV{kv, observe}
	}
	c.KV = clientv3.NewKVFromKVClient(kv, c)
	c.Lease = clientv3.NewLeaseFromLeaseClient(lease, c, 5*time.Second)
	renew := func(ctx context.Context, id int64) (int64, int64, error) {
		// As etcd's keep-alive handler does: the revision first, so that
		// no key changed between it and the renewal.
		rev := s.KV().Rev()
		ttl, err := s.LeaseRenew(ctx, etcdlease.LeaseID(id))
		if errors.Is(err, etcdlease.ErrLeaseNotFound) {
			return 0, rev, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("renew lease %x: %w", id, err)
		}
		return ttl, rev, nil
	}
	return InProcess{Client: c, Renew: renew}
}

// timedKV reports the duration of each call of the KV service.
type timedKV struct {
	pb.KVClient
	observe func(string, time.Duration)
}

func (k timedKV) since(call string, start time.Time) { k.observe(call, time.Since(start)) }

func (k timedKV) Range(ctx context.Context, in *pb.RangeRequest, opts ...grpc.CallOption) (*pb.RangeResponse, error) {
	defer k.since("Range", time.Now())
	return k.KVClient.Range(ctx, in, opts...)
}

func (k timedKV) Put(ctx context.Context, in *pb.PutRequest, opts ...grpc.CallOption) (*pb.PutResponse, error) {
	defer k.since("Put", time.Now())
	return k.KVClient.Put(ctx, in, opts...)
}

func (k timedKV) DeleteRange(ctx context.Context, in *pb.DeleteRangeRequest, opts ...grpc.CallOption) (*pb.DeleteRangeResponse, error) {
	defer k.since("DeleteRange", time.Now())
	return k.KVClient.DeleteRange(ctx, in, opts...)
}

func (k timedKV) Txn(ctx context.Context, in *pb.TxnRequest, opts ...grpc.CallOption) (*pb.TxnResponse, error) {
	defer k.since("Txn", time.Now())
	return k.KVClient.Txn(ctx, in, opts...)
}

func (k timedKV) Compact(ctx context.Context, in *pb.CompactionRequest, opts ...grpc.CallOption) (*pb.CompactionResponse, error) {
	defer k.since("Compact", time.Now())
	return k.KVClient.Compact(ctx, in, opts...)
}

// timedLease reports the duration of each unary call of the lease
// service; keep-alive streams are long-lived and not timed, as on a remote
// client.
type timedLease struct {
	pb.LeaseClient
	observe func(string, time.Duration)
}

func (l timedLease) since(call string, start time.Time) { l.observe(call, time.Since(start)) }

func (l timedLease) LeaseGrant(ctx context.Context, in *pb.LeaseGrantRequest, opts ...grpc.CallOption) (*pb.LeaseGrantResponse, error) {
	defer l.since("LeaseGrant", time.Now())
	return l.LeaseClient.LeaseGrant(ctx, in, opts...)
}

func (l timedLease) LeaseRevoke(ctx context.Context, in *pb.LeaseRevokeRequest, opts ...grpc.CallOption) (*pb.LeaseRevokeResponse, error) {
	defer l.since("LeaseRevoke", time.Now())
	return l.LeaseClient.LeaseRevoke(ctx, in, opts...)
}

func (l timedLease) LeaseTimeToLive(ctx context.Context, in *pb.LeaseTimeToLiveRequest, opts ...grpc.CallOption) (*pb.LeaseTimeToLiveResponse, error) {
	defer l.since("LeaseTimeToLive", time.Now())
	return l.LeaseClient.LeaseTimeToLive(ctx, in, opts...)
}

func (l timedLease) LeaseLeases(ctx context.Context, in *pb.LeaseLeasesRequest, opts ...grpc.CallOption) (*pb.LeaseLeasesResponse, error) {
	defer l.since("LeaseLeases", time.Now())
	return l.LeaseClient.LeaseLeases(ctx, in, opts...)
}
