package main

import (
	"fmt"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

// report renders the registry section of BENCHMARKS.md.
type report struct {
	opts                  options
	machine               benchenv.Machine
	started               time.Time
	loadBefore, loadAfter float64
	command               string

	registerPropagated time.Duration
	allUp              bool
	mostUp             int64
	registerWrites     int64

	steady        counters
	rounds        []counters // the steady phase, round by round
	steadyLate    int64
	steadyLateMax time.Duration
	heartbeatErr  string

	viaAPI, viaRegistry changeTimes

	edgeEmpty, edgeAt10k, mem100, memMany memStats
	edgeRSSEmpty, edgeRSS10k, edgePeak10k int64
	rss100, rssMany, peakMany             int64
	pinsTime                              time.Duration
}

// maxCPUPerHeartbeat is the target for the discovery process's CPU per
// heartbeat at 10,000 servers heartbeating every 3 s.
const maxCPUPerHeartbeat = 150 * time.Microsecond

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func mib(b uint64) string { return benchenv.MiB(int64(b)) }

func (r *report) markdown() string {
	var b benchenv.Section
	o, s := r.opts, r.steady
	b.Printf("## Registry scale (`make bench-registry`)\n\n")
	b.Printf("Run %s: %d servers registered through the discovery HTTP API, each heartbeating every %s with a %s lease (%d connections), steady phase %s, then %d timed load changes, then %d distinct pins.\n\n",
		r.started.Format("2006-01-02 15:04 UTC"), o.servers, o.interval, o.ttl, o.conns, s.wall.Round(time.Second), o.changes, o.pins)
	b.Table("lrl", "measure", "figure", "target")
	row := func(k, v, t string) { b.Row(k, v, t) }
	if r.allUp {
		row("start-up: first heartbeat of every server → all in the edge's snapshot", fmt.Sprintf("%s (%.0f registrations/s, %d etcd writes)", r.registerPropagated.Round(time.Millisecond),
			float64(o.servers)/r.registerPropagated.Seconds(), r.registerWrites), "")
	} else {
		row("start-up: first heartbeat of every server → all in the edge's snapshot", fmt.Sprintf("**never** within %s: at most %d of %d alive at once (%d etcd writes); leases expired before their next heartbeat got through",
			r.registerPropagated.Round(time.Second), r.mostUp, o.servers, r.registerWrites), "")
	}
	want := float64(o.servers) / o.interval.Seconds()
	row("heartbeats handled (steady)", fmt.Sprintf("%.0f/s of %.0f/s scheduled; %d failed; %d sent >1 s late (worst %s)",
		s.rate(s.heartbeats), want, s.failures, r.steadyLate, r.steadyLateMax.Round(time.Millisecond)), "")
	row("servers in the edge's snapshot at the end of the steady phase", fmt.Sprint(s.servers), fmt.Sprint(o.servers))
	row("etcd writes (revision delta, steady)", fmt.Sprintf("%.2f/s (%d in %s)", s.rate(s.revs), s.revs, s.wall.Round(time.Second)), "0: a heartbeat that changes nothing writes nothing")
	row("watch events at each edge (steady)", fmt.Sprintf("%.2f/s (%d); snapshot swaps %d", s.rate(s.events), s.events, s.updates), "0")
	row("edge CPU (watch + snapshot, steady)", fmt.Sprintf("%.2f%% of one core (%s in %s)", 100*s.edgeCPU.Seconds()/s.wall.Seconds(), s.edgeCPU, s.wall.Round(time.Second)), "")
	cpuRow := func(k string, cpu time.Duration) {
		row(k, fmt.Sprintf("%.0f%% of one core, %.0f µs per heartbeat", 100*cpu.Seconds()/s.wall.Seconds(), float64(cpu.Microseconds())/max(float64(s.heartbeats), 1)), "")
	}
	if o.apart {
		cpuRow("discovery process CPU (API + embedded etcd, and the heartbeats of the servers the timed changes move)", s.discoveryCPU)
		cpuRow("fleet child CPU (the other servers' HTTP clients)", s.fleetCPU)
		cpuRow("both together (as measured when the whole fleet ran in the discovery process)", s.discoveryCPU+s.fleetCPU)
	} else {
		cpuRow("discovery process CPU (API + embedded etcd + the fleet's HTTP clients)", s.discoveryCPU)
	}
	perRound := make([]time.Duration, len(r.rounds))
	for i, c := range r.rounds {
		perRound[i] = c.cpuPerHeartbeat()
	}
	med := benchenv.Quantile(perRound, 0.5)
	verdict := "reported (the target is set at 10,000 servers every 3 s)"
	if o.servers == 10000 && o.interval == 3*time.Second {
		verdict = "≤ 150 µs: **not met**"
		if med <= maxCPUPerHeartbeat {
			verdict = "≤ 150 µs: met"
		}
	}
	row(fmt.Sprintf("… per heartbeat over %d rounds of %s: median (min–max)", len(perRound), (o.duration/time.Duration(max(len(perRound), 1))).Round(time.Second)),
		fmt.Sprintf("%.0f µs (%.0f–%.0f µs)", us(med), us(benchenv.Quantile(perRound, 0)), us(benchenv.Quantile(perRound, 1))), verdict)
	pct := func(ds []time.Duration) string {
		return fmt.Sprintf("%s / %s / %s", ms(benchenv.Quantile(ds, 0.5)), ms(benchenv.Quantile(ds, 0.99)), ms(benchenv.Quantile(ds, 1)))
	}
	g := r.viaRegistry
	row("propagation registry write (`Registry.Heartbeat`) → edge snapshot, p50 / p99 / max", fmt.Sprintf("%s (%d changes)", pct(g.fromStart), len(g.fromStart)), "p99 ≤ 100 ms")
	row("… the write call itself (etcd read, lease renewal, txn), p50 / p99 / max", pct(g.write), "")
	row("… write acknowledged → edge snapshot, p50 / p99 / max", pct(g.fromAck), "")
	a := r.viaAPI
	row("propagation HTTP `PUT` → edge snapshot, p50 / p99 / max", fmt.Sprintf("%s (%d changes)", pct(a.fromStart), len(a.fromStart)), "")
	row("… the API call itself (queued with the fleet's heartbeats), p50 / p99 / max", pct(a.write), "")
	row("… API answered → edge snapshot, p50 / p99 / max", pct(a.fromAck), "")
	row("edge RSS: empty registry / 10,000 servers (peak)", fmt.Sprintf("%s / %s (%s)", benchenv.MiB(r.edgeRSSEmpty), benchenv.MiB(r.edgeRSS10k), benchenv.MiB(r.edgePeak10k)), "reported")
	row("edge heap in use: empty / 10,000 servers", fmt.Sprintf("%s / %s", mib(r.edgeEmpty.HeapInuse), mib(r.edgeAt10k.HeapInuse)), "")
	row("edge after 100 pins: heap in use / RSS", fmt.Sprintf("%s / %s", mib(r.mem100.HeapInuse), benchenv.MiB(r.rss100)), "")
	row(fmt.Sprintf("edge after %d pins: heap in use / RSS (peak)", o.pins), fmt.Sprintf("%s / %s (%s)", mib(r.memMany.HeapInuse), benchenv.MiB(r.rssMany), benchenv.MiB(r.peakMany)), "")
	row(fmt.Sprintf("growth 100 → %d pins: heap / RSS", o.pins), fmt.Sprintf("%+.1f MiB / %+.1f MiB",
		(float64(r.memMany.HeapInuse)-float64(r.mem100.HeapInuse))/(1<<20), float64(r.rssMany-r.rss100)/(1<<20)), "≤ 50 MiB")
	if r.heartbeatErr != "" {
		b.Printf("\nFirst heartbeat failure: `%s`\n", r.heartbeatErr)
	}
	b.Text("\n### Set-up\n\n")
	b.Machine(r.machine, "", r.loadBefore, r.loadAfter)
	copyNote := "with its watch-fed copy (`Registry.Run`)"
	if !o.copy {
		copyNote = "without its watch-fed copy (`-copy=false`: every heartbeat reads etcd)"
	}
	etcdNote := "calling the etcd member in-process (`embedetcd.InProcessClient`), as `discoverysvc serve` does with the etcd it embeds"
	if o.grpc {
		etcdNote = "calling the etcd member over loopback gRPC (`-grpc`), as a replica beside an external etcd does"
	}
	fleetNote := "Most of the fleet heartbeats from a child process of its own (`-fleet-apart`, the default), so that the discovery process's CPU is the service's own, as with agents on their own hosts; the parent sends the heartbeats of the servers the timed changes move, so that a change and its server's heartbeats are ordered in one process."
	if !o.apart {
		fleetNote = "The whole fleet runs in the discovery process (`-fleet-apart=false`), so that process's CPU includes the fleet's HTTP clients."
	}
	b.Printf("- One process runs an embedded single-member etcd, the discovery API (`discoverysvc.NewAPI` over `discoverysvc.NewRegistry`, %s, %s) on loopback, and the fleet: minimal HTTP/1.1 clients (`bench/internal/rawhttp`, keep-alive) that send each server's `PUT /v1/servers/{id}` (10 regions) on an even schedule, the first of which registers it, reporting its load with jitter of at most ±0.009, below the 0.02 that must be written. etcd writes are the store revision's growth; watch events are counted by a separate watch on the registry prefix. %s\n", copyNote, etcdNote, fleetNote)
	b.Text("- The edge is a child process with what a Caddy edge holds: an etcd client, one `watch.Watcher` with an Attach hook like the edge's (dial address and /closestToMe answer per server), and an HS256 `pin.Keyring` with its default verified-token cache. Its CPU and RSS come from /proc; heap figures follow a forced GC and `debug.FreeOSMemory`.\n")
	b.Text("- Propagation: for each change the edge is first told what to look for; the time runs from just before the write (an HTTP `PUT` to the API, or a direct `Registry.Heartbeat` in the discovery process) to the `OnUpdate` in which the edge's snapshot first shows the new load. Changes move a server's load by 0.3, one at a time with 5–24 ms pauses, while the fleet keeps heartbeating.\n")
	b.Printf("- Pins: the edge issues a pin for a new client (a distinct token each, to a server of the snapshot), verifies it through the keyring and resolves its server in the snapshot, as a pinned request does; %d pins took %s. Memory is compared after 100 and after %d.\n", o.pins-100, r.pinsTime.Round(time.Millisecond), o.pins)
	b.Commands("make bench-registry   # = go run ./bench/registry; this run:", r.command)
	return b.String()
}
