package pin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewKeyringErrors(t *testing.T) {
	dir := t.TempDir()
	edPriv, edPub, _ := edKeyFiles(t, nil)
	ecPriv, ecPub, _ := ecKeyFiles(t, false)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384DER, _ := x509.MarshalECPrivateKey(p384)
	p384File := writePEM(t, dir, "p384.pem", "EC PRIVATE KEY", p384DER)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaFile := writePEM(t, dir, "rsa.pem", "PRIVATE KEY", rsaDER)
	certFile := writePEM(t, dir, "cert.pem", "CERTIFICATE", []byte("x"))
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	badDER := writePEM(t, dir, "bad.pem", "PRIVATE KEY", []byte("garbage"))

	hs := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	tests := []struct {
		name   string
		sign   KeyConfig
		verify []KeyConfig
		claim  string
		want   string
	}{
		{"nothing configured", KeyConfig{}, nil, "", "key: a signing key or at least one verify_key is required"},
		{"short secret", KeyConfig{Algorithm: "hs256", Secret: "short"}, nil, "", "key: hs256 secret must be at least 32 bytes"},
		{"missing secret", KeyConfig{Algorithm: "hs256"}, nil, "", "key: hs256 secret is required"},
		{"hs256 with a file", KeyConfig{Algorithm: "hs256", Secret: testSecret, File: edPriv}, nil, "", "key: hs256 takes a secret, not a file"},
		{"unsupported algorithm", KeyConfig{Algorithm: "rs256", File: rsaFile}, nil, "", `key: unsupported algorithm "rs256"`},
		{"no algorithm", KeyConfig{Secret: testSecret}, nil, "", "key: algorithm is required"},
		{"ed25519 without file", KeyConfig{Algorithm: "ed25519"}, nil, "", "key: ed25519 needs a PEM file"},
		{"ed25519 with a secret", KeyConfig{Algorithm: "ed25519", Secret: testSecret}, nil, "", "key: ed25519 takes a PEM file, not a secret"},
		{"missing file", KeyConfig{Algorithm: "ed25519", File: "/nonexistent/x.pem"}, nil, "", "key: reading /nonexistent/x.pem: no such file"},
		{"not PEM", KeyConfig{Algorithm: "es256", File: notPEM}, nil, "", "key: " + notPEM + ": no PEM block found"},
		{"bad DER", KeyConfig{Algorithm: "es256", File: badDER}, nil, "", "parsing private key"},
		{"certificate block", KeyConfig{Algorithm: "es256", File: certFile}, nil, "", `unsupported PEM block "CERTIFICATE"`},
		{"public key to sign", KeyConfig{Algorithm: "ed25519", File: edPub}, nil, "", "key: " + edPub + ": a signing key needs a private key"},
		{"es256 key for ed25519", KeyConfig{Algorithm: "ed25519", File: ecPriv}, nil, "", "ed25519 key expected, found an ecdsa P-256 key"},
		{"ed25519 key for es256", KeyConfig{Algorithm: "es256", File: edPriv}, nil, "", "es256 key expected, found an ed25519 key"},
		{"P-384 for es256", KeyConfig{Algorithm: "es256", File: p384File}, nil, "", "es256 needs a P-256 key, found P-384"},
		{"es256 public key for ed25519", hs, []KeyConfig{{Algorithm: "ed25519", File: ecPub}}, "", "verify_key 1: " + ecPub + ": ed25519 key expected, found an ecdsa P-256 key"},
		{"rsa for es256", KeyConfig{Algorithm: "es256", File: rsaFile}, nil, "", "es256 key expected, found a *rsa.PrivateKey"},
		{"bad second verify key", hs, []KeyConfig{{Algorithm: "es256", File: ecPub}, {Algorithm: "es256", File: "/x.pem"}}, "", "verify_key 2: reading /x.pem"},
		{"short verify secret", hs, []KeyConfig{{Algorithm: "hs256", Secret: "x"}}, "", "verify_key 1: hs256 secret must be at least 32 bytes"},
		{"reserved claim", hs, nil, "exp", `claim: "exp" is a reserved claim`},
		{"rgn claim", hs, nil, "rgn", `claim: "rgn" is a reserved claim`},
		{"control character claim", hs, nil, "s\nrv", "claim: must not contain control characters"},
		{"invalid UTF-8 claim", hs, nil, "\xf7", "claim: must be at most 256 bytes of UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeyring(tt.sign, tt.verify, "", tt.claim)
			if err == nil {
				t.Fatalf("NewKeyring succeeded, want error containing %q", tt.want)
			}
			if k != nil {
				t.Fatal("NewKeyring returned a keyring with an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Fatalf("error %q does not start lowercase", msg)
			}
		})
	}
}

func TestKeyFormats(t *testing.T) {
	dir := t.TempDir()
	_, _, ec := ecKeyFiles(t, false)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPKCS8 := writePEM(t, dir, "ec-pkcs8.pem", "PRIVATE KEY", pkcs8)
	edPriv, _, _ := edKeyFiles(t, nil)
	for _, kc := range []KeyConfig{
		{Algorithm: "es256", File: ecPKCS8},
		{Algorithm: " ES256 ", File: ecPKCS8},
		{Algorithm: "Ed25519", File: edPriv},
	} {
		if _, err := NewKeyring(kc, nil, "", ""); err != nil {
			t.Errorf("%+v: %v", kc, err)
		}
	}
}

func TestNewKeyringIssuerErrors(t *testing.T) {
	hs := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	for _, issuer := range []string{"\xf7", "a\tb", strings.Repeat("i", 257)} {
		if _, err := NewKeyring(hs, nil, issuer, ""); err == nil || !strings.HasPrefix(err.Error(), "issuer: ") {
			t.Errorf("issuer %q: error %v", issuer, err)
		}
	}
}

// The limits on an issuer and a claim name are inclusive, and a space is
// not a control character: such a keyring issues pins and verifies them.
func TestIssuerAndClaimLimits(t *testing.T) {
	hs := KeyConfig{Algorithm: "hs256", Secret: testSecret}
	for _, tc := range []struct{ issuer, claim string }{
		{strings.Repeat("i", 256), ""},
		{"https://idp.example/realm one", ""},
		{"", strings.Repeat("c", 256)},
		{"", "server id"},
	} {
		k, err := NewKeyring(hs, nil, tc.issuer, tc.claim, WithCache(0))
		if err != nil {
			t.Errorf("issuer %q claim %q: %v", tc.issuer, tc.claim, err)
			continue
		}
		tok, err := k.Issue("eu-1", "", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := k.Verify(tok); err != nil || p.Server != "eu-1" {
			t.Errorf("issuer %q claim %q: Verify = %+v, %v", tc.issuer, tc.claim, p, err)
		}
	}
}
