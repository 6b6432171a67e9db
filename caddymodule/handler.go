package caddymodule

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler's configuration (SPEC §5–§7).
const (
	DefaultIssuer       = "sessionpin"
	DefaultPinTTL       = 24 * time.Hour
	DefaultRefreshGrace = 30 * 24 * time.Hour
	DefaultHeader       = "X-Session-Pin"
	DefaultCookie       = "sessionpin"
	DefaultClaim        = "srv"
	DefaultRefreshPath  = "/auth/refresh"
	DefaultClosestPath  = "/closestToMe"
	DefaultRetryAfter   = 30 * time.Second
	DefaultHysteresis   = 0.1
)

// maxTokenLen bounds what is handed to signature verification.
const maxTokenLen = pin.MaxTokenLen

// reasonPinned is the {http.session_pin.reason} of a request routed on its
// own pin (no new pin is issued).
const reasonPinned = "pinned"

// Handler is the `session_pin` HTTP handler. It decides which backend server
// serves each request and hands the decision to
// `reverse_proxy { dynamic session_pin }` through a request variable:
//
//   - a request with a valid pin goes to the pinned server while it is in
//     the registry, whatever its region or draining state, and gets no new
//     pin; when the server is gone it gets 503 pinned_server_unavailable and
//     is never sent elsewhere;
//   - a request without a usable pin is placed on the least-loaded server of
//     the edge's region (else anywhere) and, when the upstream answers below
//     500, the response carries a new pin;
//   - GET closest_path is answered by the edge with the server placement
//     would choose;
//   - POST refresh_path is rebalanced (SPEC §6 refresh a–d), proxied, and
//     re-pinned when the upstream answers below 500.
//
// Every proxied response carries X-Session-Server. When reverse_proxy cannot
// reach the chosen server (502/503/504 and nothing written yet), the
// handler answers {"error":"server_unreachable","server":"<id>"} itself.
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

	// Hysteresis: servers whose load is within this of the least loaded
	// are treated as equal (chosen among at random at placement, not left
	// at refresh). Default: 0.1.
	Hysteresis *float64 `json:"hysteresis,omitempty"`

	app          *App
	keyring      *pin.Keyring
	logger       *zap.Logger
	edge         placement.Edge
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
	return registerHandlerMetrics(ctx.GetMetricsRegistry())
}

// setup is Provision without Caddy: defaults, validation, keys and the
// values precomputed for the request path.
func (h *Handler) setup() error {
	if h.Issuer == "" {
		h.Issuer = DefaultIssuer
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
		h.Claim = DefaultClaim
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
	hysteresis := DefaultHysteresis
	if h.Hysteresis != nil {
		hysteresis = *h.Hysteresis
	}
	if err := h.Validate(); err != nil {
		return err
	}
	h.edge = placement.Edge{Region: h.Region, Fallback: h.FallbackRegions, Hysteresis: hysteresis}

	var sign pin.KeyConfig
	if h.Key != nil {
		sign = *h.Key
	}
	kr, err := pin.NewKeyring(sign, h.VerifyKeys, h.Issuer, h.Claim)
	if err != nil {
		return err
	}
	h.keyring = kr

	h.bearer = h.Header == "Authorization"
	h.pinHeaderOut = h.Header
	if h.bearer {
		h.pinHeaderOut = DefaultHeader
	}
	h.cookieAttrs = "; Path=/; Max-Age=" + strconv.FormatInt(int64(time.Duration(h.PinTTL)/time.Second), 10) + "; HttpOnly; SameSite=Lax"
	h.retryAfter = []string{strconv.FormatInt(h.retryAfterSeconds(), 10)}
	return nil
}

// Validate checks the configuration; errors name the option.
func (h *Handler) Validate() error {
	if h.Region == "" {
		return errors.New("region is required")
	}
	if !discoverysvc.ValidName(h.Region) {
		return fmt.Errorf("region: %q must be 1-64 characters of [A-Za-z0-9._-]", h.Region)
	}
	seen := map[string]bool{h.Region: true}
	for _, r := range h.FallbackRegions {
		if !discoverysvc.ValidName(r) {
			return fmt.Errorf("fallback_regions: %q must be 1-64 characters of [A-Za-z0-9._-]", r)
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
	if h.Claim != "" && !discoverysvc.ValidName(h.Claim) {
		return fmt.Errorf("claim: %q must be 1-64 characters of [A-Za-z0-9._-]", h.Claim)
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

func (h *Handler) retryAfterSeconds() int64 {
	return int64(math.Ceil(time.Duration(h.RetryAfter).Seconds()))
}

// ServeHTTP routes the request. It reads only the current registry
// snapshot: no lock, no etcd call.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	snap := h.app.Snapshot()
	path := r.URL.Path
	if path == h.ClosestPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return h.serveClosest(w, r, snap)
	}
	if path == h.RefreshPath && r.Method == http.MethodPost {
		return h.serveRefresh(w, r, next, snap)
	}

	now := time.Now()
	if p, ok := h.pin(r, now, 0); ok {
		t := targetOf(snap.Server(p.Server))
		if t == nil {
			return h.pinnedUnavailable(w, p.Server)
		}
		t.activity.pinned.Add(1) // tells drains whether the server's clients are gone
		return h.proxy(w, r, next, t, reasonPinned, false, false)
	}
	t := targetOf(h.edge.Place(snap, rand.Uint64()))
	if t == nil {
		return h.noServer(w)
	}
	return h.proxy(w, r, next, t, placement.ReasonPlacement, false, true)
}

// serveRefresh rebalances a refresh request (SPEC §6 a–d) and proxies it.
func (h *Handler) serveRefresh(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, snap *discoverysvc.Snapshot) error {
	body, err := readRefreshBody(r)
	if err != nil {
		if errors.Is(err, errRefreshTooLarge) {
			return writeJSONError(w, http.StatusRequestEntityTooLarge, err.Error(), nil)
		}
		return writeJSONError(w, http.StatusBadRequest, err.Error(), nil)
	}
	in, err := placement.ParseRefresh(body, r.Header)
	if err != nil {
		return writeJSONError(w, http.StatusBadRequest, err.Error(), nil)
	}
	req := placement.RefreshRequest{Closest: in.Closest, Critical: in.Critical}
	if p, ok := h.pin(r, time.Now(), time.Duration(h.RefreshGrace)); ok {
		req.Current = p.Server
	}
	out := h.edge.Rebalance(snap, req, rand.Uint64())
	t := targetOf(out.Server)
	if t == nil {
		return h.noServer(w)
	}
	if c := h.logger.Check(zapcore.DebugLevel, "refresh rebalanced"); c != nil {
		c.Write(zap.String("current", req.Current), zap.String("closest", req.Closest),
			zap.Bool("critical", req.Critical), zap.String("server", t.id),
			zap.String("reason", out.Reason), zap.Bool("moved", out.Moved))
	}
	return h.proxy(w, r, next, t, out.Reason, out.Moved, true)
}

// serveClosest answers closest_path with the server placement would choose.
func (h *Handler) serveClosest(w http.ResponseWriter, r *http.Request, snap *discoverysvc.Snapshot) error {
	t := targetOf(h.edge.Place(snap, rand.Uint64()))
	if t == nil {
		return h.noServer(w)
	}
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Cache-Control"] = noStore
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(t.closestJSON)
	return err
}

// proxy hands t to the upstream source and runs the rest of the route.
// With issue set, a response below 500 carries a new pin for t.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, t *target, reason string, moved, issue bool) error {
	if !h.bearer {
		// The pin is addressed to the edge: the app neither needs nor
		// should log it, and carrying it upstream cost about 2% of the
		// edge's CPU per request (issue 5).
		delete(r.Header, h.Header)
	}
	pw := &pinWriter{
		ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		h:                     h,
		t:                     t,
		issue:                 issue,
		reason:                reason,
		moved:                 moved,
		secure:                r.TLS != nil,
	}
	caddyhttp.SetVar(r.Context(), targetVar, pw)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// One provider instead of five Set calls: each Set takes the
		// replacer's lock and grows its map, a third of the pinned path.
		repl.Map(pw.placeholder)
	}
	pw.server[0] = t.id
	// Set before the upstream runs so that error responses name the server
	// too; WriteHeader sets it again over anything the upstream sent.
	w.Header()["X-Session-Server"] = pw.server[:]

	err := next.ServeHTTP(pw, r)
	if err != nil && !pw.wroteHeader {
		// reverse_proxy could not reach the server: answer in JSON like
		// every other edge error rather than with an empty page.
		if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok && he.StatusCode >= 502 && he.StatusCode <= 504 {
			if c := h.logger.Check(zapcore.DebugLevel, "server unreachable"); c != nil {
				c.Write(zap.String("server", t.id), zap.Error(he.Err))
			}
			return writeJSONError(pw, he.StatusCode, "server_unreachable", map[string]any{"server": t.id})
		}
	}
	return err
}

// pin returns the request's pin when it verifies and is usable at now
// within grace past its expiry.
func (h *Handler) pin(r *http.Request, now time.Time, grace time.Duration) (pin.Pin, bool) {
	tok := h.token(r)
	if tok == "" {
		return pin.Pin{}, false
	}
	if len(tok) > maxTokenLen {
		h.debugRejected(tok, errTokenTooLong)
		return pin.Pin{}, false
	}
	p, err := h.keyring.VerifyAt(tok, now)
	if err != nil {
		h.debugRejected(tok, err)
		return pin.Pin{}, false
	}
	if !p.Usable(now, grace) {
		h.debugRejected(tok, errPinExpired)
		return pin.Pin{}, false
	}
	return p, true
}

var (
	errTokenTooLong = errors.New("token too long")
	errPinExpired   = errors.New("pin expired")
)

// debugRejected logs why a pin was not used, naming the token by its
// fingerprint only: a whole token is a credential.
func (h *Handler) debugRejected(tok string, err error) {
	if c := h.logger.Check(zapcore.DebugLevel, "pin not used"); c != nil {
		c.Write(zap.String("token", pin.Fingerprint(tok)), zap.Error(err))
	}
}

// token returns the raw pin from the configured header (which wins) or
// the cookie, without allocating.
func (h *Handler) token(r *http.Request) string {
	if v := r.Header[h.Header]; len(v) > 0 && v[0] != "" {
		if !h.bearer {
			return strings.TrimSpace(v[0])
		}
		if tok, ok := bearerToken(v[0]); ok {
			return tok
		}
	}
	return cookieValue(r.Header["Cookie"], h.Cookie)
}

// bearerToken extracts the token of an "Authorization: Bearer <token>".
func bearerToken(v string) (string, bool) {
	const prefix = "bearer "
	if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(v[len(prefix):]), true
}

// cookieValue finds cookie name in Cookie header lines; http.Request.Cookie
// would parse and allocate every cookie of the request.
func cookieValue(lines []string, name string) string {
	for _, line := range lines {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// pinnedUnavailable answers a valid pin whose server left the registry.
// The client is never moved silently: its workflow's state may exist only
// on that server, so it must retry or refresh.
func (h *Handler) pinnedUnavailable(w http.ResponseWriter, id string) error {
	pinnedUnavailableTotal.Inc()
	if c := h.logger.Check(zapcore.DebugLevel, "pinned server unavailable"); c != nil {
		c.Write(zap.String("server", id))
	}
	w.Header()["Retry-After"] = h.retryAfter
	return writeJSONError(w, http.StatusServiceUnavailable, "pinned_server_unavailable",
		map[string]any{"server": id, "retryAfterSeconds": h.retryAfterSeconds()})
}

// noServer answers when the registry has no server to place on.
func (h *Handler) noServer(w http.ResponseWriter) error {
	w.Header()["Retry-After"] = h.retryAfter
	return writeJSONError(w, http.StatusServiceUnavailable, "no_server_available", nil)
}

// issuePin adds a new pin for t to the response headers.
func (h *Handler) issuePin(hdr http.Header, t *target, reason string, moved, secure bool) {
	tok, err := h.keyring.Issue(t.id, t.region, time.Now(), time.Duration(h.PinTTL))
	if err != nil {
		if c := h.logger.Check(zapcore.DebugLevel, "no pin issued"); c != nil {
			c.Write(zap.String("server", t.id), zap.Error(err))
		}
		return
	}
	hdr[h.pinHeaderOut] = []string{tok}
	hdr["X-Session-Server-Url"] = []string{t.url}
	cookie := h.Cookie + "=" + tok + h.cookieAttrs
	if secure {
		cookie += "; Secure"
	}
	hdr["Set-Cookie"] = append(hdr["Set-Cookie"], cookie)
	if moved {
		hdr["X-Session-Server-Changed"] = one
	}
	countPinIssued(reason)
}

var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
	one             = []string{"1"}
)

// reasonValue boxes the reason once per process instead of per request.
func reasonValue(reason string) any {
	switch reason {
	case reasonPinned:
		return boxedPinned
	case placement.ReasonPlacement:
		return boxedPlacement
	case placement.ReasonRefreshKeep:
		return boxedRefreshKeep
	case placement.ReasonRefreshMove:
		return boxedRefreshMove
	case placement.ReasonFailover:
		return boxedFailover
	}
	return reason
}

var (
	boxedPinned      any = reasonPinned
	boxedPlacement   any = placement.ReasonPlacement
	boxedRefreshKeep any = placement.ReasonRefreshKeep
	boxedRefreshMove any = placement.ReasonRefreshMove
	boxedFailover    any = placement.ReasonFailover
)

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
