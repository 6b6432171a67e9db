package watch

import (
	"github.com/sessionpin/sessionpin/discoverysvc/schema"

	"cmp"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Entry is a server as the edge sees it in a snapshot: the record plus what
// is derived from it once, at update time, so the per-request path does no
// parsing.
type Entry struct {
	// Server is the record, except that Draining is true also when an
	// operator drain names the server.
	schema.Server
	// OperatorDrain is true when an operator drain names the server.
	OperatorDrain bool
	// ownDraining is the record's own draining flag, kept so that ending the
	// operator drain restores it.
	ownDraining bool
	// Attachment is whatever the snapshot's owner derives per server (the
	// edge keeps the server's dial address and its precomputed answers
	// here). Set once, then read only.
	Attachment any
}

// Region is one region's servers in a snapshot.
type Region struct {
	Name string
	// Active are the non-draining servers, least loaded first (ties by id).
	Active []*Entry
	// Draining are the draining servers, by id. They keep their pinned
	// clients but receive no new ones.
	Draining []*Entry
}

// Change is one registry event: Server is the new record, or nil when the
// server is gone (deleted or its lease expired). When Drain is set, the event
// is instead about the operator drain of ID: *Drain tells whether one names
// it now, and Server is unused.
type Change struct {
	ID     string
	Server *schema.Server
	Drain  *bool
}

// Snapshot is an immutable view of the registry at one etcd revision. It is
// built by the watcher and swapped atomically; readers never lock and must
// not modify anything reachable from it.
type Snapshot struct {
	// Revision is the etcd revision the snapshot reflects.
	Revision int64

	byID    idIndex
	size    int
	regions map[string]*Region
	// active is every non-draining server, least loaded first, built on
	// the first call of Active: placement asks for it only when the edge's
	// own and fallback regions have no server, so an update does not copy
	// a fleet-wide list nobody reads. When the previous snapshot's list was
	// built, Apply keeps that snapshot in parent and its own edits of the
	// list in edits, and Active derives the list from the parent's (one
	// copy) instead of merging every region's; parent is then dropped.
	activeOnce  sync.Once
	active      []*Entry
	activeBuilt atomic.Bool
	parent      *Snapshot
	edits       []activeEdit
	// drains holds the ids an operator drain names, registered or not, so
	// that a server registering later starts out draining.
	drains map[string]bool
	attach func(schema.Server) any
}

// emptySnapshot is what an edge routes from before its first list.
var emptySnapshot = &Snapshot{regions: map[string]*Region{}}

// idShards is the number of maps the id index is split into. Apply copies
// only the maps it touches, so one event at 10,000 servers copies ~150
// entries instead of all 10,000.
const idShards = 64

// idIndex maps server ids to entries, split into shards by a hash of the id.
// A nil shard is empty.
type idIndex [idShards]map[string]*Entry

// activeEdit is one change of the fleet-wide active list by Apply.
type activeEdit struct {
	e    *Entry
	edit func([]*Entry, *Entry, func(a, b *Entry) int) []*Entry
}

func shardOf(id string) int {
	h := uint32(2166136261) // FNV-1a: cheap; an uneven spread would cost speed, never correctness
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % idShards)
}

func (x *idIndex) get(id string) *Entry { return x[shardOf(id)][id] }

// all calls f for every entry, in no particular order.
func (x *idIndex) all(f func(*Entry)) {
	for _, m := range x {
		for _, e := range m {
			f(e)
		}
	}
}

// EmptySnapshot returns a snapshot with no servers.
func EmptySnapshot() *Snapshot { return emptySnapshot }

// BuildSnapshot builds a snapshot from a full list of servers. Records that
// fail validation are skipped; the caller is expected to have logged them.
// attach, when not nil, derives each entry's Attachment.
func BuildSnapshot(rev int64, servers []schema.Server, attach func(schema.Server) any) *Snapshot {
	return buildSnapshot(rev, servers, nil, attach)
}

// buildSnapshot is BuildSnapshot with the ids that operator drains name.
func buildSnapshot(rev int64, servers []schema.Server, drains map[string]bool, attach func(schema.Server) any) *Snapshot {
	s := &Snapshot{
		Revision: rev,
		regions:  make(map[string]*Region),
		drains:   drains,
		attach:   attach,
	}
	for _, srv := range servers {
		if e := newEntry(srv, drains[srv.ID], attach); e != nil {
			i := shardOf(srv.ID)
			if s.byID[i] == nil {
				s.byID[i] = make(map[string]*Entry, len(servers)/idShards+1)
			}
			if s.byID[i][srv.ID] == nil {
				s.size++
			}
			s.byID[i][srv.ID] = e
		}
	}
	s.byID.all(func(e *Entry) {
		r := s.regions[e.Region]
		if r == nil {
			r = &Region{Name: e.Region}
			s.regions[e.Region] = r
		}
		if e.Draining {
			r.Draining = append(r.Draining, e)
		} else {
			r.Active = append(r.Active, e)
		}
	})
	for _, r := range s.regions {
		slices.SortFunc(r.Active, compareLoad)
		slices.SortFunc(r.Draining, compareID)
	}
	return s
}

func newEntry(srv schema.Server, operatorDrain bool, attach func(schema.Server) any) *Entry {
	if srv.Validate() != nil {
		return nil
	}
	if _, err := schema.DialAddress(srv.URL); err != nil {
		return nil // an edge could not dial it
	}
	e := &Entry{Server: srv, OperatorDrain: operatorDrain, ownDraining: srv.Draining}
	e.Draining = srv.Draining || operatorDrain
	if attach != nil {
		e.Attachment = attach(e.Server)
	}
	return e
}

// Record is the server's record as stored, without the operator drain.
func (e *Entry) Record() schema.Server {
	srv := e.Server
	srv.Draining = e.ownDraining
	return srv
}

func compareLoad(a, b *Entry) int {
	if c := cmp.Compare(a.Load, b.Load); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func compareID(a, b *Entry) int { return cmp.Compare(a.ID, b.ID) }

// Apply returns a new snapshot with the changes applied at revision rev. The
// receiver is not modified. Only the id shards and regions touched are
// copied, so one event costs a small map copy and a few slice copies, not a
// sort or a copy of the whole fleet's index.
func (s *Snapshot) Apply(rev int64, changes []Change) *Snapshot {
	n := &Snapshot{
		Revision: rev,
		byID:     s.byID,
		size:     s.size,
		regions:  maps.Clone(s.regions),
		drains:   s.drains,
		attach:   s.attach,
	}
	drainsCopied := false
	var shardCopied [idShards]bool
	shard := func(id string) map[string]*Entry {
		i := shardOf(id)
		if !shardCopied[i] {
			shardCopied[i] = true
			if m := maps.Clone(n.byID[i]); m != nil {
				n.byID[i] = m
			} else {
				n.byID[i] = map[string]*Entry{}
			}
		}
		return n.byID[i]
	}
	if n.regions == nil {
		n.regions = map[string]*Region{}
	}
	copied := map[string]bool{} // regions already copied for this update
	if s.activeBuilt.Load() {
		n.parent = s
	}
	region := func(name string) *Region {
		r := n.regions[name]
		if copied[name] {
			return r
		}
		nr := &Region{Name: name}
		if r != nil {
			nr.Active = cloneWithRoom(r.Active, len(changes))
			nr.Draining = cloneWithRoom(r.Draining, len(changes))
		}
		n.regions[name] = nr
		copied[name] = true
		return nr
	}
	// list applies edit (insertSorted or removeSorted) to the list of e's
	// region it belongs in.
	list := func(e *Entry, edit func([]*Entry, *Entry, func(a, b *Entry) int) []*Entry) {
		r := region(e.Region)
		if e.Draining {
			r.Draining = edit(r.Draining, e, compareID)
			return
		}
		r.Active = edit(r.Active, e, compareLoad)
		if n.parent != nil {
			n.edits = append(n.edits, activeEdit{e, edit})
		}
	}
	for _, c := range changes {
		rec := c.Server
		if c.Drain != nil {
			if n.drains[c.ID] == *c.Drain {
				continue
			}
			if !drainsCopied {
				n.drains = maps.Clone(n.drains)
				if n.drains == nil {
					n.drains = map[string]bool{}
				}
				drainsCopied = true
			}
			if *c.Drain {
				n.drains[c.ID] = true
			} else {
				delete(n.drains, c.ID)
			}
			old := n.byID.get(c.ID)
			if old == nil {
				continue
			}
			r := old.Record()
			rec = &r // re-enter the server with its new draining state
		}
		if old := n.byID.get(c.ID); old != nil {
			list(old, removeSorted)
			delete(shard(c.ID), c.ID)
			n.size--
		}
		if rec == nil || rec.ID != c.ID {
			continue
		}
		e := newEntry(*rec, n.drains[c.ID], s.attach)
		if e == nil {
			continue
		}
		shard(c.ID)[c.ID] = e
		n.size++
		list(e, insertSorted)
	}
	for name := range copied {
		if r := n.regions[name]; len(r.Active) == 0 && len(r.Draining) == 0 {
			delete(n.regions, name)
		}
	}
	return n
}

func insertSorted(list []*Entry, e *Entry, cmpf func(a, b *Entry) int) []*Entry {
	i, _ := slices.BinarySearchFunc(list, e, cmpf)
	return slices.Insert(list, i, e)
}

func removeSorted(list []*Entry, e *Entry, cmpf func(a, b *Entry) int) []*Entry {
	i, found := slices.BinarySearchFunc(list, e, cmpf)
	if !found {
		return list
	}
	return slices.Delete(list, i, i+1)
}

// Len is the number of servers in the snapshot.
func (s *Snapshot) Len() int { return s.size }

// Server returns the server with the given id, or nil when it is not alive.
func (s *Snapshot) Server(id string) *Entry { return s.byID.get(id) }

// Region returns the named region, or nil when it has no servers.
func (s *Snapshot) Region(name string) *Region { return s.regions[name] }

// RegionNames returns the names of all regions with servers, sorted.
func (s *Snapshot) RegionNames() []string {
	names := make([]string, 0, len(s.regions))
	for name := range s.regions {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Active returns every non-draining server, least loaded first.
// The first call builds the list: from the previous snapshot's list and
// this snapshot's changes when that one was built (a copy, linear in the
// fleet), else by merging the regions' lists (linear in the fleet times
// the logarithm of the number of regions); later calls return it.
func (s *Snapshot) Active() []*Entry {
	s.activeOnce.Do(func() {
		if p := s.parent; p != nil {
			list := cloneWithRoom(p.Active(), len(s.edits))
			for _, ed := range s.edits {
				list = ed.edit(list, ed.e, compareLoad)
			}
			s.active = list
		} else {
			lists := make([][]*Entry, 0, len(s.regions))
			for _, r := range s.regions {
				if len(r.Active) > 0 {
					lists = append(lists, r.Active)
				}
			}
			s.active = mergeByLoad(lists)
		}
		s.parent, s.edits = nil, nil
		s.activeBuilt.Store(true)
	})
	return s.active
}

// mergeByLoad merges lists sorted by compareLoad into one new list, in
// pairs, so that each entry is copied once per halving of the number of
// lists.
func mergeByLoad(lists [][]*Entry) []*Entry {
	if len(lists) == 0 {
		return nil
	}
	for len(lists) > 1 {
		next := lists[:0:0]
		for i := 0; i < len(lists); i += 2 {
			if i+1 == len(lists) {
				next = append(next, lists[i])
				continue
			}
			next = append(next, mergeTwo(lists[i], lists[i+1]))
		}
		lists = next
	}
	// One region: its list is the fleet's (both are read-only).
	return lists[0]
}

func mergeTwo(a, b []*Entry) []*Entry {
	out := make([]*Entry, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if compareLoad(b[0], a[0]) < 0 {
			out = append(out, b[0])
			b = b[1:]
		} else {
			out = append(out, a[0])
			a = a[1:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}

// Servers returns every server, sorted by id. It allocates; it is meant for
// listing and metrics, not the request path.
func (s *Snapshot) Servers() []*Entry {
	out := make([]*Entry, 0, s.size)
	s.byID.all(func(e *Entry) { out = append(out, e) })
	slices.SortFunc(out, compareID)
	return out
}

// cloneWithRoom copies list with capacity for extra insertions, so an
// insert after the copy does not copy the list a second time.
func cloneWithRoom(list []*Entry, extra int) []*Entry {
	out := make([]*Entry, len(list), len(list)+extra)
	copy(out, list)
	return out
}
