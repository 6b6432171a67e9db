// Package pg runs the lab's PostgreSQL instances: in each region the
// region's own primary and one hot standby of every other region's primary,
// with a replication lag set by recovery_min_apply_delay.
package pg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// BinDir finds PostgreSQL's server programs (Debian installs them under
// /usr/lib/postgresql/<version>/bin, off the PATH).
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
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

// Check says whether PostgreSQL can run here, with the reason when not.
func Check() error {
	if _, err := BinDir(); err != nil {
		return err
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return errors.New("no postgres user (Debian package postgresql creates it)")
	}
	return nil
}

// Owner returns the uid and gid of the postgres user.
func Owner() (int, int, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// PrimaryConf is the primary's settings: replication on, durability off
// (the lab measures lag, not disks), small memory. A standby learns how
// recent its copy is from the send time of the last message its primary
// sent; an idle primary sends only keepalives, and only once half of
// wal_sender_timeout has passed without a reply from the standby, so a
// shorter timeout than the default keeps that time fresher. Not too short:
// the timeout also ends a stream whose standby (or pg_basebackup) has not
// answered for that long, which on a loaded machine happened at 2 s and 4 s.
func PrimaryConf(listen string, port int) string {
	return conf(listen, port) + `wal_level = replica
max_wal_senders = 10
wal_keep_size = 256MB
wal_sender_timeout = 10s
`
}

// StandbyConf is a standby's settings; its delay file is included so that
// the lag can be changed with a reload. A standby gives up a stream it has
// heard nothing on for 10 s, not 60 (across a cut, the primary's end is
// gone and its close does not get through), and tries again after a
// second, not five, so that replication resumes soon after a heal. Its own
// status messages count as replies at the primary, so they are sent no
// more often than half the primary's wal_sender_timeout: otherwise they
// would hold back the keepalives that carry the primary's time.
func StandbyConf(listen string, port int) string {
	return conf(listen, port) + `hot_standby = on
hot_standby_feedback = on
max_standby_streaming_delay = -1
wal_receiver_status_interval = 10s
wal_receiver_timeout = 10s
wal_retrieve_retry_interval = 1s
include_if_exists = 'lab-delay.conf'
`
}

// conf is every instance's base. max_connections leaves room for every
// app's pool on a primary (six apps write there), the agents' progress
// readers and the lag probe; a standby must allow at least as many as its
// primary.
func conf(listen string, port int) string {
	return fmt.Sprintf(`listen_addresses = '%s'
port = %d
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 100
log_min_messages = warning
`, listen, port)
}

// HBA lets every lab address in without a password, for queries and
// replication: the lab's networks are its own namespaces.
const HBA = `host all all 198.18.0.0/16 trust
host replication all 198.18.0.0/16 trust
host all all 198.19.0.0/16 trust
host replication all 198.19.0.0/16 trust
`

// DelayConf is the content of a standby's delay file.
func DelayConf(delayMS int) string {
	return fmt.Sprintf("recovery_min_apply_delay = '%dms'\n", delayMS)
}

// WriteConf appends settings to postgresql.conf and replaces pg_hba.conf.
func WriteConf(dir, settings string) error {
	f, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("\n# lab\n" + settings); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "pg_hba.conf"), []byte(HBA), 0o600)
}

// DSN is the connection string of an instance, as the superuser.
func DSN(host string, port int) string { return DSNAs("postgres", host, port) }

// DSNAs is the connection string of an instance as role user.
func DSNAs(user, host string, port int) string {
	return fmt.Sprintf("postgres://%s@%s:%d/postgres?sslmode=disable&connect_timeout=3", user, host, port)
}

// ProgressRole is the role the servers' agents read replication progress
// as: it may log in and holds pg_monitor (the replication views and
// functions, with the receiver's details), and nothing else: no table of
// the app's, no write. Created on each primary before its standbys are
// copied, it exists on every copy.
const ProgressRole = "sessionpin_progress"

// ProgressRoleSQL creates ProgressRole.
const ProgressRoleSQL = `CREATE ROLE ` + ProgressRole + ` LOGIN;
GRANT pg_monitor TO ` + ProgressRole + `;`

// Chown gives dir to the postgres user.
func Chown(dir string) error {
	uid, gid, err := Owner()
	if err != nil {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// Quote is for messages.
func Quote(args []string) string { return strings.Join(args, " ") }
