// Command demo-client walks sessionpin's flows against a running
// `make run` and prints a timeline; it exits non-zero when an expectation
// fails. See package walkthrough.
//
//	go run ./examples/client [--edge-a URL] [--edge-b URL] [--discovery URL] [--token TOKEN] [--fast]
//
// The drain step takes discovery's admin token: --token, else
// $SESSIONPIN_DISCOVERY_TOKEN, else the file `make run` keeps it in
// ($SESSIONPIN_DEMO_DIR/discovery-token, by default data/demo/).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sessionpin/sessionpin/examples/client/walkthrough"
)

func main() {
	fs := flag.NewFlagSet("demo-client", flag.ExitOnError)
	edgeA := fs.String("edge-a", "http://127.0.0.1:8080", "first edge (eu-west in make run)")
	edgeB := fs.String("edge-b", "http://127.0.0.1:8081", "second edge, in another region (us-east in make run)")
	admins := fs.String("admin", "", "id=URL,... admin listeners of the demo backends (default: eu-1, eu-2, us-1, us-2 on 127.0.0.1:9101..9104)")
	discovery := fs.String("discovery", "http://127.0.0.1:7070", "base URL of the discovery API (drains the pinned server)")
	token := fs.String("token", "", "discovery's admin token (default $SESSIONPIN_DISCOVERY_TOKEN, else the token file of make run)")
	user := fs.String("user", "alice", "user to log in as")
	fast := fs.Bool("fast", false, "wait at most 2s where the edge says Retry-After")
	_ = fs.Parse(os.Args[1:])

	cfg := walkthrough.Config{EdgeA: *edgeA, EdgeB: *edgeB, Discovery: *discovery, Token: adminToken(*token),
		User: *user, Fast: *fast, Out: os.Stdout}
	if *admins != "" {
		m, err := parseAdmins(*admins)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo-client:", err)
			os.Exit(2)
		}
		cfg.Admins = m
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := walkthrough.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "demo-client: FAILED:", err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintln(os.Stderr, "demo-client: is the demo running? Start it with `make run` in another terminal.")
		}
		os.Exit(1)
	}
}

func parseAdmins(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		id, url, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || id == "" || url == "" {
			return nil, fmt.Errorf("invalid --admin entry %q: want id=URL", kv)
		}
		m[id] = url
	}
	return m, nil
}

// adminToken is the --token flag, else $SESSIONPIN_DISCOVERY_TOKEN, else the
// token `make run` writes for the operator's drains; "" when none is found,
// and discovery then says the token is missing.
func adminToken(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if t := os.Getenv("SESSIONPIN_DISCOVERY_TOKEN"); t != "" {
		return t
	}
	dir := os.Getenv("SESSIONPIN_DEMO_DIR")
	if dir == "" {
		dir = filepath.Join("data", "demo")
	}
	b, err := os.ReadFile(filepath.Join(dir, "discovery-token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
