// Command e2e is the end-to-end benchmark of `make bench`: on
// loopback, in one run with interleaved rounds, it compares
//
//  1. plain Caddy `reverse_proxy` to one upstream,
//  2. Caddy `reverse_proxy` with `lb_policy cookie` over four upstreams,
//  3. the sessionpin edge with pinned requests of 100 clients (HS256 pins),
//  4. the same with EdDSA pins,
//  5. the sessionpin edge with pinned requests of 100,000 distinct clients
//     in random order (HS256 pins), which an edge sees when its clients
//     outnumber its connections,
//  6. the same with EdDSA pins,
//  7. the sessionpin edge placing every request (no pin sent),
//
// plus a control: plain reverse_proxy with clients sending a pin-sized
// header it only forwards. All run against the same fast Go backend, each
// Caddy a child process of a binary built from ./cmd/caddy, and take turns
// in 1 s slices within each round. Every pinned client has made its first
// request before the measurement. It prints requests/s, p50/p99 latency,
// Caddy CPU per request, the ratios to plain reverse_proxy, whether the
// targets are met, and the edges' memory, and writes them with the machine
// and the exact commands into BENCHMARKS.md.
//
//	go run ./bench/e2e [-rounds 5] [-duration 5s] [-slice 1s] [-conns 32] [-clients 100] [-many 100000] [-only keys] [-caddy bin] [-profile dir] [-out BENCHMARKS.md]
//
// With -fill n it only measures memory: it sends n distinct clients' pins,
// each once, to an HS256 edge with the default token_cache and to one with
// token_cache n, and records their memory every tenth of the way.
//
//	go run ./bench/e2e -fill 1000000 [-out BENCHMARKS.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

// options are the command-line flags.
type options struct {
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	conns        int
	caddyProcs   int
	loadProcs    int
	backendProcs int
	caddyBin     string
	out          string
	only         string
	profileDir   string
	slice        time.Duration
	clients      int // distinct pinned clients of the hs256 and eddsa runs
	many         int // distinct pinned clients of the many-clients runs
	fill         int // -fill: only measure memory up to this many clients
	compare      comparisons
	gcControl    bool
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-serve-backends" {
		var n int
		fmt.Sscan(os.Args[2], &n)
		if err := serveBackends(n); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
		return
	}
	cpus := runtime.NumCPU()
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds; every configuration runs once per round")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured load per configuration per round")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load per configuration before the first round")
	flag.IntVar(&o.conns, "conns", 32, "concurrent keep-alive connections of the load generator")
	flag.IntVar(&o.caddyProcs, "caddy-procs", cpus, "GOMAXPROCS of each Caddy")
	flag.IntVar(&o.loadProcs, "load-procs", max(cpus/2, 1), "GOMAXPROCS of the load generator (this process)")
	flag.IntVar(&o.backendProcs, "backend-procs", max(cpus/2, 1), "GOMAXPROCS of the backend process")
	flag.StringVar(&o.caddyBin, "caddy", "", "Caddy binary to test (default: build ./cmd/caddy into a temporary directory)")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown file whose end-to-end section is (re)written; empty to only print")
	flag.StringVar(&o.only, "only", "", "comma-separated configuration keys to run (plain,plainhdr,cookie,hs256,eddsa,hs256many,eddsamany,place); plain always runs; default all")
	flag.IntVar(&o.clients, "clients", 100, "distinct pinned clients of the hs256 and eddsa configurations")
	flag.IntVar(&o.many, "many", 100000, "distinct pinned clients of the hs256many and eddsamany configurations")
	flag.Var(&o.compare, "compare", "name=binary: also run the pinned configurations on edges of this Caddy binary, in the same rounds (repeatable)")
	flag.BoolVar(&o.gcControl, "gc-control", true, "add plain reverse_proxy with GOGC raised to the HS256 edge's heap target (needs plain and hs256)")
	flag.IntVar(&o.fill, "fill", 0, "only measure edge memory while this many distinct clients' pins arrive, once each")
	flag.DurationVar(&o.slice, "slice", time.Second, "within a round, configurations take turns in slices this long until each has had -duration; 0 runs each for -duration at a stretch")
	flag.StringVar(&o.profileDir, "profile", "", "directory for CPU profiles of each Caddy during the first round (from its admin /debug/pprof); turns -slice off")
	flag.Parse()
	if o.rounds < 1 || o.duration <= 0 || o.conns < 1 || o.caddyProcs < 1 || o.loadProcs < 1 || o.backendProcs < 1 || o.clients < 1 || o.many < 1 || o.fill < 0 {
		fmt.Fprintln(os.Stderr, "e2e: -rounds, -duration, -conns, -clients, -many and the -*-procs flags must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runner := run
	if o.fill > 0 {
		runner = runFill
	}
	if err := runner(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

// config is one configuration under test.
type config struct {
	key, name string
	caddy     *caddyProc
	// headers returns the extra request headers of each simulated client,
	// e.g. its pin; the clients are dealt over the connections.
	headers func() ([][]string, error)
	// pinned is the number of distinct pinned clients, 0 for a
	// configuration without pins.
	pinned int
	// many marks the many-clients configurations, whose clients make
	// their first requests in a pass of their own.
	many    bool
	clients []*client
	runs    []*runStats
}

// runStats is one measured run of a configuration.
type runStats struct {
	res       *result
	caddyCPU  time.Duration
	backCPU   time.Duration
	loadCPU   time.Duration
	loadAvg   float64
	startedAt time.Time
}

func (r *runStats) rps() float64 { return float64(r.res.ok) / r.res.elapsed.Seconds() }

func run(ctx context.Context, o options) error {
	machine := benchenv.DescribeMachine()
	loadBefore := benchenv.LoadAverage()
	started := time.Now().UTC()

	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	su, err := newSetup(ctx, o, "e2e")
	if err != nil {
		return err
	}
	defer su.close()
	dir, bin, back, etcd := su.dir, su.bin, su.back, su.etcd
	caddyVersion := "unknown"
	if out, err := execOutput(bin, "version"); err == nil {
		caddyVersion = out
	}

	keyPath := filepath.Join(dir, "ed25519.pem")
	if err := writeEd25519Key(keyPath); err != nil {
		return fmt.Errorf("ed25519 key: %w", err)
	}

	configs, err := startCaddies(ctx, bin, dir, etcd.Member.Endpoint, keyPath, back.addrs, o)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range configs {
			c.caddy.stop()
		}
	}()
	for i, c := range configs {
		hs, err := c.headers()
		if err != nil {
			return fmt.Errorf("%s: preparing clients: %w", c.name, err)
		}
		if c.pinned > 0 {
			if err := checkPinned(c.caddy.url, hs[0]); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
		var reqs [][][]byte
		for _, idx := range spread(len(hs), o.conns, uint64(i+1)) {
			var r [][]byte
			for _, j := range idx {
				r = append(r, newRequest(c.caddy.addr, hs[j]))
			}
			reqs = append(reqs, r)
		}
		c.clients = newClients(c.caddy.addr, reqs)
	}
	defer func() {
		for _, c := range configs {
			for _, cl := range c.clients {
				cl.close()
			}
		}
	}()

	// From here on this process is the load generator: fix its share.
	runtime.GOMAXPROCS(o.loadProcs)
	fmt.Fprintf(os.Stderr, "warming up %s per configuration ...\n", o.warmup)
	var mem []memoryRow
	note := func(c *caddyProc, point string, clients int) error {
		m, err := c.memoryOf(ctx, clients)
		if err == nil {
			mem = append(mem, memoryRow{caddy: c.name, point: point, m: m})
		}
		return err
	}
	for _, c := range configs {
		if o.warmup > 0 && !c.many {
			runLoad(ctx, c.clients, o.warmup)
		}
	}
	// Every pinned client makes its first request before the measurement,
	// as on an edge whose clients each send many requests: with many
	// clients that is a pass over all of them, and the edge's memory
	// before and after it is what those clients cost.
	for _, c := range configs {
		if !c.many {
			continue
		}
		if err := note(c.caddy, fmt.Sprintf("after the %s-client warm-up", count(o.clients)), o.clients); err != nil {
			return err
		}
		t0 := time.Now()
		res := runPass(ctx, c.clients)
		if res.failed > 0 {
			return fmt.Errorf("%s: first requests: %d failed, first: %s", c.name, res.failed, res.firstErr)
		}
		fmt.Fprintf(os.Stderr, "%s: first requests of %s clients in %s\n", c.name, count(c.pinned), time.Since(t0).Round(time.Millisecond))
		if err := note(c.caddy, fmt.Sprintf("after %s more clients' first requests", count(c.pinned)), o.clients+c.pinned); err != nil {
			return err
		}
		if o.warmup > 0 {
			runLoad(ctx, c.clients, o.warmup)
		}
	}
	// The edge's heap holds its verified-token cache, so with Go's default
	// GOGC its collector runs less often than plain Caddy's, which lowers
	// its CPU per request by more than the pin check costs. The control
	// "plain with the edge's GC target" is plain Caddy with GOGC raised to
	// the same heap target, so that the pin check's own cost shows too.
	if o.gcControl {
		c, err := startGCControl(ctx, configs, bin, dir, back.addrs[0], o)
		if err != nil {
			return err
		}
		if c != nil {
			configs = slices.Insert(configs, 1, c)
		}
	}
	slice := o.slice
	if slice <= 0 || slice > o.duration || o.profileDir != "" {
		slice = o.duration
	}
	for round := range o.rounds {
		// Configurations take turns in short slices, so that a burst of
		// other work on the machine hits them all alike rather than the
		// one whose turn it is; the order rotates so that none always runs
		// first or after the same neighbour.
		stats := make(map[*config]*runStats, len(configs))
		for k := 0; time.Duration(k)*slice < o.duration; k++ {
			d := min(slice, o.duration-time.Duration(k)*slice)
			for j := range configs {
				c := configs[(j+round+k)%len(configs)]
				if ctx.Err() != nil {
					return ctx.Err()
				}
				profile := ""
				if o.profileDir != "" && round == 0 {
					profile = filepath.Join(o.profileDir, c.key+".pprof")
				}
				st := measure(ctx, c, back, d, profile)
				if prev := stats[c]; prev != nil {
					prev.add(st)
				} else {
					stats[c] = st
				}
			}
		}
		for j := range configs {
			c := configs[(j+round)%len(configs)]
			st := stats[c]
			c.runs = append(c.runs, st)
			fmt.Fprintf(os.Stderr, "round %d %-38s %8.0f req/s  p50 %-9v p99 %-9v caddy %5.1f µs/req  failed %d  load %.2f\n",
				round+1, c.name, st.rps(), st.res.hist.quantile(0.5).Round(time.Microsecond),
				st.res.hist.quantile(0.99).Round(time.Microsecond), perReq(st.caddyCPU, st.res.ok), st.res.failed, st.loadAvg)
			if st.res.failed > 0 {
				fmt.Fprintf(os.Stderr, "  first failure: %s\n", st.res.firstErr)
			}
		}
	}
	seen := map[*caddyProc]bool{}
	for _, c := range configs {
		if !seen[c.caddy] {
			seen[c.caddy] = true
			if err := note(c.caddy, "after the run", -1); err != nil {
				return err
			}
		}
	}
	rep := report{
		machine: machine, caddyVersion: caddyVersion, opts: o, configs: configs, memory: mem,
		started: started, loadBefore: loadBefore, loadAfter: benchenv.LoadAverage(),
		command: benchenv.CommandLine("go run ./bench/e2e", os.Args[1:]),
	}
	text := rep.markdown()
	fmt.Println(text)
	if o.out != "" {
		if err := benchenv.WriteSection(o.out, "e2e", text); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", o.out)
	}
	return nil
}

// measure runs one configuration under load and records the CPU each
// process spent meanwhile; with profile set, it also saves a CPU profile of
// the Caddy under load there.
func measure(ctx context.Context, c *config, back *backends, d time.Duration, profile string) *runStats {
	st := &runStats{startedAt: time.Now(), loadAvg: benchenv.LoadAverage()}
	if profile != "" {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			if err := c.caddy.profile(ctx, d-time.Second, profile); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
			}
		}()
	}
	self := os.Getpid()
	c0, b0 := c.caddy.cpu(), cpuOf(back.pid())
	l0 := cpuOf(self)
	st.res = runLoad(ctx, c.clients, d)
	st.caddyCPU = c.caddy.cpu() - c0
	st.backCPU = cpuOf(back.pid()) - b0
	st.loadCPU = cpuOf(self) - l0
	return st
}

// add merges a later slice o of the same configuration into st.
func (st *runStats) add(o *runStats) {
	st.res.add(o.res)
	st.caddyCPU += o.caddyCPU
	st.backCPU += o.backCPU
	st.loadCPU += o.loadCPU
}

func cpuOf(pid int) time.Duration {
	d, _ := benchenv.ProcessCPU(pid)
	return d
}

func perReq(cpu time.Duration, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}

type comparison struct{ name, bin string }

func (c comparison) suffix() string {
	if c.name == "" {
		return ""
	}
	return "@" + c.name
}

// comparisons is the repeatable -compare name=binary flag.
type comparisons []comparison

func (cs *comparisons) String() string { return fmt.Sprint(*cs) }

func (cs *comparisons) Set(v string) error {
	name, bin, ok := strings.Cut(v, "=")
	if !ok || name == "" || bin == "" {
		return fmt.Errorf("want name=binary, got %q", v)
	}
	*cs = append(*cs, comparison{name, bin})
	return nil
}

// count writes n with thousands separators.
func count(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// dummyPin is a header the size of an HS256 pin that plain Caddy just
