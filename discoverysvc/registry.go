package discoverysvc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
	"github.com/sessionpin/sessionpin/internal/backoff"
)

// LoadEpsilon is the smallest load change a heartbeat writes. Smaller moves
// only renew the lease, so a large fleet reporting jittery loads does not
// send every edge a watch event per heartbeat.
const LoadEpsilon = 0.02

// loadTolerance absorbs float rounding, so that 0.10 -> 0.12 counts as a
// move of 0.02 and is written.
const loadTolerance = 1e-9

// maxHeartbeatAttempts bounds the retries of a heartbeat that keeps losing
// compare-and-swap races against other replicas writing the same server.
const maxHeartbeatAttempts = 8

// Registry registers, renews, lists and removes servers in etcd. It keeps
// no per-server state: the key and its lease are the whole truth, so any
// replica of the discovery service can renew any server's registration.
type Registry struct {
	client        *clientv3.Client
	prefix        string
	serversPrefix string

	// granted maps a requested lease TTL (seconds) to what etcd granted for
	// it. etcd raises TTLs below its minimum; remembering that keeps a renewal
	// with such a TTL from being mistaken for a TTL change. It is a property
	// of the cluster, not of any server, and losing it costs one extra write.
	mu      sync.Mutex
	granted map[int64]int64

	// renew renews a lease once: on the process's kept LeaseKeepAlive
	// streams, or by a call into an in-process member (RenewWith).
	renew func(ctx context.Context, id clientv3.LeaseID) (renewal, error)

	// heads is the watch-fed copy of the server keys that Run keeps; empty
	// (and unused) when Run is not called.
	heads *heads
	// edges, once a Fleet sets it, holds every edge's decoded activity,
	// which spares a drain status decoding the values itself.
	edges atomic.Pointer[Hub]
	// observe, when set, is told the outcome of every heartbeat that
	// succeeded (for metrics). Set before the registry is used.
	observe func(HeartbeatResult)
}

// HeartbeatResult tells what a heartbeat did.
type HeartbeatResult struct {
	// Server is the record as stored. After a lease-only renewal it carries
	// the stored load, which may differ from the heartbeat's by less than
	// LoadEpsilon.
	Server schema.Server
	// Created is true when the key did not exist.
	Created bool
	// Written is true when etcd was written; false for a lease-only renewal.
	Written bool
}

// NewRegistry returns a registry under prefix ("" means DefaultPrefix).
func NewRegistry(c *clientv3.Client, prefix string) *Registry {
	prefix = schema.NormalizePrefix(prefix)
	return &Registry{
		client:        c,
		prefix:        prefix,
		serversPrefix: schema.ServersPrefix(prefix),
		granted:       map[int64]int64{},
		renew:         (&leaseRenewer{client: c}).renew,
		heads:         newHeads(schema.ServersPrefix(prefix)),
	}
}

// RenewWith makes the registry renew leases by calling renew, the renewal
// of an in-process etcd member (embedetcd.InProcess.Renew), instead of
// over LeaseKeepAlive streams, which an in-process client has no gRPC
// connection to open. renew returns the TTL granted (0 when the lease is
// gone) and the store revision just before the renewal. Call it before
// the registry's first use.
func (r *Registry) RenewWith(renew func(ctx context.Context, id int64) (ttl, revision int64, err error)) {
	r.renew = func(ctx context.Context, id clientv3.LeaseID) (renewal, error) {
		ttl, rev, err := renew(ctx, int64(id))
		switch {
		case err != nil:
			return renewal{}, err
		case ttl <= 0:
			return renewal{}, rpctypes.ErrLeaseNotFound
		}
		return renewal{TTL: ttl, Revision: rev}, nil
	}
}

// Run keeps a watch-fed copy of the registered servers until ctx is done,
// so that a heartbeat which changes nothing costs a lease renewal and no
// etcd read. It is optional and changes no answer: a heartbeat the copy
// cannot vouch for (not listed yet, behind the renewal's revision) reads
// etcd as before. A Fleet given this registry keeps the copy with its own
// watch; Run then only waits for ctx. A nil logger logs nothing.
func (r *Registry) Run(ctx context.Context, logger *zap.Logger) {
	if !r.heads.claim() {
		<-ctx.Done()
		return
	}
	watch.NewWatcher(watch.WatcherConfig{Client: r.client, Prefix: r.prefix, Logger: logger, Raw: r.heads, RawOnly: true}).Run(ctx)
}

// observeHeartbeats makes f hear of every successful heartbeat. Call it
// before the registry is used.
func (r *Registry) observeHeartbeats(f func(HeartbeatResult)) { r.observe = f }

// Heartbeat registers srv or renews its registration, under a lease of ttl
// (0 means DefaultTTL). srv and ttl are validated (a *FieldError) before
// etcd is touched. The existing lease is renewed and reused; a new one is
// granted when the key is absent, its lease is gone, or the TTL differs. The
// value is written only when something other than the load changed, or the
// load moved by LoadEpsilon or more. Writes are compare-and-swap, so
// replicas racing on one server never clobber each other.
func (r *Registry) Heartbeat(ctx context.Context, srv schema.Server, ttl time.Duration) (HeartbeatResult, error) {
	if err := srv.Validate(); err != nil {
		return HeartbeatResult{}, err
	}
	secs, err := schema.ValidateTTL(ttl)
	if err != nil {
		return HeartbeatResult{}, err
	}
	for attempt := range maxHeartbeatAttempts {
		// After a lost race the copy is behind by definition: read.
		res, raced, err := r.heartbeatOnce(ctx, srv, secs, attempt == 0)
		if err != nil {
			return HeartbeatResult{}, fmt.Errorf("heartbeat %q: %w", srv.ID, err)
		}
		if !raced {
			if r.observe != nil {
				r.observe(res)
			}
			return res, nil
		}
		// A random pause breaks the lockstep in which two writers with
		// the same round trip keep overtaking each other.
		if !backoff.Sleep(ctx, backoff.Jitter(time.Duration(attempt+1)*10*time.Millisecond)) {
			return HeartbeatResult{}, fmt.Errorf("heartbeat %q: %w", srv.ID, ctx.Err())
		}
	}
	return HeartbeatResult{}, fmt.Errorf("heartbeat %q: lost %d races with concurrent writers", srv.ID, maxHeartbeatAttempts)
}

// heartbeatOnce does one read-decide-write round; raced reports that the key
// changed under it and the round must be redone. With useCopy the decision
// may come from the watch-fed copy instead of an etcd read (see heads).
func (r *Registry) heartbeatOnce(ctx context.Context, srv schema.Server, secs int64, useCopy bool) (res HeartbeatResult, raced bool, err error) {
	key := schema.ServerKey(r.prefix, srv.ID)
	// renewed is a lease this round renewed already, so that the read path
	// does not renew it twice.
	var renewed clientv3.LeaseID
	var renewedTTL int64
	if useCopy {
		if hd, through, ok := r.heads.get(srv.ID); ok && hd.valid && hd.lease != clientv3.NoLease {
			rn, err := r.renew(ctx, hd.lease)
			switch {
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				// The copy is behind, or the lease just expired: read.
			case err != nil:
				return res, false, fmt.Errorf("renew lease: %w", err)
			case rn.Revision != 0 && rn.Revision <= through:
				// Nothing changed between the copy and the renewal.
				srv = stepped(hd.srv, srv)
				if rn.TTL != r.grantedTTL(secs) {
					return r.replaceLease(ctx, key, srv, secs, hd.modRev, hd.lease)
				}
				if !needsWrite(hd.srv, srv) {
					return HeartbeatResult{Server: hd.srv}, false, nil
				}
				return r.write(ctx, key, srv, secs, hd.modRev, hd.lease)
			default:
				renewed, renewedTTL = hd.lease, rn.TTL
			}
		}
	}
	get, err := r.client.Get(ctx, key)
	if err != nil {
		return res, false, fmt.Errorf("read: %w", err)
	}
	if len(get.Kvs) == 0 {
		return r.write(ctx, key, stepped(schema.Server{}, srv), secs, 0, clientv3.NoLease)
	}
	kv := get.Kvs[0]
	old, err := schema.DecodeServer(r.serversPrefix, kv.Key, kv.Value)
	decoded := err == nil // garbage under the key leaves nothing to step from
	srv = stepped(old, srv)
	lease := clientv3.LeaseID(kv.Lease)
	if lease != clientv3.NoLease {
		ttl, err := renewedTTL, error(nil)
		if lease != renewed {
			var rn renewal
			rn, err = r.renew(ctx, lease)
			ttl = rn.TTL
		}
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			lease = clientv3.NoLease // expired under us; the key goes with it
		case err != nil:
			return res, false, fmt.Errorf("renew lease: %w", err)
		case ttl != r.grantedTTL(secs):
			return r.replaceLease(ctx, key, srv, secs, kv.ModRevision, lease)
		}
	}
	if lease == clientv3.NoLease {
		// Written without a lease (etcdctl put) or the lease just expired:
		// attach a fresh one so the server dies when it stops heartbeating.
		return r.write(ctx, key, srv, secs, kv.ModRevision, clientv3.NoLease)
	}
	if decoded && !needsWrite(old, srv) {
		return HeartbeatResult{Server: old}, false, nil
	}
	return r.write(ctx, key, srv, secs, kv.ModRevision, lease)
}

// replaceLease moves the key to a lease of the new TTL and revokes the old
// lease once nothing is attached to it.
func (r *Registry) replaceLease(ctx context.Context, key string, srv schema.Server, secs, modRev int64, old clientv3.LeaseID) (HeartbeatResult, bool, error) {
	res, raced, err := r.write(ctx, key, srv, secs, modRev, clientv3.NoLease)
	if err == nil && !raced {
		r.revokeIfUnused(ctx, old)
	}
	return res, raced, err
}

// needsWrite reports whether a heartbeat of srv over the stored old must be
// written: anything but the load changed, or the load moved by LoadEpsilon.
func needsWrite(old, srv schema.Server) bool {
	if old.ID != srv.ID || old.Region != srv.Region || old.URL != srv.URL || old.Draining != srv.Draining ||
		old.Capacity != srv.Capacity || old.Limit != srv.Limit ||
		old.Origin != srv.Origin || !schema.SameProgress(old.Progress, srv.Progress) {
		return true
	}
	return math.Abs(old.Load-srv.Load) >= LoadEpsilon-loadTolerance
}

// stepped is srv with its reported progress stepped from the stored
// record's (schema.StepProgress), so that a lag that wavers within its step
// leaves the record as it is and the heartbeat renews the lease only.
func stepped(stored, srv schema.Server) schema.Server {
	srv.Progress = schema.StepProgress(stored.Progress, srv.Progress)
	return srv
}

// write stores srv under key with a compare-and-swap on modRev (0: the key
// must not exist). With lease NoLease a new lease of secs is granted, and
// revoked again if the swap loses.
func (r *Registry) write(ctx context.Context, key string, srv schema.Server, secs, modRev int64, lease clientv3.LeaseID) (HeartbeatResult, bool, error) {
	granted := lease == clientv3.NoLease
	if granted {
		g, err := r.client.Grant(ctx, secs)
		if err != nil {
			return HeartbeatResult{}, false, fmt.Errorf("grant lease: %w", err)
		}
		r.noteGranted(secs, g.TTL)
		lease = g.ID
	}
	cond := clientv3.Compare(clientv3.ModRevision(key), "=", modRev)
	if modRev == 0 {
		cond = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	txn, err := r.client.Txn(ctx).
		If(cond).
		Then(clientv3.OpPut(key, schema.EncodeServer(srv), clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		// No cleanup: etcd is likely unreachable, and an unused lease
		// expires on its own.
		return HeartbeatResult{}, false, fmt.Errorf("write: %w", err)
	}
	if !txn.Succeeded {
		if granted {
			r.revokeIfUnused(ctx, lease)
		}
		return HeartbeatResult{}, true, nil
	}
	return HeartbeatResult{Server: srv, Created: modRev == 0, Written: true}, false, nil
}

// revokeIfUnused revokes a lease no key is attached to any more. Failure is
// harmless: an unused lease expires on its own after its TTL. A lease with
// keys is left alone, since an operator may have attached other keys to it.
func (r *Registry) revokeIfUnused(ctx context.Context, lease clientv3.LeaseID) {
	ctx = context.WithoutCancel(ctx) // clean up even when the caller gave up
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ttl, err := r.client.TimeToLive(ctx, lease, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) > 0 {
		return
	}
	_, _ = r.client.Revoke(ctx, lease)
}

func (r *Registry) grantedTTL(secs int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.granted[secs]; ok {
		return g
	}
	return secs
}

func (r *Registry) noteGranted(secs, granted int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.granted[secs] = granted
}

// Deregister removes server id now and revokes its lease. found is false
// when no such server was registered.
func (r *Registry) Deregister(ctx context.Context, id string) (found bool, err error) {
	if !schema.ValidName(id) {
		return false, schema.InvalidName("id")
	}
	del, err := r.client.Delete(ctx, schema.ServerKey(r.prefix, id), clientv3.WithPrevKV())
	if err != nil {
		return false, fmt.Errorf("deregister %q: %w", id, err)
	}
	if del.Deleted == 0 {
		return false, nil
	}
	if len(del.PrevKvs) > 0 {
		if lease := clientv3.LeaseID(del.PrevKvs[0].Lease); lease != clientv3.NoLease {
			r.revokeIfUnused(ctx, lease)
		}
	}
	return true, nil
}

// List returns the registered servers of region ("" for all) sorted by id,
// and the etcd revision they were read at. Malformed values are skipped.
func (r *Registry) List(ctx context.Context, region string) (revision int64, servers []schema.Server, err error) {
	if region != "" && !schema.ValidName(region) {
		return 0, nil, schema.InvalidName("region")
	}
	resp, err := r.client.Get(ctx, r.serversPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, nil, fmt.Errorf("list servers: %w", err)
	}
	servers = make([]schema.Server, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		srv, err := schema.DecodeServer(r.serversPrefix, kv.Key, kv.Value)
		if err != nil || (region != "" && srv.Region != region) {
			continue
		}
		servers = append(servers, srv)
	}
	slices.SortFunc(servers, func(a, b schema.Server) int { return strings.Compare(a.ID, b.ID) })
	return resp.Header.Revision, servers, nil
}

// Ping reports whether etcd answers a quorum read, for health checks.
func (r *Registry) Ping(ctx context.Context) error {
	if _, err := r.client.Get(ctx, r.serversPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}
