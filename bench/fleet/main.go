// Command fleet benchmarks GET /v1/events at scale: in one process an
// embedded etcd holding 10,000 servers and the discovery service with its
// fleet (one watch, the events hub) behind a real HTTP listener; in a child
// process, 1,000 subscribers that read the full state and then follow the
// stream. It reports
//
//  1. the discovery process's memory per subscriber (Go heap and stacks, and
//     RSS, before and after the subscribers connect and catch up),
//
//  2. the time from an etcd write to the moment the last of the subscribers
//     has the event, over a number of writes (p50, max).
//
//     go run ./bench/fleet [-servers 10000] [-subscribers 1000] [-writes 20] [-out BENCHMARKS.md]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

const prefix = "/sessionpin-bench-fleet/"

type options struct {
	servers     int
	subscribers int
	writes      int
	out         string
}

func main() {
	var clientsURL string
	var o options
	flag.StringVar(&clientsURL, "clients", "", "internal: run as the subscribers' child process against this discovery URL")
	flag.IntVar(&o.servers, "servers", 10000, "servers in the registry")
	flag.IntVar(&o.subscribers, "subscribers", 1000, "clients following GET /v1/events")
	flag.IntVar(&o.writes, "writes", 20, "etcd writes whose delivery to every subscriber is timed")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown file whose fleet section is (re)written; empty to only print")
	flag.Parse()
	var err error
	if clientsURL != "" {
		err = runClients(clientsURL, o.subscribers)
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		os.Exit(1)
	}
}

type result struct {
	opts                  options
	machine               benchenv.Machine
	loadBefore, loadAfter float64
	fullStateBytes        int
	catchUp               time.Duration
	heapBefore, heapAfter uint64
	rssBefore, rssAfter   int64
	latencies             []time.Duration
	subscribersAtEnd      int
}

func run(o options) error {
	r := &result{opts: o, machine: benchenv.DescribeMachine(), loadBefore: benchenv.LoadAverage()}
	etcd, err := benchenv.StartEtcd()
	if err != nil {
		return err
	}
	defer etcd.Close()
	ctx := context.Background()
	fmt.Printf("writing %d servers…\n", o.servers)
	if err := fill(ctx, etcd.Client, o.servers); err != nil {
		return err
	}

	svc := discoverysvc.New(discoverysvc.Config{Client: etcd.Client, Prefix: prefix})
	fleet := svc.Fleet()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fleet.Run(runCtx)
	}()
	defer func() { stop(); <-done }()
	<-fleet.Hub().Ready()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()

	r.heapBefore = heap()
	r.rssBefore, _, _ = benchenv.RSS(os.Getpid())

	fmt.Printf("starting %d subscribers…\n", o.subscribers)
	child := exec.Command(os.Args[0], "-clients", url, "-subscribers", strconv.Itoa(o.subscribers))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := child.Start(); err != nil {
		return err
	}
	defer child.Process.Kill()
	lines := bufio.NewScanner(out)
	expect := func(prefix string) (string, error) {
		if !lines.Scan() {
			return "", fmt.Errorf("subscribers' process ended: %v", lines.Err())
		}
		l := lines.Text()
		if !strings.HasPrefix(l, prefix) {
			return "", fmt.Errorf("subscribers' process said %q, want %s…", l, prefix)
		}
		return strings.TrimPrefix(l, prefix), nil
	}
	size, err := expect("synced ")
	if err != nil {
		return err
	}
	r.catchUp = time.Since(start)
	r.fullStateBytes, _ = strconv.Atoi(size)
	r.heapAfter = heap()
	r.rssAfter, _, _ = benchenv.RSS(os.Getpid())

	fmt.Printf("timing %d writes…\n", o.writes)
	for i := range o.writes {
		time.Sleep(200 * time.Millisecond) // writes apart, as an operator's fleet changes
		id := "probe-" + strconv.Itoa(i)
		b, _ := json.Marshal(schema.Server{ID: id, Region: "bench", URL: "http://127.0.0.1:9000", Load: 0.5})
		wrote := time.Now()
		if _, err := etcd.Client.Put(ctx, schema.ServerKey(prefix, id), string(b)); err != nil {
			return err
		}
		last, err := expect(id + " ")
		if err != nil {
			return err
		}
		ns, _ := strconv.ParseInt(last, 10, 64)
		r.latencies = append(r.latencies, time.Unix(0, ns).Sub(wrote))
	}
	r.subscribersAtEnd = fleet.Hub().Subscribers()
	r.loadAfter = benchenv.LoadAverage()
	text := r.markdown()
	fmt.Println(text)
	if o.out != "" {
		return benchenv.WriteSection(o.out, "fleet", text)
	}
	return nil
}

// heap is the Go memory in use (heap and goroutine stacks) after a GC.
func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// fill writes n servers in transactions of 128.
func fill(ctx context.Context, c *clientv3.Client, n int) error {
	var ops []clientv3.Op
	for i := range n {
		id := fmt.Sprintf("srv-%05d", i)
		b, _ := json.Marshal(schema.Server{ID: id, Region: fmt.Sprintf("region-%d", i%8),
			URL: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250+1), Load: float64(i%100) / 100})
		ops = append(ops, clientv3.OpPut(schema.ServerKey(prefix, id), string(b)))
		if len(ops) == 128 || i == n-1 {
			if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
				return fmt.Errorf("write servers: %w", err)
			}
			ops = ops[:0]
		}
	}
	return nil
}

// runClients is the child: n subscribers. It prints "synced <bytes>" once
// all have read the full state, then "<probe id> <unix ns>" when the last
// of them has the event adding that probe server.
func runClients(url string, n int) error {
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var (
		mu       sync.Mutex
		synced   int
		size     int
		got      = map[string]int{}
		lastSeen = map[string]int64{}
		allIn    = make(chan struct{})
		printMu  sync.Mutex
	)
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := client.Get(url + "/v1/events")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReaderSize(resp.Body, 64<<10)
			read := 0
			for {
				line, err := br.ReadSlice('\n')
				read += len(line)
				if err != nil && err != bufio.ErrBufferFull {
					if err == io.EOF {
						err = fmt.Errorf("stream ended")
					}
					errs <- err
					return
				}
				if bytes.HasPrefix(line, []byte("event: synced")) {
					mu.Lock()
					synced++
					size = read
					if synced == n {
						close(allIn)
					}
					mu.Unlock()
					continue
				}
				i := bytes.Index(line, []byte(`"id":"probe-`))
				if i < 0 {
					continue
				}
				at := time.Now().UnixNano()
				rest := line[i+len(`"id":"`):]
				id := string(rest[:bytes.IndexByte(rest, '"')])
				mu.Lock()
				got[id]++
				lastSeen[id] = max(lastSeen[id], at)
				if got[id] == n {
					printMu.Lock()
					fmt.Printf("%s %d\n", id, lastSeen[id])
					printMu.Unlock()
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-allIn:
		mu.Lock()
		fmt.Printf("synced %d\n", size)
		mu.Unlock()
	case err := <-errs:
		return err
	}
	return <-errs // runs until the parent kills it, or a stream fails
}

func (r *result) markdown() string {
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	n := float64(r.opts.subscribers)
	perHeap := (float64(r.heapAfter) - float64(r.heapBefore)) / n
	perRSS := float64(r.rssAfter-r.rssBefore) / n
	var b strings.Builder
	fmt.Fprintf(&b, "## Events stream at scale (`go run ./bench/fleet`)\n\n")
	fmt.Fprintf(&b, "%d subscribers of `GET /v1/events` (in a child process, over loopback HTTP) on a discovery service whose registry holds %d servers; one etcd watch feeds them all. %s, %d CPUs, %s; load average %.2f before, %.2f after (the machine is shared).\n\n",
		r.opts.subscribers, r.opts.servers, r.machine.CPUModel, r.machine.CPUs, r.machine.GoVersion, r.loadBefore, r.loadAfter)
	fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| full state per subscriber (reset, %d `server_added`, synced) | %s |\n", r.opts.servers, benchenv.MiB(int64(r.fullStateBytes)))
	fmt.Fprintf(&b, "| all %d subscribers connected and caught up | %v |\n", r.opts.subscribers, r.catchUp.Round(time.Millisecond))
	fmt.Fprintf(&b, "| discovery Go memory (heap + stacks), before → after | %s → %s |\n", benchenv.MiB(int64(r.heapBefore)), benchenv.MiB(int64(r.heapAfter)))
	fmt.Fprintf(&b, "| **memory per subscriber** (Go heap + stacks) | **%.1f KiB** |\n", perHeap/1024)
	fmt.Fprintf(&b, "| discovery RSS, before → after (per subscriber) | %s → %s (%.1f KiB) |\n", benchenv.MiB(r.rssBefore), benchenv.MiB(r.rssAfter), perRSS/1024)
	fmt.Fprintf(&b, "| **etcd write → last of %d subscribers has the event**, p50 / max over %d writes | **%v / %v** |\n",
		r.opts.subscribers, len(r.latencies), p(0.5).Round(10*time.Microsecond), p(1).Round(10*time.Microsecond))
	fmt.Fprintf(&b, "| subscribers still connected at the end (none dropped) | %d |\n", r.subscribersAtEnd)
	fmt.Fprintf(&b, "\nThe full state is encoded once and the same bytes are written to every subscriber; a change is encoded once per revision. ")
	fmt.Fprintf(&b, "The latency includes the etcd commit, the watch, the hub's diff and fan-out, 1,000 HTTP writes and the subscribers' reads in the other process. ")
	fmt.Fprintf(&b, "Command: `go run ./bench/fleet -servers %d -subscribers %d -writes %d`.\n", r.opts.servers, r.opts.subscribers, r.opts.writes)
	return b.String()
}
