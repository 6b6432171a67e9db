package caddymodule

import (
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/sessionpin/sessionpin/internal/poll"
)

func TestReachability(t *testing.T) {
	var r reachability
	if trial, ok := r.admit(time.Hour); !ok || trial != 0 || !r.usable() {
		t.Fatalf("fresh: admit = %d, %v; usable %v; want admitted, no trial", trial, ok, r.usable())
	}
	if !r.failed(time.Hour) {
		t.Fatal("first failure is not a new marking")
	}
	if r.failed(time.Hour) || r.failed(time.Minute) {
		t.Fatal("a failure while marked counts as a new marking")
	}
	if _, ok := r.admit(time.Hour); ok || r.usable() {
		t.Fatal("a marked server is admitted")
	}

	// Once the mark runs out, one request at a time tries again.
	r.until.Store(time.Now().Add(-time.Second).UnixNano())
	if !r.usable() {
		t.Fatal("a mark that ran out is not usable")
	}
	trial, ok := r.admit(time.Hour)
	if !ok || trial == 0 {
		t.Fatalf("after the mark: admit = %d, %v; want the trial", trial, ok)
	}
	if _, ok := r.admit(time.Hour); ok || r.usable() {
		t.Fatal("a second request was admitted during the trial")
	}
	r.answered(trial)
	if trial, ok := r.admit(time.Hour); !ok || trial != 0 {
		t.Fatalf("after a trial that answered: admit = %d, %v; want admitted", trial, ok)
	}

	// A failed trial marks again (a renewal, not a new marking); a trial
	// whose mark was renewed meanwhile does not clear it.
	r.failed(time.Hour)
	r.until.Store(time.Now().Add(-time.Second).UnixNano())
	trial, _ = r.admit(time.Millisecond)
	if r.failed(time.Hour) {
		t.Fatal("a failed trial counts as a new marking")
	}
	r.answered(trial)
	if _, ok := r.admit(time.Hour); ok {
		t.Fatal("a renewed mark was cleared by a trial's late answer")
	}

	// A trial that never answers holds the server for its lease only.
	r.until.Store(time.Now().Add(-time.Second).UnixNano())
	if _, ok := r.admit(time.Millisecond); !ok {
		t.Fatal("no trial")
	}
	poll.True(t, 5*time.Second, "the next trial", func() bool {
		trial, ok := r.admit(time.Hour)
		return ok && trial != 0
	})
}

// The healthy path (a pinned request to a reachable server) costs one
// atomic load and allocates nothing.
func TestReachabilityAdmitDoesNotAllocate(t *testing.T) {
	var r reachability
	if n := testing.AllocsPerRun(100, func() { r.admit(time.Second) }); n != 0 {
		t.Fatalf("admit allocates %.1f times", n)
	}
}

// The store keeps one state per server and address while something holds
// it, and forgets servers that no snapshot holds any more.
func TestReachabilityStore(t *testing.T) {
	s := reachabilityStore{m: map[reachKey]weak.Pointer[reachability]{}}
	a := s.get("a", "127.0.0.1:1")
	if s.get("a", "127.0.0.1:1") != a {
		t.Fatal("the same server got a second state")
	}
	if s.get("a", "127.0.0.1:2") == a {
		t.Fatal("a server at a new address kept its old state")
	}
	a.failed(time.Hour)
	if s.get("a", "127.0.0.1:1").usable() {
		t.Fatal("the mark was lost between two entries of one server")
	}
	a = nil
	poll.True(t, 10*time.Second, "states nobody holds forgotten", func() bool {
		runtime.GC()
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.m) == 0
	})
}
