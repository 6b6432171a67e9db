package chaos

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process of a test. Its output goes to a log file whose
// tail is printed when the test fails, and it is killed when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}

	mu  sync.Mutex
	err error // exit status, once done is closed
}

// startProc runs bin/<bin> with args; env adds to the test's environment.
func startProc(t testing.TB, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, binPath(bin), env, args...)
}

// startCmd runs the program at path with args, as startProc does.
func startCmd(t testing.TB, name, path string, env []string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: log file: %v", name, err)
	}
	cmd := exec.Command(path, args...)
	// HOME and XDG dirs in the temp dir: Caddy writes its autosave and
	// storage there, never into the user's home.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = f, f
	// A child must not outlive a test binary that dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: start: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", name, p.tail(40))
		}
	})
	return p
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig; a process that already exited is left alone.
func (p *proc) signal(sig syscall.Signal) {
	if p.running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// kill ends the process at once (a crash) and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// wait waits up to timeout for the process to exit and returns its status.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

// stop asks the process to end (SIGTERM) and kills it after timeout.
func (p *proc) stop(timeout time.Duration) error {
	p.signal(syscall.SIGTERM)
	if err := p.wait(timeout); err != nil && p.running() {
		p.kill()
		return err
	}
	return nil
}

// output is the whole log so far.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// tail is the last n lines of the log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// joinComma is strings.Join with a comma, for endpoint flags.
func joinComma(s []string) string { return strings.Join(s, ",") }
