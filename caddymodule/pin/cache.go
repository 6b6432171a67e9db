package pin

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
	"unique"
	"unsafe"
)

// cache remembers verified tokens, because the edge verifies the same
// client's token on every request and a verification costs tens of
// allocations and, with EdDSA or ES256, tens of microseconds.
//
// An entry is keyed by the SHA-256 of the token: only a byte-identical
// token hits (another token with the same digest would be a SHA-256
// collision), and every entry has the same small size whatever the token's
// length, so the cache's memory is its number of entries times a constant
// (a set's size over setWays). An entry is never served at or after the token's exp (an
// expired token goes through full verification again and is not re-cached),
// and an entry belongs to one Keyring, so a key change (a new Keyring)
// starts empty.
//
// The cache is set-associative: a token's digest picks one set of setWays
// entries, and each set has its own lock, so requests only wait on each
// other for tokens of the same set and cores do not convoy on a shared
// lock. A full set evicts by second chance (CLOCK): a hit marks its entry,
// and the sweep for a victim clears a mark instead of evicting, so clients
// that keep sending requests stay while a stream of new clients churns
// through the unmarked entries. An expired entry is replaced first.
type cache struct {
	sets []cacheSet
}

// setWays is the number of entries in a set: enough that a set is rarely
// full of hot clients while the cache has room elsewhere, few enough that a
// miss compares few digests.
const setWays = 16

type cacheSet struct {
	mu   sync.Mutex
	ref  uint16 // bit i: way i was hit since the sweep last passed it
	hand uint8  // the way the next sweep looks at first
	ways [setWays]cacheEntry
}

// cacheEntry is a verified token's pin in fixed size. The zero entry has
// exp 1970, so it is expired and never matches: an empty way is an expired
// one.
type cacheEntry struct {
	key [sha256.Size]byte
	// names holds the server and region interned: a fleet has few of them
	// and many clients per server, and one handle is a word.
	names            unique.Handle[pinNames]
	iat, exp         int64 // Unix seconds
	iatNsec, expNsec int32 // iatNsec < 0: the pin has no iat
	lw               int64 // last write, Unix milliseconds; 0: none
}

type pinNames struct{ server, region, writeOrigin string }

func newCache(entries int) *cache {
	return &cache{sets: make([]cacheSet, (max(entries, 1)+setWays-1)/setWays)}
}

func (c *cache) get(token string, now time.Time) (Pin, bool) {
	key := digest(token)
	s := c.set(&key)
	s.mu.Lock()
	for i := range s.ways {
		e := &s.ways[i]
		if e.key == key {
			if !e.liveAt(now) {
				break
			}
			s.ref |= 1 << i
			p := e.pin()
			s.mu.Unlock()
			return p, true
		}
	}
	s.mu.Unlock()
	return Pin{}, false
}

func (c *cache) put(token string, p Pin, now time.Time) {
	e := cacheEntry{
		key:     digest(token),
		exp:     p.ExpiresAt.Unix(),
		expNsec: int32(p.ExpiresAt.Nanosecond()),
		iatNsec: -1,
	}
	if !e.liveAt(now) {
		return
	}
	if !p.IssuedAt.IsZero() {
		e.iat, e.iatNsec = p.IssuedAt.Unix(), int32(p.IssuedAt.Nanosecond())
	}
	// Outside the lock: interning takes a lock of its own.
	e.names = unique.Make(pinNames{p.Server, p.Region, p.LastWrite.Origin})
	if !p.LastWrite.IsZero() {
		e.lw = p.LastWrite.At.UnixMilli()
	}
	s := c.set(&e.key)
	s.mu.Lock()
	i := s.victim(&e.key, now)
	s.ways[i] = e
	s.ref &^= 1 << i
	s.mu.Unlock()
}

// victim is the way a new entry for key goes to: the way already holding
// key (the same token verified twice concurrently), else an expired or
// empty way, else the first unmarked way from the hand on, clearing the
// marks it passes. Called with s.mu held.
func (s *cacheSet) victim(key *[sha256.Size]byte, now time.Time) int {
	free := -1
	for i := range s.ways {
		e := &s.ways[i]
		if e.key == *key {
			return i
		}
		if free < 0 && !e.liveAt(now) {
			free = i
		}
	}
	if free >= 0 {
		return free
	}
	for {
		i := int(s.hand)
		s.hand = uint8((i + 1) % setWays)
		bit := uint16(1) << i
		if s.ref&bit == 0 {
			return i
		}
		s.ref &^= bit
	}
}

// set is the set of a digest. SHA-256's bits are uniform, so the first
// word of the digest, scaled to the number of sets, spreads the tokens.
func (c *cache) set(key *[sha256.Size]byte) *cacheSet {
	h := binary.LittleEndian.Uint32(key[:4])
	return &c.sets[uint64(h)*uint64(len(c.sets))>>32]
}

// liveAt reports whether the entry's exp is after now.
func (e *cacheEntry) liveAt(now time.Time) bool {
	sec := now.Unix()
	return sec < e.exp || sec == e.exp && int32(now.Nanosecond()) < e.expNsec
}

func (e *cacheEntry) pin() Pin {
	n := e.names.Value()
	p := Pin{Server: n.server, Region: n.region, ExpiresAt: time.Unix(e.exp, int64(e.expNsec))}
	if e.iatNsec >= 0 {
		p.IssuedAt = time.Unix(e.iat, int64(e.iatNsec))
	}
	if e.lw != 0 {
		p.LastWrite = Write{At: time.UnixMilli(e.lw), Origin: n.writeOrigin}
	}
	return p
}

// digest is the SHA-256 of token, read in place: the hit path must not
// copy the token to hash it.
func digest(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}
