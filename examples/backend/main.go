// Command demo-backend is the unchanged application of the sessionpin demo:
// one regional server with its own login tokens and an in-memory order
// workflow replicated to its peers after a delay. See package app.
//
//	demo-backend --id eu-1 --region eu-west --listen 127.0.0.1:9001 \
//	  --admin-listen 127.0.0.1:9101 --peers http://127.0.0.1:9002,... \
//	  --token-key-file key   (or DEMO_BACKEND_TOKEN_KEY)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessionpin/sessionpin/examples/backend/app"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demo-backend:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("demo-backend", flag.ContinueOnError)
	id := fs.String("id", "", "server id, e.g. eu-1 (required)")
	region := fs.String("region", "", "region, e.g. eu-west (required)")
	listen := fs.String("listen", "127.0.0.1:9001", "public address (what the edge proxies to)")
	adminListen := fs.String("admin-listen", "", "loopback address for /admin/down, /admin/up, /admin/load (empty: none)")
	peers := fs.String("peers", "", "comma-separated base URLs of the other servers to replicate orders to")
	keyFile := fs.String("token-key-file", "", "file holding the app's token key (default: env DEMO_BACKEND_TOKEN_KEY)")
	delay := fs.Duration("replication-delay", 5*time.Second, "delay before a change is copied to the peers")
	load := fs.Float64("load", -1, "fixed load to report on /healthz (negative: in-flight requests / capacity)")
	accessTTL := fs.Duration("access-ttl", 2*time.Minute, "lifetime of access tokens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	key, err := tokenKey(*keyFile)
	if err != nil {
		return err
	}
	var peerList []string
	for _, p := range strings.Split(*peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			peerList = append(peerList, p)
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("server", *id)
	a, err := app.New(app.Config{
		ServerID:         *id,
		Region:           *region,
		TokenKey:         key,
		Peers:            peerList,
		ReplicationDelay: *delay,
		AccessTTL:        *accessTTL,
		Load:             *load,
		Logger:           logger,
	})
	if err != nil {
		return err
	}
	defer a.Close()

	servers := []*http.Server{{Addr: *listen, Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	if *adminListen != "" {
		if err := requireLoopback(*adminListen); err != nil {
			return fmt.Errorf("--admin-listen: %w", err)
		}
		servers = append(servers, &http.Server{Addr: *adminListen, Handler: a.AdminHandler(), ReadHeaderTimeout: 10 * time.Second})
	}
	var listeners []net.Listener
	for _, s := range servers {
		l, err := net.Listen("tcp", s.Addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("listen: %w", err)
		}
		listeners = append(listeners, l)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() { errc <- s.Serve(listeners[i]) }()
	}
	logger.Info("serving", "region", *region, "listen", *listen, "admin", *adminListen, "peers", peerList, "replication_delay", *delay)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdownCtx)
	}
	logger.Info("stopped")
	return nil
}

// tokenKey reads the shared key of the app's own tokens. Every server of the
// demo must use the same key, so that any of them accepts a token issued by
// another.
func tokenKey(file string) ([]byte, error) {
	var key string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read token key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	} else {
		key = os.Getenv("DEMO_BACKEND_TOKEN_KEY")
	}
	if key == "" {
		return nil, errors.New("missing token key: set --token-key-file or DEMO_BACKEND_TOKEN_KEY (at least 32 bytes, the same on every server)")
	}
	return []byte(key), nil
}

// requireLoopback refuses an admin address that is reachable from outside
// the host: /admin/down takes the server out of service.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}
