package pin

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testSecret is a valid HS256 secret (32 bytes).
const testSecret = "0123456789abcdef0123456789abcdef"

// fixedECKey is a P-256 key used where a test needs the same key across runs
// (the fuzz corpus). It protects nothing.
const fixedECKey = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIOk2nvnYOk1gc5lyRxubgr7zF0hY13CBUb+Avk3DvIzzoAoGCCqGSM49
AwEHoUQDQgAEAJ9mOVwYRge34JHnlWPstIP4PfajWkPQd+zQyI0F4dqwziUXP/VR
f4jtOfp7aRynCNxF8gBRPvrRIkNcCZ2zbQ==
-----END EC PRIVATE KEY-----
`

// fixedEdSeed derives the Ed25519 key used across runs.
var fixedEdSeed = []byte("sessionpin-fuzz-ed25519-seed-32b")

// writePEM writes a PEM block into dir and returns its path.
func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// edKeyFiles writes an Ed25519 key pair (from seed, or random when nil) as
// PKCS#8 private and PKIX public PEM files.
func edKeyFiles(t testing.TB, seed []byte) (priv, pub string, key ed25519.PrivateKey) {
	t.Helper()
	if seed == nil {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	} else {
		key = ed25519.NewKeyFromSeed(seed)
	}
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, "ed.pem", "PRIVATE KEY", der), writePEM(t, dir, "ed.pub.pem", "PUBLIC KEY", pubDER), key
}

// ecKeyFiles writes a P-256 key pair as SEC 1 private and PKIX public PEM
// files; fixed selects fixedECKey.
func ecKeyFiles(t testing.TB, fixed bool) (priv, pub string, key *ecdsa.PrivateKey) {
	t.Helper()
	if fixed {
		block, _ := pem.Decode([]byte(fixedECKey))
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	dir := t.TempDir()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, "ec.pem", "EC PRIVATE KEY", der), writePEM(t, dir, "ec.pub.pem", "PUBLIC KEY", pubDER), key
}

func mustKeyring(t testing.TB, sign KeyConfig, verify []KeyConfig, opts ...Option) *Keyring {
	t.Helper()
	k, err := NewKeyring(sign, verify, "", "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// forge signs arbitrary claims with an arbitrary method and key, the way an
// attacker or an identity provider would, bypassing Issue's checks.
func forge(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// goodClaims are the claims of a valid pin issued at now.
func goodClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": DefaultIssuer, "srv": "eu-1", "rgn": "eu-west", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}
