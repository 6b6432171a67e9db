package pin

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

// Defaults of the token format (SPEC §5).
const (
	DefaultIssuer = "sessionpin"
	DefaultClaim  = "srv"
	// RegionClaim carries the pinned server's region.
	RegionClaim = "rgn"
	// MaxTokenLen bounds what Verify looks at: a pin is about 200 bytes, and
	// an identity provider's access token rarely passes 2 KiB, so anything
	// longer is refused before any decoding work.
	MaxTokenLen = 4096
)

// ErrInvalid is wrapped by every error Verify returns, so the caller can
// tell a bad token ("treat as no pin") from its own failures.
var ErrInvalid = errors.New("invalid pin")

// Pin is what a verified token says.
type Pin struct {
	// Server is the pinned server id (the configured claim, default "srv").
	Server string
	// Region is the server's region ("rgn"); empty when the token has none.
	Region string
	// IssuedAt is "iat"; zero when the token has none.
	IssuedAt time.Time
	// ExpiresAt is "exp", which every pin must carry.
	ExpiresAt time.Time
}

// Usable reports whether the pin may be used at now with the given grace
// past expiry: 0 for ordinary requests, refresh_grace for refresh.
func (p Pin) Usable(now time.Time, grace time.Duration) bool {
	if p.ExpiresAt.IsZero() {
		return false
	}
	if grace < 0 {
		grace = 0
	}
	return now.Before(p.ExpiresAt.Add(grace))
}

// Keyring signs and verifies pins. It is immutable after NewKeyring and safe
// for concurrent use.
type Keyring struct {
	issuer string
	claim  string
	signer *key // nil on a verify-only edge
	// keysets is, per JWT alg, the verification keys of that algorithm as a
	// ready jwt.VerificationKeySet, so that a token is only ever tried
	// against keys of the algorithm it claims and the key lookup does not
	// allocate.
	keysets map[string]any
	parser  *jwt.Parser
	// fast maps the header segment Issue writes for each configured
	// algorithm to its keys (fast.go).
	fast map[string]*fastAlg
	// layout is how Issue lays out a pin's claims, which Verify reads
	// without a JSON decoder.
	layout []claimSpec
	enc    *encoder // nil on a verify-only edge
	cache  *cache   // nil when disabled
	now    func() time.Time
}

// Option tunes a Keyring.
type Option func(*options)

type options struct {
	cacheEntries int
	now          func() time.Time
}

// DefaultCacheEntries is the default size of the verified-token cache.
const DefaultCacheEntries = 16384

// WithCache sets how many verified tokens are remembered (default
// DefaultCacheEntries); 0 turns the cache off.
func WithCache(entries int) Option {
	return func(o *options) { o.cacheEntries = max(entries, 0) }
}

// WithClock sets the clock the cache uses to drop expired entries; tests
// use it. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// reservedClaims are the claims Issue writes itself; the server claim must
// not collide with them.
var reservedClaims = []string{"iss", "iat", "exp", "nbf", RegionClaim}

// NewKeyring loads the signing key sign and the verification-only keys
// verify. sign may be the zero KeyConfig when verify keys are given (a
// verify-only edge, e.g. routing on an identity provider's tokens); Issue
// then returns an error. issuer defaults to "sessionpin" and claim, the
// claim naming the server, to "srv". Errors name the option: "key: ...",
// "verify_key 2: ...", "claim: ...".
func NewKeyring(sign KeyConfig, verify []KeyConfig, issuer, claim string, opts ...Option) (*Keyring, error) {
	o := options{cacheEntries: DefaultCacheEntries, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if issuer == "" {
		issuer = DefaultIssuer
	}
	if claim == "" {
		claim = DefaultClaim
	}
	if err := checkClaimName(claim); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if err := checkText(issuer); err != nil {
		// JSON would turn invalid UTF-8 into U+FFFD, and no pin would
		// ever match the configured issuer again.
		return nil, fmt.Errorf("issuer: %w", err)
	}
	k := &Keyring{issuer: issuer, claim: claim, now: o.now}
	byAlg := map[string][]jwt.VerificationKey{}
	var algs []string
	add := func(kk key) {
		alg := kk.method.Alg()
		if _, ok := byAlg[alg]; !ok {
			algs = append(algs, alg)
		}
		byAlg[alg] = append(byAlg[alg], kk.verify)
	}
	if !sign.IsZero() {
		kk, err := loadKey(sign, true)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		k.signer = &kk
		add(kk)
	}
	for i, vc := range verify {
		kk, err := loadKey(vc, false)
		if err != nil {
			return nil, fmt.Errorf("verify_key %d: %w", i+1, err)
		}
		add(kk)
	}
	if len(algs) == 0 {
		return nil, errors.New("key: a signing key or at least one verify_key is required")
	}
	k.keysets = make(map[string]any, len(byAlg))
	for alg, keys := range byAlg {
		k.keysets[alg] = jwt.VerificationKeySet{Keys: keys}
	}
	k.fast = buildFast(byAlg)
	k.layout = newLayout(issuer, claim)
	if k.signer != nil {
		k.enc = newEncoder(k.signer, k.layout)
	}
	k.parser = jwt.NewParser(
		jwt.WithValidMethods(algs),
		// Expiry is the caller's decision (refresh accepts expired pins
		// within a grace), and iss is checked below with the claim.
		jwt.WithoutClaimsValidation(),
		// One token, one encoding: no padding, no stray bits.
		jwt.WithStrictDecoding(),
	)
	if o.cacheEntries > 0 {
		k.cache = newCache(o.cacheEntries)
	}
	return k, nil
}

func checkClaimName(claim string) error {
	if err := checkText(claim); err != nil {
		return err
	}
	for _, c := range reservedClaims {
		if claim == c {
			return fmt.Errorf("%q is a reserved claim", claim)
		}
	}
	return nil
}

// checkText accepts what a claim name or issuer may be: at most 256 bytes
// of UTF-8 without control characters.
func checkText(s string) error {
	if len(s) > 256 || !utf8.ValidString(s) {
		return errors.New("must be at most 256 bytes of UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

// Issuer returns the iss the keyring writes and requires.
func (k *Keyring) Issuer() string { return k.issuer }

// Claim returns the name of the claim that carries the server id.
func (k *Keyring) Claim() string { return k.claim }

// CanIssue reports whether the keyring has a signing key.
func (k *Keyring) CanIssue() bool { return k.signer != nil }

// Issue signs a pin to serverID in region, valid from now for ttl.
func (k *Keyring) Issue(serverID, region string, now time.Time, ttl time.Duration) (string, error) {
	if k.signer == nil {
		return "", errors.New("issuing pin: no signing key configured (verify-only keyring)")
	}
	if !discoverysvc.ValidName(serverID) {
		return "", fmt.Errorf("issuing pin: invalid server id %q", serverID)
	}
	if region != "" && !discoverysvc.ValidName(region) {
		return "", fmt.Errorf("issuing pin: invalid region %q", region)
	}
	if ttl < time.Second {
		return "", fmt.Errorf("issuing pin: ttl %s is shorter than 1s", ttl)
	}
	if exp := now.Add(ttl).Unix(); exp > maxUnix || now.Unix() < 1 {
		// Verify refuses such times; refuse to write a pin it would reject.
		return "", fmt.Errorf("issuing pin: issue time %s or expiry out of range", now.UTC().Format(time.RFC3339))
	}
	tok, err := k.issueFast(serverID, region, now.Unix(), now.Add(ttl).Unix())
	if err != nil {
		return "", fmt.Errorf("issuing pin: %w", err)
	}
	return tok, nil
}

// issueJWT is what issueFast writes, through golang-jwt: the reference it
// is tested against.
func (k *Keyring) issueJWT(serverID, region string, iat, exp int64) (string, error) {
	claims := jwt.MapClaims{
		"iss":   k.issuer,
		k.claim: serverID,
		"iat":   iat,
		"exp":   exp,
	}
	if region != "" {
		claims[RegionClaim] = region
	}
	return jwt.NewWithClaims(k.signer.method, claims).SignedString(k.signer.sign)
}

// Verify checks a token's signature against the configured keys of the
// algorithm its header names (no kid: each such key is tried), its iss, its
// server claim (a valid server id, never an address) and its length. It
// does not check exp: the caller does, with Pin.Usable, because a refresh
// accepts pins expired within a grace. Every error wraps ErrInvalid.
func (k *Keyring) Verify(token string) (Pin, error) {
	var now time.Time
	if k.cache != nil {
		now = k.now()
	}
	return k.VerifyAt(token, now)
}

// VerifyAt is Verify for a caller that already read the clock: now only
// decides whether a cached verification is still within the token's exp
// (reading the clock is a good part of a cache hit's cost).
func (k *Keyring) VerifyAt(token string, now time.Time) (Pin, error) {
	if now.IsZero() && k.cache != nil {
		now = k.now()
	}
	if token == "" {
		return Pin{}, fmt.Errorf("%w: empty token", ErrInvalid)
	}
	if len(token) > MaxTokenLen {
		return Pin{}, fmt.Errorf("%w: token longer than %d bytes", ErrInvalid, MaxTokenLen)
	}
	if k.cache != nil {
		if p, ok := k.cache.get(token, now); ok {
			return p, nil
		}
	}
	p, err := k.verify(token)
	if err != nil {
		return Pin{}, err
	}
	if k.cache != nil {
		k.cache.put(token, p, now)
	}
	return p, nil
}

// verify is Verify without the cache: the fast path for the headers Issue
// writes, else golang-jwt.
func (k *Keyring) verify(token string) (Pin, error) {
	if p, handled, err := k.verifyFast(token); handled {
		return p, err
	}
	return k.verifyJWT(token)
}

// verifyJWT verifies with golang-jwt; it handles every token shape and is
// the reference the fast path is tested against.
func (k *Keyring) verifyJWT(token string) (Pin, error) {
	claims := jwt.MapClaims{}
	if _, err := k.parser.ParseWithClaims(token, claims, k.keyFor); err != nil {
		return Pin{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return k.pinFromClaims(claims)
}

func (k *Keyring) keyFor(t *jwt.Token) (any, error) {
	if set, ok := k.keysets[t.Method.Alg()]; ok {
		return set, nil
	}
	// Unreachable: the parser only lets configured algorithms through.
	return nil, fmt.Errorf("no key for alg %q", t.Method.Alg())
}

func (k *Keyring) pinFromClaims(c jwt.MapClaims) (Pin, error) {
	if iss, ok := c["iss"].(string); !ok || iss != k.issuer {
		return Pin{}, fmt.Errorf("%w: wrong or missing iss", ErrInvalid)
	}
	srv, ok := c[k.claim].(string)
	if !ok {
		return Pin{}, fmt.Errorf("%w: claim %q missing or not a string", ErrInvalid, k.claim)
	}
	if !discoverysvc.ValidName(srv) {
		return Pin{}, fmt.Errorf("%w: claim %q is not a valid server id", ErrInvalid, k.claim)
	}
	p := Pin{Server: srv}
	if v, present := c[RegionClaim]; present {
		rgn, ok := v.(string)
		if !ok || (rgn != "" && !discoverysvc.ValidName(rgn)) {
			return Pin{}, fmt.Errorf("%w: claim %q is not a valid region", ErrInvalid, RegionClaim)
		}
		p.Region = rgn
	}
	exp, ok := unixClaim(c, "exp")
	if !ok || exp.IsZero() {
		return Pin{}, fmt.Errorf("%w: exp missing or not a valid time", ErrInvalid)
	}
	p.ExpiresAt = exp
	iat, ok := unixClaim(c, "iat")
	if !ok {
		return Pin{}, fmt.Errorf("%w: iat not a valid time", ErrInvalid)
	}
	p.IssuedAt = iat
	return p, nil
}

// maxUnix is the end of year 9999: later times do not fit time.Time's
// formatting and mean a forged or broken token anyway.
const maxUnix = 253402300799

// unixClaim reads a NumericDate claim. Absent is (zero, true); present but
// not a number of seconds in [1, year 9999] is (zero, false).
func unixClaim(c jwt.MapClaims, name string) (time.Time, bool) {
	v, present := c[name]
	if !present {
		return time.Time{}, true
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || f < 1 || f > maxUnix {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// Fingerprint returns a short, non-reversible tag of a token for logs,
// which must never carry a whole token (SPEC §9): the last 8 characters of
// the signature.
func Fingerprint(token string) string {
	i := strings.LastIndexByte(token, '.')
	sig := token[i+1:]
	if len(sig) > 8 {
		sig = sig[len(sig)-8:]
	}
	return sig
}
