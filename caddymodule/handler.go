package caddymodule

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler's configuration; the issuer and the server
// claim default to pin.DefaultIssuer and pin.DefaultClaim.
const (
	DefaultPinTTL       = 24 * time.Hour
	DefaultRefreshGrace = 30 * 24 * time.Hour
	DefaultHeader       = "X-Session-Pin"
	DefaultCookie       = "sessionpin"
	DefaultRefreshPath  = "/auth/refresh"
	DefaultClosestPath  = "/closestToMe"
	DefaultRetryAfter   = 30 * time.Second
	DefaultHysteresis   = 0.1
	// MaxLimitEdges bounds limit_edges: beyond it, the room kept below a
	// limit would leave most servers' capacity unused.
	MaxLimitEdges       = 1000
	DefaultCatchUpLimit = 30 * time.Second
	DefaultClockSkew    = 500 * time.Millisecond
)

// Handler is the `session_pin` HTTP handler. It decides which backend server
// serves each request and hands the decision to
// `reverse_proxy { dynamic session_pin }` through a request variable:
//
//   - a request with a valid pin goes to the pinned server while it is in
//     the registry, whatever its region or draining state, and gets no new
//     pin; when the server is gone, or this edge cannot connect to it, it
//     gets 503 pinned_server_unavailable and is never sent elsewhere;
//   - a request without a usable pin is placed on the least-loaded server of
//     the edge's region (else of the first fallback region that has one,
//     else anywhere) and, when the upstream answers below 500, the response
//     carries a new pin;
//   - GET closest_path is answered by the edge with the server placement
//     would choose;
//   - POST refresh_path is rebalanced (refresh rules a–d, see
//     placement.Edge.Rebalance), proxied, and re-pinned when the upstream
//     answers below 500.
//
// Every proxied response carries X-Session-Server. When reverse_proxy cannot
// reach the chosen server (502/503/504 and nothing written yet), the
// handler answers {"error":"server_unreachable","server":"<id>"} itself.
// When it could not even connect, the server is, for unreachable_for, not
// alive at this edge (see reachability).
// Edge errors are JSON with Cache-Control: no-store. Request headers are
// left alone; client-sent X-Session-* headers are never trusted.
//
// Placeholders set for the rest of the route (logs, headers, matchers):
//
//	{http.session_pin.server}  id of the chosen server
//	{http.session_pin.region}  its region
//	{http.session_pin.url}     its public URL from the registry
//	{http.session_pin.reason}  pinned, placement, refresh_keep, refresh_move or failover
//	{http.session_pin.moved}   true when a refresh moved the client
type Handler struct {
	// Region is the edge's own region; placement prefers its servers.
	// Required.
	Region string `json:"region,omitempty"`

	// FallbackRegions lists, nearest first, the regions whose servers take
	// new clients (and answer closest_path) when Region has no active
	// server, before the least-loaded server anywhere. Default: none.
	FallbackRegions []string `json:"fallback_regions,omitempty"`

	// Key signs new pins (and verifies them): hs256 with a secret of at
	// least 32 bytes, or ed25519/es256 with a PEM private key file.
	// Without it the edge only verifies (verify_keys) and issues no pins.
	Key *pin.KeyConfig `json:"key,omitempty"`

	// VerifyKeys are extra keys that verify pins but never sign, for key
	// rotation or for tokens issued elsewhere. Default: none.
	VerifyKeys []pin.KeyConfig `json:"verify_keys,omitempty"`

	// Issuer is the pin's `iss`; tokens with another issuer are invalid.
	// Default: "sessionpin".
	Issuer string `json:"issuer,omitempty"`

	// Audience, when set, must be in a token's `aud` (a string or a list)
	// for the token to be valid, and is the `aud` of the pins this edge
	// issues. Set it when routing on an identity provider's tokens
	// (`header Authorization`), so that a token it issued for another
	// service does not route here. Default: none, `aud` is not checked.
	Audience string `json:"audience,omitempty"`

	// PinTTL is the lifetime of a new pin (its exp and the cookie's
	// Max-Age). Default: 24h.
	PinTTL caddy.Duration `json:"pin_ttl,omitempty"`

	// RefreshGrace is how long past its expiry a pin still counts at
	// refresh_path. Default: 720h (30 days).
	RefreshGrace caddy.Duration `json:"refresh_grace,omitempty"`

	// Header is the request header carrying the pin; it wins over the
	// cookie. With "Authorization" the pin is the Bearer token. New pins
	// are returned in this header (X-Session-Pin when it is Authorization).
	// The pin header is the edge's own and is not passed on to the app;
	// Authorization is the app's and is passed on as it came.
	// Default: "X-Session-Pin".
	Header string `json:"header,omitempty"`

	// Cookie is the name of the pin cookie. Default: "sessionpin".
	Cookie string `json:"cookie,omitempty"`

	// Claim is the token claim naming the server id. Default: "srv".
	Claim string `json:"claim,omitempty"`

	// RefreshPath is the path whose POST requests are rebalanced.
	// Default: "/auth/refresh".
	RefreshPath string `json:"refresh_path,omitempty"`

	// ClosestPath is the path whose GET requests the edge answers with the
	// server placement would choose. Default: "/closestToMe".
	ClosestPath string `json:"closest_path,omitempty"`

	// RetryAfter is the Retry-After of the 503 responses. Default: 30s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	// TokenCache is how many verified pins the edge remembers, so that a
	// returning client's pin is not checked again on every request. An
	// entry is about 73 bytes whatever the token's length (a SHA-256 of the
	// token, the pin's times and last write, and its server, region and
	// write origin, stored once per server), so the default takes about
	// 19 MiB. 0 turns the cache off.
	// Default: 262144, room for the 200,000 active clients of a busy edge.
	TokenCache *int `json:"token_cache,omitempty"`

	// UnreachableFor is how long a server this edge failed to connect to
	// (connection refused, no route, connect timeout; never an HTTP
	// status) counts as not alive at this edge: it is not placed, its
	// pinned clients get 503 pinned_server_unavailable, and a refresh
	// moves them even during a critical task. Further failures renew it;
	// after it, one request at a time tries the server again.
	// Default: 10s.
	UnreachableFor caddy.Duration `json:"unreachable_for,omitempty"`

	// Hysteresis: servers whose load is within this of the least loaded
	// are treated as equal (chosen among at random at placement, not left
	// at refresh). Default: 0.1.
	Hysteresis *float64 `json:"hysteresis,omitempty"`

	// SlowStart is how long a server that has just joined the registry,
	// or come back to it, takes to ramp up to its full share of new
	// clients: from a tenth of it, linearly by default (see
	// SlowStartRamp), so that a fresh server reporting load 0 does not take
	// every new client of its region until its next heartbeats. Pinned
	// clients are never affected. 0 turns slow start off.
	// Default: 15s.
	SlowStart *caddy.Duration `json:"slow_start,omitempty"`

	// SlowStartRamp shapes the slow-start ramp. Default: linear from 0.1.
	SlowStartRamp *SlowStartConfig `json:"slow_start_ramp,omitempty"`

	// LimitEdges is how many edges may place new clients on one server
	// between two of its load reports, this one included: the edges of its
	// region, and those of the regions that fall back to it. Below a
	// server's limit, this edge keeps room for the clients the others may
	// place, N - 1 places at least, so that together they do not pass the
	// limit by what they place. The price: the last N - 1 places below a
	// limit are never placed on by an edge's own judgement, and a server
	// whose limit holds fewer than N clients (limit times capacity) takes
	// no new clients at all. 1 keeps no room beyond what the server's last
	// two reports say the other edges placed. From 1 to 1000; 0 is the
	// default. Default: 1.
	LimitEdges int `json:"limit_edges,omitempty"`

	// CatchUpLimit makes moves data-aware: when servers report their
	// replication progress (their agents have a progress source), the edge
	// records each client's last write in its pin, and a refresh moves the
	// client only to a server whose data already holds that write. A move
	// held for catch-up longer than this after the write happens anyway
	// and is counted as unsafe. 0 turns data-aware moves off: writes are
	// not recorded and moves ignore progress. Default: 30s.
	CatchUpLimit *caddy.Duration `json:"catch_up_limit,omitempty"`

	// ClockSkew bounds how far the clocks of edges and agents may disagree;
	// it is added to every server's lag before a move. Default: 500ms.
	ClockSkew *caddy.Duration `json:"clock_skew,omitempty"`

	app          *App
	keyring      *pin.Keyring
	logger       *zap.Logger
	edge         placement.Edge
	issues       bool   // a signing key is configured
	bearer       bool   // the pin comes from Authorization: Bearer
	pinHeaderOut string // response header carrying a new pin
	cookieAttrs  string // "; Path=/; Max-Age=…; HttpOnly; SameSite=Lax"
	retryAfter   []string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_pin",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies defaults, loads the keys and joins the session_pin app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.setup(); err != nil {
		return err
	}
	appIface, err := ctx.App("session_pin")
	if err != nil {
		return fmt.Errorf("session_pin app: %w", err)
	}
	h.app = appIface.(*App)
	h.app.noteRegion(h.Region)
	if !h.issues {
		h.logger.Info("verify-only edge: no signing key, so placed clients are proxied without a pin")
	}
	return registerHandlerMetrics(ctx.GetMetricsRegistry())
}

// setup is Provision without Caddy: defaults, validation, keys and the
// values precomputed for the request path.
func (h *Handler) setup() error {
	if h.Issuer == "" {
		h.Issuer = pin.DefaultIssuer
	}
	if h.PinTTL == 0 {
		h.PinTTL = caddy.Duration(DefaultPinTTL)
	}
	if h.RefreshGrace == 0 {
		h.RefreshGrace = caddy.Duration(DefaultRefreshGrace)
	}
	if h.Header == "" {
		h.Header = DefaultHeader
	}
	h.Header = http.CanonicalHeaderKey(h.Header)
	if h.Cookie == "" {
		h.Cookie = DefaultCookie
	}
	if h.Claim == "" {
		h.Claim = pin.DefaultClaim
	}
	if h.RefreshPath == "" {
		h.RefreshPath = DefaultRefreshPath
	}
	if h.ClosestPath == "" {
		h.ClosestPath = DefaultClosestPath
	}
	if h.RetryAfter == 0 {
		h.RetryAfter = caddy.Duration(DefaultRetryAfter)
	}
	if h.UnreachableFor == 0 {
		h.UnreachableFor = caddy.Duration(DefaultUnreachableFor)
	}
	hysteresis := DefaultHysteresis
	if h.Hysteresis != nil {
		hysteresis = *h.Hysteresis
	}
	if err := h.Validate(); err != nil {
		return err
	}
	h.edge = placement.Edge{Region: h.Region, Fallback: h.FallbackRegions, Hysteresis: hysteresis, Reachable: reachableAtEdge,
		SlowStart: h.slowStart(), Placed: placedAtEdge, LimitEdges: h.LimitEdges, CatchUp: h.catchUp()}

	var sign pin.KeyConfig
	if h.Key != nil {
		sign = *h.Key
	}
	cacheEntries := pin.DefaultCacheEntries
	if h.TokenCache != nil {
		cacheEntries = *h.TokenCache
	}
	kr, err := pin.NewKeyring(sign, h.VerifyKeys, h.Issuer, h.Claim,
		pin.WithCache(cacheEntries), pin.WithGrace(time.Duration(h.RefreshGrace)), pin.WithAudience(h.Audience))
	if err != nil {
		return err
	}
	h.keyring = kr
	h.issues = kr.CanIssue()

	h.bearer = h.Header == "Authorization"
	h.pinHeaderOut = h.Header
	if h.bearer {
		h.pinHeaderOut = DefaultHeader
	}
	h.cookieAttrs = pinCookieAttrs(time.Duration(h.PinTTL))
	h.retryAfter = []string{strconv.FormatInt(h.retryAfterSeconds(), 10)}
	return nil
}

// Validate checks the configuration; errors name the option.
func (h *Handler) Validate() error {
	if h.Region == "" {
		return errors.New("region is required")
	}
	if !schema.ValidName(h.Region) {
		return fmt.Errorf("region: %q %s", h.Region, schema.NameRule)
	}
	seen := map[string]bool{h.Region: true}
	for _, r := range h.FallbackRegions {
		if !schema.ValidName(r) {
			return fmt.Errorf("fallback_regions: %q %s", r, schema.NameRule)
		}
		if r == h.Region {
			return fmt.Errorf("fallback_regions: %q is the edge's own region", r)
		}
		if seen[r] {
			return fmt.Errorf("fallback_regions: %q is listed more than once", r)
		}
		seen[r] = true
	}
	if h.Key == nil && len(h.VerifyKeys) == 0 {
		return errors.New("key is required (or verify_key for a verify-only edge)")
	}
	if h.PinTTL < 0 || (h.PinTTL != 0 && time.Duration(h.PinTTL) < time.Second) {
		return errors.New("pin_ttl: must be at least 1s")
	}
	if h.RefreshGrace < 0 {
		return errors.New("refresh_grace: must not be negative")
	}
	if h.RetryAfter < 0 {
		return errors.New("retry_after: must not be negative")
	}
	if h.TokenCache != nil && *h.TokenCache < 0 {
		return errors.New("token_cache: must not be negative")
	}
	if h.LimitEdges < 0 || h.LimitEdges > MaxLimitEdges {
		return fmt.Errorf("limit_edges: must be between 1 and %d (0: the default, 1)", MaxLimitEdges)
	}
	if h.UnreachableFor < 0 {
		return errors.New("unreachable_for: must not be negative")
	}
	if err := h.validateSlowStart(); err != nil {
		return err
	}
	if h.CatchUpLimit != nil && *h.CatchUpLimit < 0 {
		return errors.New("catch_up_limit: must not be negative")
	}
	if h.ClockSkew != nil && *h.ClockSkew < 0 {
		return errors.New("clock_skew: must not be negative")
	}
	if h.Hysteresis != nil {
		if v := *h.Hysteresis; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return errors.New("hysteresis: must be a finite number >= 0")
		}
	}
	if h.Header != "" && !validHeaderName(h.Header) {
		return fmt.Errorf("header: %q is not a valid header name", h.Header)
	}
	if h.Cookie != "" && !validHeaderName(h.Cookie) {
		return fmt.Errorf("cookie: %q is not a valid cookie name", h.Cookie)
	}
	if h.Claim != "" && !schema.ValidName(h.Claim) {
		return fmt.Errorf("claim: %q %s", h.Claim, schema.NameRule)
	}
	for _, p := range []struct{ name, val string }{{"refresh_path", h.RefreshPath}, {"closest_path", h.ClosestPath}} {
		if p.val != "" && !strings.HasPrefix(p.val, "/") {
			return fmt.Errorf("%s: %q must start with /", p.name, p.val)
		}
	}
	return nil
}

// validHeaderName reports whether s is an RFC 7230 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// catchUp is the configured data-aware moves, with defaults.
func (h *Handler) catchUp() placement.CatchUp {
	// The watch confirms the view every progress interval; two of them
	// missed means the view may be behind (see registryConn.confirmed).
	c := placement.CatchUp{Limit: DefaultCatchUpLimit, Skew: DefaultClockSkew, Fresh: 2 * watch.DefaultProgressInterval}
	if h.CatchUpLimit != nil {
		c.Limit = time.Duration(*h.CatchUpLimit)
	}
	if h.ClockSkew != nil {
		c.Skew = time.Duration(*h.ClockSkew)
	}
	return c
}

func (h *Handler) retryAfterSeconds() int64 {
	return int64(math.Ceil(time.Duration(h.RetryAfter).Seconds()))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
