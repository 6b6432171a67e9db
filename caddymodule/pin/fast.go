package pin

import (
	"bytes"
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
	"time"

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
// Verify checks the signature before decoding any claims, so a forged
// token costs an HMAC (or a signature check) and nothing more, and it
// reuses HMAC states. Pins in the layout Issue writes are read without a
// JSON decoder (parseCanonical). Its result is the same as golang-jwt's:
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
		// Longer than any signature here, unless padded with line breaks,
		// which base64 decoding skips: golang-jwt decides.
		return Pin{}, false, nil
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

	// Pins as Issue writes them are read without a JSON decoder; anything
	// else (other claims, other order, escapes) is decoded as JSON.
	var src [768]byte
	var dst [576]byte
	if len(payload) <= len(src) {
		n := copy(src[:], payload)
		if dn, err := strictB64.Decode(dst[:], src[:n]); err == nil {
			if p, ok := parseCanonical(k.layout, dst[:dn]); ok {
				return p, true, nil
			}
		}
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
	fields []claimSpec // the claim layout shared with the verifier
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

// newLayout returns the claims of a pin in the order json.Marshal writes a
// map's keys (sorted), with their encoded keys and the issuer literal.
func newLayout(issuer, claim string) []claimSpec {
	jsonString := func(s string) []byte {
		b, _ := json.Marshal(s) // escapes exactly as map keys and values are
		return b
	}
	spec := func(name string, kind int) claimSpec {
		return claimSpec{name: name, key: append(jsonString(name), ':'), kind: kind}
	}
	fields := []claimSpec{spec("exp", claimExp), spec("iat", claimIat), spec("iss", claimIss), spec(claim, claimServer), spec(RegionClaim, claimRegion)}
	fields[2].lit = jsonString(issuer)
	slices.SortFunc(fields, func(a, b claimSpec) int { return strings.Compare(a.name, b.name) })
	return fields
}

func newEncoder(k *key, layout []claimSpec) *encoder {
	e := &encoder{
		key:    k,
		header: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"`+k.method.Alg()+`","typ":"JWT"}`)) + ".",
		fields: layout,
	}
	if secret, ok := k.sign.([]byte); ok {
		e.mac = &sync.Pool{New: func() any { return &macState{mac: hmac.New(sha256.New, secret)} }}
	}
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

// parseCanonical reads claims laid out exactly as issueFast writes them for
// this keyring's issuer and claim name. ok is false for any other bytes,
// which the caller then decodes as JSON; when ok, the pin is the one the
// JSON decoding would give (FuzzFastPathMatchesJWT).
func parseCanonical(layout []claimSpec, c []byte) (p Pin, ok bool) {
	if len(c) < 2 || c[0] != '{' {
		return Pin{}, false
	}
	i := 1
	var exp, iat int64
	haveIat, wrote := false, false
	for _, f := range layout {
		at := i
		if wrote {
			if at >= len(c) || c[at] != ',' {
				if f.kind == claimRegion {
					continue
				}
				return Pin{}, false
			}
			at++
		}
		if !bytes.HasPrefix(c[at:], f.key) {
			if f.kind == claimRegion {
				continue // absent: the pin has no region
			}
			return Pin{}, false
		}
		at += len(f.key)
		var end int
		switch f.kind {
		case claimExp, claimIat:
			v, e := canonicalUnix(c[at:])
			if e == 0 {
				return Pin{}, false
			}
			if f.kind == claimExp {
				exp = v
			} else {
				iat, haveIat = v, true
			}
			end = at + e
		case claimIss:
			if !bytes.HasPrefix(c[at:], f.lit) {
				return Pin{}, false
			}
			end = at + len(f.lit)
		case claimServer, claimRegion:
			name, e := canonicalName(c[at:])
			if e == 0 {
				return Pin{}, false
			}
			if f.kind == claimServer {
				p.Server = string(name)
			} else {
				p.Region = string(name)
			}
			end = at + e
		}
		i, wrote = end, true
	}
	if i != len(c)-1 || c[i] != '}' || exp == 0 || !haveIat || p.Server == "" {
		return Pin{}, false
	}
	p.ExpiresAt = time.Unix(exp, 0)
	p.IssuedAt = time.Unix(iat, 0)
	return p, true
}

// canonicalUnix reads a plain decimal in [1, maxUnix] (no sign, no leading
// zero, no fraction or exponent) and returns it with its length; n is 0
// for anything else.
func canonicalUnix(b []byte) (v int64, n int) {
	for n < len(b) && n < 12 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	if n == 0 || b[0] == '0' || v > maxUnix || n == len(b) || (b[n] != ',' && b[n] != '}') {
		return 0, 0
	}
	return v, n
}

// canonicalName reads a JSON string holding a valid server id or region,
// which needs no escapes, and returns its contents and total length.
func canonicalName(b []byte) (name []byte, n int) {
	if len(b) < 3 || b[0] != '"' {
		return nil, 0
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 1 || end > maxNameLen {
		return nil, 0
	}
	onlyDots := true
	for _, ch := range b[1 : 1+end] {
		if !nameByte(ch) {
			return nil, 0
		}
		onlyDots = onlyDots && ch == '.'
	}
	if onlyDots { // ValidName refuses "." and ".."
		return nil, 0
	}
	return b[1 : 1+end], end + 2
}

// maxNameLen and nameByte (with canonicalName's refusal of names made only
// of dots) are discoverysvc.ValidName's rule, which
// TestNameByteMatchesValidName keeps in step.
const maxNameLen = 64

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
