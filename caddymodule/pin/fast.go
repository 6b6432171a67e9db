package pin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/golang-jwt/jwt/v5"
)

// The fast paths write pins and verify tokens whose header is byte for
// byte the one golang-jwt writes ({"alg":"<ALG>","typ":"JWT"}), which is
// every pin this edge or its peers issue.
//
// Issue writes exactly the bytes golang-jwt would for the same claims
// (json.Marshal of a map: keys sorted, HTML-escaped strings), without the
// map, the reflection and the intermediate strings; FuzzIssueMatchesJWT
// holds it to that.
//
// Verify It checks the signature before decoding any claims,
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

// encoder writes pins for one signing key.
type encoder struct {
	key    *key
	header string      // the header segment and its "."
	mac    *sync.Pool  // HS256: *macState for the signing secret
	fields []claimSpec // the claims in json.Marshal's order (sorted keys)
}

// claimSpec is one claim of a pin: its JSON key with the colon, and which
// value goes there.
type claimSpec struct {
	name string // the claim name, for sorting
	key  []byte // `"name":`
	kind int
	lit  []byte // claimIss: the JSON string
}

const (
	claimExp = iota
	claimIat
	claimIss
	claimServer
	claimRegion
)

func newEncoder(k *key, issuer, claim string) *encoder {
	e := &encoder{
		key:    k,
		header: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"`+k.method.Alg()+`","typ":"JWT"}`)) + ".",
	}
	if secret, ok := k.sign.([]byte); ok {
		e.mac = &sync.Pool{New: func() any { return &macState{mac: hmac.New(sha256.New, secret)} }}
	}
	jsonString := func(s string) []byte {
		b, _ := json.Marshal(s) // escapes exactly as map keys and values are
		return b
	}
	spec := func(name string, kind int) claimSpec {
		return claimSpec{name: name, key: append(jsonString(name), ':'), kind: kind}
	}
	e.fields = []claimSpec{spec("exp", claimExp), spec("iat", claimIat), spec("iss", claimIss), spec(claim, claimServer), spec(RegionClaim, claimRegion)}
	e.fields[2].lit = jsonString(issuer)
	slices.SortFunc(e.fields, func(a, b claimSpec) int { return strings.Compare(a.name, b.name) })
	return e
}

// issueFast writes a pin. serverID and region are valid names (checked by
// Issue), so they need no JSON escaping.
func (k *Keyring) issueFast(serverID, region string, iat, exp int64) (string, error) {
	e := k.enc
	var claims [256]byte
	c := append(claims[:0], '{')
	first := true
	for _, f := range e.fields {
		if f.kind == claimRegion && region == "" {
			continue
		}
		if !first {
			c = append(c, ',')
		}
		first = false
		c = append(c, f.key...)
		switch f.kind {
		case claimExp:
			c = strconv.AppendInt(c, exp, 10)
		case claimIat:
			c = strconv.AppendInt(c, iat, 10)
		case claimIss:
			c = append(c, f.lit...)
		case claimServer:
			c = append(append(append(c, '"'), serverID...), '"')
		case claimRegion:
			c = append(append(append(c, '"'), region...), '"')
		}
	}
	c = append(c, '}')

	// One buffer for the whole token: header, claims, then the signature
	// over what precedes it.
	b64 := base64.RawURLEncoding
	buf := make([]byte, 0, len(e.header)+b64.EncodedLen(len(c))+1+b64.EncodedLen(64))
	buf = append(buf, e.header...)
	buf = b64.AppendEncode(buf, c)
	signed := len(buf)
	var sig []byte
	if e.mac != nil {
		st := e.mac.Get().(*macState)
		st.mac.Reset()
		st.mac.Write(buf[:signed])
		sig = st.mac.Sum(st.sum[:0])
		buf = append(buf, '.')
		buf = b64.AppendEncode(buf, sig)
		e.mac.Put(st)
	} else {
		var err error
		if sig, err = e.key.method.Sign(string(buf[:signed]), e.key.sign); err != nil {
			return "", err
		}
		buf = append(buf, '.')
		buf = b64.AppendEncode(buf, sig)
	}
	return string(buf), nil
}
