package pin

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestRoundTrip(t *testing.T) {
	edPriv, _, _ := edKeyFiles(t, nil)
	ecPriv, _, _ := ecKeyFiles(t, false)
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name string
		key  KeyConfig
		alg  string
	}{
		{"hs256", KeyConfig{Algorithm: "hs256", Secret: testSecret}, "HS256"},
		{"ed25519", KeyConfig{Algorithm: "ed25519", File: edPriv}, "EdDSA"},
		{"es256", KeyConfig{Algorithm: "ES256", File: ecPriv}, "ES256"},
	} {
		for _, cacheSize := range []int{0, DefaultCacheEntries} {
			t.Run(fmt.Sprintf("%s/cache=%d", tc.name, cacheSize), func(t *testing.T) {
				k := mustKeyring(t, tc.key, nil, WithCache(cacheSize))
				tok, err := k.Issue("eu-1", "eu-west", now, 24*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
				if err != nil || parsed.Method.Alg() != tc.alg {
					t.Fatalf("token alg %v (%v), want %s", parsed.Method, err, tc.alg)
				}
				// Twice: the second may come from the cache.
				for range 2 {
					p, err := k.Verify(tok)
					if err != nil {
						t.Fatal(err)
					}
					want := Pin{Server: "eu-1", Region: "eu-west", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
					if p.Server != want.Server || p.Region != want.Region || !p.IssuedAt.Equal(want.IssuedAt) || !p.ExpiresAt.Equal(want.ExpiresAt) {
						t.Fatalf("Verify = %+v, want %+v", p, want)
					}
					if !p.Usable(now, 0) {
						t.Fatal("fresh pin not usable")
					}
				}
				// No region is fine.
				tok, err = k.Issue("eu-1", "", now, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if p, err := k.Verify(tok); err != nil || p.Region != "" {
					t.Fatalf("Verify without region = %+v, %v", p, err)
				}
			})
		}
	}
}

func TestIssueRejectsBadInput(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	now := time.Now()
	for _, tc := range []struct {
		id, region string
		ttl        time.Duration
		want       string
	}{
		{"127.0.0.1:9000", "eu", time.Hour, "invalid server id"},
		{"", "eu", time.Hour, "invalid server id"},
		{"eu-1", "eu west", time.Hour, "invalid region"},
		{"eu-1", "eu", 0, "ttl"},
	} {
		if _, err := k.Issue(tc.id, tc.region, now, tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Issue(%q, %q, %s) error %v, want %q", tc.id, tc.region, tc.ttl, err, tc.want)
		}
	}
	// Verify refuses times past year 9999, so Issue must not write them.
	if _, err := k.Issue("eu-1", "eu", time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC), 2*time.Hour); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("Issue past year 9999: error %v", err)
	}
	if _, err := k.Issue("eu-1", "eu", time.Time{}, time.Hour); err == nil {
		t.Error("Issue at the zero time succeeded")
	}
}

// Rotation: the new keyring signs with a new key and still accepts pins
// signed with the old one, listed as a verify key; a verify-only keyring
// accepts tokens but cannot issue.
func TestVerifyOnlyRotationKeys(t *testing.T) {
	now := time.Now()
	oldEdPriv, oldEdPub, _ := edKeyFiles(t, nil)
	oldEC, _, _ := ecKeyFiles(t, false)
	const oldSecret = "the-old-secret-that-is-32-bytes!"

	oldHS := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: oldSecret}, nil)
	oldEd := mustKeyring(t, KeyConfig{Algorithm: "ed25519", File: oldEdPriv}, nil)
	oldES := mustKeyring(t, KeyConfig{Algorithm: "es256", File: oldEC}, nil)
	tokHS, _ := oldHS.Issue("a", "", now, time.Hour)
	tokEd, _ := oldEd.Issue("b", "", now, time.Hour)
	tokES, _ := oldES.Issue("c", "", now, time.Hour)

	newKey := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	rotated := mustKeyring(t, newKey, []KeyConfig{
		{Algorithm: "hs256", Secret: oldSecret},
		{Algorithm: "ed25519", File: oldEdPub}, // a public key
		{Algorithm: "es256", File: oldEC},      // a private key: its public half verifies
	})
	for _, tok := range []string{tokHS, tokEd, tokES} {
		if _, err := rotated.Verify(tok); err != nil {
			t.Fatalf("rotated keyring rejects an old pin: %v", err)
		}
	}
	tokNew, err := rotated.Issue("d", "", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Verify(tokNew); err != nil {
		t.Fatal(err)
	}
	// The old keyring knows nothing of the new key.
	if _, err := oldHS.Verify(tokNew); err == nil {
		t.Fatal("old keyring accepts a pin signed with the new key")
	}

	verifyOnly := mustKeyring(t, KeyConfig{}, []KeyConfig{{Algorithm: "ed25519", File: oldEdPub}})
	if _, err := verifyOnly.Verify(tokEd); err != nil {
		t.Fatal(err)
	}
	if verifyOnly.CanIssue() {
		t.Fatal("verify-only keyring claims it can issue")
	}
	if _, err := verifyOnly.Issue("a", "", now, time.Hour); err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Fatalf("verify-only Issue error %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Now()
	edPriv, edPub, edKey := edKeyFiles(t, nil)
	ecPriv, ecPub, ecKey := ecKeyFiles(t, false)
	_, _, otherEd := edKeyFiles(t, nil)
	_, _, otherEC := ecKeyFiles(t, false)
	edPubPEM, _ := os.ReadFile(edPub)
	ecPubPEM, _ := os.ReadFile(ecPub)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)

	hsOnly := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	edOnly := KeyConfig{Algorithm: "ed25519", File: edPriv}
	esOnly := KeyConfig{Algorithm: "es256", File: ecPriv}

	none := func() string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, goodClaims(now)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()
	withClaim := func(name string, v any) jwt.MapClaims {
		c := goodClaims(now)
		if v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
		return c
	}
	hs := func(c jwt.MapClaims) string { return forge(t, jwt.SigningMethodHS256, []byte(testSecret), c) }
	valid := hs(goodClaims(now))
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		sign  KeyConfig
		extra []KeyConfig
		token string
	}{
		{"alg none", hsOnly, nil, none},
		{"alg none against ed25519", edOnly, nil, none},
		{"wrong hs256 secret", hsOnly, nil, forge(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-long!"), goodClaims(now))},
		{"wrong ed25519 key", edOnly, nil, forge(t, jwt.SigningMethodEdDSA, otherEd, goodClaims(now))},
		{"wrong es256 key", esOnly, nil, forge(t, jwt.SigningMethodES256, otherEC, goodClaims(now))},
		// Algorithm switching: an HS256 token keyed with the public key
		// bytes must not verify against an asymmetric key.
		{"hs256 with ed25519 public PEM as secret", edOnly, nil, forge(t, jwt.SigningMethodHS256, edPubPEM, goodClaims(now))},
		{"hs256 with ed25519 raw public key as secret", edOnly, nil, forge(t, jwt.SigningMethodHS256, []byte(edKey.Public().(ed25519.PublicKey)), goodClaims(now))},
		{"hs256 with es256 public PEM as secret", esOnly, nil, forge(t, jwt.SigningMethodHS256, ecPubPEM, goodClaims(now))},
		{"hs256 with es256 public DER as secret", esOnly, nil, forge(t, jwt.SigningMethodHS256, ecPubDER, goodClaims(now))},
		{"hs256 with public PEM, keyring has hs256 too", hsOnly, []KeyConfig{{Algorithm: "ed25519", File: edPub}}, forge(t, jwt.SigningMethodHS256, edPubPEM, goodClaims(now))},
		{"es256 token against ed25519 key", edOnly, nil, forge(t, jwt.SigningMethodES256, ecKey, goodClaims(now))},
		{"ed25519 token against es256 key", esOnly, nil, forge(t, jwt.SigningMethodEdDSA, edKey, goodClaims(now))},
		{"ed25519 token against hs256 key", hsOnly, nil, forge(t, jwt.SigningMethodEdDSA, edKey, goodClaims(now))},
		{"hs384 with the right secret", hsOnly, nil, forge(t, jwt.SigningMethodHS384, []byte(testSecret), goodClaims(now))},
		{"header alg swapped to ES256", esOnly, []KeyConfig{hsOnly}, swapAlg(t, valid, "ES256")},
		{"header alg swapped to EdDSA", edOnly, []KeyConfig{hsOnly}, swapAlg(t, valid, "EdDSA")},

		{"wrong iss", hsOnly, nil, hs(withClaim("iss", "someone-else"))},
		{"missing iss", hsOnly, nil, hs(withClaim("iss", nil))},
		{"iss not a string", hsOnly, nil, hs(withClaim("iss", 7))},
		{"claim names an address", hsOnly, nil, hs(withClaim("srv", "127.0.0.1:9"))},
		{"claim names a URL", hsOnly, nil, hs(withClaim("srv", "http://evil.example"))},
		{"claim empty", hsOnly, nil, hs(withClaim("srv", ""))},
		{"claim missing", hsOnly, nil, hs(withClaim("srv", nil))},
		{"claim not a string", hsOnly, nil, hs(withClaim("srv", []string{"eu-1"}))},
		{"region invalid", hsOnly, nil, hs(withClaim("rgn", "eu west"))},
		{"region not a string", hsOnly, nil, hs(withClaim("rgn", 1))},
		{"exp missing", hsOnly, nil, hs(withClaim("exp", nil))},
		{"exp a string", hsOnly, nil, hs(withClaim("exp", "tomorrow"))},
		{"exp absurd", hsOnly, nil, hs(withClaim("exp", 1e300))},
		{"exp negative", hsOnly, nil, hs(withClaim("exp", -5))},
		{"iat a string", hsOnly, nil, hs(withClaim("iat", "now"))},
		{"iat negative", hsOnly, nil, hs(withClaim("iat", -1))},
		{"exp a numeric string", hsOnly, nil, hs(withClaim("exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10)))},
		{"exp past", hsOnly, nil, hs(withClaim("exp", now.Add(-time.Minute).Unix()))},
		{"exp null", hsOnly, nil, hs(withClaim("exp", json.RawMessage("null")))},
		{"nbf in the future", hsOnly, nil, hs(withClaim("nbf", now.Add(time.Hour).Unix()))},
		{"nbf a string", hsOnly, nil, hs(withClaim("nbf", "soon"))},
		{"claim a number", hsOnly, nil, hs(withClaim("srv", 7))},
		{"claim null", hsOnly, nil, hs(withClaim("srv", json.RawMessage("null")))},
		{"region null", hsOnly, nil, hs(withClaim("rgn", json.RawMessage("null")))},
		{"crit header", hsOnly, nil, withHeader(t, "crit", []string{"exp"}, goodClaims(now))},
		{"crit header, empty", hsOnly, nil, withHeader(t, "crit", []string{}, goodClaims(now))},

		{"empty", hsOnly, nil, ""},
		{"one part", hsOnly, nil, "abc"},
		{"two parts", hsOnly, nil, parts[0] + "." + parts[1]},
		{"four parts", hsOnly, nil, valid + ".x"},
		{"signature cut", hsOnly, nil, valid[:len(valid)-2]},
		{"signature bit flipped", hsOnly, nil, parts[0] + "." + parts[1] + "." + flip(parts[2])},
		{"claims tampered", hsOnly, nil, parts[0] + "." + b64(`{"iss":"sessionpin","srv":"eu-2","exp":4102444800}`) + "." + parts[2]},
		{"padded base64", hsOnly, nil, valid + "="},
		{"header not json", hsOnly, nil, b64("not json") + "." + parts[1] + "." + parts[2]},
		{"claims not an object", hsOnly, nil, forgeRaw(t, `{"alg":"HS256"}`, `["srv","eu-1"]`)},
		{"spaces", hsOnly, nil, " " + valid},
		{"oversized", hsOnly, nil, hs(withClaim("pad", strings.Repeat("x", MaxTokenLen)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{0, DefaultCacheEntries} {
				k := mustKeyring(t, tt.sign, tt.extra, WithCache(size))
				for range 2 { // a rejection must not be cached as a success
					p, err := k.Verify(tt.token)
					if err == nil {
						t.Fatalf("Verify accepted it: %+v", p)
					}
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("error %v does not wrap ErrInvalid", err)
					}
					if p != (Pin{}) {
						t.Fatalf("rejected token returned a pin %+v", p)
					}
				}
			}
		})
	}
	// The valid token the cases above are derived from does verify.
	if _, err := mustKeyring(t, hsOnly, nil).Verify(valid); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}
}

// withHeader signs good claims with HS256 and one extra header field.
func withHeader(t *testing.T, name string, v any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header[name] = v
	s, err := tok.SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerifyTimeRules: exp is required and past it a pin verifies only
// within the keyring's grace (refresh); nbf in the future is refused even
// within the grace; nbf in the past and a missing iat are fine.
func TestVerifyTimeRules(t *testing.T) {
	now := time.Now()
	const grace = 30 * 24 * time.Hour
	hs := func(mod func(jwt.MapClaims)) string {
		c := goodClaims(now)
		mod(c)
		return forge(t, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	key := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	for _, tc := range []struct {
		name          string
		token         string
		strict, grace bool // accepted without grace, with it
	}{
		{"valid", hs(func(jwt.MapClaims) {}), true, true},
		{"no iat", hs(func(c jwt.MapClaims) { delete(c, "iat") }), true, true},
		{"nbf past", hs(func(c jwt.MapClaims) { c["nbf"] = now.Add(-time.Minute).Unix() }), true, true},
		{"nbf future", hs(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), false, false},
		{"expired a minute ago", hs(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }), false, true},
		{"expired beyond the grace", hs(func(c jwt.MapClaims) { c["exp"] = now.Add(-grace - time.Hour).Unix() }), false, false},
		{"no exp", hs(func(c jwt.MapClaims) { delete(c, "exp") }), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, withGrace := range []bool{false, true} {
				opts := []Option{WithCache(0)}
				want := tc.strict
				if withGrace {
					opts = append(opts, WithGrace(grace))
					want = tc.grace
				}
				_, err := mustKeyring(t, key, nil, opts...).Verify(tc.token)
				if (err == nil) != want {
					t.Errorf("grace %v: Verify error %v, want accepted %v", withGrace, err, want)
				}
				if err != nil && !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v does not wrap ErrInvalid", err)
				}
			}
		})
	}
}

func TestOversizedIsCheckedFirst(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	_, err := k.Verify(strings.Repeat("a", MaxTokenLen+1))
	if err == nil || !strings.Contains(err.Error(), "longer than 4096") {
		t.Fatalf("error %v", err)
	}
}

func TestExpiryAndGrace(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	issued := time.Now().Truncate(time.Second)
	tok, err := k.Issue("eu-1", "eu", issued, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Usable decides, per request, on the pin Verify returns.
	p, err := k.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	exp := issued.Add(time.Hour)
	const grace = 30 * 24 * time.Hour
	for _, tc := range []struct {
		at    time.Time
		grace time.Duration
		want  bool
	}{
		{issued, 0, true},
		{exp.Add(-time.Second), 0, true},
		{exp, 0, false}, // exp is exclusive
		{exp.Add(time.Second), 0, false},
		{exp.Add(time.Second), grace, true},
		{exp.Add(grace - time.Second), grace, true},
		{exp.Add(grace), grace, false},
		{exp.Add(time.Second), -time.Hour, false}, // a negative grace is none
	} {
		if got := p.Usable(tc.at, tc.grace); got != tc.want {
			t.Errorf("Usable(exp%+v, grace %s) = %v, want %v", tc.at.Sub(exp), tc.grace, got, tc.want)
		}
	}
	if (Pin{Server: "x"}).Usable(issued, grace) {
		t.Error("a pin without exp is usable")
	}
}

// An identity provider's token can carry the server in its own claim.
func TestCustomClaim(t *testing.T) {
	now := time.Now()
	_, pub, idpKey := edKeyFiles(t, nil)
	for _, claim := range []string{"sub", "server", "https://example.com/claims/server"} {
		t.Run(claim, func(t *testing.T) {
			k, err := NewKeyring(KeyConfig{}, []KeyConfig{{Algorithm: "ed25519", File: pub}}, "https://idp.example", claim)
			if err != nil {
				t.Fatal(err)
			}
			if k.claim != claim || k.issuer != "https://idp.example" {
				t.Fatalf("claim %q issuer %q", k.claim, k.issuer)
			}
			tok := forge(t, jwt.SigningMethodEdDSA, idpKey, jwt.MapClaims{
				"iss": "https://idp.example", claim: "us-3", "exp": now.Add(time.Hour).Unix(),
				"aud": "app", "email": "a@b.example",
			})
			p, err := k.Verify(tok)
			if err != nil || p.Server != "us-3" || p.Region != "" || !p.IssuedAt.IsZero() {
				t.Fatalf("Verify = %+v, %v", p, err)
			}
			// "srv" is not the claim any more.
			tok = forge(t, jwt.SigningMethodEdDSA, idpKey, jwt.MapClaims{
				"iss": "https://idp.example", "srv": "us-3", "exp": now.Add(time.Hour).Unix(),
			})
			if _, err := k.Verify(tok); err == nil {
				t.Fatal("token without the custom claim accepted")
			}
		})
	}
	// Issue writes the custom claim.
	k, err := NewKeyring(KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, "", "server")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := k.Issue("eu-9", "eu", now, time.Hour)
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil || c["server"] != "eu-9" || c["srv"] != nil {
		t.Fatalf("issued claims %v, %v", c, err)
	}
}

func TestFingerprint(t *testing.T) {
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	tok, _ := k.Issue("eu-1", "", time.Now(), time.Hour)
	fp := Fingerprint(tok)
	if len(fp) != 8 || !strings.HasSuffix(tok, fp) {
		t.Fatalf("Fingerprint = %q", fp)
	}
	if Fingerprint("abc") != "abc" || Fingerprint("") != "" {
		t.Fatal("Fingerprint of short input")
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// flip changes the first character of a base64url segment.
func flip(seg string) string {
	c := byte('A')
	if seg[0] == 'A' {
		c = 'B'
	}
	return string(c) + seg[1:]
}

// swapAlg rewrites a token's header alg, keeping claims and signature.
func swapAlg(t *testing.T, tok, alg string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	return b64(`{"alg":"`+alg+`","typ":"JWT"}`) + "." + parts[1] + "." + parts[2]
}

// forgeRaw builds an HS256 token over raw header and claims JSON.
func forgeRaw(t *testing.T, header, claims string) string {
	t.Helper()
	signing := b64(header) + "." + b64(claims)
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Issue's limits are Verify's: a pin issued at second 1, for the shortest
// ttl, or expiring at the last second of year 9999 is issued and verifies;
// one step past a limit is refused.
func TestIssueLimits(t *testing.T) {
	key := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	last := time.Unix(maxUnix, 0)
	for _, tc := range []struct {
		name string
		at   time.Time
		ttl  time.Duration
		ok   bool
	}{
		{"shortest ttl", time.Now(), time.Second, true},
		{"ttl under a second", time.Now(), time.Second - time.Millisecond, false},
		{"issued at second 1", time.Unix(1, 0), time.Hour, true},
		{"issued before second 1", time.Unix(0, 0), time.Hour, false},
		{"expires at the end of 9999", last.Add(-time.Hour), time.Hour, true},
		{"expires after 9999", last.Add(-time.Hour), time.Hour + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := mustKeyring(t, key, nil, WithCache(0))
			tok, err := k.Issue("eu-1", "eu", tc.at, tc.ttl)
			if !tc.ok {
				if err == nil {
					t.Fatal("Issue succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			k.now = func() time.Time { return tc.at }
			p, err := k.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if !p.IssuedAt.Equal(tc.at.Truncate(time.Second)) || !p.ExpiresAt.Equal(tc.at.Add(tc.ttl).Truncate(time.Second)) {
				t.Fatalf("Verify = %+v", p)
			}
		})
	}
}

// The time claims are numbers of seconds from 1 to the end of year 9999,
// both included, and keep their fraction of a second.
func TestVerifyTimeClaimValues(t *testing.T) {
	now := time.Now()
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, WithCache(0))
	base := float64(now.Add(time.Hour).Unix())
	for _, tc := range []struct {
		name string
		c    map[string]any
		ok   bool
		iat  time.Time
		exp  time.Time
	}{
		{"iat and nbf at second 1", map[string]any{"iat": 1, "nbf": 1}, true, time.Unix(1, 0), time.Unix(int64(base), 0)},
		{"iat under a second", map[string]any{"iat": 0.5}, false, time.Time{}, time.Time{}},
		{"nbf under a second", map[string]any{"nbf": 0.5}, false, time.Time{}, time.Time{}},
		{"exp at the end of 9999", map[string]any{"exp": maxUnix}, true, time.Unix(now.Unix(), 0), time.Unix(maxUnix, 0)},
		{"exp after 9999", map[string]any{"exp": maxUnix + 1}, false, time.Time{}, time.Time{}},
		{"nbf after 9999", map[string]any{"nbf": maxUnix + 1}, false, time.Time{}, time.Time{}},
		{"fractions", map[string]any{"iat": 1000.25, "exp": base + 0.5}, true, time.Unix(1000, 250e6), time.Unix(int64(base), 500e6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodClaims(now)
			for name, v := range tc.c {
				c[name] = v
			}
			p, err := k.Verify(forge(t, jwt.SigningMethodHS256, []byte(testSecret), c))
			if !tc.ok {
				if err == nil {
					t.Fatalf("Verify accepted it: %+v", p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !p.IssuedAt.Equal(tc.iat) || !p.ExpiresAt.Equal(tc.exp) {
				t.Fatalf("Verify = iat %s exp %s, want %s and %s", p.IssuedAt, p.ExpiresAt, tc.iat, tc.exp)
			}
		})
	}
}

// A token of exactly MaxTokenLen bytes is looked at; one byte more is not.
func TestVerifyMaxLength(t *testing.T) {
	now := time.Now()
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil)
	padded := func(n int) string {
		c := goodClaims(now)
		c["pad"] = strings.Repeat("x", n)
		return forge(t, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	// A byte of claims is 4/3 of a character of token, so some length
	// of padding lands on MaxTokenLen exactly; start just short of it.
	n := max((MaxTokenLen-len(padded(0)))*3/4-8, 0)
	for len(padded(n)) < MaxTokenLen {
		n++
	}
	tok := padded(n)
	if len(tok) != MaxTokenLen {
		t.Fatalf("no padding gives a %d-byte token", MaxTokenLen)
	}
	if p, err := k.Verify(tok); err != nil || p.Server != "eu-1" {
		t.Fatalf("Verify of a %d-byte token = %+v, %v", len(tok), p, err)
	}
	long := padded(n + 1)
	if _, err := k.Verify(long); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("Verify of a %d-byte token: %v", len(long), err)
	}
}

// With an audience, Issue writes it as aud and Verify requires it: aud a
// string or a list of strings that names it. Without one, Issue writes no
// aud and Verify ignores whatever aud a token has.
func TestAudience(t *testing.T) {
	now := time.Now()
	key := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	withAud := mustKeyring(t, key, nil, WithAudience("orders-api"), WithCache(0))
	noAud := mustKeyring(t, key, nil, WithCache(0))

	tok, err := withAud.Issue("eu-1", "", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil || c["aud"] != "orders-api" {
		t.Fatalf("issued claims %v, %v", c, err)
	}
	if _, err := withAud.Verify(tok); err != nil {
		t.Fatalf("a pin it issued: %v", err)
	}
	tok, err = noAud.Issue("eu-1", "", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c = jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil || c["aud"] != nil {
		t.Fatalf("issued claims without an audience %v, %v", c, err)
	}
	if _, err := withAud.Verify(tok); err == nil {
		t.Fatal("a pin without aud verified where an audience is required")
	}

	for _, tc := range []struct {
		name string
		aud  any
		ok   bool // with the audience required
	}{
		{"string", "orders-api", true},
		{"list naming it", []any{"billing", "orders-api"}, true},
		{"missing", nil, false},
		{"other", "billing", false},
		{"prefix", "orders", false},
		{"empty list", []any{}, false},
		{"number", 7, false},
		{"list with a number", []any{"orders-api", 7}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodClaims(now)
			if tc.aud != nil {
				c["aud"] = tc.aud
			}
			tok := forge(t, jwt.SigningMethodHS256, []byte(testSecret), c)
			if _, err := withAud.Verify(tok); (err == nil) != tc.ok {
				t.Errorf("with audience: error %v, want accepted %v", err, tc.ok)
			}
			if _, err := noAud.Verify(tok); err != nil {
				t.Errorf("without audience: %v", err)
			}
		})
	}
}
