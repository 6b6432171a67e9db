// Package app is the lab's application: a multi-step workflow service that
// keeps its state in PostgreSQL and knows nothing of sessionpin. A region
// writes the workflows that start there to its own primary; a server reads
// every workflow from its own region's copy, so a step served in another
// region than the last one may read a copy that has not caught up.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is created on every region's primary.
const Schema = `CREATE TABLE IF NOT EXISTS workflows (
	id bigserial PRIMARY KEY,
	step int NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS lag_probe (
	seq bigint PRIMARY KEY,
	written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);`

// Config is one server of the app.
type Config struct {
	ID     string
	Region string
	// Primaries maps each region to the connection string of its primary
	// (where its workflows are written).
	Primaries map[string]string
	// Copies maps each region to this server's region's copy of that
	// region's data (the own primary for the own region, a standby for
	// the others).
	Copies map[string]string
	// Capacity is how many clients the server holds at load 1: its
	// /healthz load is the distinct clients (ClientHeader) it served
	// within LoadWindow over Capacity. 0: the load is always 0.
	Capacity float64
	// LoadWindow is how long a client counts after its last request.
	// Default: DefaultLoadWindow.
	LoadWindow time.Duration
}

// Server is the app's HTTP handler.
type Server struct {
	cfg       Config
	primaries map[string]*pgxpool.Pool
	copies    map[string]*pgxpool.Pool
	clients   *recent
}

// New connects lazily to every database.
func New(ctx context.Context, cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, primaries: map[string]*pgxpool.Pool{}, copies: map[string]*pgxpool.Pool{}, clients: newRecent(cfg.LoadWindow)}
	open := func(dsn string) (*pgxpool.Pool, error) {
		pc, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		pc.MaxConns = 8
		pc.ConnConfig.ConnectTimeout = 3 * time.Second
		return pgxpool.NewWithConfig(ctx, pc)
	}
	for r, dsn := range cfg.Primaries {
		p, err := open(dsn)
		if err != nil {
			return nil, fmt.Errorf("primary of %s: %w", r, err)
		}
		s.primaries[r] = p
	}
	for r, dsn := range cfg.Copies {
		p, err := open(dsn)
		if err != nil {
			return nil, fmt.Errorf("copy of %s: %w", r, err)
		}
		s.copies[r] = p
	}
	if _, ok := s.primaries[cfg.Region]; !ok {
		return nil, fmt.Errorf("no primary for own region %s", cfg.Region)
	}
	return s, nil
}

// Close closes the pools.
func (s *Server) Close() {
	for _, p := range s.primaries {
		p.Close()
	}
	for _, p := range s.copies {
		p.Close()
	}
}

// Workflow is what the API answers.
type Workflow struct {
	ID   string `json:"id"`
	Step int    `json:"step"`
}

func (s *Server) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Lab-Server", s.cfg.ID)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, code int, reason string) {
	s.reply(w, code, map[string]string{"error": reason})
}

// parseID splits "<region>.<n>".
func parseID(id string) (region string, n int64, ok bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return "", 0, false
	}
	num := id[i+1:]
	// Digits only, no leading zero: one id, one spelling.
	if num == "" || num[0] == '0' || strings.Trim(num, "0123456789") != "" {
		return "", 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return id[:i], n, true
}

// ServeHTTP routes:
//
//	POST /auth/login, POST /auth/refresh   200 (the app's own session is not the lab's subject)
//	POST /workflows                        start a workflow in this region
//	GET  /workflows/{id}                   read it from this region's copy
//	POST /workflows/{id}/steps?expect=N    the next step, which reads step N first
//	GET  /healthz                          200, with the server's load
//
// Every request but /healthz that names its client (ClientHeader) counts
// that client in the load.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 4*time.Second)
	defer cancel()
	path := strings.TrimPrefix(r.URL.Path, "/")
	parts := strings.Split(path, "/")
	if path != "healthz" {
		s.clients.seen(r.Header.Get(ClientHeader), time.Now())
	}
	switch {
	case path == "healthz":
		// The agent reports the top-level "load" in its heartbeat.
		s.reply(w, 200, map[string]any{"status": "ok", "load": Load(s.clients.count(time.Now()), s.cfg.Capacity)})
	case path == "auth/login" || path == "auth/refresh":
		s.reply(w, 200, map[string]string{"server": s.cfg.ID})
	case path == "workflows" && r.Method == http.MethodPost:
		var n int64
		err := s.primaries[s.cfg.Region].QueryRow(ctx, `INSERT INTO workflows DEFAULT VALUES RETURNING id`).Scan(&n)
		if err != nil {
			s.fail(w, 503, "db_unavailable")
			return
		}
		s.reply(w, 200, Workflow{ID: fmt.Sprintf("%s.%d", s.cfg.Region, n)})
	case len(parts) == 2 && parts[0] == "workflows" && r.Method == http.MethodGet:
		s.read(ctx, w, parts[1])
	case len(parts) == 3 && parts[0] == "workflows" && parts[2] == "steps" && r.Method == http.MethodPost:
		s.step(ctx, w, r, parts[1])
	default:
		s.fail(w, 404, "not_found")
	}
}

// load reads workflow id from this region's copy.
func (s *Server) load(ctx context.Context, id string) (region string, n int64, step int, err error) {
	region, n, ok := parseID(id)
	if !ok {
		return "", 0, 0, errBadID
	}
	c, ok := s.copies[region]
	if !ok {
		return "", 0, 0, errBadID
	}
	err = c.QueryRow(ctx, `SELECT step FROM workflows WHERE id = $1`, n).Scan(&step)
	return region, n, step, err
}

var errBadID = errors.New("bad workflow id")

func (s *Server) read(ctx context.Context, w http.ResponseWriter, id string) {
	_, _, step, err := s.load(ctx, id)
	switch {
	case errors.Is(err, errBadID):
		s.fail(w, 400, "bad_id")
	case errors.Is(err, pgx.ErrNoRows):
		// Not yet on this region's copy: the read saw data that has
		// not caught up.
		s.fail(w, 409, "stale_read")
	case err != nil:
		s.fail(w, 503, "db_unavailable")
	default:
		s.reply(w, 200, Workflow{ID: id, Step: step})
	}
}

func (s *Server) step(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) {
	expect, err := strconv.Atoi(r.URL.Query().Get("expect"))
	if err != nil || expect < 0 {
		s.fail(w, 400, "bad_expect")
		return
	}
	region, n, step, err := s.load(ctx, id)
	switch {
	case errors.Is(err, errBadID):
		s.fail(w, 400, "bad_id")
		return
	case errors.Is(err, pgx.ErrNoRows):
		s.fail(w, 409, "stale_read")
		return
	case err != nil:
		s.fail(w, 503, "db_unavailable")
		return
	case step < expect:
		// The seed's failure: the previous step is not on this copy.
		s.fail(w, 409, "stale_read")
		return
	case step > expect:
		s.fail(w, 409, "conflict")
		return
	}
	tag, err := s.primaries[region].Exec(ctx, `UPDATE workflows SET step = step + 1, updated_at = clock_timestamp() WHERE id = $1 AND step = $2`, n, expect)
	if err != nil {
		s.fail(w, 503, "db_unavailable")
		return
	}
	if tag.RowsAffected() != 1 {
		s.fail(w, 409, "conflict")
		return
	}
	s.reply(w, 200, Workflow{ID: id, Step: expect + 1})
}
