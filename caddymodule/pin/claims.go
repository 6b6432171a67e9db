package pin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/discoverysvc"
)

// claims are the claims of a token as the edge reads them. The server
// claim's name is configured, so decoding goes through UnmarshalJSON; each
// claim must have its JSON type (iss, the server and rgn strings, the
// times numbers), and other claims are ignored.
type claims struct {
	Issuer    string
	ExpiresAt *jwt.NumericDate
	IssuedAt  *jwt.NumericDate
	NotBefore *jwt.NumericDate
	Server    string
	Region    string

	serverClaim string    // the name of the claim carrying the server id
	now         time.Time // when the token is checked, for nbf
}

// UnmarshalJSON decodes the claims the edge reads.
func (c *claims) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var err error
	if c.Issuer, err = stringClaim(raw, "iss"); err != nil {
		return err
	}
	if c.Server, err = stringClaim(raw, c.serverClaim); err != nil {
		return err
	}
	if c.Region, err = stringClaim(raw, RegionClaim); err != nil {
		return err
	}
	if c.ExpiresAt, err = timeClaim(raw, "exp"); err != nil {
		return err
	}
	if c.IssuedAt, err = timeClaim(raw, "iat"); err != nil {
		return err
	}
	if c.NotBefore, err = timeClaim(raw, "nbf"); err != nil {
		return err
	}
	return nil
}

// stringClaim reads a string claim; absent is "".
func stringClaim(raw map[string]json.RawMessage, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", nil
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", fmt.Errorf("claim %q is not a string", name)
	}
	return s, nil
}

// timeClaim reads a NumericDate claim: a JSON number of seconds in
// [1, year 9999]; absent is nil.
func timeClaim(raw map[string]json.RawMessage, name string) (*jwt.NumericDate, error) {
	v, ok := raw[name]
	if !ok {
		return nil, nil
	}
	var f float64
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) || json.Unmarshal(v, &f) != nil || f < 1 || f > maxUnix {
		return nil, fmt.Errorf("claim %q is not a time in seconds", name)
	}
	sec, frac := math.Modf(f)
	return &jwt.NumericDate{Time: time.Unix(int64(sec), int64(frac*1e9))}, nil
}

// Validate holds the rules golang-jwt's validator does not: the server and
// region claims name valid ids, and nbf is not in the future even within
// the expiry grace.
func (c *claims) Validate() error {
	if c.Server == "" {
		return fmt.Errorf("claim %q missing", c.serverClaim)
	}
	if !discoverysvc.ValidName(c.Server) {
		return fmt.Errorf("claim %q is not a valid server id", c.serverClaim)
	}
	if c.Region != "" && !discoverysvc.ValidName(c.Region) {
		return fmt.Errorf("claim %q is not a valid region", RegionClaim)
	}
	if c.NotBefore != nil && c.now.Before(c.NotBefore.Time) {
		return errors.New("token is not valid yet (nbf)")
	}
	return nil
}

// pin is what the verified claims say.
func (c *claims) pin() Pin {
	p := Pin{Server: c.Server, Region: c.Region, ExpiresAt: c.ExpiresAt.Time}
	if c.IssuedAt != nil {
		p.IssuedAt = c.IssuedAt.Time
	}
	return p
}

// GetExpirationTime implements jwt.Claims.
func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt implements jwt.Claims.
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetNotBefore implements jwt.Claims.
func (c *claims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuer implements jwt.Claims.
func (c *claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims; the edge does not read sub.
func (c *claims) GetSubject() (string, error) { return "", nil }

// GetAudience implements jwt.Claims; the edge does not read aud.
func (c *claims) GetAudience() (jwt.ClaimStrings, error) { return nil, nil }

// Interface guards
var (
	_ jwt.Claims          = (*claims)(nil)
	_ jwt.ClaimsValidator = (*claims)(nil)
	_ json.Unmarshaler    = (*claims)(nil)
)
