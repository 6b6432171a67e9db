package main

import (
	"context"
	"errors"
	"io"

	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func runAgent(ctx context.Context, args []string, stderr io.Writer) error {
	var (
		a        agent.Agent
		load     optionalFloat
		logLevel string
	)
	fs := newFlagSet("agent", "agent --id ID --region REGION --url URL --health-url URL --discovery URL [flags]", stderr)
	fs.StringVar(&a.ID, "id", "", "server `id` in the registry (required)")
	fs.StringVar(&a.Region, "region", "", "`region` of the server (required)")
	fs.StringVar(&a.URL, "url", "", "public `URL` of the server, where edges proxy to (required)")
	fs.StringVar(&a.HealthURL, "health-url", "", "`URL` probed with GET; 2xx means healthy (required)")
	fs.StringVar(&a.Discovery, "discovery", "", "base `URL` of the discovery API, e.g. http://127.0.0.1:7070 (required)")
	fs.DurationVar(&a.Interval, "interval", agent.DefaultAgentInterval, "`duration` between health probes and heartbeats")
	fs.StringVar(&a.Token, "token", "", "discovery bearer `token`: this server's agent token from \"discoverysvc token ID\" (default $"+envToken+")")
	fs.BoolVar(&a.InsecureHTTP, "insecure-http", false, "send the token over plain http to a discovery address that is not loopback")
	fs.Var(&load, "load", "fixed `load` to report (default: the health body's top-level \"load\" number, else 0)")
	fs.Var(seconds{&a.TTL}, "ttl", "lease `duration` (10s or 10), longer than --interval (default: the service's, 10s)")
	fs.DurationVar(&a.DrainTimeout, "drain-timeout", 0, "on SIGTERM, stay registered as draining until no edge has seen a pinned request for --drain-quiet, or at most this `duration`, then deregister")
	fs.DurationVar(&a.DrainQuiet, "drain-quiet", schema.DefaultQuiet, "with --drain-timeout, the quiet `duration` after which the server counts as drained")
	fs.StringVar(&logLevel, "log-level", "info", "`level` of the logs: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := setFlags(fs)
	fromEnv(set, "token", &a.Token, envToken)
	if set["interval"] && a.Interval <= 0 {
		return flagError("interval", "must be positive")
	}
	a.Load = load.v
	if err := a.Validate(); err != nil {
		if fe, ok := errors.AsType[*schema.FieldError](err); ok {
			return flagError(fe.Field, "%s", fe.Reason)
		}
		return &usageError{err: err}
	}
	logger, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	defer logger.Sync()
	a.Logger = logger
	return a.Run(ctx)
}
