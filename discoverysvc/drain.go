package discoverysvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultQuiet is how long no edge may have seen a pinned request to a
// draining server before it counts as drained: long enough that a client
// between two steps of a workflow is not mistaken for one that moved.
const DefaultQuiet = 60 * time.Second

// maxReasonLen bounds a drain's reason; it is a note for operators.
const maxReasonLen = 256

// Drain is an operator's intent that a server take no new clients. It is
// stored under DrainKey with no lease, apart from the server's own record,
// so heartbeats (which rewrite the record) never undo it and it outlives
// agent and discovery restarts. It stays until the operator removes it.
type Drain struct {
	ID     string    `json:"id"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// Validate checks a drain record; the error is a *FieldError.
func (d Drain) Validate() error {
	if !ValidName(d.ID) {
		return errInvalidID
	}
	if d.Since.IsZero() {
		return &FieldError{"since", "is required"}
	}
	return validateReason(d.Reason)
}

func validateReason(reason string) error {
	if len(reason) > maxReasonLen {
		return &FieldError{"reason", fmt.Sprintf("longer than %d bytes", maxReasonLen)}
	}
	if !utf8.ValidString(reason) {
		return &FieldError{"reason", "must be UTF-8"}
	}
	for _, r := range reason {
		if unicode.IsControl(r) {
			return &FieldError{"reason", "must not contain control characters"}
		}
	}
	return nil
}

// DecodeDrain parses the etcd key/value of a drain: JSON {"id","since",
// "reason"?}, where id must equal the id in the key. drainPrefix is
// DrainPrefix(prefix).
func DecodeDrain(drainPrefix string, key, value []byte) (Drain, error) {
	return decodeValue(drainValue, drainPrefix, key, value, func(d *Drain) string { return d.ID })
}

func encodeDrain(d Drain) string {
	b, err := json.Marshal(Drain{ID: d.ID, Since: d.Since.UTC().Round(time.Millisecond), Reason: d.Reason})
	if err != nil { // a drain is strings and a time; it always encodes
		panic(fmt.Sprintf("encode drain %q: %v", d.ID, err))
	}
	return string(b)
}

// Drain starts the operator drain of server id, which need not be
// registered (a server about to start can be drained ahead). Draining again
// keeps the original start time, so the quiet period is not reset by an
// operator repeating the command; a new non-empty reason replaces the old.
func (r *Registry) Drain(ctx context.Context, id, reason string) (Drain, error) {
	if !ValidName(id) {
		return Drain{}, errInvalidID
	}
	if err := validateReason(reason); err != nil {
		return Drain{}, err
	}
	key := DrainKey(r.prefix, id)
	for range maxHeartbeatAttempts {
		get, err := r.client.Get(ctx, key)
		if err != nil {
			return Drain{}, fmt.Errorf("drain %q: read: %w", id, err)
		}
		d := Drain{ID: id, Since: time.Now(), Reason: reason}
		cond := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(get.Kvs) > 0 {
			kv := get.Kvs[0]
			if old, err := DecodeDrain(DrainPrefix(r.prefix), kv.Key, kv.Value); err == nil {
				if reason == "" || reason == old.Reason {
					return old, nil
				}
				d.Since = old.Since
			}
			cond = clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)
		}
		txn, err := r.client.Txn(ctx).If(cond).Then(clientv3.OpPut(key, encodeDrain(d))).Commit()
		if err != nil {
			return Drain{}, fmt.Errorf("drain %q: write: %w", id, err)
		}
		if txn.Succeeded {
			return d, nil
		}
	}
	return Drain{}, fmt.Errorf("drain %q: lost %d races with concurrent writers", id, maxHeartbeatAttempts)
}

// Undrain ends the operator drain of server id; found is false when there
// was none. A server whose own record says it is draining stays draining.
func (r *Registry) Undrain(ctx context.Context, id string) (found bool, err error) {
	if !ValidName(id) {
		return false, errInvalidID
	}
	del, err := r.client.Delete(ctx, DrainKey(r.prefix, id))
	if err != nil {
		return false, fmt.Errorf("undrain %q: %w", id, err)
	}
	return del.Deleted > 0, nil
}

// DrainStatus tells whether a draining server's pinned clients are gone,
// from the pinned activity every live edge reports.
type DrainStatus struct {
	ID string `json:"id"`
	// Draining is true when an operator drain names the server or its own
	// record says so (its agent is stopping).
	Draining bool `json:"draining"`
	// Since is when the operator drain began; null when only the server's
	// record says it is draining.
	Since  *time.Time `json:"since"`
	Reason string     `json:"reason,omitempty"`
	// Registered is whether the server is in the registry now.
	Registered bool `json:"registered"`
	// PinnedLastMinute is the pinned requests to the server that the
	// reporting edges proxied in the last minute, summed.
	PinnedLastMinute uint64 `json:"pinned_last_minute"`
	// LastPinned is the latest pinned request any reporting edge saw, or
	// null when none has seen one in its memory (10 minutes).
	LastPinned *time.Time `json:"last_pinned"`
	// EdgesReporting is how many live edges publish their activity.
	EdgesReporting int `json:"edges_reporting"`
	// Quiet is the quiet period Drained was judged with.
	Quiet string `json:"quiet"`
	// Drained is true when the server is draining, no reporting edge has
	// seen a pinned request to it for Quiet, and the operator drain (when
	// there is one) began at least Quiet ago.
	Drained bool `json:"drained"`
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
// With a Fleet keeping the registry's copy (see NewFleet), the edges'
// activity is read keys only and taken from the fleet's watch, which has
// every edge's value decoded already, when it holds the very versions
// read; otherwise (a watch behind or not yet listed) the values are read at
// the same revision and decoded here. Either way the answer is the same.
func (r *Registry) DrainStatus(ctx context.Context, id string, quiet time.Duration) (DrainStatus, error) {
	if !ValidName(id) {
		return DrainStatus{}, errInvalidID
	}
	edgesPrefix := EdgesPrefix(r.prefix)
	edges := clientv3.OpGet(edgesPrefix, clientv3.WithPrefix())
	hub := r.edges.Load()
	if hub != nil {
		edges = clientv3.OpGet(edgesPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	}
	resp, err := r.client.Txn(ctx).Then(
		clientv3.OpGet(DrainKey(r.prefix, id)),
		clientv3.OpGet(ServerKey(r.prefix, id)),
		edges,
	).Commit()
	if err != nil {
		return DrainStatus{}, fmt.Errorf("drain status %q: %w", id, err)
	}
	var (
		drain *Drain
		srv   *Server
	)
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if d, err := DecodeDrain(DrainPrefix(r.prefix), kvs[0].Key, kvs[0].Value); err == nil {
			drain = &d
		}
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if s, err := DecodeServer(r.serversPrefix, kvs[0].Key, kvs[0].Value); err == nil {
			srv = &s
		}
	}
	edgeKVs := resp.Responses[2].GetResponseRange().Kvs
	var reports []ServerReport
	held := false
	if hub != nil {
		if reports, held = hub.reportsAt(edgeKVs, id); !held {
			get, err := r.client.Get(ctx, edgesPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
			if err != nil {
				return DrainStatus{}, fmt.Errorf("drain status %q: read activity: %w", id, err)
			}
			edgeKVs = get.Kvs
		}
	}
	if !held {
		for _, kv := range edgeKVs {
			rep, err := ActivityOf(edgesPrefix, kv.Key, kv.Value, id)
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
// about it, at now.
func JudgeDrain(id string, drain *Drain, srv *Server, reports []ServerReport, quiet time.Duration, now time.Time) DrainStatus {
	if quiet <= 0 {
		quiet = DefaultQuiet
	}
	st := DrainStatus{
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
