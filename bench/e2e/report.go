package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

// report renders the end-to-end section of BENCHMARKS.md.
type report struct {
	machine               benchenv.Machine
	caddyVersion          string
	opts                  options
	configs               []*config
	started               time.Time
	loadBefore, loadAfter float64
	command               string
}

func (r report) markdown() string {
	var b strings.Builder
	o := r.opts
	fmt.Fprintf(&b, "## End to end (`make bench`)\n\n")
	turns := "each at a stretch"
	if o.slice > 0 && o.slice < o.duration && o.profileDir == "" {
		turns = fmt.Sprintf("taking turns in %s slices", o.slice)
	}
	fmt.Fprintf(&b, "Run %s, %d interleaved rounds × %d configurations × %s (%s; after %s warm-up each), %d keep-alive connections, loopback.\n\n",
		r.started.Format("2006-01-02 15:04 UTC"), o.rounds, len(r.configs), o.duration, turns, o.warmup, o.conns)
	var plain *config
	for _, c := range r.configs {
		if c.key == "plain" {
			plain = c
		}
	}
	b.WriteString("| configuration | req/s | × plain, median of rounds (range) | p50 | p99 | Caddy CPU µs/req | × plain by Caddy CPU | failed |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|\n")
	var plainCPU float64
	if plain != nil {
		plainCPU = cpuPerReq(plain)
	}
	for _, c := range r.configs {
		var h histogram
		var ok, failed uint64
		var elapsed, cpu time.Duration
		for _, st := range c.runs {
			h.merge(&st.res.hist)
			ok += st.res.ok
			failed += st.res.failed
			elapsed += st.res.elapsed
			cpu += st.caddyCPU
		}
		rps := float64(ok) / elapsed.Seconds()
		ratio := "1.000"
		if c != plain && plain != nil {
			ratio = ratioCell(c, plain)
		}
		cpuRatio := "–"
		if plainCPU > 0 && perReq(cpu, ok) > 0 {
			cpuRatio = fmt.Sprintf("%.3f", plainCPU/perReq(cpu, ok))
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %.1f | %s | %d |\n", c.name, rps, ratio,
			fmtLatency(h.quantile(0.50)), fmtLatency(h.quantile(0.99)), perReq(cpu, ok), cpuRatio, failed)
	}
	b.WriteString("\n× plain is the ratio of requests/s to plain `reverse_proxy` in the same round; the median over rounds is shown because one round disturbed by other work on the machine moves a mean by several percent (min–max in brackets). ")
	b.WriteString("Caddy CPU µs/req is the Caddy process's user+system CPU time (from /proc, 10 ms resolution) divided by the requests it served: it depends much less on what else the machine runs, so it is the steadier measure of the proxy's own cost on a shared machine; × plain by Caddy CPU (plain's µs/req over this one's) is the throughput ratio to expect where Caddy has the cores to itself.\n\n")

	b.WriteString("Per round (req/s):\n\n| configuration |")
	for i := range o.rounds {
		fmt.Fprintf(&b, " round %d |", i+1)
	}
	b.WriteString("\n|---|")
	for range o.rounds {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, c := range r.configs {
		fmt.Fprintf(&b, "| %s |", c.name)
		for _, st := range c.runs {
			fmt.Fprintf(&b, " %.0f (load %.1f) |", st.rps(), st.loadAvg)
		}
		b.WriteString("\n")
	}

	var loadCPU, backCPU time.Duration
	var served uint64
	for _, c := range r.configs {
		for _, st := range c.runs {
			loadCPU += st.loadCPU
			backCPU += st.backCPU
			served += st.res.ok
		}
	}
	b.WriteString("\n### Set-up\n\n")
	fmt.Fprintf(&b, "- Machine: %d CPUs, %s; %s; %s; Caddy %s.\n", r.machine.CPUs, r.machine.CPUModel, r.machine.Kernel, r.machine.GoVersion, r.caddyVersion)
	fmt.Fprintf(&b, "- 1-minute load average %.2f before, %.2f after the run (the machine is shared: the benchmark's own three processes add about 3 while it runs, so the figure before the run is the one that tells whether other work competed).\n", r.loadBefore, r.loadAfter)
	fmt.Fprintf(&b, "- CPU shares: each Caddy runs with GOMAXPROCS=%d, the backend process with GOMAXPROCS=%d, the load generator with GOMAXPROCS=%d; nothing is pinned to cores, so all three share the machine's CPUs as they would on a small edge host. Over all runs the load generator spent %.1f µs and the backend %.1f µs of CPU per request, against the Caddy figures in the table: Caddy takes most of the CPU, though not all, so a change in Caddy's cost shows in req/s somewhat diluted; the by-CPU ratio shows it whole.\n",
		o.caddyProcs, o.backendProcs, o.loadProcs, perReq(loadCPU, served), perReq(backCPU, served))
	b.WriteString("- Backend: one child process with four Go `net/http` servers on loopback answering a 29-byte body. plain uses the first, lb_policy cookie all four; the session_pin edges find the same four in an embedded etcd where they are registered through `discoverysvc.Registry` (region `bench`, equal load).\n")
	b.WriteString("- Caddy: built from `./cmd/caddy` with `go build -trimpath` (as `make build` builds `bin/caddy`) into a temporary directory, unless `-caddy` names a binary; one child process per Caddyfile, default logging (no access log), admin on a free loopback port. The placement run uses the HS256 edge; the pin-sized-header run uses the plain Caddy with clients sending a 184-byte `X-Session-Pin` it merely forwards, the control for the cost of carrying a pin as opposed to acting on it.\n")
	b.WriteString("- Load generator: Go, in the benchmark process, a minimal HTTP/1.1 client (fixed request bytes, keep-alive, response skipped by Content-Length) so that it costs little CPU per request; one connection per simulated client. Pinned clients send `X-Session-Pin` obtained from their own first request (distinct pins); lb_policy cookie clients send the `lb` cookie of their first response. Only 2xx responses count; the latency histogram has 1.6% resolution.\n")
	b.WriteString("\nCommands:\n\n```sh\nmake bench            # go test micro-benchmarks, then:\n")
	fmt.Fprintf(&b, "%s\n```\n", r.command)
	return b.String()
}

// ratioCell is the median of c's per-round ratios to plain, with their
// range.
func ratioCell(c, plain *config) string {
	var ratios []float64
	for i, st := range c.runs {
		if i < len(plain.runs) && plain.runs[i].rps() > 0 {
			ratios = append(ratios, st.rps()/plain.runs[i].rps())
		}
	}
	if len(ratios) == 0 {
		return "–"
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	return fmt.Sprintf("%.3f (%.3f–%.3f)", median, ratios[0], ratios[len(ratios)-1])
}

func fmtLatency(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
}

// cpuPerReq is c's Caddy CPU per request over all its runs, in µs.
func cpuPerReq(c *config) float64 {
	var cpu time.Duration
	var ok uint64
	for _, st := range c.runs {
		cpu += st.caddyCPU
		ok += st.res.ok
	}
	return perReq(cpu, ok)
}
