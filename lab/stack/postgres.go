package stack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionpin/sessionpin/lab/app"
	"github.com/sessionpin/sessionpin/lab/netns"
	"github.com/sessionpin/sessionpin/lab/pg"
	"github.com/sessionpin/sessionpin/lab/proc"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// PrimaryPort and StandbyPort place region of's data in the region that
// holds the copy: its own primary, or a standby of another region's.
func standbyPort(of string) int { return topo.PortPGStandbyBase + topo.RegionIndex(of) }

// CopyDSN is region at's copy of region of's data.
func CopyDSN(at, of string) string {
	host := topo.InfraHost(at).Addr.String()
	if at == of {
		return pg.DSN(host, topo.PortPGOwn)
	}
	return pg.DSN(host, standbyPort(of))
}

// ProgressDSN is how a server in region at reads the progress of its copy
// of region of's data: the same instance as CopyDSN, as the agents' role.
func ProgressDSN(at, of string) string {
	host := topo.InfraHost(at).Addr.String()
	if at == of {
		return pg.DSNAs(pg.ProgressRole, host, topo.PortPGOwn)
	}
	return pg.DSNAs(pg.ProgressRole, host, standbyPort(of))
}

// PrimaryDSN is region r's primary.
func PrimaryDSN(r string) string { return pg.DSN(topo.InfraHost(r).Addr.String(), topo.PortPGOwn) }

func (s *Stack) pgDir(name string) string { return filepath.Join(s.cfg.Dir, "pg", name) }

// runAsPG runs a PostgreSQL program as the postgres user in namespace ns.
func (s *Stack) runAsPG(ctx context.Context, ns string, args ...string) error {
	full := append([]string{"ip", "netns", "exec", ns, "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"}, args...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = append(os.Environ(), proc.RunEnv+"="+s.cfg.RunID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(args[0]), err, out)
	}
	return nil
}

func (s *Stack) startPG(name, ns, dir string) error {
	bin, _ := pg.BinDir()
	p, err := s.sup.Start(proc.Spec{Name: "pg-" + strings.ReplaceAll(name, "/", "-of-"), NS: ns, User: "postgres", Args: []string{filepath.Join(bin, "postgres"), "-D", dir}})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.pg[name] = p
	s.mu.Unlock()
	return nil
}

// pgConn connects from namespace ns.
func (s *Stack) pgConn(ctx context.Context, ns, dsn string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cc.DialFunc = netns.Dialer(ns)
	return pgx.ConnectConfig(ctx, cc)
}

func (s *Stack) waitPG(ctx context.Context, name, ns, dsn string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := s.pgConn(ctx, ns, dsn)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		s.mu.Lock()
		p := s.pg[name]
		s.mu.Unlock()
		if p != nil && !p.Running() {
			return fmt.Errorf("postgres %s exited: %s", name, proc.Tail(p, 10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres %s not ready: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// upPG starts every region's primary, then in every region a standby of
// each other region's primary.
func (s *Stack) upPG(ctx context.Context) error {
	bin, err := pg.BinDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.cfg.Dir, "pg"), 0o755); err != nil {
		return err
	}
	if err := pg.Chown(filepath.Join(s.cfg.Dir, "pg")); err != nil {
		return err
	}
	errs := make([]error, len(topo.Regions))
	var wg sync.WaitGroup
	for i, r := range topo.Regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.upPrimary(ctx, bin, r)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	errs = make([]error, len(topo.Regions)*len(topo.Regions))
	for i, at := range topo.Regions {
		for j, of := range topo.Regions {
			if at == of {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i*len(topo.Regions)+j] = s.upStandby(ctx, bin, at, of)
			}()
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) upPrimary(ctx context.Context, bin, r string) error {
	dir := s.pgDir(r)
	ns := s.Net.NS(topo.InfraHost(r))
	if err := s.runAsPG(ctx, ns, filepath.Join(bin, "initdb"), "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return err
	}
	if err := pg.WriteConf(dir, pg.PrimaryConf(topo.InfraHost(r).Addr.String(), topo.PortPGOwn)); err != nil {
		return err
	}
	if err := s.startPG(r, ns, dir); err != nil {
		return err
	}
	if err := s.waitPG(ctx, r, ns, PrimaryDSN(r)); err != nil {
		return err
	}
	c, err := s.pgConn(ctx, ns, PrimaryDSN(r))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, app.Schema); err != nil {
		return err
	}
	// Before the standbys are copied from this primary, so that they
	// hold the role too.
	if _, err := c.Exec(ctx, pg.ProgressRoleSQL); err != nil {
		return fmt.Errorf("progress role: %w", err)
	}
	return nil
}

func (s *Stack) upStandby(ctx context.Context, bin, at, of string) error {
	name := at + "/" + of
	dir := s.pgDir(at + "-of-" + of)
	ns := s.Net.NS(topo.InfraHost(at))
	// -R writes these connection settings into the standby's
	// primary_conninfo. tcp_user_timeout bounds each attempt to reach the
	// primary again: across a cut an attempt is not refused, it hangs,
	// and TCP's own retries back off so far that the standby would stream
	// again only long after the heal. (The WAL receiver ignores
	// connect_timeout; the kernel applies TCP_USER_TIMEOUT to the
	// connection's opening too.)
	conn := fmt.Sprintf("host=%s port=%d user=postgres tcp_user_timeout=2000", topo.InfraHost(of).Addr, topo.PortPGOwn)
	if err := s.runAsPG(ctx, ns, filepath.Join(bin, "pg_basebackup"), "-d", conn,
		"-D", dir, "-R", "-X", "stream", "--no-sync", "-c", "fast"); err != nil {
		return err
	}
	if err := pg.WriteConf(dir, pg.StandbyConf(topo.InfraHost(at).Addr.String(), standbyPort(of))); err != nil {
		return err
	}
	if err := s.writeDelay(dir, s.cfg.Lag); err != nil {
		return err
	}
	if err := s.startPG(name, ns, dir); err != nil {
		return err
	}
	return s.waitPG(ctx, name, ns, CopyDSN(at, of))
}

func (s *Stack) writeDelay(dir string, lag time.Duration) error {
	f := filepath.Join(dir, "lab-delay.conf")
	if err := os.WriteFile(f, []byte(pg.DelayConf(int(lag/time.Millisecond))), 0o644); err != nil {
		return err
	}
	uid, gid, err := pg.Owner()
	if err != nil {
		return err
	}
	return os.Chown(f, uid, gid)
}

// SetLag sets recovery_min_apply_delay on every standby and reloads them.
func (s *Stack) SetLag(lag time.Duration) error {
	for _, at := range topo.Regions {
		for _, of := range topo.Regions {
			if at == of {
				continue
			}
			if err := s.writeDelay(s.pgDir(at+"-of-"+of), lag); err != nil {
				return err
			}
			s.mu.Lock()
			p := s.pg[at+"/"+of]
			s.mu.Unlock()
			if p != nil {
				if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
					return fmt.Errorf("reload standby %s of %s: %w", at, of, err)
				}
			}
		}
	}
	s.mu.Lock()
	s.lagNow = lag
	s.mu.Unlock()
	return nil
}

// Lag returns the recovery_min_apply_delay in force.
func (s *Stack) Lag() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lagNow
}
