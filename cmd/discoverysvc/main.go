// Command discoverysvc is the sessionpin discovery service and its
// heartbeat agent.
//
//	discoverysvc serve [flags]   the registry's HTTP API, over etcd (embedded by default)
//	discoverysvc agent [flags]   a sidecar that heartbeats an unchanged app while it is healthy
//	discoverysvc token <id>      print the agent token of one server, for its agent's --token
//	discoverysvc drain <id>      drain a server; with --wait, until its pinned clients are gone
//	discoverysvc undrain <id>    end an operator drain
//
// Run "discoverysvc <command> -h" for a command's flags. Logs are JSON on
// stderr. SIGINT or SIGTERM shut down gracefully; a second one exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// Restore the default handling, so a second signal ends a drain or a
		// stuck shutdown at once.
		stop()
	}()
	os.Exit(runWith(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: discoverysvc <command> [flags]

commands:
  serve   run the discovery HTTP API over etcd (an embedded single-node etcd
          unless --etcd is given)
  agent   heartbeat an app to the discovery API while its health URL answers 2xx
  token   print the agent token of one server id: it may write that
          server's record and nothing else
  drain   drain a server: no new clients; with --wait, wait until its pinned
          clients are gone (exit 0) or --timeout passes (exit 1)
  undrain end an operator drain: the server takes new clients again

Run "discoverysvc <command> -h" for the command's flags.
`

// runWith executes one command and returns the process exit code: 0 on
// success or -h, 2 for a usage error, 1 when the command failed. The
// commands that print a result (token, drain, undrain) print it on stdout.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd := args[0]; cmd {
	case "serve":
		err = runServe(ctx, args[1:], stderr)
	case "agent":
		err = runAgent(ctx, args[1:], stderr)
	case "token":
		err = runToken(ctx, args[1:], stdout, stderr)
	case "drain":
		err = runDrain(ctx, args[1:], stdout, stderr)
	case "undrain":
		err = runUndrain(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "discoverysvc: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		if !ue.printed {
			fmt.Fprintf(stderr, "discoverysvc %s: %v\nRun \"discoverysvc %s -h\" for usage.\n", args[0], ue.err, args[0])
		}
		return 2
	default:
		fmt.Fprintf(stderr, "discoverysvc %s: %v\n", args[0], err)
		return 1
	}
}
