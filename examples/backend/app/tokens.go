package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The app's own tokens. They have nothing to do with the edge's pin: a real
// application keeps its authentication as it is when sessionpin is added.
const (
	tokenIssuerName   = "sessionpin-demo-backend"
	tokenUseAccess    = "access"
	tokenUseRefresh   = "refresh"
	tokenUseReplicate = "replicate"
)

// tokenClaims are the claims of every app token; Use keeps an access token
// from being accepted as a refresh token and the reverse.
type tokenClaims struct {
	Use string `json:"use"`
	jwt.RegisteredClaims
}

type tokenIssuer struct {
	key        []byte
	accessTTL  time.Duration
	refreshTTL time.Duration
}

func (ti tokenIssuer) issue(use, subject, server string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := tokenClaims{
		Use: use,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuerName,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{server},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(ti.key)
}

// verify checks signature, issuer, expiry and use, and returns the subject.
func (ti tokenIssuer) verify(raw, use string) (string, error) {
	if raw == "" {
		return "", errors.New("missing token")
	}
	var c tokenClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return ti.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuerName),
		jwt.WithExpirationRequired(),
	)
	if err != nil {
		return "", fmt.Errorf("invalid %s token: %w", use, err)
	}
	if c.Use != use {
		return "", fmt.Errorf("invalid %s token: it is a %q token", use, c.Use)
	}
	return c.Subject, nil
}

// tokenPair is the body of a successful login or refresh.
type tokenPair struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	ExpiresIn    int    `json:"expiresIn"`
	User         string `json:"user"`
	Server       string `json:"server"`
	Region       string `json:"region"`
}

func (a *App) issuePair(user string) (tokenPair, error) {
	access, err := a.tokens.issue(tokenUseAccess, user, a.cfg.ServerID, a.cfg.AccessTTL)
	if err != nil {
		return tokenPair{}, err
	}
	refresh, err := a.tokens.issue(tokenUseRefresh, user, a.cfg.ServerID, a.cfg.RefreshTTL)
	if err != nil {
		return tokenPair{}, err
	}
	return tokenPair{
		AccessToken:  access,
		RefreshToken: refresh,
		ExpiresIn:    int(a.cfg.AccessTTL / time.Second),
		User:         user,
		Server:       a.cfg.ServerID,
		Region:       a.cfg.Region,
	}, nil
}
