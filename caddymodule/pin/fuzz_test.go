package pin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// FuzzVerify feeds arbitrary tokens to keyrings holding every algorithm, with
// and without the cache, and checks that they agree, never panic, and only
// accept tokens naming a valid server id. The seeds in testdata/fuzz are
// valid pins (exp in 2100) for the fixed keys below, plus near misses.
func FuzzVerify(f *testing.F) {
	edPriv, edPub, _ := edKeyFiles(f, fixedEdSeed)
	ecPriv, _, _ := ecKeyFiles(f, true)
	verify := []KeyConfig{{Algorithm: "ed25519", File: edPub}, {Algorithm: "es256", File: ecPriv}}
	sign := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	cached := mustKeyring(f, sign, verify)
	plain := mustKeyring(f, sign, verify, WithCache(0))

	// Seeds made at run time too, so the target has valid tokens even
	// without the corpus directory.
	now := time.Now()
	hsTok, _ := cached.Issue("eu-1", "eu-west", now, time.Hour)
	f.Add(hsTok)
	edSigner := mustKeyring(f, KeyConfig{Algorithm: "ed25519", File: edPriv}, nil)
	edTok, _ := edSigner.Issue("us-2", "", now, time.Hour)
	f.Add(edTok)
	esSigner := mustKeyring(f, KeyConfig{Algorithm: "es256", File: ecPriv}, nil)
	esTok, _ := esSigner.Issue("ap-3", "ap", now, time.Hour)
	f.Add(esTok)
	wrote, _ := cached.Sign(Pin{Server: "eu-1", Region: "eu-west", IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		LastWrite: Write{At: now, Origin: "us-east"}})
	f.Add(wrote)
	f.Add("")
	f.Add("a.b.c")

	f.Fuzz(func(t *testing.T, token string) {
		p1, err1 := cached.Verify(token)
		p2, err2 := plain.Verify(token)
		// Twice through the cache: a hit must equal the miss.
		p3, err3 := cached.Verify(token)
		if (err1 == nil) != (err2 == nil) || (err1 == nil) != (err3 == nil) || p1 != p2 || p1 != p3 {
			t.Fatalf("cache and no cache disagree: %+v/%v, %+v/%v, %+v/%v", p1, err1, p2, err2, p3, err3)
		}
		if err1 != nil {
			if !errors.Is(err1, ErrInvalid) || p1 != (Pin{}) {
				t.Fatalf("bad rejection: %+v, %v", p1, err1)
			}
			return
		}
		if len(token) > MaxTokenLen {
			t.Fatalf("accepted a %d-byte token", len(token))
		}
		if !schema.ValidName(p1.Server) || (p1.Region != "" && !schema.ValidName(p1.Region)) {
			t.Fatalf("accepted an invalid server or region: %+v", p1)
		}
		if p1.ExpiresAt.IsZero() {
			t.Fatalf("accepted a pin without exp: %+v", p1)
		}
		if w := p1.LastWrite; !w.IsZero() && !schema.ValidName(w.Origin) || w.IsZero() && w.Origin != "" {
			t.Fatalf("accepted a bad last write: %+v", p1)
		}
	})
}

// The first three corpus seeds are valid pins for the fuzz keys (HS256,
// EdDSA, ES256), so the fuzzer starts from tokens that get past the
// signature; this keeps them so.
func TestFuzzSeedsVerify(t *testing.T) {
	_, edPub, _ := edKeyFiles(t, fixedEdSeed)
	ecPriv, _, _ := ecKeyFiles(t, true)
	k := mustKeyring(t, KeyConfig{Algorithm: "hs256", Secret: testSecret},
		[]KeyConfig{{Algorithm: "ed25519", File: edPub}, {Algorithm: "es256", File: ecPriv}})
	for i, want := range []string{"eu-1", "us-2", "ap-3"} {
		data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", fmt.Sprintf("seed-%02d", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[1])
		tok, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "string("), ")"))
		if err != nil {
			t.Fatal(err)
		}
		if p, err := k.Verify(tok); err != nil || p.Server != want {
			t.Fatalf("seed %d: %+v, %v", i+1, p, err)
		}
	}
}
