package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
	"github.com/sessionpin/sessionpin/caddymodule/pin"
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
	memory                []memoryRow
}

// memoryRow is one Caddy's memory at one point of the run.
type memoryRow struct {
	caddy, point string
	m            memory
}

// target is one goal the summary checks: configuration key's throughput
// against ref's, round by round, at least min times (or more than min
// times when strict).
type target struct {
	key, ref string
	min      float64
	strict   bool
}

// targets are the goals of the end-to-end comparison.
var targets = []target{
	{key: "hs256", ref: "plain", min: 0.95},
	{key: "hs256", ref: "cookie", min: 1, strict: true},
	{key: "eddsa", ref: "plain", min: 0.90},
	{key: "hs256many", ref: "plain", min: 0.95},
	{key: "hs256many", ref: "cookie", min: 1, strict: true},
	{key: "eddsamany", ref: "plain", min: 0.90},
}

func (r report) markdown() string {
	var b benchenv.Section
	o := r.opts
	b.Printf("## End to end (`make bench`)\n\n")
	turns := "each at a stretch"
	if o.slice > 0 && o.slice < o.duration && o.profileDir == "" {
		turns = fmt.Sprintf("taking turns in %s slices", o.slice)
	}
	b.Printf("Run %s, %d interleaved rounds × %d configurations × %s (%s; after %s warm-up each), %d keep-alive connections, loopback.\n\n",
		r.started.Format("2006-01-02 15:04 UTC"), o.rounds, len(r.configs), o.duration, turns, o.warmup, o.conns)
	var plain *config
	for _, c := range r.configs {
		if c.key == "plain" {
			plain = c
		}
	}
	b.Table("lrlrrrrr", "configuration", "req/s", "× plain, median of rounds (range)", "p50", "p99", "Caddy CPU µs/req", "× plain by Caddy CPU", "failed")
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
		b.Row(c.name, fmt.Sprintf("%.0f", rps), ratio, benchenv.Latency(h.quantile(0.50)), benchenv.Latency(h.quantile(0.99)),
			fmt.Sprintf("%.1f", perReq(cpu, ok)), cpuRatio, fmt.Sprint(failed))
	}
	r.summary(&b)
	b.Text("\n× plain is the ratio of requests/s to plain `reverse_proxy` in the same round; the median over rounds is shown because one round disturbed by other work on the machine moves a mean by several percent (min–max in brackets). ")
	b.Text("Caddy CPU µs/req is the Caddy process's user+system CPU time (from /proc, 10 ms resolution) divided by the requests it served: it depends much less on what else the machine runs, so it is the steadier measure of the proxy's own cost on a shared machine; × plain by Caddy CPU (plain's µs/req over this one's) is the throughput ratio to expect where Caddy has the cores to itself.\n\n")

	b.Printf("Per round (req/s):\n\n")
	header := []string{"configuration"}
	for i := range o.rounds {
		header = append(header, fmt.Sprintf("round %d", i+1))
	}
	b.Table("l"+strings.Repeat("r", o.rounds), header...)
	for _, c := range r.configs {
		cells := []string{c.name}
		for _, st := range c.runs {
			cells = append(cells, fmt.Sprintf("%.0f (load %.1f)", st.rps(), st.loadAvg))
		}
		b.Row(cells...)
	}

	if len(r.memory) > 0 {
		b.Printf("\nEdge memory (RSS from /proc; Go heap from the Caddy's admin `/debug/vars` right after a forced GC; clients seen counts distinct pins):\n\n")
		b.Table("llrrrr", "Caddy", "when", "pinned clients seen", "RSS", "Go heap in use", "live Go heap")
		for _, m := range r.memory {
			seen := "–"
			if m.m.clients >= 0 {
				seen = count(m.m.clients)
			}
			b.Row(m.caddy, m.point, seen, benchenv.MiB(m.m.rss), benchenv.MiB(m.m.heap), benchenv.MiB(m.m.live))
		}
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
	b.Printf("\n### Set-up\n\n")
	b.Machine(r.machine, "Caddy "+r.caddyVersion, r.loadBefore, r.loadAfter)
	b.Printf("- The machine is shared: the benchmark's own three processes add about 3 to the load average while it runs, so the figure before the run is the one that tells whether other work competed.\n")
	b.Printf("- CPU shares: each Caddy runs with GOMAXPROCS=%d, the backend process with GOMAXPROCS=%d, the load generator with GOMAXPROCS=%d; nothing is pinned to cores, so all three share the machine's CPUs as they would on a small edge host. Over all runs the load generator spent %.1f µs and the backend %.1f µs of CPU per request, against the Caddy figures in the table: Caddy takes most of the CPU, though not all, so a change in Caddy's cost shows in req/s somewhat diluted; the by-CPU ratio shows it whole.\n",
		o.caddyProcs, o.backendProcs, o.loadProcs, perReq(loadCPU, served), perReq(backCPU, served))
	b.Text("- Backend: one child process with four Go `net/http` servers on loopback answering a 29-byte body. plain uses the first, lb_policy cookie all four; the session_pin edges find the same four in an embedded etcd where they are registered through `discoverysvc.Registry` (region `bench`, equal load).\n")
	b.Text("- Caddy: built from `./cmd/caddy` with `go build -trimpath` (as `make build` builds `bin/caddy`) into a temporary directory, unless `-caddy` names a binary; one child process per Caddyfile, default logging (no access log), admin on a free loopback port. The placement run uses the HS256 edge; the pin-sized-header run uses the plain Caddy with clients sending a 184-byte `X-Session-Pin` it merely forwards, the control for the cost of carrying a pin as opposed to acting on it.\n")
	b.Printf("- Load generator: Go, in the benchmark process, a minimal HTTP/1.1 client (fixed request bytes, keep-alive, response skipped by Content-Length) so that it costs little CPU per request; %d connections. Pinned clients send `X-Session-Pin`: %s distinct pins, or %s in the many-clients runs, signed with the edge's key as the edge issues them (each client pinned to one of the four servers in turn, issued a second apart so that every token differs) and dealt over the connections in a random order, so that each connection sends its clients' pins in turn; every client has made its first request before the measurement (with many clients, in a pass over all of them, whose cost is the first row of the memory table's difference). lb_policy cookie clients send the `lb` cookie of their first response. Only 2xx responses count; the latency histogram has 1.6%% resolution.\n", o.conns, count(o.clients), count(o.many))
	b.Commands("make bench            # go test micro-benchmarks, then:", r.command)
	return b.String()
}

// ratioCell is the median of c's per-round ratios to plain, with their
// range.
func ratioCell(c, plain *config) string {
	return benchenv.Spread("%.3f", roundRatios(c, plain))
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

// summary appends the targets with met / not met, judged by the median of
// the per-round throughput ratios.
func (r report) summary(b *benchenv.Section) {
	byKey := map[string]*config{}
	for _, c := range r.configs {
		byKey[c.key] = c
	}
	var rows [][]string
	for _, t := range targets {
		c, ref := byKey[t.key], byKey[t.ref]
		if c == nil || ref == nil {
			continue
		}
		op := "≥"
		if t.strict {
			op = ">"
		}
		ratios := roundRatios(c, ref)
		m := median(ratios)
		verdict := "not met"
		if m > t.min || !t.strict && m == t.min {
			verdict = "met"
		}
		row := []string{fmt.Sprintf("%s %s %.2f× %s", c.name, op, t.min, refName(ref)), benchenv.Spread("%.3f", ratios), fmt.Sprintf("%.3f", cpuPerReq(ref)/cpuPerReq(c))}
		if gc := byKey["plaingc"]; gc != nil {
			cell := "–"
			if t.ref == "plain" {
				cell = benchenv.Spread("%.3f", roundRatios(c, gc))
			}
			row = append(row, cell)
		}
		rows = append(rows, append(row, verdict))
	}
	if len(rows) == 0 {
		return
	}
	b.Printf("\nTargets (median of the per-round ratios of requests/s, range in brackets; met / not met by the median):\n\n")
	if byKey["plaingc"] != nil {
		b.Table("lrrrl", "target", "measured ratio", "ratio by Caddy CPU", "ratio to plain with the edge's GC target", "")
	} else {
		b.Table("lrrl", "target", "measured ratio", "ratio by Caddy CPU", "")
	}
	for _, row := range rows {
		b.Row(row...)
	}
	if gc := byKey["plaingc"]; gc != nil {
		b.Printf("\nThe session_pin edges hold their verified-token cache (%s entries by default) in the Go heap. With Go's default GOGC=100 the collector runs when the heap has grown by its live size, so a larger live heap means fewer collections: the edges collect less often than plain Caddy, which lowers their CPU per request by more than the pin check adds. The %q row is plain Caddy with GOGC raised to the same heap target (from the two processes' live heaps after warm-up); the last column compares with it, which leaves the pin check's own cost.\n", count(pin.DefaultCacheEntries), gc.name)
	}
}

func refName(c *config) string {
	if c.key == "plain" {
		return "plain `reverse_proxy`"
	}
	return "`lb_policy cookie`"
}

// roundRatios is c's requests/s over ref's, round by round.
func roundRatios(c, ref *config) []float64 {
	var out []float64
	for i, st := range c.runs {
		if i < len(ref.runs) && ref.runs[i].rps() > 0 {
			out = append(out, st.rps()/ref.runs[i].rps())
		}
	}
	return out
}

// median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// fillReport renders the -fill section of BENCHMARKS.md.
type fillReport struct {
	machine               benchenv.Machine
	started               time.Time
	loadBefore, loadAfter float64
	clients               int
	edges                 []*fillEdge
	command               string
}

func (r fillReport) markdown() string {
	var b benchenv.Section
	b.Printf("## Edge memory by distinct clients (`go run ./bench/e2e -fill %d`)\n\n", r.clients)
	b.Printf("Run %s. %s distinct clients' HS256 pins sent once each, in order, to two session_pin edges: one with the default `token_cache` (%s entries), one with `token_cache %d` (every client cached). RSS from /proc; Go heap from the Caddy's admin `/debug/vars` right after a forced GC.\n\n",
		r.started.Format("2006-01-02 15:04 UTC"), count(r.clients), count(pin.DefaultCacheEntries), r.clients)
	b.Table("lrrrr", "edge", "clients seen", "RSS", "Go heap in use", "live Go heap")
	for _, e := range r.edges {
		name := "default token_cache"
		if e.tokenCache > 0 {
			name = fmt.Sprintf("token_cache %d", e.tokenCache)
		}
		for _, m := range e.steps {
			b.Row(name, count(m.clients), benchenv.MiB(m.rss), benchenv.MiB(m.heap), benchenv.MiB(m.live))
		}
	}
	b.Printf("\n")
	b.Machine(r.machine, "", r.loadBefore, r.loadAfter)
	b.Commands(r.command)
	return b.String()
}
