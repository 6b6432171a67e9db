package watch

import (
	"fmt"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func TestSnapshotDiff(t *testing.T) {
	srv := func(id, region string, load float64) schema.Server {
		return schema.Server{ID: id, Region: region, URL: "http://127.0.0.1:9000", Load: load}
	}
	var servers []schema.Server
	for i := range 500 {
		servers = append(servers, srv(fmt.Sprintf("s-%03d", i), "r", 0.1))
	}
	base := BuildSnapshot(1, servers, nil)
	changed := srv("s-001", "r", 0.5)
	same := srv("s-002", "r", 0.1)
	added := srv("new", "q", 0)
	next := base.Apply(2, []Change{{ID: "s-001", Server: &changed}, {ID: "s-002", Server: &same}, {ID: "s-003"}, {ID: "new", Server: &added}})

	got := next.Diff(base)
	want := []string{"new added", "s-001 changed", "s-003 removed"}
	if len(got) != len(want) {
		t.Fatalf("diff %v, want %v", describe(got), want)
	}
	for i, c := range describe(got) {
		if c != want[i] {
			t.Fatalf("diff %v, want %v", describe(got), want)
		}
	}
	if d := next.Diff(next); len(d) != 0 {
		t.Fatalf("a snapshot differs from itself: %v", describe(d))
	}
	// A full re-list of the same servers is no change at all.
	if d := BuildSnapshot(3, servers, nil).Diff(base); len(d) != 0 {
		t.Fatalf("the same servers listed again differ: %v", describe(d))
	}
	if d := base.Diff(EmptySnapshot()); len(d) != len(servers) {
		t.Fatalf("from empty: %d changes, want %d", len(d), len(servers))
	}
}

func describe(cs []ServerChange) []string {
	var out []string
	for _, c := range cs {
		switch {
		case c.Old == nil:
			out = append(out, c.ID+" added")
		case c.New == nil:
			out = append(out, c.ID+" removed")
		default:
			out = append(out, c.ID+" changed")
		}
	}
	return out
}

func BenchmarkSnapshotDiffOneChange(b *testing.B) {
	var servers []schema.Server
	for i := range 10000 {
		servers = append(servers, schema.Server{ID: fmt.Sprintf("s-%05d", i), Region: fmt.Sprintf("r%d", i%4), URL: "http://127.0.0.1:9000", Load: 0.1})
	}
	base := BuildSnapshot(1, servers, nil)
	changed := servers[42]
	changed.Load = 0.9
	next := base.Apply(2, []Change{{ID: changed.ID, Server: &changed}})
	b.ReportAllocs()
	for b.Loop() {
		if len(next.Diff(base)) != 1 {
			b.Fatal("want one change")
		}
	}
}
