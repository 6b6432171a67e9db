package discoverysvc

import (
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// heads is a discovery replica's watch-fed copy of the server keys: for
// each, the mod revision, the lease and the decoded record. It lets a
// heartbeat that changes nothing skip the etcd read before its decision.
//
// The copy is only ever a shortcut, never the truth. It is exact as of one
// store revision, through; a heartbeat renews the lease the copy names and
// trusts the copy only when the renewal's answer carries a revision no
// later than through, so no key changed between the copy and the renewal.
// Otherwise (a write the watch has not delivered yet, a write outside the
// prefix, a replica that has not listed yet) the heartbeat reads etcd as
// it would without a copy, and any write is still a compare-and-swap on
// the key's mod revision. So every replica serves every heartbeat
// correctly, whatever its copy holds.
type heads struct {
	serversPrefix string

	// fed is claimed by the one watch that keeps the copy: two watches
	// listing at different revisions would leave it claiming a revision
	// it does not reflect.
	fed atomic.Bool

	mu      sync.RWMutex
	byID    map[string]head
	through int64 // 0 until the first list
}

// head is one server key as the copy holds it.
type head struct {
	modRev int64
	lease  clientv3.LeaseID
	srv    schema.Server
	// valid is false for a value that does not decode into a valid record;
	// such a key is left to the read path.
	valid bool
}

func newHeads(serversPrefix string) *heads { return &heads{serversPrefix: serversPrefix} }

// claim reports whether the caller's watch may keep the copy: true once.
func (h *heads) claim() bool { return h.fed.CompareAndSwap(false, true) }

// get returns server id's head and the revision the copy is exact at; ok is
// false when the copy has not been listed yet. A server the copy lacks is
// reported with ok true and a zero head.
func (h *heads) get(id string) (hd head, through int64, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.through == 0 {
		return head{}, 0, false
	}
	return h.byID[id], h.through, true
}

// Listed replaces the copy with a full list of the server keys read at
// rev (watch.RawHook).
func (h *heads) Listed(rev int64, kvs []*mvccpb.KeyValue) {
	serversPrefix := h.serversPrefix
	m := make(map[string]head, len(kvs))
	for _, kv := range kvs {
		if id := schema.IDFromKey(serversPrefix, string(kv.Key)); id != "" {
			m[id] = headOf(serversPrefix, kv)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.byID = m
	h.through = rev
}

// Changed adds the events of one watch response; events at or before
// listed are in the copy already. The copy is then exact at the last
// event's revision: a watch delivers every event under its prefix in
// revision order, one revision's events in one response (watch.RawHook).
func (h *heads) Changed(listed int64, events []*clientv3.Event) {
	serversPrefix := h.serversPrefix
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range events {
		if ev.Kv.ModRevision <= listed {
			continue
		}
		h.through = max(h.through, ev.Kv.ModRevision)
		id := schema.IDFromKey(serversPrefix, string(ev.Kv.Key))
		if id == "" {
			continue
		}
		if ev.Type == clientv3.EventTypeDelete {
			delete(h.byID, id)
			continue
		}
		h.byID[id] = headOf(serversPrefix, ev.Kv)
	}
}

// Progressed records that nothing under the prefix changed up to rev, as
// an etcd progress notification confirms (watch.RawHook).
func (h *heads) Progressed(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.through != 0 {
		h.through = max(h.through, rev)
	}
}

func headOf(serversPrefix string, kv *mvccpb.KeyValue) head {
	hd := head{modRev: kv.ModRevision, lease: clientv3.LeaseID(kv.Lease)}
	if srv, err := schema.DecodeServer(serversPrefix, kv.Key, kv.Value); err == nil {
		hd.srv, hd.valid = srv, true
	}
	return hd
}
