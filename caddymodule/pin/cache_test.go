package pin

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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

func TestCacheIsBounded(t *testing.T) {
	c := newCache(1000)
	now := time.Now()
	p := Pin{Server: "eu-1", ExpiresAt: now.Add(time.Hour)}
	for i := range 20000 {
		c.put(fmt.Sprintf("token-%d", i), p, now)
	}
	if n, limit := c.len(), len(c.shards)*c.per; n > limit || limit < 1000 || limit > 1100 {
		t.Fatalf("cache holds %d tokens with %d slots", n, limit)
	}
	// The newest are there; the oldest were evicted.
	if _, ok := c.get("token-19999", now); !ok {
		t.Fatal("newest token evicted")
	}
	if _, ok := c.get("token-0", now); ok {
		t.Fatal("oldest token still cached")
	}
	// Tokens too long to cache are not.
	long := strings.Repeat("x", maxCachedTokenLen+1)
	c.put(long, p, now)
	if _, ok := c.get(long, now); ok {
		t.Fatal("over-long token cached")
	}
}

// One million distinct tokens through the cache leave its memory where a
// full cache puts it: the cache is what bounds the edge's per-client state.
// (A tenth of that under the race detector, which is slow at it.)
func TestCacheMemoryBoundedByMillionTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("a million inserts")
	}
	total := 1_000_000
	if raceEnabled {
		total = 100_000
	}
	c := newCache(DefaultCacheEntries)
	now := time.Now()
	p := Pin{Server: "eu-1", Region: "eu", ExpiresAt: now.Add(time.Hour)}
	// A realistic pin length, distinct per client.
	pad := strings.Repeat("a", 180)
	fill := func(from, to int) {
		for i := from; i < to; i++ {
			c.put(fmt.Sprintf("%s%08d", pad, i), p, now)
		}
	}
	fill(0, 2*DefaultCacheEntries) // full, and churned once
	before := heapInUse()
	fill(2*DefaultCacheEntries, total)
	after := heapInUse()
	if c.len() > DefaultCacheEntries {
		t.Fatalf("cache holds %d tokens", c.len())
	}
	const limit = 8 << 20
	if grown := int64(after) - int64(before); grown > limit {
		t.Fatalf("heap grew by %d MiB over %d tokens, want < %d MiB", grown>>20, total, limit>>20)
	}
	t.Logf("heap in use with a full cache: %.1f MiB before, %.1f MiB after %d tokens", float64(before)/(1<<20), float64(after)/(1<<20), total)
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				j := (i*7 + g) % len(toks)
				p, err := k.Verify(toks[j])
				if err != nil || p.Server != fmt.Sprintf("srv-%d", j) {
					t.Errorf("Verify(toks[%d]) = %+v, %v", j, p, err)
					return
				}
			}
		}()
	}
	wg.Wait()
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

// Times outside UnixNano's range (a pin may expire after 2262) clamp
// instead of wrapping into a wrong expiry.
func TestCacheFarFutureExpiry(t *testing.T) {
	c := newCache(16)
	now := time.Now()
	far := time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
	c.put("tok", Pin{Server: "a", ExpiresAt: far}, now)
	if _, ok := c.get("tok", now); !ok {
		t.Fatal("far-future pin not cached")
	}
	if _, ok := c.get("tok", far); ok {
		t.Fatal("served at its exp")
	}
}

// len is the number of cached tokens.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.index)
		s.mu.RUnlock()
	}
	return n
}
