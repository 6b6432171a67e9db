// Command registry is the registry-scale benchmark of `make bench-registry`.
// In one process it runs an embedded etcd and the discovery HTTP
// API (discoverysvc.NewAPI) under a fleet of simulated servers; in a child
// process, an edge: an etcd client and a watch.Watcher as Caddy runs
// it, plus the pin Keyring. It
//
//  1. registers 10,000 servers through the HTTP API,
//
//  2. heartbeats each every 3 s for a bounded time and reports etcd writes/s
//     (from revision deltas), watch events/s, the edge's CPU and RSS, and
//     the discovery side's CPU,
//
//  3. changes 200 servers' load one at a time (heartbeats going on) and
//     reports the propagation delay from the API call to the edge's
//     snapshot (p50/p99),
//
//  4. passes 100, then 1,000,000 distinct HS256 pins through the edge's
//     keyring and snapshot and compares its memory.
//
//     go run ./bench/registry [-servers 10000] [-interval 3s] [-duration 30s] [-changes 200] [-pins 1000000] [-out BENCHMARKS.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

type options struct {
	servers  int
	interval time.Duration
	duration time.Duration
	changes  int
	pins     int
	conns    int
	ttl      time.Duration
	startup  time.Duration
	out      string
	copy     bool
	grpc     bool
	rounds   int
	apart    bool
	profile  string
}

const prefix = "/sessionpin-bench/"

func main() {
	var edgeMode, fleetMode bool
	var edgeEtcd, edgePrefix, fleetAPI string
	var o options
	flag.BoolVar(&edgeMode, "edge", false, "internal: run as the edge child process")
	flag.StringVar(&edgeEtcd, "etcd", "", "internal: etcd endpoint of the edge child")
	flag.StringVar(&edgePrefix, "prefix", prefix, "internal: registry prefix of the edge child")
	flag.BoolVar(&fleetMode, "fleet", false, "internal: run as the fleet child process")
	flag.StringVar(&fleetAPI, "api", "", "internal: discovery API host:port of the fleet child")
	flag.IntVar(&o.servers, "servers", 10000, "servers in the fleet")
	flag.DurationVar(&o.interval, "interval", 3*time.Second, "heartbeat interval of each server")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "length of the steady heartbeat phase")
	flag.IntVar(&o.changes, "changes", 200, "load changes whose propagation is timed")
	flag.IntVar(&o.pins, "pins", 1000000, "distinct pins passed through the edge for the memory comparison")
	flag.IntVar(&o.conns, "conns", 64, "concurrent HTTP connections of the fleet to the discovery API")
	flag.DurationVar(&o.ttl, "ttl", 10*time.Second, "lease TTL each heartbeat asks for (the agent's default is 10s)")
	flag.DurationVar(&o.startup, "startup-timeout", 2*time.Minute, "how long the fleet may take until the edge has every server; past it the run goes on and reports how many it had")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the discovery process (API, etcd, fleet) during the steady phase to this file")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds the steady phase is split into for the spread of the CPU per heartbeat")
	flag.BoolVar(&o.apart, "fleet-apart", true, "most of the fleet heartbeats from a child process, so that the discovery process's CPU is the service's own (false: the whole fleet runs in the discovery process)")
	flag.BoolVar(&o.grpc, "grpc", false, "the registry reaches the embedded etcd over loopback gRPC instead of in-process, as a replica beside an external etcd would")
	flag.BoolVar(&o.copy, "copy", true, "run the discovery registry's watch-fed copy (false: every heartbeat reads etcd, as before the copy)")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown file whose registry section is (re)written; empty to only print")
	flag.Parse()
	if edgeMode {
		if err := runEdge(edgeEtcd, edgePrefix); err != nil {
			fmt.Fprintln(os.Stderr, "edge:", err)
			os.Exit(1)
		}
		return
	}
	if fleetMode {
		if err := runFleet(fleetConfig{api: fleetAPI, servers: o.servers, conns: o.conns, changes: o.changes, interval: o.interval, ttl: o.ttl}); err != nil {
			fmt.Fprintln(os.Stderr, "fleet:", err)
			os.Exit(1)
		}
		return
	}
	if o.servers < 1 || o.interval <= 0 || o.duration <= 0 || o.changes < 1 || o.pins < 100 || o.conns < 1 || o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "registry: -servers, -interval, -duration, -changes, -conns, -rounds must be positive and -pins at least 100")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	r := &report{opts: o, machine: benchenv.DescribeMachine(), started: time.Now().UTC(), loadBefore: benchenv.LoadAverage(),
		command: benchenv.CommandLine("go run ./bench/registry", os.Args[1:])}

	etcd, err := benchenv.StartEtcd()
	if err != nil {
		return err
	}
	defer etcd.Close()
	// As discoverysvc serve does with the etcd it embeds, the registry
	// calls the member in-process; -grpc measures it over loopback gRPC,
	// as a discovery replica beside an external etcd would pay.
	reg := discoverysvc.NewRegistry(etcd.Client, prefix)
	if !o.grpc {
		in := etcd.Member.InProcessClient(nil)
		defer in.Close()
		reg = discoverysvc.NewRegistry(in.Client, prefix)
		reg.RenewWith(in.Renew)
	}
	if o.copy {
		cctx, stopCopy := context.WithCancel(ctx)
		defer stopCopy()
		go reg.Run(cctx, nil)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	api := &http.Server{Handler: discoverysvc.NewAPI(reg, discoverysvc.APIConfig{AllowLoopback: true}), ReadHeaderTimeout: 10 * time.Second}
	go api.Serve(l)
	defer api.Close()

	// Count every event on the registry prefix: exactly what each edge's
	// watch receives.
	var events atomic.Int64
	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	wch := etcd.Client.Watch(wctx, schema.ServersPrefix(prefix), clientv3.WithPrefix())
	go func() {
		for resp := range wch {
			events.Add(int64(len(resp.Events)))
		}
	}()

	edge, err := startEdge(etcd.Member.Endpoint, prefix)
	if err != nil {
		return err
	}
	defer edge.stop()
	r.edgeEmpty, err = edge.mem()
	if err != nil {
		return err
	}
	r.edgeRSSEmpty, _, _ = benchenv.RSS(edge.pid())

	// The parent's own fleet heartbeats the servers whose load the timed
	// changes move; the fleet child, when apart, the rest.
	changed, rest := splitFleet(o.servers, o.changes)
	local, localConns := changed, 4
	if !o.apart {
		local, localConns = append(changed, rest...), o.conns
	}
	f := newFleet(l.Addr().String(), o.servers, localConns, o.ttl, local)
	fl := &fleets{local: f}
	logf("starting %d servers heartbeating every %s through the discovery API ...", o.servers, o.interval)
	rev0, err := etcd.Revision(ctx)
	if err != nil {
		return err
	}
	// As a fleet coming up: each server's first heartbeat registers it, and
	// heartbeats go on from there on an even schedule; registration is the
	// first pass of that schedule.
	t0 := time.Now()
	hctx, stopBeats := context.WithCancel(ctx)
	beatsDone := make(chan struct{})
	go func() { defer close(beatsDone); f.heartbeat(hctx, o.interval, localConns) }()
	defer func() { stopBeats(); <-beatsDone }()
	if o.apart {
		if fl.remote, err = startFleet(fleetConfig{api: l.Addr().String(), servers: o.servers, conns: o.conns, changes: o.changes, interval: o.interval, ttl: o.ttl}); err != nil {
			return err
		}
		defer fl.remote.stop()
	}
	r.allUp, r.mostUp, err = waitServers(ctx, edge, int64(o.servers), o.startup)
	if err != nil {
		return err
	}
	r.registerPropagated = time.Since(t0)
	rev1, err := etcd.Revision(ctx)
	if err != nil {
		return err
	}
	r.registerWrites = rev1 - rev0
	r.edgeRSS10k, r.edgePeak10k, _ = benchenv.RSS(edge.pid())
	if r.allUp {
		logf("the edge has all %d servers after %s (%d etcd writes)", o.servers, r.registerPropagated.Round(time.Millisecond), r.registerWrites)
	} else {
		// Measure anyway: what a fleet too large for the discovery service
		// costs is a result too.
		logf("the edge never had all %d servers at once within %s (at most %d): leases expire before their heartbeats arrive", o.servers, o.startup, r.mostUp)
	}

	// Steady heartbeats, after one more interval for the start to settle.
	if !sleep(ctx, o.interval) {
		return ctx.Err()
	}
	logf("steady heartbeats for %s ...", o.duration)
	if err := fl.resetLag(); err != nil {
		return err
	}
	s0, err := sample(ctx, etcd, edge, fl, &events)
	if err != nil {
		return err
	}
	stopProfile, err := startProfile(o.profile)
	if err != nil {
		return err
	}
	// The steady phase in rounds, so that the report gives the spread of
	// the CPU per heartbeat and not one figure that a burst of other load
	// on the machine could move.
	s1, prev := s0, s0
	for range o.rounds {
		if !sleep(ctx, o.duration/time.Duration(o.rounds)) {
			stopProfile()
			return ctx.Err()
		}
		if s1, err = sample(ctx, etcd, edge, fl, &events); err != nil {
			stopProfile()
			return err
		}
		r.rounds = append(r.rounds, s1.minus(prev))
		prev = s1
	}
	stopProfile()
	r.steady = s1.minus(s0)
	st, err := fl.status()
	if err != nil {
		return err
	}
	r.steadyLateMax, r.steadyLate, r.heartbeatErr = st.lateMax, st.late, st.firstErr
	if rss, peak, err := benchenv.RSS(edge.pid()); err == nil {
		r.edgeRSS10k, r.edgePeak10k = rss, peak
	}
	logf("steady: %.0f heartbeats/s, %.1f etcd writes/s, %.1f events/s, edge CPU %.1f%%",
		r.steady.rate(r.steady.heartbeats), r.steady.rate(r.steady.revs), r.steady.rate(r.steady.events), 100*r.steady.edgeCPU.Seconds()/r.steady.wall.Seconds())

	// Propagation of deliberate changes, heartbeats going on.
	logf("timing %d load changes ...", o.changes)
	viaAPI := func(i int, load float64) error { return f.put(ctx, i, load) }
	if r.viaAPI, err = timeChanges(ctx, f, edge, o.changes, 0, viaAPI); err != nil {
		return err
	}
	// The same through the registry's own write path, without the API's
	// queue of heartbeats in front: the registry change proper.
	viaRegistry := func(i int, load float64) error {
		_, err := reg.Heartbeat(ctx, f.server(i, load), o.ttl)
		return err
	}
	logf("timing %d load changes written through discoverysvc.Registry ...", o.changes)
	if r.viaRegistry, err = timeChanges(ctx, f, edge, o.changes, 1, viaRegistry); err != nil {
		return err
	}

	// Memory per pin.
	r.edgeAt10k, err = edge.mem()
	if err != nil {
		return err
	}
	if _, err := edge.pins(100); err != nil {
		return err
	}
	if r.mem100, err = edge.mem(); err != nil {
		return err
	}
	r.rss100, _, _ = benchenv.RSS(edge.pid())
	logf("passing %d distinct pins through the edge ...", o.pins)
	if r.pinsTime, err = edge.pins(o.pins - 100); err != nil {
		return err
	}
	if r.memMany, err = edge.mem(); err != nil {
		return err
	}
	r.rssMany, r.peakMany, _ = benchenv.RSS(edge.pid())
	// The fleet heartbeats until the pins are done: a pin's server must
	// still be registered when the edge resolves it, and a million pins
	// can take longer than a lease.
	stopBeats()
	<-beatsDone
	if fl.remote != nil {
		fl.remote.stop()
	}
	r.loadAfter = benchenv.LoadAverage()

	text := r.markdown()
	fmt.Println(text)
	if o.out != "" {
		if err := benchenv.WriteSection(o.out, "registry", text); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// waitServers polls the edge until its snapshot holds n servers or timeout
// passes; it returns whether it got there and the most it saw.
func waitServers(ctx context.Context, edge *edgeProc, n int64, timeout time.Duration) (ok bool, most int64, err error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		got, _, err := edge.status()
		if err != nil {
			return false, most, err
		}
		most = max(most, got)
		if got == n {
			return true, most, nil
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return false, most, ctx.Err()
		}
	}
	return false, most, nil
}

// counters is a sample of everything that counts.
type counters struct {
	at                          time.Time
	wall                        time.Duration
	rev, revs                   int64
	events, updates, heartbeats int64
	failures                    int64
	servers                     int64 // in the edge's snapshot
	edgeCPU, discoveryCPU       time.Duration
	fleetCPU                    time.Duration // the fleet child's, when apart
}

func sample(ctx context.Context, etcd *benchenv.Etcd, edge *edgeProc, fl *fleets, events *atomic.Int64) (counters, error) {
	c := counters{at: time.Now(), events: events.Load()}
	st, err := fl.status()
	if err != nil {
		return c, err
	}
	c.heartbeats, c.failures = st.heartbeats, st.failures
	if fl.remote != nil {
		c.fleetCPU, _ = benchenv.ProcessCPU(fl.remote.pid())
	}
	if c.rev, err = etcd.Revision(ctx); err != nil {
		return c, err
	}
	if c.servers, c.updates, err = edge.status(); err != nil {
		return c, err
	}
	c.edgeCPU, _ = benchenv.ProcessCPU(edge.pid())
	c.discoveryCPU, _ = benchenv.ProcessCPU(os.Getpid())
	return c, nil
}

func (c counters) minus(o counters) counters {
	return counters{
		at: c.at, wall: c.at.Sub(o.at), revs: c.rev - o.rev,
		events: c.events - o.events, updates: c.updates - o.updates,
		heartbeats: c.heartbeats - o.heartbeats, failures: c.failures - o.failures,
		edgeCPU: c.edgeCPU - o.edgeCPU, discoveryCPU: c.discoveryCPU - o.discoveryCPU, fleetCPU: c.fleetCPU - o.fleetCPU,
		servers: c.servers,
	}
}

func (c counters) rate(n int64) float64 { return float64(n) / c.wall.Seconds() }

// cpuPerHeartbeat is the discovery process's CPU per heartbeat handled.
func (c counters) cpuPerHeartbeat() time.Duration {
	return c.discoveryCPU / time.Duration(max(c.heartbeats, 1))
}

// changeTimes are the timings of a series of changes.
type changeTimes struct {
	// fromStart runs from the start of the write to the edge's snapshot
	// showing the change; write is the write call's own duration; fromAck
	// runs from the write's return to the snapshot (0 when the edge had it
	// first): how long a writer told "done" may still see stale routing.
	fromStart, write, fromAck []time.Duration
}

// timeChanges changes n servers' load by 0.3 with write, one at a time
// with a short pause. Series 0, 1, ... pick different servers.
func timeChanges(ctx context.Context, f *fleet, edge *edgeProc, n, series int, write func(i int, load float64) error) (ct changeTimes, err error) {
	for k := range n {
		i := changedServer(k, series, f.n)
		old := f.baseLoad(i)
		load := old + 0.3
		if old >= 0.5 {
			load = old - 0.3
		}
		load = float64(int64(load*1e4+0.5)) / 1e4 // as put formats it
		seen, err := edge.expect(serverID(i), load)
		if err != nil {
			return ct, err
		}
		f.beat[i].Lock()
		f.load[i].Store(math.Float64bits(load))
		t0 := time.Now()
		err = write(i, load)
		t1 := time.Now()
		f.beat[i].Unlock()
		if err != nil {
			return ct, err
		}
		ct.write = append(ct.write, t1.Sub(t0))
		select {
		case ns := <-seen:
			at := time.Unix(0, ns)
			ct.fromStart = append(ct.fromStart, at.Sub(t0))
			ct.fromAck = append(ct.fromAck, max(at.Sub(t1), 0))
		case <-time.After(10 * time.Second):
			return ct, fmt.Errorf("change %d of %s not seen by the edge within 10s", k, serverID(i))
		case <-ctx.Done():
			return ct, ctx.Err()
		}
		if !sleep(ctx, time.Duration(5+k%20)*time.Millisecond) {
			return ct, ctx.Err()
		}
	}
	return ct, nil
}

// startProfile starts a CPU profile into path ("" for none); the returned
// function stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
