package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// defaultDiscovery is where the drain commands find the API by default:
// the address `discoverysvc serve` listens on.
const defaultDiscovery = "http://127.0.0.1:7070"

// drainWaitTimeout is how long drain --wait waits by default: longer than
// any sensible refresh cycle of the clients, short enough to notice a
// client that never moves.
const drainWaitTimeout = 30 * time.Minute

// progressEvery is how often drain --wait repeats an unchanged progress line.
const progressEvery = 10 * time.Second

// drainCommand is the command line shared by drain and undrain.
type drainCommand struct {
	id        string
	discovery string
	token     string
	api       *client.Client
}

// parseDrainArgs parses "<id> [flags]" or "[flags] <id>": the id may come
// before the flags, which the flag package alone does not allow.
func parseDrainArgs(fs *flag.FlagSet, args []string) (string, error) {
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", &usageError{err: err, printed: true}
	}
	rest := fs.Args()
	if id == "" && len(rest) > 0 {
		id, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return "", &usageError{err: fmt.Errorf("unexpected argument %q", rest[0])}
	}
	if id == "" {
		return "", &usageError{err: errors.New("the server id is required")}
	}
	if !schema.ValidName(id) {
		return "", &usageError{err: fmt.Errorf("server id %q %s", id, schema.NameRule)}
	}
	return id, nil
}

func (c *drainCommand) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.discovery, "discovery", defaultDiscovery, "base `URL` of the discovery API")
	fs.StringVar(&c.token, "token", "", "admin bearer `token` of the discovery API (default $"+envToken+")")
}

// parse reads the command line of drain or undrain: the server id and the
// flags, including the discovery API's address and token.
func (c *drainCommand) parse(fs *flag.FlagSet, args []string) error {
	id, err := parseDrainArgs(fs, args)
	if err != nil {
		return err
	}
	c.id = id
	fromEnv(setFlags(fs), "token", &c.token, envToken)
	u, err := url.Parse(c.discovery)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return flagError("discovery", "%q is not an http(s) base URL", c.discovery)
	}
	c.discovery = strings.TrimRight(c.discovery, "/")
	c.api = &client.Client{Base: c.discovery, Token: c.token, HTTP: &http.Client{Timeout: 10 * time.Second}}
	return nil
}

func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c       drainCommand
		wait    bool
		quiet   time.Duration
		timeout time.Duration
		reason  string
	)
	fs := newFlagSet("drain", "drain <id> [--wait] [--quiet 60s] [--timeout 30m] [--reason TEXT] [--discovery URL] [--token TOKEN]", stderr)
	c.flags(fs)
	fs.BoolVar(&wait, "wait", false, "wait until the server is drained (exit 0) or --timeout passes (exit 1)")
	fs.DurationVar(&quiet, "quiet", schema.DefaultQuiet, "the server is drained once no edge has seen a pinned request to it for this `duration`")
	fs.DurationVar(&timeout, "timeout", drainWaitTimeout, "with --wait, give up after this `duration`")
	fs.StringVar(&reason, "reason", "", "a note for other operators, kept with the drain")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if _, err := discoverysvc.ParseQuiet([]string{quiet.String()}); err != nil {
		return flagError("quiet", "must be a duration from 1ms to 24h")
	}
	if timeout <= 0 {
		return flagError("timeout", "must be positive")
	}
	st, err := c.api.Drain(ctx, c.id, reason, quiet)
	if err != nil {
		return err
	}
	if st.Registered {
		fmt.Fprintf(stdout, "%s: draining since %s; it takes no new clients, pinned ones stay until they refresh\n", c.id, sinceText(st))
	} else {
		fmt.Fprintf(stdout, "%s: draining since %s (not registered now: it takes no new clients when it comes back)\n", c.id, sinceText(st))
	}
	if !wait {
		return nil
	}
	return c.wait(ctx, stdout, st, quiet, timeout)
}

// wait polls the drain status until the server is drained or timeout passes.
func (c *drainCommand) wait(ctx context.Context, stdout io.Writer, st client.DrainStatus, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// Polling a tenth of the quiet period keeps the answer within a small
	// part of it; a second is plenty for the usual minute.
	every := min(max(quiet/10, 50*time.Millisecond), time.Second)
	var shown string
	var shownAt time.Time
	var lastErr error
	for {
		if st.Drained {
			fmt.Fprintf(stdout, "%s: drained (no pinned requests for %s, %d edges reporting)\n", c.id, quiet, st.EdgesReporting)
			return nil
		}
		if line := progress(st); line != shown || time.Since(shownAt) >= progressEvery {
			fmt.Fprintln(stdout, line)
			shown, shownAt = line, time.Now()
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%s not drained after %s: %d pinned requests in the last minute, %d edges reporting; the drain stays in place",
				c.id, timeout, st.PinnedLastMinute, st.EdgesReporting)
		}
		t := time.NewTimer(min(every, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stopped waiting; %s stays drained (undrain it with: discoverysvc undrain %s)", c.id, c.id)
		case <-t.C:
		}
		next, err := c.api.DrainStatus(ctx, c.id, quiet)
		switch {
		case client.IsStatus(err, http.StatusNotFound):
			return fmt.Errorf("%s is no longer draining: someone ended the drain", c.id)
		case err != nil:
			if lastErr == nil || lastErr.Error() != err.Error() {
				fmt.Fprintf(stdout, "%s: %v (retrying)\n", c.id, err)
			}
			lastErr = err
			continue
		}
		lastErr = nil
		st = next
	}
}

// progress is the line drain --wait prints while the server is not drained.
func progress(st client.DrainStatus) string {
	last := "none seen lately"
	if st.LastPinned != nil {
		last = "last " + time.Since(*st.LastPinned).Round(time.Second).String() + " ago"
	}
	return fmt.Sprintf("%s: waiting: %d pinned requests in the last minute (%s), %d edges reporting",
		st.ID, st.PinnedLastMinute, last, st.EdgesReporting)
}

func sinceText(st client.DrainStatus) string {
	if st.Since == nil {
		return "now"
	}
	return st.Since.Local().Format(time.RFC3339)
}

func runUndrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c drainCommand
	fs := newFlagSet("undrain", "undrain <id> [--discovery URL] [--token TOKEN]", stderr)
	c.flags(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	found, err := c.api.Undrain(ctx, c.id)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s is not drained by an operator", c.id)
	}
	fmt.Fprintf(stdout, "%s: undrained; it takes new clients again\n", c.id)
	return nil
}
