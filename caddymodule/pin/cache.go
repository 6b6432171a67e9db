package pin

import (
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"
)

// cache remembers verified tokens, because the edge verifies the same
// client's token on every request and an EdDSA or ES256 verification costs
// tens of microseconds.
//
// Only a byte-identical token hits: the full token is stored and compared.
// An entry is never served at or after the token's exp (an expired token
// goes through full verification again and is not re-cached), and an entry
// belongs to one Keyring, so a key change (a new Keyring) starts empty.
// Memory is bounded: a fixed number of slots, each holding a token of at
// most maxCachedTokenLen bytes; one million distinct tokens only churn the
// slots. Eviction is FIFO over a ring per shard, O(1), and the shards keep
// readers on different tokens off each other's locks.
type cache struct {
	seed   maphash.Seed
	shards []cacheShard
	mask   uint64
	per    int // slots per shard
}

// maxCachedTokenLen keeps the cache's worst case small (16384 slots of 1 KiB
// is 16 MiB); longer tokens are verified every time.
const maxCachedTokenLen = 1024

// cacheShards is the number of shards, a power of two.
const cacheShards = 64

type cacheShard struct {
	mu sync.RWMutex
	// index maps a token's hash to its slot. Two tokens with the same hash
	// share an index entry; the stored token is compared on lookup, so a
	// collision only costs a miss.
	index map[uint64]uint32
	slots []cacheSlot // allocated on first insert
	next  uint32      // the slot the next insert overwrites
	_     [64]byte    // keep hot shards on separate cache lines
}

type cacheSlot struct {
	hash  uint64
	token string
	pin   Pin
	exp   int64 // pin.ExpiresAt in Unix nanoseconds
}

func newCache(entries int) *cache {
	shards := cacheShards
	for shards > 1 && entries/shards < 16 {
		shards /= 2
	}
	per := max((entries+shards-1)/shards, 1)
	return &cache{
		seed:   maphash.MakeSeed(),
		shards: make([]cacheShard, shards),
		mask:   uint64(shards - 1),
		per:    per,
	}
}

func (c *cache) get(token string, now time.Time) (Pin, bool) {
	if len(token) > maxCachedTokenLen {
		return Pin{}, false
	}
	h := maphash.String(c.seed, token)
	s := &c.shards[h&c.mask]
	s.mu.RLock()
	i, ok := s.index[h]
	var slot *cacheSlot
	if ok {
		slot = &s.slots[i]
		if slot.token != token || unixNano(now) >= slot.exp {
			ok = false
		}
	}
	var p Pin
	if ok {
		p = slot.pin
	}
	s.mu.RUnlock()
	return p, ok
}

func (c *cache) put(token string, p Pin, now time.Time) {
	exp := unixNano(p.ExpiresAt)
	if len(token) > maxCachedTokenLen || unixNano(now) >= exp {
		return
	}
	h := maphash.String(c.seed, token)
	s := &c.shards[h&c.mask]
	// Copy the token: the caller's string may share memory with a whole
	// Cookie header that the cache must not keep alive.
	token = strings.Clone(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots == nil {
		s.slots = make([]cacheSlot, c.per)
		s.index = make(map[uint64]uint32, c.per)
	}
	if i, ok := s.index[h]; ok {
		// Same hash: the same token verified twice concurrently, or a
		// collision; either way the newest wins in place.
		s.slots[i] = cacheSlot{hash: h, token: token, pin: p, exp: exp}
		return
	}
	i := s.next
	if old := &s.slots[i]; old.token != "" {
		if j, ok := s.index[old.hash]; ok && j == i {
			delete(s.index, old.hash)
		}
	}
	s.slots[i] = cacheSlot{hash: h, token: token, pin: p, exp: exp}
	s.index[h] = i
	s.next = (i + 1) % uint32(len(s.slots))
}

// unixNano is t.UnixNano clamped to int64, which UnixNano leaves undefined
// outside the years 1678-2262: a pin may expire later than that.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minNano):
		return math.MinInt64
	case t.After(maxNano):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNano = time.Unix(0, math.MinInt64)
	maxNano = time.Unix(0, math.MaxInt64)
)
