// Package proc starts the lab's processes inside network namespaces and
// stops every one of them, whatever happens to the run.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RunEnv is the environment variable every process of a run carries, so
// that a leftover process can be found by its run id.
const RunEnv = "SESSIONPIN_LAB_RUN"

// Proc is one started process.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Running says whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process's whole group.
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop sends sig, waits up to grace, then kills the group. A process that
// needed SIGKILL is not an error: it is gone, which is what matters here.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) error {
	if err := p.Signal(sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not die after SIGKILL", p.Name)
	}
}

// Supervisor starts processes for one run and stops what is still running.
type Supervisor struct {
	RunID  string
	LogDir string

	mu    sync.Mutex
	procs []*Proc
}

// Spec says how to start a process.
type Spec struct {
	Name string   // for logs and messages; the log file is <Name>.log
	NS   string   // network namespace ("" for the lab's own)
	User string   // run as this user ("" for the lab's own)
	Env  []string // added to the lab's environment
	Dir  string
	Args []string
}

// Start starts a process and returns at once.
func (s *Supervisor) Start(sp Spec) (*Proc, error) {
	args := sp.Args
	if sp.User != "" {
		args = append([]string{"setpriv", "--reuid=" + sp.User, "--regid=" + sp.User, "--init-groups", "--"}, args...)
	}
	if sp.NS != "" {
		args = append([]string{"ip", "netns", "exec", sp.NS}, args...)
	}
	logPath := filepath.Join(s.LogDir, sp.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", sp.Name, err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), RunEnv+"="+s.RunID), sp.Env...)
	cmd.Dir = sp.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own group, so a stop reaches what it started; and killed if
	// the lab dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", sp.Name, err)
	}
	p := &Proc{Name: sp.Name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// StopAll stops every running process, newest first, each with SIGTERM
// and grace before SIGKILL.
func (s *Supervisor) StopAll(grace time.Duration) error {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i := len(procs) - 1; i >= 0; i-- {
		if !procs[i].Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = procs[i].Stop(syscall.SIGTERM, grace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Tail returns the last lines of a process's log, for error messages.
func Tail(p *Proc, n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Leftovers returns the pids of processes that carry run id runID in their
// environment.
func Leftovers(runID string) []int {
	want := []byte(RunEnv + "=" + runID + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b)+"\x00", string(want)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
