// Package backoff holds the two pieces every retry loop of sessionpin
// shares: a jittered delay and a sleep that ends with its context. The
// registry watcher of the edges and the discovery service's registry both
// use it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter spreads d over [d/2, d), so that clients that failed together
// (edges that lost etcd, replicas racing on one key) do not retry in
// lockstep.
func Jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

// Sleep waits for d or until ctx is done; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
