package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// child is a child process of the benchmark, this same binary in another
// mode, driven by line commands on its stdin; each command gets one reply
// line on its stdout. Its CPU and memory are measured apart from the
// parent's.
type child struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan string
}

// startChild starts this binary with args and waits for its "ready".
// notice, when not nil, takes the lines that are notices rather than
// replies (it reports whether it took the line).
func startChild(name string, args []string, notice func(line string) bool) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, replies: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); notice == nil || !notice(line) {
				c.replies <- line
			}
		}
		close(c.replies)
	}()
	if r, err := c.reply(60 * time.Second); err != nil || r != "ready" {
		c.stop()
		return nil, fmt.Errorf("%s: not ready (%q): %v", name, r, err)
	}
	return c, nil
}

func (c *child) reply(timeout time.Duration) (string, error) {
	select {
	case r, ok := <-c.replies:
		if !ok {
			return "", fmt.Errorf("%s exited", c.name)
		}
		return r, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("%s: no reply after %s", c.name, timeout)
	}
}

func (c *child) command(timeout time.Duration, format string, args ...any) (string, error) {
	if _, err := fmt.Fprintf(c.stdin, format+"\n", args...); err != nil {
		return "", fmt.Errorf("%s: %w", c.name, err)
	}
	return c.reply(timeout)
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	c.stdin.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}
