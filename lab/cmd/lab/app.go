package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessionpin/sessionpin/lab/app"
)

// kv is a repeatable region=value flag.
type kv map[string]string

func (m kv) String() string { return fmt.Sprint(map[string]string(m)) }
func (m kv) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want region=value")
	}
	m[k] = val
	return nil
}

func runApp(args []string) error {
	cfg := app.Config{Primaries: kv{}, Copies: kv{}}
	var listen string
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.StringVar(&cfg.ID, "id", "", "server id")
	fs.StringVar(&cfg.Region, "region", "", "region")
	fs.StringVar(&listen, "listen", "", "host:port")
	fs.Var(kv(cfg.Primaries), "primary", "region=DSN of a region's primary (repeat)")
	fs.Var(kv(cfg.Copies), "copy", "region=DSN of this region's copy of a region's data (repeat)")
	fs.Float64Var(&cfg.Capacity, "capacity", 0, "clients at load 1: the /healthz load is the distinct clients served in the last "+app.DefaultLoadWindow.String()+" over this (0: load 0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	srv := &http.Server{Addr: listen, Handler: s, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
