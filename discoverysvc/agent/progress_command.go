package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// CommandSource reads progress from a command that prints the JSON object
// ParseProgressOutput reads and exits 0, for a store the agent has no
// built-in source for.
type CommandSource struct {
	args []string
}

// NewCommandSource returns the source of --progress-command: a program and
// its arguments separated by spaces, run directly with no shell (so no
// quoting, globbing or variables; a command that needs them belongs in a
// script). The program must be found now, on the PATH or by its path.
func NewCommandSource(line string) (*CommandSource, error) {
	args := strings.Fields(line)
	if len(args) == 0 {
		return nil, errors.New("must name a program")
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		return nil, fmt.Errorf("program %q not found or not executable", args[0])
	}
	return &CommandSource{args: args}, nil
}

// Name is the command line.
func (s *CommandSource) Name() string { return "command " + strings.Join(s.args, " ") }

// Origins is nil: the output names them.
func (s *CommandSource) Origins() []string { return nil }

// commandWaitDelay bounds how long a command killed at its deadline may
// keep its output open (a child it left behind): Read must return in time.
const commandWaitDelay = 200 * time.Millisecond

// Read runs the command once and parses what it printed. Standard error
// only goes into the error of a failed run. The command gets the agent's
// environment but for the agent's own settings (see commandEnv).
func (s *CommandSource) Read(ctx context.Context) (map[string]schema.Progress, error) {
	cmd := exec.CommandContext(ctx, s.args[0], s.args[1:]...)
	cmd.Env = commandEnv(os.Environ())
	stdout := &cappedBuffer{max: MaxProgressOutput}
	stderr := &cappedBuffer{max: 512}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = commandWaitDelay
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("no answer in time: %w", ctx.Err())
	case stdout.over:
		return nil, errors.New("output over 64 KiB")
	case err != nil:
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	return ParseProgressOutput(stdout.Bytes())
}

// commandEnv is the agent's environment without its own settings: the
// variables named SESSIONPIN_*, the agent's token among them, which a
// progress command has no use for.
func commandEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "SESSIONPIN_") })
}

// cappedBuffer keeps the first max bytes written to it and notes that
// more came; it never fails a write, so a chatty command is not killed by
// a broken pipe before its exit status is known.
type cappedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return n, nil
}
