package pin

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

var validName = discoverysvc.ValidName

// Every pin Issue writes takes the fast path.
func TestIssuedPinsTakeTheFastPath(t *testing.T) {
	edPriv, _, _ := edKeyFiles(t, nil)
	ecPriv, _, _ := ecKeyFiles(t, false)
	for _, kc := range []KeyConfig{
		{Algorithm: "hs256", Secret: testSecret},
		{Algorithm: "ed25519", File: edPriv},
		{Algorithm: "es256", File: ecPriv},
	} {
		k := mustKeyring(t, kc, nil, WithCache(0))
		tok, err := k.Issue("eu-1", "eu", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p, handled, err := k.verifyFast(tok)
		if !handled || err != nil || p.Server != "eu-1" {
			t.Fatalf("%s: fast path handled=%v, %+v, %v", kc.Algorithm, handled, p, err)
		}
	}
}

// fastKeyring holds every algorithm, with two HS256 keys so that the
// "try each key" loop is exercised.
func fastKeyring(t testing.TB) (*Keyring, map[string]any) {
	edPriv, _, edKey := edKeyFiles(t, fixedEdSeed)
	ecPriv, _, ecKey := ecKeyFiles(t, true)
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret}, []KeyConfig{
		{Algorithm: "hs256", Secret: "a-rotated-out-secret-of-32-bytes"},
		{Algorithm: "ed25519", File: edPriv},
		{Algorithm: "es256", File: ecPriv},
	}, WithCache(0))
	return k, map[string]any{"HS256": []byte(testSecret), "EdDSA": edKey, "ES256": ecKey}
}

// FuzzFastPathMatchesJWT signs arbitrary claims (and arbitrary header
// bytes) with the configured keys and checks that the fast path and
// golang-jwt agree on every token, valid or not.
func FuzzFastPathMatchesJWT(f *testing.F) {
	k, signers := fastKeyring(f)
	f.Add(uint8(0), `{"iss":"sessionpin","srv":"eu-1","exp":4102444800}`, "", uint8(0))
	f.Add(uint8(1), `{"iss":"sessionpin","srv":"eu-1","SRV":"eu-2","exp":4102444800,"rgn":"eu"}`, "", uint8(0))
	f.Add(uint8(2), `{"iss":"sessionpin","srv":"eu-1","srv":"127.0.0.1:9","exp":4.1e9,"iat":1.5}`, "", uint8(1))
	f.Add(uint8(0), `{"iss":"sessionpin","srv":"eu-1","exp":"4102444800"}`, `{"alg":"HS256","typ":"JWT","kid":"1"}`, uint8(0))
	f.Add(uint8(0), `["srv"]`, "", uint8(2))
	// The canonical layout and near misses of it.
	f.Add(uint8(0), `{"exp":4102444800,"iat":1767225600,"iss":"sessionpin","rgn":"eu-west","srv":"eu-1"}`, "", uint8(0))
	f.Add(uint8(1), `{"exp":4102444800,"iat":1767225600,"iss":"sessionpin","srv":"eu-1"}`, "", uint8(0))
	f.Add(uint8(2), `{"exp":04102444800,"iat":1767225600,"iss":"sessionpin","rgn":"","srv":"eu-1"}`, "", uint8(0))
	f.Add(uint8(0), `{"exp":253402300800,"iat":1,"iss":"sessionpin","srv":"eu-1","srv":"eu-2"}`, "", uint8(0))
	f.Add(uint8(0), `{"exp":4102444800,"iat":1767225600,"iss":"sessionpin","rgn":"eu","srv":"e\u0075-1"}`, "", uint8(0))
	f.Add(uint8(0), `{"exp":4102444800,"iat":0,"iss":"sessionpin","srv":"eu-1"} `, "", uint8(0))
	f.Add(uint8(0), `{"iss":"sessionpin","srv":"eu-1","exp":4102444800}`, "", uint8(3))
	f.Add(uint8(0), `{"exp":4102444800,"iat":1767225600,"iss":"sessionpin","srv":"eu-1"}`, "", uint8(4))
	algs := []string{"HS256", "EdDSA", "ES256"}
	f.Fuzz(func(t *testing.T, algIdx uint8, claims, header string, mutate uint8) {
		alg := algs[int(algIdx)%len(algs)]
		if header == "" {
			header = `{"alg":"` + alg + `","typ":"JWT"}`
		}
		signing := b64(header) + "." + b64(claims)
		sig, err := jwt.GetSigningMethod(alg).Sign(signing, signers[alg])
		if err != nil {
			t.Skip()
		}
		token := signing + "." + base64.RawURLEncoding.EncodeToString(sig)
		switch mutate % 5 {
		case 1: // a flipped signature
			token = signing + "." + flip(base64.RawURLEncoding.EncodeToString(sig))
		case 2: // an extra segment
			token += ".x"
		case 3: // a line break, which base64 decoding skips
			token = strings.Replace(token, ".", ".\n", 1)
		case 4: // a signature stretched with line breaks
			token = signing + "." + strings.Repeat("\n", 100) + base64.RawURLEncoding.EncodeToString(sig)
		}
		if len(token) > MaxTokenLen {
			return
		}
		pf, errF := k.verify(token)
		pj, errJ := k.verifyJWT(token)
		if (errF == nil) != (errJ == nil) || pf != pj {
			t.Fatalf("fast path %+v / %v, golang-jwt %+v / %v\ntoken %q", pf, errF, pj, errJ, token)
		}
	})
}

// issueKeyrings returns a signing keyring per algorithm for issuer and
// claim, or nil when NewKeyring refuses them.
func issueKeyrings(t testing.TB, issuer, claim string) []*Keyring {
	edPriv, _, _ := edKeyFiles(t, fixedEdSeed)
	ecPriv, _, _ := ecKeyFiles(t, true)
	var out []*Keyring
	for _, kc := range []KeyConfig{
		{Algorithm: "hs256", Secret: testSecret},
		{Algorithm: "ed25519", File: edPriv},
		{Algorithm: "es256", File: ecPriv},
	} {
		k, err := NewKeyring(kc, nil, issuer, claim, WithCache(0))
		if err != nil {
			return nil
		}
		out = append(out, k)
	}
	return out
}

// checkIssueMatchesJWT compares issueFast with golang-jwt's encoding of the
// same claims: byte for byte for HS256 and EdDSA (deterministic
// signatures), header and claims for ES256 (randomised), and the pin must
// verify through golang-jwt.
func checkIssueMatchesJWT(t *testing.T, k *Keyring, server, region string, iat, exp int64) {
	t.Helper()
	fast, err := k.issueFast(server, region, iat, exp)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := k.issueJWT(server, region, iat, exp)
	if err != nil {
		t.Fatal(err)
	}
	if k.signer.method.Alg() == "ES256" {
		cut := func(s string) string { return s[:strings.LastIndexByte(s, '.')] }
		if cut(fast) != cut(ref) {
			t.Fatalf("ES256 header and claims differ:\nfast %s\njwt  %s", cut(fast), cut(ref))
		}
	} else if fast != ref {
		t.Fatalf("%s token differs:\nfast %s\njwt  %s", k.signer.method.Alg(), fast, ref)
	}
	if _, err := k.verifyJWT(fast); err != nil && exp > 0 && exp <= maxUnix && iat >= 0 && iat <= maxUnix {
		t.Fatalf("golang-jwt rejects the fast token: %v", err)
	}
}

func TestIssueMatchesJWT(t *testing.T) {
	for _, tc := range []struct{ issuer, claim string }{
		{"", ""},
		{"https://idp.example/<&>", "sub"},
		{"é\"\\\u2028", "a"},
		{"x", "zzz"},
		{"x", "rgm"}, // sorts right before rgn
		{"x", "ex"},
	} {
		for _, k := range issueKeyrings(t, tc.issuer, tc.claim) {
			for _, region := range []string{"", "eu-west"} {
				checkIssueMatchesJWT(t, k, "eu-1", region, 1767225600, 1767312000)
			}
		}
	}
}

func FuzzIssueMatchesJWT(f *testing.F) {
	f.Add("sessionpin", "srv", "eu-1", "eu", int64(1767225600), int64(1767312000))
	f.Add("<iss>", "https://x/srv", "a", "", int64(1), int64(253402300799))
	f.Fuzz(func(t *testing.T, issuer, claim, server, region string, iat, exp int64) {
		if !validName(server) || (region != "" && !validName(region)) {
			return
		}
		for _, k := range issueKeyrings(t, issuer, claim) {
			checkIssueMatchesJWT(t, k, server, region, iat, exp)
		}
	})
}

func TestNameByteMatchesValidName(t *testing.T) {
	for c := 0; c < 256; c++ {
		// "a"+c: a lone "." is refused for being only dots, not for its byte.
		if nameByte(byte(c)) != validName("a"+string(rune(c))) && c < 0x80 {
			t.Fatalf("byte %q: nameByte %v, ValidName %v", rune(c), nameByte(byte(c)), validName("a"+string(rune(c))))
		}
		if c >= 0x80 && nameByte(byte(c)) {
			t.Fatalf("byte %#x accepted", c)
		}
	}
	for _, dots := range []string{".", "..", "..."} {
		if name, n := canonicalName([]byte(`"` + dots + `"`)); n != 0 || validName(dots) {
			t.Fatalf("%q accepted: canonicalName %q, ValidName %v", dots, name, validName(dots))
		}
	}
	if !validName(strings.Repeat("a", maxNameLen)) || validName(strings.Repeat("a", maxNameLen+1)) {
		t.Fatal("maxNameLen differs from ValidName's")
	}
}

// Pins written by Issue are read by the canonical parser, not by JSON.
func TestIssuedPinsParseCanonically(t *testing.T) {
	for _, tc := range []struct{ issuer, claim string }{{"", ""}, {"https://idp.example/<&>", "a"}, {"x", "zzz"}} {
		for _, k := range issueKeyrings(t, tc.issuer, tc.claim) {
			for _, region := range []string{"", "eu-west"} {
				tok, err := k.issueFast("eu-1", region, 1767225600, 4102444800)
				if err != nil {
					t.Fatal(err)
				}
				payload := strings.Split(tok, ".")[1]
				c, _ := base64.RawURLEncoding.DecodeString(payload)
				p, ok := parseCanonical(k.layout, c)
				if !ok || p.Server != "eu-1" || p.Region != region || p.ExpiresAt.Unix() != 4102444800 || p.IssuedAt.Unix() != 1767225600 {
					t.Fatalf("parseCanonical(%s) = %+v, %v", c, p, ok)
				}
			}
		}
	}
}

// FuzzCanonicalMatchesJSON holds the canonical claims parser to the JSON
// decoding golang-jwt does: whenever it accepts bytes, JSON must give the
// same pin. (Rejecting is always safe: JSON then decides.)
func FuzzCanonicalMatchesJSON(f *testing.F) {
	f.Add([]byte(`{"exp":4102444800,"iat":1767225600,"iss":"sessionpin","rgn":"eu-west","srv":"eu-1"}`))
	f.Add([]byte(`{"exp":4102444800,"iat":1767225600,"iss":"sessionpin","srv":"eu-1"}`))
	f.Add([]byte(`{"a":"x","exp":253402300799,"iat":1,"iss":"https://idp.example/\u003c\u0026\u003e"}`))
	f.Add([]byte(`{"exp":4102444800,"iat":1767225600,"iss":"sessionpin","rgn":"eu","srv":"eu-1","srv":"x"}`))
	rings := []*Keyring{
		mustKeyring(f, KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil),
	}
	if k, err := NewKeyring(KeyConfig{Algorithm: "hs256", Secret: testSecret}, nil, "https://idp.example/<&>", "a"); err == nil {
		rings = append(rings, k)
	}
	f.Fuzz(func(t *testing.T, c []byte) {
		for _, k := range rings {
			p, ok := parseCanonical(k.layout, c)
			if !ok {
				continue
			}
			claims := jwt.MapClaims{}
			if err := json.Unmarshal(c, &claims); err != nil {
				t.Fatalf("canonical accepted %q, JSON fails: %v", c, err)
			}
			want, err := k.pinFromClaims(claims)
			if err != nil || want != p {
				t.Fatalf("canonical %+v, JSON %+v / %v for %q", p, want, err, c)
			}
		}
	})
}
