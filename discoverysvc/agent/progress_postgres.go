package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// PostgresSource reads the progress of one origin from PostgreSQL's own
// replication functions, on the server's copy of that origin's data: a
// hot standby of the origin's primary, or the primary itself.
type PostgresSource struct {
	origin string
	config *pgx.ConnConfig
	conn   *pgx.Conn // kept between reads, dialled again after any error
}

// NewPostgresSource parses the value of --progress-postgres,
// ORIGIN=CONNSTRING: an origin name, then a libpq connection string or URL
// (postgres://user@host:5432/db, or host=... user=...). The password is
// best kept out of it, in PGPASSWORD or a .pgpass file, which are read as
// libpq reads them.
func NewPostgresSource(value string) (*PostgresSource, error) {
	origin, conn, ok := strings.Cut(value, "=")
	if !ok || conn == "" {
		return nil, errors.New("must be ORIGIN=CONNSTRING")
	}
	if !schema.ValidName(origin) {
		return nil, fmt.Errorf("origin %q %s", origin, schema.NameRule)
	}
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		// pgx's message may quote the connection string, password and all.
		return nil, fmt.Errorf("origin %s: not a valid PostgreSQL connection string", origin)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "sessionpin-agent"
	}
	return &PostgresSource{origin: origin, config: cfg}, nil
}

// Name is the origin and where its copy is, without credentials.
func (s *PostgresSource) Name() string {
	return fmt.Sprintf("postgres %s (%s:%d/%s)", s.origin, s.config.Host, s.config.Port, s.config.Database)
}

// Origins is the one origin the connection reads.
func (s *PostgresSource) Origins() []string { return []string{s.origin} }

// postgresProgressQuery reads, in one round trip, what pgReading.lag needs.
// Every function it calls may be executed by any role; the WAL receiver's
// details are shown only to roles with pg_read_all_stats (which pg_monitor
// includes), and to others as nulls.
const postgresProgressQuery = `SELECT pg_is_in_recovery(),
	w.pid IS NOT NULL,
	w.status,
	pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(),
	extract(epoch FROM clock_timestamp() - w.last_msg_send_time)::float8,
	extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS w ON true`

// Read runs the query on the copy, dialling it first when needed.
func (s *PostgresSource) Read(ctx context.Context) (map[string]schema.Progress, error) {
	if s.conn == nil || s.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, s.config)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		s.conn = conn
	}
	var r pgReading
	err := s.conn.QueryRow(ctx, postgresProgressQuery).Scan(&r.InRecovery, &r.HasReceiver, &r.Status, &r.ReplayedAll, &r.SinceMessage, &r.SinceReplay)
	if err != nil {
		// A connection whose query failed or timed out may be mid-protocol:
		// start afresh next time.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		s.conn.Close(closeCtx)
		cancel()
		s.conn = nil
		return nil, fmt.Errorf("query: %w", err)
	}
	secs, err := r.lag()
	if err != nil {
		return nil, err
	}
	return map[string]schema.Progress{s.origin: progressOf(secs)}, nil
}

// Close ends the connection, if any.
func (s *PostgresSource) Close(ctx context.Context) {
	if s.conn != nil {
		s.conn.Close(ctx)
		s.conn = nil
	}
}

// pgReading is one answer of postgresProgressQuery.
type pgReading struct {
	InRecovery   bool     // false: the copy is the origin's primary
	HasReceiver  bool     // a WAL receiver process runs
	Status       *string  // the WAL receiver's state; null when the role may not see it
	ReplayedAll  *bool    // everything received is replayed; null before anything was received
	SinceMessage *float64 // seconds since the primary sent its last message, by the copy's clock
	SinceReplay  *float64 // seconds since the last replayed commit was committed, by the copy's clock
}

// lag is how far behind its primary the copy is, in seconds: everything
// committed there more than that long ago is in the copy. An error means
// the copy cannot tell, and its progress is unknown.
//
// A primary is its own copy: lag 0. A standby that is not streaming may be
// any distance behind. A streaming standby that has replayed all it
// received holds everything the primary had sent by its last message, and
// the primary sends all it commits at once: the lag is the time since that
// message. One still replaying holds every commit up to the last one it
// replayed, and the lag is the time since that commit. Both times are
// stamped by the primary's clock and read by the standby's, so the clocks'
// difference is part of the figure. An idle primary sends nothing but
// keepalives, every wal_sender_timeout/2 at the most (or when the standby
// asks, every wal_receiver_timeout/2), so on an idle primary the lag saws
// up to that period: set wal_sender_timeout low, or have the primary
// commit a heartbeat row every second.
func (r pgReading) lag() (float64, error) {
	switch {
	case !r.InRecovery:
		return 0, nil
	case !r.HasReceiver:
		return 0, errors.New("the standby has no WAL receiver: it is not streaming from its primary")
	case r.Status == nil:
		return 0, errors.New("the role may not read pg_stat_wal_receiver: grant it pg_read_all_stats (or pg_monitor)")
	case *r.Status != "streaming":
		return 0, fmt.Errorf("the standby's WAL receiver is %s, not streaming", *r.Status)
	case r.ReplayedAll == nil:
		return 0, errors.New("the standby has received no WAL yet")
	}
	since, what := r.SinceReplay, "replayed commit"
	if *r.ReplayedAll {
		since, what = r.SinceMessage, "message from the primary"
	}
	if since == nil || math.IsNaN(*since) || math.IsInf(*since, 0) {
		return 0, fmt.Errorf("the standby knows no time of its last %s", what)
	}
	return max(*since, 0), nil
}
