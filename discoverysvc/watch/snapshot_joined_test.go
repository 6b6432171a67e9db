package watch

import (
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// A server's Joined is set when an update brings it into the snapshot, kept
// across changes of its record (a heartbeat, a drain), and set again when
// it comes back after being gone; the servers of a full list have none.
func TestSnapshotJoined(t *testing.T) {
	rec := func(id, region string, load float64) *schema.Server {
		return &schema.Server{ID: id, Region: region, URL: "http://" + id + ".example", Load: load}
	}
	s1 := BuildSnapshot(1, []schema.Server{*rec("a", "eu", 0.1)}, nil)
	if j := s1.Server("a").Joined; !j.IsZero() {
		t.Fatalf("listed server joined at %v, want the zero time", j)
	}
	before := time.Now()
	s2 := s1.Apply(2, []Change{{ID: "b", Server: rec("b", "eu", 0)}})
	joined := s2.Server("b").Joined
	if joined.Before(before) || joined.After(time.Now()) {
		t.Fatalf("joined %v, want the time of the update", joined)
	}
	s3 := s2.Apply(3, []Change{{ID: "b", Server: rec("b", "eu", 0.4)}, {ID: "a", Server: rec("a", "eu", 0.2)}})
	if got := s3.Server("b").Joined; !got.Equal(joined) {
		t.Fatalf("after a heartbeat joined %v, want %v kept", got, joined)
	}
	if got := s3.Server("a").Joined; !got.IsZero() {
		t.Fatalf("listed server after a heartbeat joined %v, want the zero time kept", got)
	}
	on := true
	s4 := s3.Apply(4, []Change{{ID: "b", Drain: &on}})
	if got := s4.Server("b").Joined; !got.Equal(joined) {
		t.Fatalf("after a drain joined %v, want %v kept", got, joined)
	}
	s5 := s4.Apply(5, []Change{{ID: "a"}})
	time.Sleep(time.Millisecond) // the clock must move for the return to differ
	s6 := s5.Apply(6, []Change{{ID: "a", Server: rec("a", "eu", 0)}})
	if got := s6.Server("a").Joined; !got.After(joined) {
		t.Fatalf("a server back after being gone joined %v, want later than %v", got, joined)
	}
}

// A region knows whether any active server declares a capacity or a limit,
// and the latest join among them; so does the fleet.
func TestRegionDeclaredAndJoined(t *testing.T) {
	plain := schema.Server{ID: "a", Region: "eu", URL: "http://a.example", Load: 0.1}
	sizedRec := schema.Server{ID: "b", Region: "eu", URL: "http://b.example", Load: 0.1, Capacity: 100}
	limited := schema.Server{ID: "c", Region: "us", URL: "http://c.example", Load: 0.1, Limit: 0.9}
	s := BuildSnapshot(1, []schema.Server{plain, limited}, nil)
	if r := s.Region("eu"); r.Declared || !r.Joined.IsZero() {
		t.Fatalf("plain listed region: %+v", r)
	}
	if r := s.Region("us"); !r.Declared {
		t.Fatal("a limit is a declaration")
	}
	s = s.Apply(2, []Change{{ID: "b", Server: &sizedRec}})
	r := s.Region("eu")
	if !r.Declared || !r.Joined.Equal(s.Server("b").Joined) {
		t.Fatalf("after a sized server joined: declared %v joined %v", r.Declared, r.Joined)
	}
	if d, j := s.Declared(); !d || !j.Equal(r.Joined) {
		t.Fatalf("fleet: declared %v joined %v", d, j)
	}
	s = s.Apply(3, []Change{{ID: "b"}, {ID: "c"}})
	if r := s.Region("eu"); r.Declared || !r.Joined.IsZero() {
		t.Fatalf("after the sized server left: %+v", r)
	}
	if d, j := s.Declared(); d || !j.IsZero() {
		t.Fatalf("fleet after: declared %v joined %v", d, j)
	}
	// A draining server takes no new clients: it does not count.
	drained := sizedRec
	drained.Draining = true
	s = s.Apply(4, []Change{{ID: "b", Server: &drained}})
	if r := s.Region("eu"); r.Declared || !r.Joined.IsZero() {
		t.Fatalf("a draining sized server counted: %+v", r)
	}
}
