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
}

// Add counts one placement at now, a monotonic time (any fixed origin).
func (t *Tally) Add(now time.Duration) {
	n := slotOf(now)
	slot := &t.slots[n%tallySlots]
	for {
		old := slot.Load()
		next := uint64(n)<<32 | 1
		if uint32(old>>32) == n {
			if uint32(old) == 1<<32-1 {
				return // saturated: four billion placements in one slot
			}
			next = old + 1
		}
		if slot.CompareAndSwap(old, next) {
			return
		}
	}
}

// Count returns the placements counted in the slots from the one holding
// from to the one holding now, both included, and never further back than
// the Tally keeps.
func (t *Tally) Count(from, now time.Duration) uint64 {
	last := slotOf(now)
	first := slotOf(from)
	if oldest := last - min(last, tallySlots-1); first < oldest {
		first = oldest
	}
	var n uint64
	for i := range t.slots {
		v := t.slots[i].Load()
		if s := uint32(v >> 32); s >= first && s <= last {
			n += uint64(uint32(v))
		}
	}
	return n
}

// slotOf numbers the slot holding now. The number wraps after 2^32 slots,
// about 68 years; a negative time is slot 0.
func slotOf(now time.Duration) uint32 {
	return uint32(max(now, 0) / TallySlot)
}
