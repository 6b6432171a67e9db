package watch

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// snapshotView is everything a reader can observe of a snapshot, in a form
// reflect.DeepEqual can compare.
type snapshotView struct {
	Revision int64
	Servers  []Entry
	Regions  map[string][2][]string // region -> [active ids in order, draining ids in order]
	Active   []string
	Names    []string
}

func viewOf(s *Snapshot) snapshotView {
	v := snapshotView{Revision: s.Revision, Regions: map[string][2][]string{}, Names: s.RegionNames()}
	for _, e := range s.Servers() {
		v.Servers = append(v.Servers, *e)
	}
	ids := func(es []*Entry) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	for _, name := range v.Names {
		r := s.Region(name)
		if r.Name != name {
			panic("region name mismatch")
		}
		v.Regions[name] = [2][]string{ids(r.Active), ids(r.Draining)}
	}
	v.Active = ids(s.Active())
	if len(v.Servers) != s.Len() {
		panic("Len disagrees with Servers")
	}
	return v
}

// modelApply is the obvious meaning of Apply on a map of records and the
// set of operator drains.
func modelApply(fleet map[string]schema.Server, drains map[string]bool, changes []Change) {
	for _, c := range changes {
		if c.Drain != nil {
			if *c.Drain {
				drains[c.ID] = true
			} else {
				delete(drains, c.ID)
			}
			continue
		}
		delete(fleet, c.ID)
		if c.Server != nil && c.Server.ID == c.ID && c.Server.Validate() == nil {
			fleet[c.ID] = *c.Server
		}
	}
}

func rebuild(rev int64, fleet map[string]schema.Server, drains map[string]bool, attach func(schema.Server) any) *Snapshot {
	return buildSnapshot(rev, slices.Collect(maps.Values(fleet)), maps.Clone(drains), attach)
}

// randomChange draws a change over a small id space so that adds, updates
// and deletes of known servers all happen, with loads from a small set so
// ties (broken by id) are common.
func randomChange(r *rand.Rand, ids, regions int, drainP float64) Change {
	id := fmt.Sprintf("s%03d", r.IntN(ids))
	switch n := r.IntN(10); {
	case n < 2:
		return Change{ID: id}
	case n == 2: // malformed record: the server must vanish
		return Change{ID: id, Server: &schema.Server{ID: id, Region: "eu", URL: "ftp://x"}}
	case n == 3: // a value naming another id
		return Change{ID: id, Server: &schema.Server{ID: id + "x", Region: "eu", URL: "http://h"}}
	case n == 4: // an operator drain starts or ends, registered or not
		drained := r.IntN(2) == 0
		return Change{ID: id, Drain: &drained}
	default:
		srv := schema.Server{
			ID:       id,
			Region:   fmt.Sprintf("r%d", r.IntN(regions)),
			URL:      fmt.Sprintf("http://10.0.0.%d:%d", r.IntN(256), 8000+r.IntN(100)),
			Load:     float64(r.IntN(5)) / 4,
			Draining: r.Float64() < drainP,
		}
		return Change{ID: id, Server: &srv}
	}
}

func TestSnapshotApplyMatchesRebuild(t *testing.T) {
	cases := []struct {
		name    string
		seed    uint64
		ids     int
		regions int
		drainP  float64
		batch   int // max changes per Apply
		rounds  int
	}{
		{"single events small fleet", 1, 8, 2, 0.2, 1, 300},
		{"batches small fleet", 2, 8, 3, 0.3, 6, 200},
		{"one region", 3, 20, 1, 0.1, 4, 200},
		{"many regions", 4, 50, 20, 0.2, 10, 200},
		{"all draining", 5, 10, 2, 1, 3, 100},
		{"none draining", 6, 30, 3, 0, 5, 200},
		{"large batches", 7, 40, 4, 0.2, 60, 50},
	}
	attach := func(s schema.Server) any { return s.ID + "@" + s.URL }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(tc.seed, 0))
			fleet, drains := map[string]schema.Server{}, map[string]bool{}
			snap := BuildSnapshot(1, nil, attach)
			for round := range tc.rounds {
				changes := make([]Change, 1+r.IntN(tc.batch))
				for i := range changes {
					changes[i] = randomChange(r, tc.ids, tc.regions, tc.drainP)
				}
				before := viewOf(snap)
				rev := int64(round + 2)
				next := snap.Apply(rev, changes)
				if !reflect.DeepEqual(viewOf(snap), before) {
					t.Fatalf("round %d: Apply modified its receiver", round)
				}
				modelApply(fleet, drains, changes)
				if got, want := viewOf(next), viewOf(rebuild(rev, fleet, drains, attach)); !reflect.DeepEqual(got, want) {
					t.Fatalf("round %d: after %+v\n got %+v\nwant %+v", round, changes, got, want)
				}
				snap = next
			}
		})
	}
}

func TestSnapshotApplyCases(t *testing.T) {
	yes, no := true, false
	srv := func(id, region string, load float64, draining bool) *schema.Server {
		return &schema.Server{ID: id, Region: region, URL: "http://" + id + ".example:8080", Load: load, Draining: draining}
	}
	base := []schema.Server{*srv("a", "eu", 0.5, false), *srv("b", "eu", 0.2, false), *srv("c", "us", 0.1, false), *srv("d", "eu", 0, true)}
	cases := []struct {
		name    string
		changes []Change
	}{
		{"no changes", nil},
		{"delete unknown id", []Change{{ID: "zz"}}},
		{"delete last of a region", []Change{{ID: "c"}}},
		{"move region", []Change{{ID: "a", Server: srv("a", "us", 0.5, false)}}},
		{"start draining", []Change{{ID: "b", Server: srv("b", "eu", 0.2, true)}}},
		{"stop draining", []Change{{ID: "d", Server: srv("d", "eu", 0, false)}}},
		{"reorder by load", []Change{{ID: "a", Server: srv("a", "eu", 0.1, false)}}},
		{"tie broken by id", []Change{{ID: "a", Server: srv("a", "eu", 0.2, false)}}},
		{"add then delete in one batch", []Change{{ID: "e", Server: srv("e", "ap", 0, false)}, {ID: "e"}}},
		{"delete then add in one batch", []Change{{ID: "a"}, {ID: "a", Server: srv("a", "ap", 0.3, false)}}},
		{"two updates of one server", []Change{{ID: "b", Server: srv("b", "eu", 0.9, false)}, {ID: "b", Server: srv("b", "us", 0.05, true)}}},
		{"malformed update drops the server", []Change{{ID: "b", Server: &schema.Server{ID: "b", Region: "eu", URL: "http://x/?q"}}}},
		{"id mismatch drops the server", []Change{{ID: "b", Server: srv("c", "eu", 0.9, false)}}},
		{"delete everything", []Change{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}},
		{"operator drain", []Change{{ID: "a", Drain: &yes}}},
		{"operator drain of a draining record", []Change{{ID: "d", Drain: &yes}}},
		{"operator drain, then a heartbeat saying not draining", []Change{{ID: "a", Drain: &yes}, {ID: "a", Server: srv("a", "eu", 0.4, false)}}},
		{"operator drain before the server registers", []Change{{ID: "e", Drain: &yes}, {ID: "e", Server: srv("e", "eu", 0, false)}}},
		{"operator drain ended", []Change{{ID: "a", Drain: &yes}, {ID: "a", Drain: &no}}},
		{"operator drain ended keeps the record's own drain", []Change{{ID: "d", Drain: &yes}, {ID: "d", Drain: &no}}},
		{"drained server deleted and back", []Change{{ID: "b", Drain: &yes}, {ID: "b"}, {ID: "b", Server: srv("b", "us", 0.3, false)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fleet, drains := map[string]schema.Server{}, map[string]bool{}
			for _, s := range base {
				fleet[s.ID] = s
			}
			got := BuildSnapshot(1, base, nil).Apply(2, tc.changes)
			modelApply(fleet, drains, tc.changes)
			if g, w := viewOf(got), viewOf(rebuild(2, fleet, drains, nil)); !reflect.DeepEqual(g, w) {
				t.Fatalf("\n got %+v\nwant %+v", g, w)
			}
		})
	}
}

func TestSnapshotBuildSkipsInvalidAndOrders(t *testing.T) {
	s := BuildSnapshot(7, []schema.Server{
		{ID: "b", Region: "eu", URL: "http://b:1", Load: 0.5},
		{ID: "a", Region: "eu", URL: "http://a:1", Load: 0.5},
		{ID: "c", Region: "eu", URL: "https://[::1]", Load: 0.1},
		{ID: "z", Region: "eu", URL: "http://z:1", Draining: true},
		{ID: "y", Region: "eu", URL: "http://y:1", Draining: true, Load: 0.9},
		{ID: "bad", Region: "eu", URL: "gopher://x"},
		{ID: "", Region: "eu", URL: "http://x"},
	}, nil)
	want := snapshotView{
		Revision: 7,
		Regions:  map[string][2][]string{"eu": {{"c", "a", "b"}, {"y", "z"}}},
		Active:   []string{"c", "a", "b"},
		Names:    []string{"eu"},
	}
	got := viewOf(s)
	got.Servers = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("\n got %+v\nwant %+v", got, want)
	}
	if d, _ := schema.DialAddress(s.Server("c").URL); d != "[::1]:443" {
		t.Fatalf("dial %q", d)
	}
	if s.Server("bad") != nil || s.Len() != 5 {
		t.Fatal("invalid record kept")
	}
	if e := EmptySnapshot(); e.Len() != 0 || e.Region("eu") != nil || len(e.Active()) != 0 || len(e.RegionNames()) != 0 {
		t.Fatal("empty snapshot not empty")
	}
}

// fleet10k is 10,000 servers over 20 regions, a tenth of them draining.
func fleet10k() []schema.Server { return fleetOf(10000) }

// fleetOf is n servers in 20 regions, one in ten draining.
func fleetOf(n int) []schema.Server {
	servers := make([]schema.Server, n)
	r := rand.New(rand.NewPCG(10, 0))
	for i := range servers {
		servers[i] = schema.Server{
			ID:       fmt.Sprintf("srv-%05d", i),
			Region:   fmt.Sprintf("region-%02d", i%20),
			URL:      fmt.Sprintf("http://10.%d.%d.%d:8080", i/65536, i/256%256, i%256),
			Load:     r.Float64(),
			Draining: i%10 == 0,
		}
	}
	return servers
}

// BenchmarkSnapshotApply10k is the cost of one watch event (a load change)
// at a fleet of 10,000 servers.
func BenchmarkSnapshotApply10k(b *testing.B) { benchmarkSnapshotApply(b, fleet10k()) }

// BenchmarkSnapshotApply100k is BenchmarkSnapshotApply10k at 100,000
// servers, for the registry's scale estimate.
func BenchmarkSnapshotApply100k(b *testing.B) { benchmarkSnapshotApply(b, fleetOf(100000)) }

func benchmarkSnapshotApply(b *testing.B, servers []schema.Server) {
	snap := BuildSnapshot(1, servers, nil)
	r := rand.New(rand.NewPCG(11, 0))
	changes := make([]Change, 1024)
	for i := range changes {
		srv := servers[r.IntN(len(servers))]
		srv.Load = r.Float64()
		changes[i] = Change{ID: srv.ID, Server: &srv}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		snap = snap.Apply(int64(i+2), changes[i%len(changes):i%len(changes)+1])
	}
}

// BenchmarkBuildSnapshot10k is the cost of a full list of 10,000 servers
// (first sync, or a re-list after compaction).
func BenchmarkBuildSnapshot10k(b *testing.B) { benchmarkBuildSnapshot(b, fleet10k()) }

// BenchmarkBuildSnapshot100k is a full list of 100,000 servers.
func BenchmarkBuildSnapshot100k(b *testing.B) { benchmarkBuildSnapshot(b, fleetOf(100000)) }

func benchmarkBuildSnapshot(b *testing.B, servers []schema.Server) {
	b.ReportAllocs()
	for b.Loop() {
		BuildSnapshot(1, servers, nil)
	}
}

func TestSnapshotOperatorDrainKeepsTheServerOutOfPlacement(t *testing.T) {
	yes, no := true, false
	snap := BuildSnapshot(1, []schema.Server{{ID: "eu-1", Region: "eu", URL: "http://h1", Load: 0}, {ID: "eu-2", Region: "eu", URL: "http://h2", Load: 0.9}}, nil)
	snap = snap.Apply(2, []Change{{ID: "eu-1", Drain: &yes}})
	e := snap.Server("eu-1")
	if e == nil || !e.Draining || !e.OperatorDrain || !snap.OperatorDrained("eu-1") {
		t.Fatalf("drained entry %+v", e)
	}
	if a := snap.Active(); len(a) != 1 || a[0].ID != "eu-2" {
		t.Fatalf("active %v, want only eu-2", viewOf(snap).Active)
	}
	// A heartbeat rewrites the record with draining:false; the drain holds.
	snap = snap.Apply(3, []Change{{ID: "eu-1", Server: &schema.Server{ID: "eu-1", Region: "eu", URL: "http://h1", Load: 0.1}}})
	if e := snap.Server("eu-1"); !e.Draining || e.Load != 0.1 {
		t.Fatalf("after a heartbeat %+v", e)
	}
	snap = snap.Apply(4, []Change{{ID: "eu-1", Drain: &no}})
	if e := snap.Server("eu-1"); e.Draining || e.OperatorDrain || snap.OperatorDrained("eu-1") {
		t.Fatalf("after undrain %+v", e)
	}
}

// BenchmarkSnapshotActiveAfterApply100k is an update at 100,000 servers
// followed by the snapshot's first fleet-wide list, which placement asks
// for only when the edge's own and fallback regions have no server.
func BenchmarkSnapshotActiveAfterApply100k(b *testing.B) {
	servers := fleetOf(100000)
	snap := BuildSnapshot(1, servers, nil)
	srv := servers[1] // not draining
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		srv.Load = float64(i%100) / 100
		snap = snap.Apply(int64(i+2), []Change{{ID: srv.ID, Server: &srv}})
		if len(snap.Active()) == 0 {
			b.Fatal("no active servers")
		}
	}
}
