package pin

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// cacheEntryBytes is the memory of one entry: a set's entries plus its
// share of the lock, mark and hand.
const cacheEntryBytes = (int(unsafe.Sizeof(cacheSet{})) + setWays - 1) / setWays

// clock is a settable clock for the cache's expiry checks.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

func TestCacheHitsOnlyIdenticalTokens(t *testing.T) {
	now := time.Now()
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	tok, _ := k.Issue("eu-1", "eu", now, time.Hour)
	if _, err := k.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if k.cache.len() != 1 {
		t.Fatalf("cache holds %d tokens after one verification, want 1", k.cache.len())
	}
	// Variations of a cached token are verified from scratch and fail.
	parts := strings.Split(tok, ".")
	for _, v := range []string{tok + "x", tok[:len(tok)-1], parts[0] + "." + parts[1] + "." + flip(parts[2]), " " + tok} {
		if _, err := k.Verify(v); err == nil {
			t.Fatalf("variation %q accepted", v)
		}
	}
	if k.cache.len() != 1 {
		t.Fatalf("failed verifications were cached: %d entries", k.cache.len())
	}
	// A second verification of the same token is a hit, not a second entry.
	if _, err := k.Verify(tok); err != nil {
		t.Fatal(err)
	}
	k.cache.put(tok, Pin{Server: "eu-1", ExpiresAt: now.Add(time.Hour)}, now)
	if k.cache.len() != 1 {
		t.Fatalf("the same token twice takes %d entries", k.cache.len())
	}
}

// A hit returns exactly the pin the verification returned: server, region,
// and both times to the nanosecond, iat absent or present.
func TestCacheReturnsTheVerifiedPin(t *testing.T) {
	now := time.Now()
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	tok, _ := k.Issue("eu-1", "eu-west", now, time.Hour)
	miss, err := k.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	hit, err := k.Verify(tok)
	if err != nil || hit != miss {
		t.Fatalf("hit %+v, %v; verification gave %+v", hit, err, miss)
	}

	c := newCache(64)
	sec := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix()
	for _, p := range []Pin{
		{Server: "a", Region: "eu", IssuedAt: time.Unix(sec, 0), ExpiresAt: time.Unix(sec+60, 0)},
		{Server: "b", IssuedAt: time.Unix(sec, 250), ExpiresAt: time.Unix(sec+60, 999_999_999)},
		{Server: "c", Region: "us", ExpiresAt: time.Unix(sec+60, 1)},
		{Server: "d", IssuedAt: time.Unix(1, 0), ExpiresAt: time.Unix(sec+60, 0)},
	} {
		tok := "token-" + p.Server
		c.put(tok, p, time.Unix(sec, 0))
		got, ok := c.get(tok, time.Unix(sec, 0))
		if !ok || got != p {
			t.Errorf("put %+v, got %+v, %v", p, got, ok)
		}
	}
}

func TestCacheEntryNeverOutlivesExp(t *testing.T) {
	issued := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := newClock(issued)
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, WithGrace(24*time.Hour))
	k.now = clk.now
	tok, _ := k.Issue("eu-1", "eu", issued, time.Hour)
	if _, err := k.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.cache.get(tok, clk.now()); !ok {
		t.Fatal("fresh token not cached")
	}
	clk.add(time.Hour) // exactly exp
	if _, ok := k.cache.get(tok, clk.now()); ok {
		t.Fatal("cache serves a token at its exp")
	}
	// Past exp the token still verifies within the grace (the caller
	// decides whether it takes it), but from scratch, and it is not cached
	// again.
	clk.add(time.Minute)
	p, err := k.Verify(tok)
	if err != nil || p.Server != "eu-1" {
		t.Fatalf("expired token: %+v, %v", p, err)
	}
	if _, ok := k.cache.get(tok, clk.now()); ok {
		t.Fatal("expired token was cached")
	}
	// A token already expired when first seen is not cached either.
	old, _ := k.Issue("eu-2", "eu", issued.Add(-2*time.Hour), time.Hour)
	if _, err := k.Verify(old); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.cache.get(old, issued); ok {
		t.Fatal("a token expired on arrival was cached")
	}
}

// The expiry check is exact to the nanosecond on both sides of exp.
func TestCacheExpiryBoundary(t *testing.T) {
	exp := time.Unix(1_800_000_000, 500)
	c := newCache(16)
	c.put("tok", Pin{Server: "a", ExpiresAt: exp}, exp.Add(-time.Hour))
	for _, tc := range []struct {
		now  time.Time
		live bool
	}{
		{exp.Add(-time.Second - 400), true}, // earlier second, later nanosecond
		{exp.Add(-1), true},
		{exp, false},
		{exp.Add(1), false},
		{exp.Add(time.Second - 500), false}, // later second, nanosecond 0
	} {
		if _, ok := c.get("tok", tc.now); ok != tc.live {
			t.Errorf("at exp%+v: hit %v, want %v", tc.now.Sub(exp), ok, tc.live)
		}
	}
	// put refuses at and after exp, to the nanosecond.
	for _, now := range []time.Time{exp, exp.Add(1), exp.Add(time.Second - 500)} {
		c := newCache(16)
		c.put("tok", Pin{Server: "a", ExpiresAt: exp}, now)
		if c.len() != 0 {
			t.Errorf("put at exp%+v cached an expired pin", now.Sub(exp))
		}
	}
	c = newCache(16)
	c.put("tok", Pin{Server: "a", ExpiresAt: exp}, exp.Add(-1))
	if c.len() != 1 {
		t.Error("put a nanosecond before exp did not cache")
	}
	// A pin without exp is never cached.
	c.put("noexp", Pin{Server: "a"}, exp)
	if _, ok := c.get("noexp", exp); ok {
		t.Error("pin without exp cached")
	}
}

func TestCacheDisabled(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, WithCache(0))
	if k.cache != nil {
		t.Fatal("WithCache(0) still has a cache")
	}
	tok, _ := k.Issue("eu-1", "eu", time.Now(), time.Hour)
	if _, err := k.Verify(tok); err != nil {
		t.Fatal(err)
	}
}

func TestCacheSize(t *testing.T) {
	for _, tc := range []struct{ entries, sets int }{
		{-1, 1}, {0, 1}, {1, 1}, {setWays, 1}, {setWays + 1, 2}, {1000, 63}, {DefaultCacheEntries, DefaultCacheEntries / setWays},
	} {
		if got := len(newCache(tc.entries).sets); got != tc.sets {
			t.Errorf("newCache(%d) has %d sets, want %d", tc.entries, got, tc.sets)
		}
	}
}

// A cache as large as the token population holds nearly all of it: the
// digest spreads tokens over every set, and only the few sets that draw
// more than setWays tokens drop some.
func TestCacheSpreadsOverSets(t *testing.T) {
	const n = 4096
	c := newCache(2 * n)
	now := time.Now()
	p := Pin{Server: "eu-1", ExpiresAt: now.Add(time.Hour)}
	for i := range n {
		c.put(fmt.Sprintf("token-%d", i), p, now)
	}
	if got := c.len(); got < n*99/100 {
		t.Fatalf("cache of %d entries holds %d of %d tokens", 2*n, got, n)
	}
	used := 0
	for i := range c.sets {
		for j := range c.sets[i].ways {
			if c.sets[i].ways[j].liveAt(now) {
				used++
				break
			}
		}
	}
	if used < len(c.sets)*9/10 {
		t.Fatalf("tokens landed in %d of %d sets", used, len(c.sets))
	}
}

func TestCacheIsBounded(t *testing.T) {
	c := newCache(1000)
	now := time.Now()
	p := Pin{Server: "eu-1", ExpiresAt: now.Add(time.Hour)}
	for i := range 20000 {
		c.put(fmt.Sprintf("token-%d", i), p, now)
	}
	if n, limit := c.len(), len(c.sets)*setWays; n > limit || limit < 1000 || limit > 1000+setWays {
		t.Fatalf("cache holds %d tokens with %d entries", n, limit)
	}
	// The newest are there; the oldest were evicted.
	if _, ok := c.get("token-19999", now); !ok {
		t.Fatal("newest token evicted")
	}
	if _, ok := c.get("token-0", now); ok {
		t.Fatal("oldest token still cached")
	}
	// Entries have a fixed size: a long token takes no more than a short one.
	long := strings.Repeat("x", MaxTokenLen)
	c.put(long, p, now)
	if _, ok := c.get(long, now); !ok {
		t.Fatal("long token not cached")
	}
}

// setTokens returns n tokens that land in set 0 of c, so that a test can
// drive one set's eviction.
func setTokens(c *cache, prefix string, n int) []string {
	var toks []string
	for i := 0; len(toks) < n; i++ {
		tok := fmt.Sprintf("%s-%d", prefix, i)
		if key := digest(tok); c.set(&key) == &c.sets[0] {
			toks = append(toks, tok)
		}
	}
	return toks
}

// Clients that keep sending requests stay cached while a stream of new
// clients, each seen once, passes through the same set; a client that
// stops sending is evicted within two sweeps.
func TestCacheKeepsHotClients(t *testing.T) {
	c := newCache(4 * setWays)
	now := time.Now()
	p := Pin{Server: "eu-1", ExpiresAt: now.Add(time.Hour)}
	hot := setTokens(c, "hot", setWays/2)
	cold := setTokens(c, "cold", 20*setWays)
	for _, tok := range hot {
		c.put(tok, p, now)
	}
	for i, tok := range cold {
		c.put(tok, p, now)
		if !c.has(tok, now) {
			t.Fatalf("cold token %d not cached right after put", i)
		}
		// The hot clients send a request every few new clients.
		if i%(setWays/4) == 0 {
			for j, h := range hot {
				if _, ok := c.get(h, now); !ok {
					t.Fatalf("hot client %d evicted after %d new clients", j, i+1)
				}
			}
		}
	}
	// Hot clients that stop are evicted by the next two sweeps at most.
	for _, tok := range setTokens(c, "later", 2*setWays) {
		c.put(tok, p, now)
	}
	for j, h := range hot {
		if _, ok := c.get(h, now); ok {
			t.Fatalf("hot client %d still cached after it stopped", j)
		}
	}
}

// Eviction order within a full set: unmarked entries go in sweep order,
// marked ones are passed once (losing their mark), and an expired entry
// goes before any of them.
func TestCacheEvictionOrder(t *testing.T) {
	c := newCache(setWays)
	now := time.Now()
	p := Pin{Server: "eu-1", ExpiresAt: now.Add(time.Hour)}
	toks := setTokens(c, "t", setWays)
	for _, tok := range toks {
		c.put(tok, p, now)
	}
	cached := func(tok string) bool { _, ok := c.get(tok, now); return ok }
	// No marks: the first put is the first out, then the second.
	c.put("n0", p, now)
	if cached(toks[0]) || !cached(toks[1]) {
		t.Fatal("first eviction did not take the oldest entry")
	}
	// toks[1] is marked by that get: the sweep passes it and takes toks[2].
	c.put("n1", p, now)
	if !cached(toks[1]) || cached(toks[2]) {
		t.Fatal("sweep evicted a marked entry or skipped an unmarked one")
	}
	// An entry near expiry, once expired, goes before the unmarked ones.
	soon := now.Add(time.Minute)
	c.put("short", Pin{Server: "eu-2", ExpiresAt: soon}, now)
	if !cached("short") {
		t.Fatal("short-lived entry not cached")
	}
	later := soon.Add(time.Second)
	c.put("n2", Pin{Server: "eu-1", ExpiresAt: later.Add(time.Hour)}, later)
	for i, tok := range toks[4:] {
		if !c.has(tok, later) {
			t.Fatalf("entry %d evicted while an expired entry was there", i+4)
		}
	}
	// The new entry took the expired one's way without its mark.
	s := &c.sets[0]
	key := digest("n2")
	if s.ways[3].key != key {
		t.Fatal("new entry not cached in the expired entry's place")
	}
	if s.ref&(1<<3) != 0 {
		t.Fatal("new entry inherited the expired entry's mark")
	}
}

// The cache's memory is its entries, whatever passes through it: a million
// distinct tokens through a full cache leave the heap where the cache's
// size puts it, cacheEntryBytes per entry. (A tenth of that under the race
// detector, which is slow at it.)
func TestCacheMemoryBoundedByMillionTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("a million inserts")
	}
	total := 1_000_000
	if raceEnabled {
		total = 100_000
	}
	if set := int(unsafe.Sizeof(cacheSet{})); cacheEntryBytes > 80 || cacheEntryBytes*setWays < set || cacheEntryBytes*setWays >= set+setWays {
		t.Fatalf("an entry takes %d bytes (a set %d), want at most 80", cacheEntryBytes, set)
	}
	now := time.Now()
	p := Pin{Server: "eu-1", Region: "eu", ExpiresAt: now.Add(time.Hour)}
	// A realistic pin length, distinct per client.
	pad := strings.Repeat("a", 180)
	empty := heapInUse()
	c := newCache(DefaultCacheEntries)
	for i := range total {
		c.put(fmt.Sprintf("%s%08d", pad, i), p, now)
	}
	full := heapInUse()
	if c.len() > DefaultCacheEntries {
		t.Fatalf("cache holds %d tokens", c.len())
	}
	size := int64(DefaultCacheEntries * cacheEntryBytes)
	if grown := int64(full) - int64(empty); grown > size+1<<20 {
		t.Fatalf("heap grew by %.1f MiB over %d tokens, want the cache's %.1f MiB", float64(grown)/(1<<20), total, float64(size)/(1<<20))
	}
	t.Logf("heap in use: %.1f MiB before the cache, %.1f MiB after %d tokens through %d entries of %d bytes", float64(empty)/(1<<20), float64(full)/(1<<20), total, DefaultCacheEntries, cacheEntryBytes)
	runtime.KeepAlive(c)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Concurrent verifications of the same and of different tokens; run with
// -race.
func TestCacheConcurrent(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, WithCache(64))
	now := time.Now()
	toks := make([]string, 200)
	for i := range toks {
		toks[i], _ = k.Issue(fmt.Sprintf("srv-%d", i), "eu", now, time.Hour)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				j := (i*7 + g) % len(toks)
				p, err := k.Verify(toks[j])
				if err != nil || p.Server != fmt.Sprintf("srv-%d", j) {
					t.Errorf("Verify(toks[%d]) = %+v, %v", j, p, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Many goroutines putting and getting tokens of the same few sets, each
// token with its own pin: a hit never returns another token's pin or a
// torn one. Run with -race.
func TestCacheConcurrentSets(t *testing.T) {
	c := newCache(2 * setWays)
	now := time.Now()
	const n = 300
	pins := make([]Pin, n)
	for i := range pins {
		pins[i] = Pin{Server: fmt.Sprintf("srv-%d", i), Region: fmt.Sprintf("r%d", i), IssuedAt: time.Unix(int64(1000+i), 0), ExpiresAt: time.Unix(int64(4_000_000_000+i), int64(i))}
	}
	var hits atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				j := (i*13 + g*31) % n
				tok := fmt.Sprintf("token-%d", j)
				if p, ok := c.get(tok, now); ok {
					hits.Add(1)
					if p != pins[j] {
						t.Errorf("token %d: got %+v, want %+v", j, p, pins[j])
						return
					}
					continue
				}
				c.put(tok, pins[j], now)
			}
		})
	}
	wg.Wait()
	if hits.Load() == 0 {
		t.Fatal("no hits at all")
	}
}

// A cache hit is the edge's per-request cost of a pin; it must not
// allocate.
func TestCacheHitDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	now := time.Now()
	tok, _ := k.Issue("eu-1", "eu", now, time.Hour)
	if _, err := k.VerifyAt(tok, now); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { k.VerifyAt(tok, now) }); n != 0 {
		t.Fatalf("cache hit allocates %.1f times", n)
	}
}

// Times far from 1970 (a pin may expire after 2262, where UnixNano
// overflows) are kept exactly.
func TestCacheFarFutureExpiry(t *testing.T) {
	c := newCache(16)
	now := time.Now()
	far := time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
	c.put("tok", Pin{Server: "a", ExpiresAt: far}, now)
	p, ok := c.get("tok", now)
	if !ok || !p.ExpiresAt.Equal(far) {
		t.Fatalf("far-future pin: %+v, %v", p, ok)
	}
	if _, ok := c.get("tok", far); ok {
		t.Fatal("served at its exp")
	}
}

// has reports whether token is cached and live at now, without marking it
// as a get does.
func (c *cache) has(token string, now time.Time) bool {
	key := digest(token)
	s := c.set(&key)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ways {
		if s.ways[i].key == key {
			return s.ways[i].liveAt(now)
		}
	}
	return false
}

// len is the number of cached tokens, expired or not.
func (c *cache) len() int {
	n := 0
	for i := range c.sets {
		s := &c.sets[i]
		s.mu.Lock()
		for j := range s.ways {
			if s.ways[j].exp != 0 {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}
