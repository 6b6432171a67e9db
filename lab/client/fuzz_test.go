package client

import "testing"

// Whatever an edge sends as Retry-After, a client waits within its bounds.
func FuzzCatchUpWait(f *testing.F) {
	for _, s := range []string{"3", "0", "-1", "0.25", "3600", "1e308", "NaN", "-Inf", "", " 2 ", "Wed, 21 Oct 2026 07:28:00 GMT", "0x10", "1_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d := catchUpWait(s); d < minCatchUpWait || d > maxCatchUpWait {
			t.Fatalf("Retry-After %q: wait %v outside [%v, %v]", s, d, minCatchUpWait, maxCatchUpWait)
		}
	})
}
