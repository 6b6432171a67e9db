package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/lab/results"
)

// compareSectionName names the section of BENCHMARKS.md that -benchmarks
// rewrites.
const compareSectionName = "lab-data-aware"

// loadAverage is the 1-minute load average, or "" when unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// commit names the checkout the run was built from.
func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return "commit " + c
}

// compareSection is the Markdown of the sessionpin / sessionpin-blind
// comparison: what ran, under which conditions, the table, and the chart.
// What the numbers mean is written by hand after the section.
func compareSection(f results.File, pairs []results.Pair, o options, root, chart, loadBefore string, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintln(&b, "## Data-aware moves in the lab: sessionpin against sessionpin-blind")
	fmt.Fprintln(&b)
	started := f.Started
	if t, err := time.Parse(time.RFC3339, f.Started); err == nil {
		started = t.UTC().Format("2006-01-02 15:04 UTC")
	}
	fmt.Fprintf(&b, "`%s`, at %s, %s, %s for the runs; %d CPUs, 1-minute load average %s before and %s after.\n",
		"go run ./lab/cmd/"+strings.TrimSpace(f.Command), commit(root), started, took.Round(time.Second), runtime.NumCPU(), or(loadBefore, "?"), or(loadAverage(), "?"))
	a := pairs[0].Aware
	fmt.Fprintf(&b, "Round trips %v / %v / %v (us-east↔eu-west, eu-west↔ap-south, us-east↔ap-south), apply delay %v, lease TTL %v, %d clients of which %d careless (they never set the critical flag; `-careless %v`)",
		o.rttUSEU, o.rttEUAP, o.rttUSAP, o.lag, o.leaseTTL, a.Clients, a.CarelessClients, o.careless)
	shares := "The careless clients' share of each stale count is in brackets"
	if a.RoamingClients > 0 {
		fmt.Fprintf(&b, " and %d roaming (`-roam %v`: every 2 to 4 workflows they change between their region's edge and the next region's, asking that edge's `/closestToMe` before each refresh, so a refresh without the critical flag can move them to another region's server, whose copy of their data lags)", a.RoamingClients, o.roam)
		shares = "The careless and the roaming clients' shares of each stale count are in brackets"
	}
	fmt.Fprintln(&b, ".")
	fmt.Fprintln(&b, "`sessionpin` is the root Caddyfile (data-aware moves on, their defaults); `sessionpin-blind` adds `catch_up_limit 0`. "+shares+"; `moves (across regions)`: refreshes that moved a client, and of those the ones to another region's server, the only moves after which the lab's app reads another copy of the data; `held_moves`: refreshes answered with `X-Session-Hold: catching_up`; `catch_up_waits`: refreshes answered `503 catching_up` and waited out (seconds in all); `unsafe_moves`: the edges' `sessionpin_unsafe_moves_total`.")
	fmt.Fprintln(&b)
	results.CompareMarkdown(&b, pairs)
	if chart != "" {
		rel := chart
		if abs, err := filepath.Abs(chart); err == nil {
			if dir, err := filepath.Abs(filepath.Dir(o.bench)); err == nil {
				if r, err := filepath.Rel(dir, abs); err == nil {
					rel = r
				}
			}
		}
		fmt.Fprintln(&b)
		fmt.Fprintf(&b, "![Reads of data that had not caught up, sessionpin-blind beside sessionpin](%s)\n", filepath.ToSlash(rel))
	}
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
