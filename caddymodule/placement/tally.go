package placement

import (
	"sync/atomic"
	"time"
)

// Tally counts the clients an edge places on one server, for
// Candidate.Placed. The edge starts a new Tally when the server's next load
// report arrives (its record changes), which is how the count is "since the
// last report". A report that moved the load too little to be written never
// arrives, though, so the Tally also forgets each placement after between
// one and two spans: by then the server's own report includes it, or the
// clients that left since have made up for it.
//
// Add and Count are safe for concurrent use and never block: each is a few
// atomic operations on two words, one per span, each holding the span's
// number and its count.
type Tally struct {
	slots [2]atomic.Uint64
}

// Add counts one placement at now, a monotonic time (any fixed origin).
// span must be positive and the same on every call.
func (t *Tally) Add(now, span time.Duration) {
	epoch := spanOf(now, span)
	slot := &t.slots[epoch&1]
	for {
		old := slot.Load()
		next := uint64(epoch)<<32 | 1
		if uint32(old>>32) == epoch {
			if uint32(old) == 1<<32-1 {
				return // saturated: four billion placements in one span
			}
			next = old + 1
		}
		if slot.CompareAndSwap(old, next) {
			return
		}
	}
}

// Count returns the placements counted in the span holding now and the one
// before it.
func (t *Tally) Count(now, span time.Duration) uint64 {
	epoch := spanOf(now, span)
	var n uint64
	for i := range t.slots {
		v := t.slots[i].Load()
		if e := uint32(v >> 32); e == epoch || e == epoch-1 {
			n += uint64(uint32(v))
		}
	}
	return n
}

// spanOf numbers the span holding now. The number wraps after 2^32 spans,
// decades at any sensible span; a negative time is span 0.
func spanOf(now, span time.Duration) uint32 {
	return uint32(max(now, 0) / span)
}
