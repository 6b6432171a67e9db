package discoverysvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// Drain starts the operator drain of server id, which need not be
// registered (a server about to start can be drained ahead). Draining again
// keeps the original start time, so the quiet period is not reset by an
// operator repeating the command; a new non-empty reason replaces the old.
func (r *Registry) Drain(ctx context.Context, id, reason string) (schema.Drain, error) {
	if !schema.ValidName(id) {
		return schema.Drain{}, errInvalidID
	}
	if err := schema.ValidateReason(reason); err != nil {
		return schema.Drain{}, err
	}
	key := schema.DrainKey(r.prefix, id)
	for range maxHeartbeatAttempts {
		get, err := r.client.Get(ctx, key)
		if err != nil {
			return schema.Drain{}, fmt.Errorf("drain %q: read: %w", id, err)
		}
		d := schema.Drain{ID: id, Since: time.Now(), Reason: reason}
		cond := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(get.Kvs) > 0 {
			kv := get.Kvs[0]
			if old, err := schema.DecodeDrain(schema.DrainPrefix(r.prefix), kv.Key, kv.Value); err == nil {
				if reason == "" || reason == old.Reason {
					return old, nil
				}
				d.Since = old.Since
			}
			cond = clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
		}
		txn, err := r.client.Txn(ctx).If(cond).Then(clientv3.OpPut(key, schema.EncodeDrain(d))).Commit()
		if err != nil {
			return schema.Drain{}, fmt.Errorf("drain %q: write: %w", id, err)
		}
		if txn.Succeeded {
			return d, nil
		}
	}
	return schema.Drain{}, fmt.Errorf("drain %q: lost %d races with concurrent writers", id, maxHeartbeatAttempts)
}

// Undrain ends the operator drain of server id; found is false when there
// was none. A server whose own record says it is draining stays draining.
func (r *Registry) Undrain(ctx context.Context, id string) (found bool, err error) {
	if !schema.ValidName(id) {
		return false, errInvalidID
	}
	del, err := r.client.Delete(ctx, schema.DrainKey(r.prefix, id))
	if err != nil {
		return false, fmt.Errorf("undrain %q: %w", id, err)
	}
	return del.Deleted > 0, nil
}

// errNotDraining is returned by DrainStatus for a server that is neither
// drained by an operator nor draining by its own record.
var errNotDraining = errors.New("not draining")

// IsNotDraining reports whether err says the server is not draining.
func IsNotDraining(err error) bool { return errors.Is(err, errNotDraining) }

// DrainStatus reads the drain, the record and every edge's activity at one
// revision and judges whether server id is drained after quiet (0 means
// DefaultQuiet). A server that is not draining gives an error for which
// IsNotDraining is true. Malformed values are skipped: a malformed activity
// value counts as an edge that does not report.
//
// With a Fleet keeping the registry's copy (see New), the edges'
// activity is read keys only and taken from the fleet's watch, which has
// every edge's value decoded already, when it holds the very versions
// read; otherwise (a watch behind or not yet listed) the values are read at
// the same revision and decoded here. Either way the answer is the same.
func (r *Registry) DrainStatus(ctx context.Context, id string, quiet time.Duration) (client.DrainStatus, error) {
	if !schema.ValidName(id) {
		return client.DrainStatus{}, errInvalidID
	}
	edgesPrefix := schema.EdgesPrefix(r.prefix)
	edges := clientv3.OpGet(edgesPrefix, clientv3.WithPrefix())
	hub := r.edges.Load()
	if hub != nil {
		edges = clientv3.OpGet(edgesPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	}
	resp, err := r.client.Txn(ctx).Then(
		clientv3.OpGet(schema.DrainKey(r.prefix, id)),
		clientv3.OpGet(schema.ServerKey(r.prefix, id)),
		edges,
	).Commit()
	if err != nil {
		return client.DrainStatus{}, fmt.Errorf("drain status %q: %w", id, err)
	}
	var (
		drain *schema.Drain
		srv   *schema.Server
	)
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if d, err := schema.DecodeDrain(schema.DrainPrefix(r.prefix), kvs[0].Key, kvs[0].Value); err == nil {
			drain = &d
		}
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if s, err := schema.DecodeServer(r.serversPrefix, kvs[0].Key, kvs[0].Value); err == nil {
			srv = &s
		}
	}
	edgeKVs := resp.Responses[2].GetResponseRange().Kvs
	var reports []schema.ServerReport
	held := false
	if hub != nil {
		if reports, held = hub.reportsAt(edgeKVs, id); !held {
			get, err := r.client.Get(ctx, edgesPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
			if err != nil {
				return client.DrainStatus{}, fmt.Errorf("drain status %q: read activity: %w", id, err)
			}
			edgeKVs = get.Kvs
		}
	}
	if !held {
		for _, kv := range edgeKVs {
			rep, err := schema.ActivityOf(edgesPrefix, kv.Key, kv.Value, id)
			if err != nil {
				continue
			}
			reports = append(reports, rep)
		}
	}
	st := JudgeDrain(id, drain, srv, reports, quiet, time.Now())
	if !st.Draining {
		return st, fmt.Errorf("drain status %q: %w", id, errNotDraining)
	}
	return st, nil
}

// JudgeDrain computes the drain status of server id from its operator
// drain and record (each nil when absent) and the reports of the live edges
// about it, at now. The quiet period it judges with (and reports) is
// drainQuiet's.
func JudgeDrain(id string, drain *schema.Drain, srv *schema.Server, reports []schema.ServerReport, quiet time.Duration, now time.Time) client.DrainStatus {
	quiet = drainQuiet(quiet, reports)
	st := client.DrainStatus{
		ID:             id,
		Draining:       drain != nil || (srv != nil && srv.Draining),
		Registered:     srv != nil,
		EdgesReporting: len(reports),
		Quiet:          quiet.String(),
	}
	if drain != nil {
		since := drain.Since
		st.Since = &since
		st.Reason = drain.Reason
	}
	var last time.Time
	for _, rep := range reports {
		if !rep.Seen {
			continue
		}
		st.PinnedLastMinute += rep.Server.Minute
		if rep.Server.Last.After(last) {
			last = rep.Server.Last
		}
	}
	if !last.IsZero() {
		st.LastPinned = &last
	}
	st.Drained = st.Draining &&
		(last.IsZero() || now.Sub(last) >= quiet) &&
		(drain == nil || now.Sub(drain.Since) >= quiet)
	return st
}

// reportSlack is how long an edge's activity value may take to reach etcd
// after the interval it reports on ends.
const reportSlack = time.Second

// drainQuiet is the quiet period a drain is judged with: quiet (0:
// schema.DefaultQuiet), but never shorter than the longest publishing
// interval of the reporting edges plus reportSlack. An edge reports a
// request only at the end of the interval it fell in, so a shorter quiet
// period would judge a server drained while a request it served in the
// current interval is still unreported. Edges that do not say their
// interval add nothing.
func drainQuiet(quiet time.Duration, reports []schema.ServerReport) time.Duration {
	if quiet <= 0 {
		quiet = schema.DefaultQuiet
	}
	for _, r := range reports {
		if r.Interval > 0 {
			quiet = max(quiet, r.Interval+reportSlack)
		}
	}
	return quiet
}
