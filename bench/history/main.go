// Command history is the accelerated long run of `make bench-history`: it
// starts the discoverysvc binary with its embedded etcd at default settings
// and writes to the registry many times faster than a real fleet would —
// heartbeats whose load changes every time, operator drains started and
// ended, edges' activity reports — until hundreds of thousands of
// revisions have gone by, sampling the etcd database's size and the
// discovery process's memory as it goes. With compaction working, both
// level off after a couple of compaction retentions; without it they
// would grow with every revision.
//
//	go run ./bench/history [-duration 20m] [-rate 400] [-servers 200] [-edges 4] [-sample 30s] [-retention 0] [-out BENCHMARKS.md]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

type options struct {
	duration  time.Duration
	rate      int
	servers   int
	edges     int
	sample    time.Duration
	retention time.Duration
	minRevs   int64
	out       string
}

// prefix is discoverysvc's default registry prefix, where edges write
// their activity.
const prefix = "/sessionpin/"

const token = "bench-history-admin-token"

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 20*time.Minute, "length of the run: several compaction retentions, so that the level is seen")
	flag.IntVar(&o.rate, "rate", 400, "registry writes per second the run aims at (heartbeats, drains and activity together)")
	flag.IntVar(&o.servers, "servers", 200, "servers heartbeating; each heartbeat moves the load, so each is a write")
	flag.IntVar(&o.edges, "edges", 4, "edges reporting their activity twice a second")
	flag.DurationVar(&o.sample, "sample", 30*time.Second, "how often the size and memory are sampled")
	flag.DurationVar(&o.retention, "retention", 0, "--etcd-compaction-retention given to discoverysvc (0: its default, which is what the run is for)")
	flag.Int64Var(&o.minRevs, "min-revisions", 200_000, "revisions the run must reach; it fails when the machine cannot write that many in -duration")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown file whose history section is (re)written; empty to only print")
	flag.Parse()
	if o.duration <= 0 || o.rate < 10 || o.servers < 2 || o.edges < 1 || o.sample <= 0 || o.retention < 0 {
		fmt.Fprintln(os.Stderr, "history: -duration, -sample must be positive, -rate at least 10, -servers at least 2, -edges at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "history:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// sample is one look at the registry and the discovery process.
type sample struct {
	elapsed   time.Duration
	revision  int64
	revPerSec float64
	dbSize    int64
	dbInUse   int64
	rss       int64
	heapInUse int64
}

func run(ctx context.Context, o options) error {
	machine, loadBefore := benchenv.DescribeMachine(), benchenv.LoadAverage()
	command := benchenv.CommandLine("go run ./bench/history", os.Args[1:])
	dir, err := os.MkdirTemp("", "sessionpin-bench-history-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin := filepath.Join(dir, "discoverysvc")
	logf("building discoverysvc")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/discoverysvc").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/discoverysvc: %v\n%s", err, out)
	}
	api, etcdAddr, peerAddr := mustPort(), mustPort(), mustPort()
	args := []string{"serve", "--listen", api, "--data-dir", filepath.Join(dir, "etcd"),
		"--etcd-listen", etcdAddr, "--etcd-peer-listen", peerAddr, "--token", token, "--allow-loopback", "--log-level", "info"}
	if o.retention > 0 {
		args = append(args, "--etcd-compaction-retention", o.retention.String())
	}
	logPath := filepath.Join(dir, "discoverysvc.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	svc := exec.Command(bin, args...)
	svc.Stdout, svc.Stderr = logFile, logFile
	if err := svc.Start(); err != nil {
		return fmt.Errorf("start discoverysvc: %w", err)
	}
	defer func() {
		_ = svc.Process.Signal(syscall.SIGTERM)
		_ = svc.Wait()
	}()
	base := "http://" + api
	if err := waitHealthy(ctx, base); err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdAddr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	w := &writers{o: o, base: base, cli: cli, http: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	logf("writing ~%d revisions/s for %s (discoverysvc pid %d, %s)", o.rate, o.duration, svc.Process.Pid, strings.Join(args, " "))
	done := w.start(runCtx)

	var samples []sample
	take := func(start time.Time) error {
		s, err := look(ctx, cli, etcdAddr, base, svc.Process.Pid)
		if err != nil {
			return err
		}
		s.elapsed = time.Since(start)
		if n := len(samples); n > 0 {
			p := samples[n-1]
			s.revPerSec = float64(s.revision-p.revision) / (s.elapsed - p.elapsed).Seconds()
		}
		samples = append(samples, s)
		logf("%6s rev %8d (%4.0f/s) db %s in use %s, discoverysvc RSS %s heap %s", s.elapsed.Round(time.Second), s.revision, s.revPerSec,
			benchenv.MiB(s.dbSize), benchenv.MiB(s.dbInUse), benchenv.MiB(s.rss), benchenv.MiB(s.heapInUse))
		return nil
	}
	start := time.Now()
	if err := take(start); err != nil {
		return err
	}
	t := time.NewTicker(o.sample)
	defer t.Stop()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-t.C:
			if err := take(start); err != nil {
				return err
			}
		}
	}
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := take(start); err != nil {
		return err
	}
	defrags, err := defragsOf(logPath)
	if err != nil {
		return err
	}
	// How long a defragmentation blocks the member at the size the run
	// levelled off at, whether or not the upkeep ran one.
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer dcancel()
	before := samples[len(samples)-1]
	dstart := time.Now()
	if _, err := cli.Defragment(dctx, etcdAddr); err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	defragTook := time.Since(dstart)
	after, err := look(ctx, cli, etcdAddr, base, svc.Process.Pid)
	if err != nil {
		return err
	}
	r := report{opts: o, machine: machine, loadBefore: loadBefore, loadAfter: benchenv.LoadAverage(), command: command,
		samples: samples, errors: w.failed.Load(), defrags: defrags,
		defrag: defragAtEnd{took: defragTook, sizeBefore: before.dbSize, inUse: before.dbInUse, sizeAfter: after.dbSize}}
	text := r.markdown()
	fmt.Println(text)
	if written := samples[len(samples)-1].revision - samples[0].revision; written < o.minRevs {
		return fmt.Errorf("only %d revisions in %s, fewer than -min-revisions %d: raise -rate or -duration", written, o.duration, o.minRevs)
	}
	if o.out != "" {
		return benchenv.WriteSection(o.out, "history", text)
	}
	return nil
}

func mustPort() string {
	p, err := benchenv.FreePort()
	if err != nil {
		panic(err)
	}
	return p
}

func waitHealthy(ctx context.Context, base string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("discoverysvc not healthy after a minute: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// look samples etcd's revision and database size and the discovery
// process's memory.
func look(ctx context.Context, cli *clientv3.Client, etcdAddr, base string, pid int) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, etcdAddr)
	if err != nil {
		return sample{}, fmt.Errorf("etcd status: %w", err)
	}
	rss, _, err := benchenv.RSS(pid)
	if err != nil {
		return sample{}, err
	}
	heap, err := scrape(ctx, base, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return sample{}, err
	}
	return sample{revision: st.Header.Revision, dbSize: st.DbSize, dbInUse: st.DbSizeInUse, rss: rss, heapInUse: int64(heap)}, nil
}

// scrape reads one unlabelled metric from discovery's /metrics.
func scrape(ctx context.Context, base, name string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// defragsOf reads how long each defragmentation of the embedded member
// took from discoverysvc's log.
func defragsOf(path string) ([]time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []time.Duration
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Msg  string `json:"msg"`
			Took string `json:"took"`
		}
		if json.Unmarshal(line, &e) != nil || e.Msg != "etcd defragmented" {
			continue
		}
		if d, err := time.ParseDuration(e.Took); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// writers make the registry's revisions: most are heartbeats whose load
// moves (a write each), the rest operator drains and edges' activity.
type writers struct {
	o      options
	base   string
	cli    *clientv3.Client
	http   *http.Client
	failed atomic.Int64
}

// start runs the writers until ctx ends; the channel closes when they
// have stopped.
func (w *writers) start(ctx context.Context) <-chan struct{} {
	var wg sync.WaitGroup
	// Drains: one started and one ended a second.
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.drains(ctx)
	}()
	// Activity: every edge twice a second.
	for e := range w.o.edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.activity(ctx, fmt.Sprintf("edge-%d", e))
		}()
	}
	// Heartbeats: the rest of the rate, spread over workers.
	hbRate := w.o.rate - 2 - 2*w.o.edges
	if hbRate < 1 {
		hbRate = 1
	}
	const workers = 16
	tick := make(chan int)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(tick)
		t := time.NewTicker(time.Second / time.Duration(hbRate))
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case tick <- n:
				default: // the workers are behind: skip rather than queue
				}
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range tick {
				srv := n % w.o.servers
				round := n / w.o.servers
				load := 0.2 + 0.05*float64(round%2) // moves by more than the 0.02 a write needs
				body := fmt.Sprintf(`{"region":"r%d","url":"http://127.0.0.1:%d","load":%g,"ttl":30}`, srv%3, 10000+srv, load)
				w.do(ctx, http.MethodPut, fmt.Sprintf("/v1/servers/s%d", srv), body)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

func (w *writers) drains(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		path := fmt.Sprintf("/v1/servers/s%d/drain", n%w.o.servers)
		w.do(ctx, http.MethodPut, path, `{"reason":"bench"}`)
		w.do(ctx, http.MethodDelete, path, "")
	}
}

func (w *writers) activity(ctx context.Context, edge string) {
	lease, err := w.cli.Grant(ctx, 30)
	if err != nil {
		w.failed.Add(1)
		return
	}
	ka, err := w.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		w.failed.Add(1)
		return
	}
	go func() {
		for range ka {
		}
	}()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now().UTC()
		servers := map[string]any{}
		for i := range 10 {
			id := fmt.Sprintf("s%d", (n+i)%w.o.servers)
			servers[id] = map[string]any{"pinned": n%7 + i, "minute": 60 + n%13, "last": now.Format(time.RFC3339Nano)}
		}
		v, _ := json.Marshal(map[string]any{"edge": edge, "region": "r0", "at": now.Format(time.RFC3339Nano), "servers": servers})
		if _, err := w.cli.Put(ctx, prefix+"edges/"+edge, string(v), clientv3.WithLease(lease.ID)); err != nil && ctx.Err() == nil {
			w.failed.Add(1)
		}
	}
}

// do sends one API request with the admin token and counts a failure.
func (w *writers) do(ctx context.Context, method, path, body string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := w.http.Do(req)
	if err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			w.failed.Add(1)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
		w.failed.Add(1)
	}
}
