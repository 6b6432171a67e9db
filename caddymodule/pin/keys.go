// Package pin issues and verifies pin tokens: JWTs that name the
// server a client is pinned to. It knows nothing of HTTP or Caddy; the edge
// handler reads the token from the request and calls Verify, and calls Issue
// when it places or moves a client.
package pin

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithm names in configuration.
const (
	AlgHS256   = "hs256"
	AlgEd25519 = "ed25519"
	AlgES256   = "es256"
)

// minSecretLen is the shortest HS256 secret accepted: 32 bytes, the size of
// the HMAC-SHA256 output, so the key is not the weakest link.
const minSecretLen = 32

// CheckSecret refuses an HS256 secret shorter than 32 bytes.
func CheckSecret(secret string) error {
	if len(secret) < minSecretLen {
		return fmt.Errorf("secret must be at least %d bytes, got %d", minSecretLen, len(secret))
	}
	return nil
}

// KeyConfig configures one signing or verification key.
type KeyConfig struct {
	// Algorithm is "hs256", "ed25519" or "es256" (case-insensitive).
	Algorithm string `json:"algorithm,omitempty"`
	// Secret is the HS256 shared secret, at least 32 bytes. Only for hs256.
	Secret string `json:"secret,omitempty"`
	// File is a PEM file: for the signing key, the private key (PKCS#8, or
	// SEC 1 "EC PRIVATE KEY" for es256); for a verify key, a public key
	// (PKIX) or a private key, whose public half is used. Only for ed25519
	// and es256; hs256 verify keys use Secret.
	File string `json:"file,omitempty"`
}

// IsZero reports whether no key is configured.
func (c KeyConfig) IsZero() bool { return c == KeyConfig{} }

// key is a loaded key: the JWT method, what verifies with it, and what
// signs with it (nil for a verify-only public key).
type key struct {
	method jwt.SigningMethod
	verify any // []byte, ed25519.PublicKey or *ecdsa.PublicKey
	sign   any // []byte, ed25519.PrivateKey or *ecdsa.PrivateKey
}

// loadKey validates c and loads its key material. private requires a key
// that can sign. Errors do not carry the option name; the caller adds it.
func loadKey(c KeyConfig, private bool) (key, error) {
	alg := strings.ToLower(strings.TrimSpace(c.Algorithm))
	switch alg {
	case AlgHS256:
		if c.File != "" {
			return key{}, errors.New("hs256 takes a secret, not a file")
		}
		if c.Secret == "" {
			return key{}, errors.New("hs256 secret is required")
		}
		if err := CheckSecret(c.Secret); err != nil {
			return key{}, fmt.Errorf("hs256 %w", err)
		}
		secret := []byte(c.Secret)
		return key{method: jwt.SigningMethodHS256, verify: secret, sign: secret}, nil
	case AlgEd25519, AlgES256:
		if c.Secret != "" {
			return key{}, fmt.Errorf("%s takes a PEM file, not a secret", alg)
		}
		if c.File == "" {
			return key{}, fmt.Errorf("%s needs a PEM file", alg)
		}
		data, err := os.ReadFile(c.File)
		if err != nil {
			return key{}, fmt.Errorf("reading %s: %w", c.File, unwrapPathError(err))
		}
		k, err := parsePEM(alg, data, private)
		if err != nil {
			return key{}, fmt.Errorf("%s: %w", c.File, err)
		}
		return k, nil
	case "":
		return key{}, errors.New("algorithm is required (hs256, ed25519 or es256)")
	default:
		return key{}, fmt.Errorf("unsupported algorithm %q (want hs256, ed25519 or es256)", c.Algorithm)
	}
}

// unwrapPathError drops the path that os errors repeat, since the message
// already names the file.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parsePEM reads the first PEM block of data as a key for alg.
func parsePEM(alg string, data []byte, private bool) (key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return key{}, errors.New("no PEM block found")
	}
	var parsed any
	var err error
	isPrivate := true
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "PUBLIC KEY":
		parsed, err = x509.ParsePKIXPublicKey(block.Bytes)
		isPrivate = false
	default:
		return key{}, fmt.Errorf("unsupported PEM block %q (want PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY)", block.Type)
	}
	if err != nil {
		return key{}, fmt.Errorf("parsing %s: %w", strings.ToLower(block.Type), err)
	}
	if private && !isPrivate {
		return key{}, errors.New("a signing key needs a private key, found a public key")
	}
	switch alg {
	case AlgEd25519:
		switch k := parsed.(type) {
		case ed25519.PrivateKey:
			return key{method: jwt.SigningMethodEdDSA, verify: k.Public().(ed25519.PublicKey), sign: k}, nil
		case ed25519.PublicKey:
			return key{method: jwt.SigningMethodEdDSA, verify: k}, nil
		}
	case AlgES256:
		switch k := parsed.(type) {
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P256() {
				return key{}, fmt.Errorf("es256 needs a P-256 key, found %s", k.Curve.Params().Name)
			}
			return key{method: jwt.SigningMethodES256, verify: &k.PublicKey, sign: k}, nil
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return key{}, fmt.Errorf("es256 needs a P-256 key, found %s", k.Curve.Params().Name)
			}
			return key{method: jwt.SigningMethodES256, verify: k}, nil
		}
	}
	return key{}, fmt.Errorf("%s key expected, found %s", alg, keyKind(parsed))
}

// keyKind names a parsed key's type for an error message.
func keyKind(k any) string {
	switch k := k.(type) {
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "an ed25519 key"
	case *ecdsa.PrivateKey:
		return "an ecdsa " + k.Curve.Params().Name + " key"
	case *ecdsa.PublicKey:
		return "an ecdsa " + k.Curve.Params().Name + " key"
	default:
		return fmt.Sprintf("a %T", k)
	}
}
