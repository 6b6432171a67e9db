package pin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A pin re-signed with a last write keeps its server and times and carries
// the write to the millisecond, through the cache as well as without it.
func TestLastWriteRoundTrip(t *testing.T) {
	for _, cacheEntries := range []int{0, 64} {
		k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, WithCache(cacheEntries))
		now := time.Now()
		first, err := k.Issue("eu-1", "eu-west", now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p, err := k.Verify(first)
		if err != nil || !p.LastWrite.IsZero() {
			t.Fatalf("fresh pin: %+v, %v", p, err)
		}
		at := now.Add(-1500 * time.Millisecond).Truncate(time.Millisecond)
		p.LastWrite = Write{At: at, Origin: "us-east"}
		tok, err := k.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // a miss, then (with the cache) a hit
			got, err := k.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if got != p {
				t.Fatalf("cache %d: got %+v, want %+v", cacheEntries, got, p)
			}
		}
	}
}

// A last write that is malformed, even under a valid signature, makes the
// whole pin invalid; so does altering a signed one.
func TestLastWriteRejects(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, WithCache(0))
	now := time.Now()
	with := func(extra jwt.MapClaims) string {
		c := goodClaims(now)
		for name, v := range extra {
			c[name] = v
		}
		return forge(t, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	ms := now.UnixMilli()
	for name, tok := range map[string]string{
		"lw as a string":      with(jwt.MapClaims{"lw": "1700000000000", "lwo": "eu"}),
		"lw fractional":       with(jwt.MapClaims{"lw": 1.5e12 + 0.5, "lwo": "eu"}),
		"lw zero":             with(jwt.MapClaims{"lw": 0, "lwo": "eu"}),
		"lw beyond year 9999": with(jwt.MapClaims{"lw": 1e18, "lwo": "eu"}),
		"lw without lwo":      with(jwt.MapClaims{"lw": ms}),
		"lwo without lw":      with(jwt.MapClaims{"lwo": "eu"}),
		"lwo empty with lw":   with(jwt.MapClaims{"lw": ms, "lwo": ""}),
		"lwo not a name":      with(jwt.MapClaims{"lw": ms, "lwo": "10.0.0.1:5432/x"}),
		"lwo not a string":    with(jwt.MapClaims{"lw": ms, "lwo": 7}),
		"lwo null without lw": with(jwt.MapClaims{"lwo": nil}),
		"lw null":             with(jwt.MapClaims{"lw": nil, "lwo": "eu"}),
	} {
		t.Run(name, func(t *testing.T) {
			if p, err := k.Verify(tok); !errors.Is(err, ErrInvalid) {
				t.Fatalf("accepted: %+v", p)
			}
		})
	}
	// Altering the origin of a signed write breaks the signature.
	p := Pin{Server: "eu-1", IssuedAt: now, ExpiresAt: now.Add(time.Hour), LastWrite: Write{At: now, Origin: "eu"}}
	tok, err := k.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	claims["lwo"] = "us"
	claims["lw"] = ms - 60_000
	altered := forge(t, jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes!!"), claims)
	altered = strings.Join([]string{strings.Split(altered, ".")[0], strings.Split(altered, ".")[1], parts[2]}, ".")
	if _, err := k.Verify(altered); !errors.Is(err, ErrInvalid) {
		t.Fatal("accepted an altered last write")
	}
}

// Sign refuses what Verify would refuse, so the edge never hands out a pin
// it cannot read back.
func TestSignRejectsBadWrite(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	now := time.Now()
	base := Pin{Server: "eu-1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	for name, w := range map[string]Write{
		"no origin":   {At: now},
		"bad origin":  {At: now, Origin: "a b"},
		"before 1970": {At: time.Unix(-5, 0), Origin: "eu"},
		"after 9999":  {At: time.Unix(maxUnix+10, 0), Origin: "eu"},
	} {
		p := base
		p.LastWrite = w
		if _, err := k.Sign(p); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := k.Sign(Pin{Server: "eu-1", IssuedAt: now, ExpiresAt: now}); err == nil {
		t.Error("signed a pin that expires as it is issued")
	}
}
