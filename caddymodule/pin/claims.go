package pin

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// claims are a token's claims as golang-jwt decodes them, into a map: the
// server claim's name is configured, so no struct fits. The methods read
// each claim with its JSON type (iss, the server and rgn strings, the
// times numbers of seconds in [1, year 9999]); other claims are ignored.
// Verify passes a *claims, which golang-jwt's decoder fills.
type claims jwt.MapClaims

// str reads a string claim; absent is "".
func (c claims) str(name string) (string, error) {
	v, ok := c[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %q is not a string", name)
	}
	return s, nil
}

// date reads a NumericDate claim, keeping its fraction of a second (golang-jwt's
// own reading truncates it); absent is nil.
func (c claims) date(name string) (*jwt.NumericDate, error) {
	v, ok := c[name]
	if !ok {
		return nil, nil
	}
	// A JSON number decodes to a float64; a string, even of digits, or
	// null is not a time.
	f, ok := v.(float64)
	if !ok || f < 1 || f > maxUnix {
		return nil, fmt.Errorf("claim %q is not a time in seconds", name)
	}
	sec, frac := math.Modf(f)
	return &jwt.NumericDate{Time: time.Unix(int64(sec), int64(frac*1e9))}, nil
}

// pin holds the rules golang-jwt's validator does not, on claims it has
// validated (signature, iss, exp within the grace, nbf's type, aud where
// configured): the server claim and rgn name valid ids, iat is a time, and
// nbf is not in the future even within the expiry grace.
func (c claims) pin(serverClaim string, now time.Time) (Pin, error) {
	server, err := c.str(serverClaim)
	if err != nil {
		return Pin{}, err
	}
	if server == "" {
		return Pin{}, fmt.Errorf("claim %q missing", serverClaim)
	}
	if !schema.ValidName(server) {
		return Pin{}, fmt.Errorf("claim %q is not a valid server id", serverClaim)
	}
	region, err := c.str(RegionClaim)
	if err != nil {
		return Pin{}, err
	}
	if region != "" && !schema.ValidName(region) {
		return Pin{}, fmt.Errorf("claim %q is not a valid region", RegionClaim)
	}
	iat, err := c.date("iat")
	if err != nil {
		return Pin{}, err
	}
	// The validator has read nbf and exp with the methods below, so
	// neither fails here, and exp is present (it is required).
	nbf, _ := c.date("nbf")
	if nbf != nil && now.Before(nbf.Time) {
		return Pin{}, errors.New("token is not valid yet (nbf)")
	}
	exp, _ := c.date("exp")
	w, err := c.write()
	if err != nil {
		return Pin{}, err
	}
	p := Pin{Server: server, Region: region, ExpiresAt: exp.Time, LastWrite: w}
	if iat != nil {
		p.IssuedAt = iat.Time
	}
	return p, nil
}

// write reads the last write: lw an integer number of milliseconds in
// [1, year 9999] and lwo a valid origin name, both or neither.
func (c claims) write() (Write, error) {
	v, hasAt := c[WriteClaim]
	origin, err := c.str(WriteOriginClaim)
	if err != nil {
		return Write{}, err
	}
	if !hasAt && origin == "" {
		if _, ok := c[WriteOriginClaim]; ok {
			return Write{}, fmt.Errorf("claim %q without %q", WriteOriginClaim, WriteClaim)
		}
		return Write{}, nil
	}
	if !hasAt || !schema.ValidName(origin) {
		return Write{}, fmt.Errorf("claims %q and %q must name a time and a valid origin together", WriteClaim, WriteOriginClaim)
	}
	ms, ok := v.(float64)
	if !ok || ms < 1 || ms > maxUnix*1000 || ms != math.Trunc(ms) {
		return Write{}, fmt.Errorf("claim %q is not a time in milliseconds", WriteClaim)
	}
	return Write{At: time.UnixMilli(int64(ms)), Origin: origin}, nil
}

// GetExpirationTime implements jwt.Claims.
func (c claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.date("exp") }

// GetIssuedAt implements jwt.Claims.
func (c claims) GetIssuedAt() (*jwt.NumericDate, error) { return c.date("iat") }

// GetNotBefore implements jwt.Claims.
func (c claims) GetNotBefore() (*jwt.NumericDate, error) { return c.date("nbf") }

// GetIssuer implements jwt.Claims.
func (c claims) GetIssuer() (string, error) { return c.str("iss") }

// GetSubject implements jwt.Claims; the edge does not read sub.
func (c claims) GetSubject() (string, error) { return "", nil }

// GetAudience implements jwt.Claims; golang-jwt reads it (a string or a
// list of strings) only when an audience is configured.
func (c claims) GetAudience() (jwt.ClaimStrings, error) { return jwt.MapClaims(c).GetAudience() }

// Interface guard: golang-jwt decodes into the map a *claims points to.
var _ jwt.Claims = (*claims)(nil)
