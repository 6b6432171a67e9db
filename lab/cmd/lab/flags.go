package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/lab/scenario"
	"github.com/sessionpin/sessionpin/lab/stack"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// options are the lab's command line.
type options struct {
	scenarios []string
	modes     []string
	rttUSEU   time.Duration
	rttEUAP   time.Duration
	rttUSAP   time.Duration
	jitter    time.Duration
	lag       time.Duration
	clients   int
	scale     float64
	out       string
	chart     string
	// chartSet: -chart was given; otherwise the chart in docs/ is
	// redrawn only by a run of every default mode.
	chartSet bool
	leaseTTL time.Duration
	logs     string
	careless float64
	roam     float64
	compare  string
	bench    string
	capacity float64
	limit    float64
	// limitEdges is every edge's limit_edges.
	limitEdges int
	arrivals   float64
	ramp       string
}

// parseOptions reads and checks the flags; nothing starts before it
// returns without error.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	var scen, modes string
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&scen, "scenario", "", "scenarios to run, comma-separated: "+strings.Join(scenario.Names(), ", ")+" (default: all but soak and slow-start)")
	fs.StringVar(&modes, "modes", strings.Join(stack.DefaultModes, ","), "routing modes, comma-separated: "+strings.Join(stack.Modes, ", ")+" (sessionpin-blind: sessionpin with data-aware moves off)")
	fs.DurationVar(&o.rttUSEU, "rtt-us-eu", 80*time.Millisecond, "round trip us-east ↔ eu-west")
	fs.DurationVar(&o.rttEUAP, "rtt-eu-ap", 120*time.Millisecond, "round trip eu-west ↔ ap-south")
	fs.DurationVar(&o.rttUSAP, "rtt-us-ap", 200*time.Millisecond, "round trip us-east ↔ ap-south")
	fs.DurationVar(&o.jitter, "jitter", 5*time.Millisecond, "one-way jitter between regions (±)")
	fs.DurationVar(&o.lag, "lag", time.Second, "recovery_min_apply_delay of every standby (lag-step steps it itself)")
	fs.IntVar(&o.clients, "clients", 6, "clients per region")
	fs.Float64Var(&o.scale, "scale", 1, "multiplies every phase of every timeline (0.5 halves the runs)")
	fs.StringVar(&o.out, "out", "lab-results.json", "where the results go")
	fs.StringVar(&o.chart, "chart", "docs/lab-failure-vs-lag.png", "where the chart of failures against lag goes (written when lag-step ran, in every default mode unless given; empty: nowhere)")
	fs.Float64Var(&o.careless, "careless", 0, "share of the clients, 0 to 1, that never set the critical flag")
	fs.Float64Var(&o.roam, "roam", 0, "share of the clients, 0 to 1, that travel: every few workflows they change between their region's edge and the next region's, and a refresh there may move them to that region's server (chosen among careless and careful clients alike)")
	fs.StringVar(&o.compare, "compare-chart", "", "where the chart of sessionpin against sessionpin-blind goes, when both ran (make lab-data-aware: docs/lab-data-aware.png)")
	fs.StringVar(&o.bench, "benchmarks", "", "a Markdown file (BENCHMARKS.md) whose section between <!-- lab-data-aware:begin --> and <!-- lab-data-aware:end --> gets the comparison of sessionpin and sessionpin-blind, when both ran")
	fs.StringVar(&o.logs, "logs", "", "directory the processes' logs are kept in after the run (default /tmp/sessionpin-lab-logs-<run id>)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 10*time.Second, "lease TTL of every server's registration")
	fs.Float64Var(&o.capacity, "capacity", 30, "clients every server holds at load 1: its app reports the distinct clients it served in the last 3 s over this, and its agent declares it (0: load 0, none declared)")
	fs.Float64Var(&o.limit, "limit", 0.9, "load at or above which a server takes no new clients, declared by every agent (0: none)")
	fs.IntVar(&o.limitEdges, "limit-edges", len(topo.Regions), "every edge's limit_edges: how many edges may place on one server at once (all of them in the lab, where a full region's edge places anywhere; 1: each counts its own placements only)")
	fs.Float64Var(&o.arrivals, "newcomers", scenario.DefaultNewcomerRate, "new clients arriving at each region's edge per second in slow-start, each working "+scenario.NewcomerStay.String()+" and leaving")
	fs.StringVar(&o.ramp, "ramp-chart", "", "where the chart of the restarted servers' ramps goes, when slow-start ran in sessionpin mode (BENCHMARKS.md's: docs/lab-slow-start.png, drawn with -newcomers 1.5)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { o.chartSet = o.chartSet || f.Name == "chart" })
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	for _, s := range splitList(scen) {
		if _, ok := scenario.Find(s); !ok {
			return o, fmt.Errorf("-scenario: unknown scenario %q (known: %s)", s, strings.Join(scenario.Names(), ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	if len(o.scenarios) == 0 {
		for _, s := range scenario.All {
			if !s.Soak && !s.OnlyNamed {
				o.scenarios = append(o.scenarios, s.Name)
			}
		}
	}
	for _, m := range splitList(modes) {
		if !slices.Contains(stack.Modes, m) {
			return o, fmt.Errorf("-modes: unknown mode %q (known: %s)", m, strings.Join(stack.Modes, ", "))
		}
		o.modes = append(o.modes, m)
	}
	if len(o.modes) == 0 {
		return o, errors.New("-modes: no mode given")
	}
	for name, d := range map[string]time.Duration{"rtt-us-eu": o.rttUSEU, "rtt-eu-ap": o.rttEUAP, "rtt-us-ap": o.rttUSAP, "jitter": o.jitter, "lag": o.lag} {
		if d < 0 {
			return o, fmt.Errorf("-%s: %v is negative; a delay is 0 or more", name, d)
		}
	}
	for name, d := range map[string]time.Duration{"rtt-us-eu": o.rttUSEU, "rtt-eu-ap": o.rttEUAP, "rtt-us-ap": o.rttUSAP} {
		if o.jitter > d/2 {
			return o, fmt.Errorf("-jitter: %v is more than half of -%s (%v): a one-way delay would go below 0", o.jitter, name, d)
		}
	}
	if o.clients < 1 || o.clients > 100 {
		return o, fmt.Errorf("-clients: %d is not between 1 and 100", o.clients)
	}
	if !(o.scale >= 0.1 && o.scale <= 10) {
		return o, fmt.Errorf("-scale: %v is not between 0.1 and 10", o.scale)
	}
	if shortest := time.Duration(float64(scenario.MinLength) * o.scale); o.lag >= shortest {
		return o, fmt.Errorf("-lag: %v is not shorter than the shortest run (%v at -scale %v): no write would be seen within it", o.lag, shortest, o.scale)
	}
	if !(o.careless >= 0 && o.careless <= 1) {
		return o, fmt.Errorf("-careless: %v is not a share between 0 and 1", o.careless)
	}
	if !(o.roam >= 0 && o.roam <= 1) {
		return o, fmt.Errorf("-roam: %v is not a share between 0 and 1", o.roam)
	}
	if !(o.capacity >= 0 && o.capacity <= 1e6) {
		return o, fmt.Errorf("-capacity: %v is not between 0 and 1000000", o.capacity)
	}
	if !(o.limit >= 0 && o.limit <= 100) {
		return o, fmt.Errorf("-limit: %v is not between 0 and 100", o.limit)
	}
	if o.limitEdges < 1 || o.limitEdges > 100 {
		return o, fmt.Errorf("-limit-edges: %d is not between 1 and 100", o.limitEdges)
	}
	if !(o.arrivals > 0 && o.arrivals <= 50) {
		return o, fmt.Errorf("-newcomers: %v is not a rate above 0 and at most 50 a second", o.arrivals)
	}
	if o.leaseTTL < 2*time.Second || o.leaseTTL > time.Minute {
		return o, fmt.Errorf("-lease-ttl: %v is not between 2s and 1m", o.leaseTTL)
	}
	return o, nil
}

func (o options) rtts() topo.RTTs {
	return topo.RTTs{
		{"us-east", "eu-west"}:  o.rttUSEU,
		{"eu-west", "ap-south"}: o.rttEUAP,
		{"us-east", "ap-south"}: o.rttUSAP,
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
