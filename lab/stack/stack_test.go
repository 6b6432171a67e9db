package stack

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/lab/pg"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// sessionpin-blind is the root Caddyfile with one line more, in the
// session_pin directive: catch_up_limit 0.
func TestBlindCaddyfile(t *testing.T) {
	root, err := os.ReadFile("../../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	blind, err := blindCaddyfile(string(root))
	if err != nil {
		t.Fatal(err)
	}
	rl, bl := strings.Split(string(root), "\n"), strings.Split(blind, "\n")
	if len(bl) != len(rl)+1 {
		t.Fatalf("%d lines, want %d", len(bl), len(rl)+1)
	}
	added := -1
	for i, j := 0, 0; i < len(bl); i++ {
		if j < len(rl) && bl[i] == rl[j] {
			j++
			continue
		}
		if added >= 0 {
			t.Fatalf("line %d %q differs as well", i+1, bl[i])
		}
		added = i
	}
	if strings.TrimSpace(bl[added]) != "catch_up_limit 0" || strings.TrimSpace(bl[added-1]) != blindLine {
		t.Errorf("added %q after %q", bl[added], bl[added-1])
	}
	// Inside the session_pin directive of the site (the block the line is
	// indented under, itself under handle), not the global option.
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, "\t ")) }
	parent := func(at int) int {
		for i := at - 1; i >= 0; i-- {
			if strings.TrimSpace(bl[i]) != "" && indent(bl[i]) < indent(bl[at]) {
				return i
			}
		}
		return -1
	}
	if p := parent(added); p < 0 || strings.TrimSpace(bl[p]) != "session_pin {" {
		t.Errorf("catch_up_limit is not in a session_pin block:\n%s", blind)
	} else if pp := parent(p); pp < 0 || strings.TrimSpace(bl[pp]) != "handle {" {
		t.Errorf("catch_up_limit is in the global session_pin option, not the directive:\n%s", blind)
	}
	if _, err := blindCaddyfile("{\n}\n"); err == nil || !strings.Contains(err.Error(), "catch_up_limit 0") {
		t.Errorf("a Caddyfile without the key line: %v", err)
	}
}

// Each server's agent reports its own region as its origin, and the
// progress of each region's data on the very instance its app reads that
// region's data from, as the progress role.
func TestAgentArgs(t *testing.T) {
	h := topo.ServerHost("eu-west", 2)
	args := agentArgs(Config{Discovery: "/bin/discoverysvc", AgentInterval: time.Second, LeaseTTL: 10 * time.Second}, h)
	flags := map[string][]string{}
	for i := 2; i+1 < len(args); i++ {
		if args[i] == "--origin" || args[i] == "--progress-postgres" {
			flags[args[i]] = append(flags[args[i]], args[i+1])
		}
	}
	if args[0] != "/bin/discoverysvc" || args[1] != "agent" {
		t.Fatalf("args %v", args)
	}
	if got := flags["--origin"]; len(got) != 1 || got[0] != "eu-west" {
		t.Errorf("--origin %v, want eu-west", got)
	}
	got := flags["--progress-postgres"]
	if len(got) != len(topo.Regions) {
		t.Fatalf("--progress-postgres %v, want one per region", got)
	}
	for i, of := range topo.Regions {
		origin, dsn, _ := strings.Cut(got[i], "=")
		if origin != of {
			t.Errorf("progress source %d is for %q, want %q", i, origin, of)
		}
		copyDSN := CopyDSN("eu-west", of)
		if want := strings.Replace(copyDSN, "postgres://postgres@", "postgres://"+pg.ProgressRole+"@", 1); dsn != want || want == copyDSN {
			t.Errorf("progress of %s read from %s, want %s (the app's copy, as %s)", of, dsn, want, pg.ProgressRole)
		}
	}
	if !strings.Contains(got[1], topo.InfraHost("eu-west").Addr.String()) {
		t.Errorf("the own region's data is read on its own primary: %s", got[1])
	}
}

// The agent declares the lab's capacity and limit, and none when the lab
// sets none.
func TestAgentArgsCapacity(t *testing.T) {
	h := topo.ServerHost("us-east", 1)
	flag := func(args []string, name string) string {
		for i := 2; i+1 < len(args); i++ {
			if args[i] == name {
				return args[i+1]
			}
		}
		return ""
	}
	cfg := Config{Discovery: "/bin/discoverysvc", AgentInterval: time.Second, LeaseTTL: 10 * time.Second, Capacity: 30, Limit: 0.9}
	if args := agentArgs(cfg, h); flag(args, "--capacity") != "30" || flag(args, "--limit") != "0.9" {
		t.Errorf("--capacity %q --limit %q, want 30 and 0.9", flag(args, "--capacity"), flag(args, "--limit"))
	}
	cfg.Capacity, cfg.Limit = 0, 0
	if args := agentArgs(cfg, h); slices.Contains(args, "--capacity") || slices.Contains(args, "--limit") {
		t.Errorf("no capacity or limit set, yet declared: %v", args)
	}
}
