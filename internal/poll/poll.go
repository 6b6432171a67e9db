// Package poll waits in tests for a condition to hold, with a deadline, so
// that no test sleeps a fixed time and then asserts.
package poll

import (
	"testing"
	"time"
)

// interval is short enough that a test moves on soon after its condition
// holds, long enough not to load a busy machine.
const interval = 20 * time.Millisecond

// Until polls cond until it returns nil, and fails the test with cond's last
// error when timeout passes first.
func Until(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %v", timeout, what, err)
		}
		time.Sleep(interval)
	}
}

// True polls cond until it returns true, and fails the test when timeout
// passes first.
func True(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}
