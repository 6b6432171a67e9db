package pin

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchKeyrings returns a signing keyring per algorithm, with the given
// cache size.
func benchKeyring(b *testing.B, alg string, cache int) *Keyring {
	b.Helper()
	var kc KeyConfig
	switch alg {
	case "HS256":
		kc = KeyConfig{Algorithm: "hs256", Secret: testSecret}
	case "EdDSA":
		priv, _, _ := edKeyFiles(b, nil)
		kc = KeyConfig{Algorithm: "ed25519", File: priv}
	case "ES256":
		priv, _, _ := ecKeyFiles(b, false)
		kc = KeyConfig{Algorithm: "es256", File: priv}
	}
	return mustKeyring(b, kc, nil, WithCache(cache))
}

// BenchmarkVerify is the edge's per-request cost of reading a pin: the same
// client's token again and again (cache hits when the cache is on).
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"HS256", "EdDSA", "ES256"} {
		for _, cache := range []int{0, DefaultCacheEntries} {
			name := alg + "/nocache"
			if cache > 0 {
				name = alg + "/cache"
			}
			b.Run(name, func(b *testing.B) {
				k := benchKeyring(b, alg, cache)
				tok, err := k.Issue("eu-1", "eu-west", time.Now(), 24*time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(tok)))
				for b.Loop() {
					if _, err := k.Verify(tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVerifyForged is the cost of a token with a valid header and a
// bad signature, which an attacker can send without limit.
func BenchmarkVerifyForged(b *testing.B) {
	k := benchKeyring(b, "HS256", DefaultCacheEntries)
	tok, _ := k.Issue("eu-1", "eu-west", time.Now(), 24*time.Hour)
	tok = tok[:len(tok)-4] + "AAAA"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Verify(tok); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkVerifyAt is a cache hit when the caller passes the time it
// already read.
func BenchmarkVerifyAt(b *testing.B) {
	k := benchKeyring(b, "HS256", DefaultCacheEntries)
	now := time.Now()
	tok, _ := k.Issue("eu-1", "eu-west", now, 24*time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.VerifyAt(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyParallel is BenchmarkVerify with every core verifying
// tokens of many clients, to show the sharded cache does not serialise.
func BenchmarkVerifyParallel(b *testing.B) {
	for _, alg := range []string{"HS256", "EdDSA"} {
		b.Run(alg+"/cache", func(b *testing.B) {
			k := benchKeyring(b, alg, DefaultCacheEntries)
			toks := make([]string, 1024)
			for i := range toks {
				toks[i], _ = k.Issue(fmt.Sprintf("srv-%d", i), "eu", time.Now(), time.Hour)
				k.Verify(toks[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := k.Verify(toks[i&1023]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkIssue is the cost of a new pin (every placed request).
func BenchmarkIssue(b *testing.B) {
	for _, alg := range []string{"HS256", "EdDSA", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			k := benchKeyring(b, alg, 0)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Issue("eu-1", "eu-west", now, 24*time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyManyClients is the per-request pin check on an edge with
// 100,000 clients, each sending its own token, in random order: with a
// cache of 16,384 entries most requests miss and verify the signature; with
// the default cache, which holds every client, they hit.
func BenchmarkVerifyManyClients(b *testing.B) {
	const clients = 100000
	for _, alg := range []string{"HS256", "EdDSA"} {
		k := benchKeyring(b, alg, 0)
		now := time.Now()
		toks := make([]string, clients)
		for i := range toks {
			// Issued a second apart (a token's times are whole seconds), so
			// that no two clients share a token, and all still valid.
			tok, err := k.Issue(fmt.Sprintf("srv-%03d", i%100), "eu-west", now.Add(-time.Duration(i)*time.Second), 48*time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			toks[i] = tok
		}
		order := rand.New(rand.NewPCG(1, 2)).Perm(clients)
		for _, cache := range []int{16384, DefaultCacheEntries} {
			b.Run(fmt.Sprintf("%s/cache=%d", alg, cache), func(b *testing.B) {
				kc := *k // same keys, so every token verifies
				kc.cache = newCache(cache)
				for _, tok := range toks { // every client's first request
					if _, err := kc.Verify(tok); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := kc.Verify(toks[order[i%clients]]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
