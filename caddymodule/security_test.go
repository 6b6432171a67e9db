package caddymodule_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/internal/poll"
)

// TestUntrustedPins: tokens that are not valid pins are treated as no pin
// (placement and a fresh pin); a validly signed pin never makes the edge
// dial anything but a registry server.
func TestUntrustedPins(t *testing.T) {
	esKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&esKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubFile := filepath.Join(t.TempDir(), "verify-es256.pem")
	if err := os.WriteFile(pubFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	f := newFixture(t, "verify_key es256 "+pubFile)
	f.reg.put("eu-2", "eu-west", newBackend(t, "eu-2").srv.URL, 0.2, false)
	f.reg.put("us-1", "us-east", newBackend(t, "us-1").srv.URL, 0.1, false)
	f.waitRouted("eu-2", "eu-west")
	f.waitRouted("us-1", "us-east")

	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "sessionpin", "srv": "us-1", "rgn": "us-east", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, c jwt.MapClaims, key any) string {
		tok, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	secret := []byte(testSecret)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	otherES, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b64 := base64.RawURLEncoding.EncodeToString

	t.Run("valid pins are honoured (hs256 key and es256 verify key)", func(t *testing.T) {
		for name, tok := range map[string]string{
			"hs256": sign(jwt.SigningMethodHS256, claims(nil), secret),
			"es256": sign(jwt.SigningMethodES256, claims(nil), esKey),
		} {
			if r := f.do(request{pin: tok}); r.server() != "us-1" || r.pinOut() != "" {
				t.Errorf("%s: got %q pin %q, want us-1 and no new pin", name, r.server(), r.pinOut())
			}
		}
	})

	bad := map[string]string{
		"alg none": b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
			b64([]byte(`{"iss":"sessionpin","srv":"us-1","exp":`+itoa(now.Add(time.Hour).Unix())+`}`)) + ".",
		"wrong hs256 key":                        sign(jwt.SigningMethodHS256, claims(nil), []byte("another-secret-0123456789abcdefghij")),
		"hs256 signed with the es256 public key": sign(jwt.SigningMethodHS256, claims(nil), pubPEM),
		"hs256 signed with the public key DER":   sign(jwt.SigningMethodHS256, claims(nil), pubDER),
		"es256 from an unknown key":              sign(jwt.SigningMethodES256, claims(nil), otherES),
		"eddsa, not configured":                  sign(jwt.SigningMethodEdDSA, claims(nil), edKey),
		"hs384 with the right secret":            sign(jwt.SigningMethodHS384, claims(nil), secret),
		"wrong iss":                              sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["iss"] = "evil" }), secret),
		"no iss":                                 sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { delete(c, "iss") }), secret),
		"expired":                                sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }), secret),
		"no exp":                                 sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { delete(c, "exp") }), secret),
		"server claim not a string":              sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["srv"] = 7 }), secret),
		"oversized":                              sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("p", 5000) }), secret),
		"malformed: one part":                    "not-a-token",
		"malformed: bad base64":                  "a.b.c",
		"malformed: dots":                        "....",
		"tampered payload": func() string {
			parts := strings.Split(sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["srv"] = "eu-1" }), secret), ".")
			parts[1] = b64([]byte(`{"iss":"sessionpin","srv":"us-1","exp":` + itoa(now.Add(time.Hour).Unix()) + `}`))
			return strings.Join(parts, ".")
		}(),
	}
	for name, tok := range bad {
		t.Run("no pin: "+name, func(t *testing.T) {
			for _, req := range []request{{pin: tok}, {cookie: tok}} {
				r := f.do(req)
				if r.status != http.StatusOK || r.server() != "eu-2" {
					t.Fatalf("got %d from %q, want placement on eu-2", r.status, r.server())
				}
				if r.pinOut() == "" {
					t.Fatal("an invalid pin must be replaced by a new one")
				}
			}
		})
	}

	t.Run("a signed pin naming an unknown id: 503, never proxied", func(t *testing.T) {
		r := f.do(request{pin: sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["srv"] = "nobody" }), secret)})
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", r.status)
		}
		assertJSON(t, r.body, map[string]any{"error": "pinned_server_unavailable", "server": "nobody", "retryAfterSeconds": 30.0})
	})

	t.Run("a signed pin naming an address is never dialled", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var accepted atomic.Int64
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		for _, claim := range []string{l.Addr().String(), "http://" + l.Addr().String(), "127.0.0.1"} {
			r := f.do(request{pin: sign(jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["srv"] = claim }), secret)})
			if r.server() != "eu-2" && r.status != http.StatusServiceUnavailable {
				t.Errorf("claim %q: got %d from %q", claim, r.status, r.server())
			}
		}
		if n := accepted.Load(); n != 0 {
			t.Fatalf("the edge dialled the address in a pin %d times", n)
		}
	})
}

// TestAuthorizationBearer: with `header Authorization` the pin is the Bearer
// token, e.g. an identity provider's access token carrying the server claim,
// verified with a verify_key.
func TestAuthorizationBearer(t *testing.T) {
	const idpSecret = "identity-provider-secret-0123456789abcdef"
	f := newFixture(t, "header Authorization\n\t\tverify_key hs256 "+idpSecret+"\n\t\tissuer https://idp.example\n\t\tclaim backend")
	f.reg.put("eu-2", "eu-west", newBackend(t, "eu-2").srv.URL, 0.2, false)
	us1 := newBackend(t, "us-1")
	f.reg.put("us-1", "us-east", us1.srv.URL, 0.1, false)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://idp.example", "sub": "alice", "backend": "us-1", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(idpSecret))
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, eventuallyTimeout, "routed on the bearer token", func() error {
		r := f.do(request{headers: map[string]string{"Authorization": "Bearer " + tok}})
		if r.server() != "us-1" {
			return errString(r.server())
		}
		if r.pinOut() != "" {
			t.Fatalf("a pinned request got a new pin")
		}
		return nil
	})
	if got := us1.header().Get("Authorization"); got != "Bearer "+tok {
		t.Errorf("the app got Authorization %q, want the bearer token passed on as it came", got)
	}
	// Without the bearer token, placement pins through X-Session-Pin.
	r := f.do(request{headers: map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}})
	if r.server() != "eu-2" || r.pinOut() == "" {
		t.Fatalf("got %q pin %q, want placement on eu-2 with a pin", r.server(), r.pinOut())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
