package pin

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// Defaults of the token format.
const (
	DefaultIssuer = "sessionpin"
	DefaultClaim  = "srv"
	// RegionClaim carries the pinned server's region.
	RegionClaim = "rgn"
	// WriteClaim carries when the client last wrote, in Unix milliseconds
	// of the edge that saw the write answered; WriteOriginClaim, the origin
	// that write committed to. A pin carries both or neither.
	WriteClaim       = "lw"
	WriteOriginClaim = "lwo"
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
	// LastWrite is the client's last write that the edge recorded
	// ("lw" and "lwo"); zero when the pin carries none.
	LastWrite Write
}

// Write is a client's write as a pin records it: when an edge saw it
// answered, and the origin (the database primary) it committed to.
type Write struct {
	At     time.Time
	Origin string
}

// IsZero reports whether no write is recorded.
func (w Write) IsZero() bool { return w.At.IsZero() }

// Usable reports whether the pin may be used at now with the given grace
// past expiry: 0 for ordinary requests, refresh_grace for refresh.
func (p Pin) Usable(now time.Time, grace time.Duration) bool {
	if p.ExpiresAt.IsZero() {
		return false
	}
	// Only a negative grace needs clamping: "grace <= 0" would also set 0
	// to 0, so that mutant is equivalent.
	if grace < 0 {
		grace = 0
	}
	return now.Before(p.ExpiresAt.Add(grace))
}

// Keyring signs and verifies pins. It is immutable after NewKeyring and safe
// for concurrent use.
type Keyring struct {
	issuer   string
	audience string // "" when aud is not checked
	claim    string
	signer   *key // nil on a verify-only edge
	// keysets is, per JWT alg, the verification keys of that algorithm as a
	// ready jwt.VerificationKeySet, so that a token is only ever tried
	// against keys of the algorithm it claims.
	keysets map[string]any
	parser  *jwt.Parser
	cache   *cache // nil when disabled
	// now is the clock of the cache and of the claim checks.
	now func() time.Time
}

// Option tunes a Keyring.
type Option func(*options)

type options struct {
	cacheEntries int
	grace        time.Duration
	audience     string
}

// DefaultCacheEntries is the default size of the verified-token cache,
// sized for the active clients of one edge: room for 200,000 clients in
// about 19 MiB.
const DefaultCacheEntries = 262144

// WithCache sets how many verified tokens are remembered (default
// DefaultCacheEntries); 0 turns the cache off.
func WithCache(entries int) Option {
	return func(o *options) { o.cacheEntries = max(entries, 0) }
}

// WithGrace lets Verify accept pins expired by less than grace, for the
// callers that accept them (refresh); the caller decides with Pin.Usable.
// Default 0: an expired pin is invalid.
func WithGrace(grace time.Duration) Option {
	return func(o *options) { o.grace = max(grace, 0) }
}

// WithAudience makes aud required: a token is valid only when its aud (a
// string or a list of strings) contains audience, and Issue writes it.
// Default "": aud is not checked.
func WithAudience(audience string) Option {
	return func(o *options) { o.audience = audience }
}

// reservedClaims are the claims Issue writes itself; the server claim must
// not collide with them.
var reservedClaims = []string{"iss", "iat", "exp", "nbf", "aud", RegionClaim, WriteClaim, WriteOriginClaim}

// NewKeyring loads the signing key sign and the verification-only keys
// verify. sign may be the zero KeyConfig when verify keys are given (a
// verify-only edge, e.g. routing on an identity provider's tokens); Issue
// then returns an error. issuer defaults to "sessionpin" and claim, the
// claim naming the server, to "srv". Errors name the option: "key: ...",
// "verify_key 2: ...", "claim: ...".
func NewKeyring(sign KeyConfig, verify []KeyConfig, issuer, claim string, opts ...Option) (*Keyring, error) {
	o := options{cacheEntries: DefaultCacheEntries}
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
	if err := checkText(o.audience); err != nil {
		return nil, fmt.Errorf("audience: %w", err)
	}
	k := &Keyring{issuer: issuer, audience: o.audience, claim: claim, now: time.Now}
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
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		// Refresh accepts pins expired within a grace; a not-yet-valid
		// pin is refused without it (claims.pin).
		jwt.WithLeeway(o.grace),
		jwt.WithTimeFunc(func() time.Time { return k.now() }),
		// One token, one encoding: no padding, no stray bits.
		jwt.WithStrictDecoding(),
	}
	if o.audience != "" {
		popts = append(popts, jwt.WithAudience(o.audience))
	}
	k.parser = jwt.NewParser(popts...)
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

// CanIssue reports whether the keyring has a signing key.
func (k *Keyring) CanIssue() bool { return k.signer != nil }

// Issue signs a pin to serverID in region, valid from now for ttl.
func (k *Keyring) Issue(serverID, region string, now time.Time, ttl time.Duration) (string, error) {
	if ttl < time.Second {
		return "", fmt.Errorf("issuing pin: ttl %s is shorter than 1s", ttl)
	}
	return k.Sign(Pin{Server: serverID, Region: region, IssuedAt: now, ExpiresAt: now.Add(ttl)})
}

// Sign signs p as it is: its server, region, times (to the second) and
// last write (to the millisecond). The edge re-signs a client's pin with
// its times unchanged to record a write.
func (k *Keyring) Sign(p Pin) (string, error) {
	if k.signer == nil {
		return "", errors.New("issuing pin: no signing key configured (verify-only keyring)")
	}
	if !schema.ValidName(p.Server) {
		return "", fmt.Errorf("issuing pin: invalid server id %q", p.Server)
	}
	if p.Region != "" && !schema.ValidName(p.Region) {
		return "", fmt.Errorf("issuing pin: invalid region %q", p.Region)
	}
	iat, exp := p.IssuedAt.Unix(), p.ExpiresAt.Unix()
	if exp > maxUnix || iat < 1 || exp <= iat {
		// Verify refuses such times; refuse to write a pin it would reject.
		return "", fmt.Errorf("issuing pin: issue time %s or expiry out of range", p.IssuedAt.UTC().Format(time.RFC3339))
	}
	claims := jwt.MapClaims{"iss": k.issuer, k.claim: p.Server, "iat": iat, "exp": exp}
	if p.Region != "" {
		claims[RegionClaim] = p.Region
	}
	if !p.LastWrite.IsZero() {
		w := p.LastWrite
		if !schema.ValidName(w.Origin) || w.At.UnixMilli() < 1 || w.At.Unix() > maxUnix {
			return "", fmt.Errorf("issuing pin: invalid last write %q at %s", w.Origin, w.At.UTC().Format(time.RFC3339))
		}
		claims[WriteClaim] = w.At.UnixMilli()
		claims[WriteOriginClaim] = w.Origin
	}
	if k.audience != "" {
		claims["aud"] = k.audience
	}
	tok, err := jwt.NewWithClaims(k.signer.method, claims).SignedString(k.signer.sign)
	if err != nil {
		return "", fmt.Errorf("issuing pin: %w", err)
	}
	return tok, nil
}

// Verify checks a token: its signature against the configured keys of the
// algorithm its header names (no kid: each such key is tried), no crit
// header, its iss, its server claim (a valid server id, never an address),
// its region, its exp (required; past it only within the keyring's grace)
// and nbf (not in the future), and its length. Every error wraps
// ErrInvalid.
func (k *Keyring) Verify(token string) (Pin, error) {
	return k.VerifyAt(token, k.now())
}

// VerifyAt is Verify for a caller that already read the clock: now decides
// whether a cached verification is still within the token's exp (reading
// the clock is a good part of a cache hit's cost).
func (k *Keyring) VerifyAt(token string, now time.Time) (Pin, error) {
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

// verify is Verify without the cache.
func (k *Keyring) verify(token string) (Pin, error) {
	now := k.now()
	c := claims{}
	if _, err := k.parser.ParseWithClaims(token, &c, k.keyFor); err != nil {
		return Pin{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	p, err := c.pin(k.claim, now)
	if err != nil {
		return Pin{}, fmt.Errorf("%w: %w: %w", ErrInvalid, jwt.ErrTokenInvalidClaims, err)
	}
	return p, nil
}

func (k *Keyring) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// An extension the token says must be understood; none is.
		return nil, errors.New("crit header: no extension is supported")
	}
	if set, ok := k.keysets[t.Method.Alg()]; ok {
		return set, nil
	}
	// Unreachable: the parser only lets configured algorithms through.
	return nil, fmt.Errorf("no key for alg %q", t.Method.Alg())
}

// maxUnix is the end of year 9999: later times do not fit time.Time's
// formatting and mean a forged or broken token anyway.
const maxUnix = 253402300799

// Fingerprint returns a short, non-reversible tag of a token for logs,
// which must never carry a whole token: the last 8 characters of the
// signature.
func Fingerprint(token string) string {
	i := strings.LastIndexByte(token, '.')
	sig := token[i+1:]
	// Cutting an 8-character signature to its last 8 keeps it whole, so
	// "len(sig) >= 8" is an equivalent mutant.
	if len(sig) > 8 {
		sig = sig[len(sig)-8:]
	}
	return sig
}
