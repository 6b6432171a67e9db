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
	token := addSecretFlag(fs, "token", envToken, "the discovery bearer `token`: this server's agent token from \"discoverysvc token ID\"")
	fs.BoolVar(&a.InsecureHTTP, "insecure-http", false, "send the token over plain http to a discovery address that is not loopback")
	fs.Var(&load, "load", "fixed `load` to report (default: the health body's top-level \"load\" number, else 0)")
	var prom agent.PrometheusLoad
	fs.StringVar(&prom.URL, "load-prometheus", "", "base `URL` of a Prometheus to read the load from instead (with --load-query)")
	fs.StringVar(&prom.Query, "load-query", "", "PromQL instant `query` whose result has one sample per server, labelled with its id (--load-label)")
	fs.StringVar(&prom.Label, "load-label", agent.DefaultLoadLabel, "the `label` of --load-query's samples that holds the server id")
	fs.Float64Var(&a.Capacity, "capacity", 0, "how many clients the server holds at load 1: its `weight` when edges place new clients (default: not declared)")
	fs.Float64Var(&a.Limit, "limit", 0, "`load` at or above which the server takes no new clients (default: none)")
	fs.Var(seconds{&a.TTL}, "ttl", "lease `duration` (10s or 10), longer than --interval (default: the service's, 10s)")
	fs.DurationVar(&a.DrainTimeout, "drain-timeout", 0, "on SIGTERM, stay registered as draining until no edge has seen a pinned request for --drain-quiet, or at most this `duration`, then deregister")
	fs.DurationVar(&a.DrainQuiet, "drain-quiet", schema.DefaultQuiet, "with --drain-timeout, the quiet `duration` after which the server counts as drained")
	fs.StringVar(&a.Origin, "origin", "", "`name` of where this server's writes commit, for data-aware moves (default: --region when a --progress-* source is given, else none)")
	var postgres repeated
	fs.Var(&postgres, "progress-postgres", "read how far this server's copy of ORIGIN's data has caught up, from PostgreSQL's replication functions on the copy at CONNSTRING: `ORIGIN=CONNSTRING` (repeatable)")
	progressURL := fs.String("progress-url", "", "`URL` answering {\"<origin>\": <lag seconds> | null} for this server's copy of each origin's data")
	progressCommand := fs.String("progress-command", "", "`command` (program and arguments, no shell) printing {\"<origin>\": <lag seconds> | null}")
	fs.StringVar(&logLevel, "log-level", "info", "`level` of the logs: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := setFlags(fs)
	tokenOnCommandLine := false
	var err error
	if a.Token, tokenOnCommandLine, err = token.resolve(set); err != nil {
		return err
	}
	if set["interval"] && a.Interval <= 0 {
		return flagError("interval", "must be positive")
	}
	a.Load = load.v
	if set["load-prometheus"] || set["load-query"] {
		a.Prometheus = &prom
	}
	if err := progressSources(&a, postgres, set, *progressURL, *progressCommand); err != nil {
		return err
	}
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
	if tokenOnCommandLine {
		logger.Warn(token.warning())
	}
	a.Logger = logger
	return a.Run(ctx)
}

// progressSources adds the sources the --progress-* flags name to a.
func progressSources(a *agent.Agent, postgres []string, set map[string]bool, url, command string) error {
	for _, v := range postgres {
		src, err := agent.NewPostgresSource(v)
		if err != nil {
			return flagError("progress-postgres", "%s", err)
		}
		a.Progress = append(a.Progress, src)
	}
	if set["progress-url"] {
		src, err := agent.NewURLSource(url, nil)
		if err != nil {
			return flagError("progress-url", "%s", err)
		}
		a.Progress = append(a.Progress, src)
	}
	if set["progress-command"] {
		src, err := agent.NewCommandSource(command)
		if err != nil {
			return flagError("progress-command", "%s", err)
		}
		a.Progress = append(a.Progress, src)
	}
	return nil
}
