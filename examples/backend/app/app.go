// Package app is the demo backend of sessionpin: an ordinary web application
// that knows nothing about pins, edges or the registry. It has its own
// login and refresh tokens, a multi-step order workflow whose state lives in
// this server's memory, and replication of that state to its peers after a
// delay — the lag that makes a hop between servers in the middle of a
// workflow fail, which is the problem sessionpin solves.
//
// Every response carries X-Served-By with the server id, so a client or a
// test can see which server answered.
package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServedByHeader names the server that answered; the app sets it on every
// response, independently of the edge's X-Session-Server.
const ServedByHeader = "X-Served-By"

// Config configures one demo server.
type Config struct {
	// ServerID is this server's id, e.g. "eu-1". Required.
	ServerID string
	// Region is this server's region, e.g. "eu-west". Required.
	Region string
	// TokenKey signs and verifies the app's own access, refresh and
	// replication tokens (HS256). Every server of the demo shares it, so a
	// token issued by one server is accepted by all. At least 32 bytes.
	TokenKey []byte
	// Peers are the base URLs of the other servers that orders are
	// replicated to, e.g. "http://127.0.0.1:9002".
	Peers []string
	// ReplicationDelay is how long a change waits before it is copied to the
	// peers, standing in for cross-region database replication lag.
	// Default: 5s.
	ReplicationDelay time.Duration
	// AccessTTL is the lifetime of an access token. Default: 2m.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token. Default: 168h.
	RefreshTTL time.Duration
	// Load, when >= 0, is the load /healthz reports. When negative the load
	// is the number of in-flight requests divided by Capacity.
	Load float64
	// Capacity is the number of concurrent requests that counts as load 1
	// when Load is negative. Default: 50.
	Capacity int
	// Logger receives request and replication logs. Default: discard.
	Logger *slog.Logger
	// Client sends replication requests. Default: a client with a 5s timeout.
	Client *http.Client
}

// App is one running demo server.
type App struct {
	cfg      Config
	tokens   tokenIssuer
	orders   *orderStore
	repl     *replicator
	inFlight atomic.Int64
	down     atomic.Bool

	mu   sync.Mutex
	load float64 // guarded by mu; < 0 means from in-flight requests
}

// New validates cfg, applies defaults and returns a ready app. Call Close to
// stop pending replication.
func New(cfg Config) (*App, error) {
	if !validName(cfg.ServerID) {
		return nil, fmt.Errorf("demo backend: invalid server id %q: must be 1-64 characters of [A-Za-z0-9._-]", cfg.ServerID)
	}
	if !validName(cfg.Region) {
		return nil, fmt.Errorf("demo backend: invalid region %q: must be 1-64 characters of [A-Za-z0-9._-]", cfg.Region)
	}
	if len(cfg.TokenKey) < 32 {
		return nil, fmt.Errorf("demo backend: token key must be at least 32 bytes, got %d", len(cfg.TokenKey))
	}
	for _, p := range cfg.Peers {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("demo backend: invalid peer URL %q: must be an absolute http(s) URL", p)
		}
	}
	if cfg.ReplicationDelay < 0 {
		return nil, fmt.Errorf("demo backend: replication delay must not be negative, got %s", cfg.ReplicationDelay)
	}
	if cfg.ReplicationDelay == 0 {
		cfg.ReplicationDelay = 5 * time.Second
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 2 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 7 * 24 * time.Hour
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second}
	}
	a := &App{cfg: cfg, load: cfg.Load}
	a.tokens = tokenIssuer{key: cfg.TokenKey, accessTTL: cfg.AccessTTL, refreshTTL: cfg.RefreshTTL}
	a.orders = newOrderStore()
	a.repl = newReplicator(cfg, a.tokens)
	return a, nil
}

// Close stops replication that has not been sent yet.
func (a *App) Close() { a.repl.close() }

// ID is the server id.
func (a *App) ID() string { return a.cfg.ServerID }

// Handler serves the public API: /auth/login, /auth/refresh, /whoami,
// /orders…, /healthz and the peer-only /internal/replicate.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /auth/login", a.login)
	mux.HandleFunc("POST /auth/refresh", a.refresh)
	mux.HandleFunc("GET /whoami", a.whoami)
	mux.HandleFunc("POST /orders", a.createOrder)
	mux.HandleFunc("GET /orders/{id}", a.getOrder)
	mux.HandleFunc("POST /orders/{id}/items", a.addItem)
	mux.HandleFunc("POST /orders/{id}/submit", a.submitOrder)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("POST /internal/replicate", a.receiveReplica)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return a.instrument(mux)
}

// instrument counts in-flight requests for the load, stamps X-Served-By and
// refuses traffic while the server is marked down.
func (a *App) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.inFlight.Add(1)
		defer a.inFlight.Add(-1)
		w.Header().Set(ServedByHeader, a.cfg.ServerID)
		if a.down.Load() && r.URL.Path != "/healthz" {
			a.writeError(w, http.StatusServiceUnavailable, "server_down", "server "+a.cfg.ServerID+" is down")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// currentLoad is what /healthz reports; self is the number of in-flight
// requests that are the caller itself (the health probe is not load).
func (a *App) currentLoad(self int64) float64 {
	a.mu.Lock()
	l := a.load
	a.mu.Unlock()
	if l >= 0 {
		return l
	}
	n := a.inFlight.Load() - self
	if n < 0 {
		n = 0
	}
	return float64(n) / float64(a.cfg.Capacity)
}

// errorBody is every error response of the app.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Server  string `json:"server"`
}

func (a *App) writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: code, Message: msg, Server: a.cfg.ServerID})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxBody bounds every request body the app reads.
const maxBody = 64 << 10

// decodeJSON reads a JSON body into v. An empty body leaves v unchanged, so
// endpoints whose fields are all optional accept it.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
