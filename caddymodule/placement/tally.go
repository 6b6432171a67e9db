package placement

import (
	"sync/atomic"
	"time"
)

// TallySlot is the resolution of a Tally: placements are counted per slot
// of this length.
const TallySlot = 250 * time.Millisecond

// tallySlots is how many slots a Tally keeps: enough to cover PlacedMaxAge
// plus ReportDelay, the furthest back a count ever looks.
const tallySlots = 28

// Tally counts the clients an edge places on one server, in slots of
// TallySlot, for the last tallySlots slots. It answers "how many since t"
// to within a slot, which is what lets a load report that arrives replace
// only the placements it can include (Placements.Since).
//
// Add and Count are safe for concurrent use and never block: each slot is
// one atomic word holding the slot's number and its count.
type Tally struct {
	slots [tallySlots]atomic.Uint64
	// latest is the number of the latest slot a placement was counted in,
	// so that a count over slots with none can stop at one load.
	latest atomic.Uint32
}

// Add counts one placement at now, a monotonic time (any fixed origin).
func (t *Tally) Add(now time.Duration) {
	n := slotOf(now)
	slot := &t.slots[n%tallySlots]
	for {
		old := slot.Load()
		next := uint64(n)<<32 | 1
		if uint32(old>>32) > n {
			return // a time too old for the ring: a newer slot lives here
		}
		if uint32(old>>32) == n {
			if uint32(old) == 1<<32-1 {
				return // saturated: four billion placements in one slot
			}
			next = old + 1
		}
		if slot.CompareAndSwap(old, next) {
			break
		}
	}
	// Mutation testing: l > n is an equivalent mutant; swapping n for
	// itself changes nothing.
	for {
		l := t.latest.Load()
		if l >= n || t.latest.CompareAndSwap(l, n) {
			return
		}
	}
}

// Count returns the placements counted in the slots from the one holding
// from to the one holding now, both included, and never further back than
// the Tally keeps.
func (t *Tally) Count(from, now time.Duration) uint64 {
	n, _ := t.Count2(from, from, now)
	return n
}

// Count2 is Count from a and from b at once, in one pass over the slots.
func (t *Tally) Count2(a, b, now time.Duration) (na, nb uint64) {
	last := slotOf(now)
	oldest := last - min(last, tallySlots-1)
	firstA, firstB := max(slotOf(a), oldest), max(slotOf(b), oldest)
	first := min(firstA, firstB)
	if first > last {
		return 0, 0
	}
	if l := t.latest.Load(); l < first {
		return 0, 0 // nothing placed since first
	}
	for s := first; s <= last; s++ {
		v := t.slots[s%tallySlots].Load()
		if uint32(v>>32) != s {
			continue
		}
		c := uint64(uint32(v))
		if s >= firstA {
			na += c
		}
		if s >= firstB {
			nb += c
		}
	}
	return na, nb
}

// slotOf numbers the slot holding now. The number wraps after 2^32 slots,
// about 68 years; a negative time is slot 0.
func slotOf(now time.Duration) uint32 {
	return uint32(max(now, 0) / TallySlot)
}
