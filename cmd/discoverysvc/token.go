package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// runToken prints the agent token of one server id: what that server's
// agent passes as --token, so that a stolen agent token writes only that
// server's record. It needs the admin token, and nothing else: every
// discovery replica holding the admin token verifies the result.
func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var adminToken string
	fs := newFlagSet("token", "token [--token ADMIN] ID", stderr)
	fs.StringVar(&adminToken, "token", "", "the admin `token` of discovery serve (default $"+envToken+")")
	// The id follows the flags, which parseFlags would refuse.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err: err, printed: true}
	}
	fromEnv(setFlags(fs), "token", &adminToken, envToken)
	if fs.NArg() != 1 {
		return &usageError{err: fmt.Errorf("want exactly one server id, got %d arguments", fs.NArg())}
	}
	id := fs.Arg(0)
	if !schema.ValidName(id) {
		return &usageError{err: fmt.Errorf("server id %q: %s", id, schema.NameRule)}
	}
	if adminToken == "" {
		return flagError("token", "the admin token is required (--token or $%s)", envToken)
	}
	_, err := fmt.Fprintln(stdout, discoverysvc.AgentToken(adminToken, id))
	return err
}
