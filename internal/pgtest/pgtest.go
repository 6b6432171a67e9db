// Package pgtest runs real PostgreSQL for tests: a primary and hot
// standbys streaming from it, on loopback ports of their own, with their
// data in the test's temporary directory. Run as root (as CI does), the
// servers run as the postgres user, since PostgreSQL refuses to run as
// root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// binDir finds PostgreSQL's server programs: Debian installs them under
// /usr/lib/postgresql/<version>/bin, off the PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_basebackup"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("PostgreSQL's server is missing (Debian package postgresql)")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// runAs is the user the servers run as: postgres when the test runs as
// root, else the test's own user.
type runAs struct {
	root     bool
	uid, gid int
}

func owner() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, errors.New("no postgres user to run PostgreSQL as (Debian package postgresql creates it)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if _, err := exec.LookPath("setpriv"); err != nil {
		return runAs{}, errors.New("setpriv is missing (Debian package util-linux)")
	}
	return runAs{root: true, uid: uid, gid: gid}, nil
}

// command runs a PostgreSQL program as the servers' user.
func (o runAs) command(ctx context.Context, args ...string) *exec.Cmd {
	if o.root {
		args = append([]string{"setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"}, args...)
	}
	return exec.CommandContext(ctx, args[0], args[1:]...)
}

// Cluster is the PostgreSQL of one test.
type Cluster struct {
	t   testing.TB
	bin string
	as  runAs
	dir string
}

// New returns a cluster whose servers keep their data under a directory of
// the test's. Without PostgreSQL the test is skipped, or fails under CI
// (CI set), where its absence is a broken runner.
func New(t testing.TB) *Cluster {
	t.Helper()
	bin, err := binDir()
	var as runAs
	if err == nil {
		as, err = owner()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("no PostgreSQL: %v", err)
	}
	dir := t.TempDir()
	if as.root {
		// The servers' user must reach its data below the test's
		// directories, which are root's and closed to others.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(dir, as.uid, as.gid); err != nil {
			t.Fatal(err)
		}
	}
	return &Cluster{t: t, bin: bin, as: as, dir: dir}
}

// Server is one running PostgreSQL server.
type Server struct {
	c    *Cluster
	Name string
	Dir  string
	Port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// DSN is the connection string of the server as user, in database
// postgres. Loopback connections need no password (trust).
func (s *Server) DSN(user string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", user, s.Port)
}

// Settings common to every server: durability off (tests measure
// replication, not disks), small memory, loopback only.
func settings(port int) string {
	return fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = ''
fsync = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 20
log_min_messages = warning
`, port)
}

// PrimarySettings make a server a primary that streams to standbys. Its
// wal_sender_timeout is short so that an idle primary's keepalives reach
// the standbys about every second.
const PrimarySettings = `wal_level = replica
max_wal_senders = 5
wal_keep_size = 64MB
wal_sender_timeout = 2s
`

// StandbySettings make a server a hot standby that answers queries.
const StandbySettings = `hot_standby = on
wal_receiver_status_interval = 1s
`

const hba = `host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
`

// StartPrimary initialises and starts a primary named name.
func (c *Cluster) StartPrimary(name string) *Server {
	c.t.Helper()
	dir := filepath.Join(c.dir, name)
	c.run("initdb", "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	return c.start(name, dir, PrimarySettings)
}

// StartStandby copies primary with pg_basebackup and starts the copy as a
// hot standby streaming from it.
func (c *Cluster) StartStandby(name string, primary *Server) *Server {
	c.t.Helper()
	dir := filepath.Join(c.dir, name)
	c.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-D", dir, "-R", "-X", "stream", "--no-sync", "-c", "fast")
	return c.start(name, dir, StandbySettings)
}

func (c *Cluster) run(program string, args ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.as.command(ctx, append([]string{filepath.Join(c.bin, program)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s: %v\n%s", program, err, out)
	}
}

// start configures the server in dir and starts it on a free port.
func (c *Cluster) start(name, dir, extra string) *Server {
	c.t.Helper()
	port := freePort(c.t)
	conf, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	_, err = conf.WriteString("\n# pgtest\n" + settings(port) + extra)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "pg_hba.conf"), []byte(hba), 0o600)
	}
	if err == nil && c.as.root {
		err = os.Chown(filepath.Join(dir, "pg_hba.conf"), c.as.uid, c.as.gid)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	s := &Server{c: c, Name: name, Dir: dir, Port: port}
	s.Start()
	c.t.Cleanup(s.Stop)
	return s
}

// freePort returns a loopback port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts the server (again) and waits until it takes connections.
func (s *Server) Start() {
	s.c.t.Helper()
	s.mu.Lock()
	log, err := os.Create(filepath.Join(s.c.dir, s.Name+".log"))
	if err != nil {
		s.mu.Unlock()
		s.c.t.Fatal(err)
	}
	cmd := s.c.as.command(context.Background(), filepath.Join(s.c.bin, "postgres"), "-D", s.Dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		s.mu.Unlock()
		s.c.t.Fatalf("start postgres %s: %v", s.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return
		}
		cancel()
		select {
		case <-done:
			out, _ := os.ReadFile(filepath.Join(s.c.dir, s.Name+".log"))
			s.c.t.Fatalf("postgres %s exited:\n%s", s.Name, tail(string(out), 20))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.c.t.Fatalf("postgres %s not ready: %v", s.Name, err)
		}
	}
}

// Stop shuts the server down fast (SIGINT: sessions are ended, nothing is
// lost) and waits until it is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Exec runs sql on the server as postgres.
func (s *Server) Exec(sql string, args ...any) {
	s.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		s.c.t.Fatalf("connect to %s: %v", s.Name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		s.c.t.Fatalf("%s on %s: %v", sql, s.Name, err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
