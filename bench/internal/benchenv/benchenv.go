// Package benchenv holds what both benchmark programs need of their
// environment: free loopback ports, an embedded etcd in a temporary
// directory, a description of the machine, and process CPU and memory
// figures read from /proc.
package benchenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
)

// FreePort returns a loopback host:port that was free a moment ago.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Etcd is an embedded single-member etcd with a client connected to it.
type Etcd struct {
	Member *embedetcd.Etcd
	Client *clientv3.Client
	dir    string
}

// StartEtcd starts an embedded etcd on free loopback ports with its data in
// a fresh temporary directory.
func StartEtcd() (*Etcd, error) {
	dir, err := os.MkdirTemp("", "sessionpin-bench-etcd-")
	if err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	clientAddr, err := FreePort()
	if err != nil {
		return nil, err
	}
	peerAddr, err := FreePort()
	if err != nil {
		return nil, err
	}
	m, err := embedetcd.Start(embedetcd.Config{Name: "bench", Dir: dir, ClientAddr: clientAddr, PeerAddr: peerAddr,
		// etcd logs its own shutdown as errors; the benchmark reports what matters.
		LogLevel: "panic"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		m.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return &Etcd{Member: m, Client: cli, dir: dir}, nil
}

// Revision is the store's current revision: every etcd write bumps it by
// one, so deltas count writes.
func (e *Etcd) Revision(ctx context.Context) (int64, error) {
	resp, err := e.Client.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read etcd revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// Close stops the client and the member and removes the data.
func (e *Etcd) Close() {
	e.Client.Close()
	e.Member.Close()
	os.RemoveAll(e.dir)
}

// Machine describes the host a benchmark ran on.
type Machine struct {
	CPUs      int
	CPUModel  string
	GoVersion string
	Kernel    string
}

// DescribeMachine reads the CPU model from /proc/cpuinfo and asks the go
// command for its version (the toolchain `go run` used).
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: "unknown", GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	return m
}

// LoadAverage is the 1-minute load average, or -1 when unreadable. The
// benchmarks record it because they share the machine with whatever else
// runs.
func LoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux this runs on.
const clockTicks = 100

// ProcessCPU is the user+system CPU time process pid has used so far
// (10 ms resolution).
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after its ')' are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// After ')': state is field 3 of stat(5), utime 14 and stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad cpu times", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// RSS returns the resident set size and its peak (VmRSS, VmHWM) of pid, in
// bytes.
func RSS(pid int) (rss, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, sc.Err()
}

// MiB formats a byte count in MiB.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
