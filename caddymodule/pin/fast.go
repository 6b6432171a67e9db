package pin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/golang-jwt/jwt/v5"
)

// The fast path verifies tokens whose header is byte for byte one that
// Issue writes ({"alg":"<ALG>","typ":"JWT"}), which is every pin this edge
// or its peers issue. It checks the signature before decoding any claims,
// so a forged token costs an HMAC (or a signature check) and nothing more,
// and it reuses HMAC states. Its result is the same as golang-jwt's:
// same split into three segments, same strict base64url decoding, the
// same keys tried for the same algorithm, the same json.Unmarshal into
// jwt.MapClaims, the same claim checks; FuzzFastPathMatchesJWT holds it to
// that. Any other header (a kid, another typ, an IdP's token) goes through
// golang-jwt.

// strictB64 is what jwt.WithStrictDecoding uses.
var strictB64 = base64.RawURLEncoding.Strict()

// fastAlg is one algorithm the fast path knows.
type fastAlg struct {
	method jwt.SigningMethod
	keys   []any        // the verification keys of this algorithm
	macs   []*sync.Pool // HS256 only: a pool of *macState per key
}

// buildFast indexes the canonical header segment of each configured
// algorithm.
func buildFast(byAlg map[string][]jwt.VerificationKey) map[string]*fastAlg {
	fast := make(map[string]*fastAlg, len(byAlg))
	for alg, keys := range byAlg {
		f := &fastAlg{method: jwt.GetSigningMethod(alg)}
		for _, key := range keys {
			f.keys = append(f.keys, key)
			if secret, ok := key.([]byte); ok {
				f.macs = append(f.macs, &sync.Pool{New: func() any { return &macState{mac: hmac.New(sha256.New, secret)} }})
			}
		}
		header := `{"alg":"` + alg + `","typ":"JWT"}`
		fast[base64.RawURLEncoding.EncodeToString([]byte(header))] = f
	}
	return fast
}

// verifyFast verifies token when its header is a canonical one; handled is
// false when the token is not for the fast path.
func (k *Keyring) verifyFast(token string) (p Pin, handled bool, err error) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok {
		return Pin{}, false, nil
	}
	f := k.fast[head]
	if f == nil {
		return Pin{}, false, nil
	}
	payload, sigSeg, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sigSeg, '.') >= 0 {
		return Pin{}, false, nil // let golang-jwt word the error
	}
	signing := token[:len(head)+1+len(payload)]

	// The largest signature here is ES256's 64 bytes (86 characters).
	var segBuf [128]byte
	var sigBuf [96]byte
	if len(sigSeg) > len(segBuf) {
		return Pin{}, true, fmt.Errorf("%w: signature too long", ErrInvalid)
	}
	n := copy(segBuf[:], sigSeg)
	sl, err := strictB64.Decode(sigBuf[:], segBuf[:n])
	if err != nil {
		return Pin{}, true, fmt.Errorf("%w: malformed signature: %w", ErrInvalid, err)
	}
	sig := sigBuf[:sl]
	if !f.verify(signing, sig) {
		return Pin{}, true, fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrSignatureInvalid)
	}

	claimBytes, err := strictB64.DecodeString(payload)
	if err != nil {
		return Pin{}, true, fmt.Errorf("%w: malformed claims: %w", ErrInvalid, err)
	}
	claims := jwt.MapClaims{}
	if err := json.Unmarshal(claimBytes, &claims); err != nil {
		return Pin{}, true, fmt.Errorf("%w: malformed claims: %w", ErrInvalid, err)
	}
	p, err = k.pinFromClaims(claims)
	return p, true, err
}

// verify reports whether sig signs signing with any key of the algorithm.
func (f *fastAlg) verify(signing string, sig []byte) bool {
	if f.macs == nil {
		// A copy, so that the caller's stack buffer is not moved to the
		// heap on the HMAC path too; next to an asymmetric verification
		// it costs nothing.
		sig = append([]byte(nil), sig...)
		for _, key := range f.keys {
			if f.method.Verify(signing, sig, key) == nil {
				return true
			}
		}
		return false
	}
	for _, pool := range f.macs {
		if hmacEqual(pool, signing, sig) {
			return true
		}
	}
	return false
}

// macState is a reusable HMAC with its buffers: they live here rather than
// on the stack because passing them to hash.Hash (an interface) would move
// them to the heap on every call.
type macState struct {
	mac hash.Hash
	buf [512]byte
	sum [sha256.Size]byte
}

// hmacEqual computes HMAC-SHA256 of signing with a pooled state and
// compares it to sig in constant time.
func hmacEqual(pool *sync.Pool, signing string, sig []byte) bool {
	st := pool.Get().(*macState)
	st.mac.Reset()
	// Write in chunks: hash.Hash takes []byte, and converting the string
	// would allocate a copy of the token.
	for s := signing; len(s) > 0; {
		n := copy(st.buf[:], s)
		st.mac.Write(st.buf[:n])
		s = s[n:]
	}
	ok := hmac.Equal(sig, st.mac.Sum(st.sum[:0]))
	pool.Put(st)
	return ok
}
