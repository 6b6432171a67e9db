package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// The edge runs in a child process of its own so that its CPU and memory
// are measured apart from etcd, the discovery API and the heartbeating
// fleet. It holds what a Caddy edge holds: one etcd client, one Watcher
// whose Attach hook precomputes per-server routing data, and a pin Keyring
// with its default verified-token cache. The parent drives it with line
// commands on stdin; it answers on stdout:
//
//	expect <id> <load>  -> "ok", later "seen <id> <unix-ns>" when a snapshot
//	                       first shows server id with that load
//	pins <n>            -> "pins <n> <ms>" after verifying n distinct
//	                       HS256 pins and resolving their servers
//	mem                 -> "mem <json memStats>" after a forced GC
//	status              -> "status <servers> <snapshot updates>"

// pinSecret is the HS256 secret of the edge's keyring.
const pinSecret = "bench-secret-0123456789abcdefghijklmnop"

// edgeAttachment mirrors what caddymodule's Attach hook derives from a
// server (its dial address and its /closestToMe answer), so the snapshot
// costs what it costs at a real edge.
type edgeAttachment struct {
	dial    string
	closest []byte
}

func attach(srv schema.Server) any {
	dial, err := schema.DialAddress(srv.URL)
	if err != nil {
		return nil
	}
	closest, _ := json.Marshal(struct {
		ID     string  `json:"closestServerId"`
		Region string  `json:"region"`
		URL    string  `json:"url"`
		Load   float64 `json:"load"`
	}{srv.ID, srv.Region, srv.URL, srv.Load})
	return &edgeAttachment{dial: dial, closest: closest}
}

// memStats is the edge's memory as reported by "mem".
type memStats struct {
	HeapInuse uint64 `json:"heap_inuse"`
	HeapAlloc uint64 `json:"heap_alloc"`
	Sys       uint64 `json:"sys"`
}

// runEdge is the child-process mode.
func runEdge(endpoint, prefix string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Printf(format+"\n", args...)
		out.Unlock()
	}
	var (
		mu      sync.Mutex
		expect  = map[string]float64{}
		updates atomic.Int64
	)
	w := watch.NewWatcher(watch.WatcherConfig{
		Client: cli,
		Prefix: prefix,
		Attach: attach,
		OnUpdate: func(s *watch.Snapshot) {
			now := time.Now().UnixNano()
			updates.Add(1)
			mu.Lock()
			defer mu.Unlock()
			for id, load := range expect {
				if e := s.Server(id); e != nil && math.Abs(e.Load-load) < 1e-9 {
					delete(expect, id)
					say("seen %s %d", id, now)
				}
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	<-w.Synced()
	say("ready")

	verifier, err := pin.NewKeyring(pin.KeyConfig{Algorithm: pin.AlgHS256, Secret: pinSecret}, nil, "", "")
	if err != nil {
		return err
	}
	issuer, err := pin.NewKeyring(pin.KeyConfig{Algorithm: pin.AlgHS256, Secret: pinSecret}, nil, "", "", pin.WithCache(0))
	if err != nil {
		return err
	}
	var pinned atomic.Int64 // clients issued so far; each gets a distinct pin
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "expect":
			load, _ := strconv.ParseFloat(f[2], 64)
			mu.Lock()
			if e := w.Snapshot().Server(f[1]); e != nil && math.Abs(e.Load-load) < 1e-9 {
				say("seen %s %d", f[1], time.Now().UnixNano())
			} else {
				expect[f[1]] = load
			}
			mu.Unlock()
			say("ok")
		case "pins":
			n, _ := strconv.Atoi(f[1])
			start := time.Now()
			if err := verifyPins(w, issuer, verifier, &pinned, n); err != nil {
				return err
			}
			say("pins %d %d", n, time.Since(start).Milliseconds())
		case "mem":
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b, _ := json.Marshal(memStats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Sys: ms.Sys})
			say("mem %s", b)
		case "status":
			say("status %d %d", w.Snapshot().Len(), updates.Load())
		default:
			return fmt.Errorf("edge: unknown command %q", f[0])
		}
	}
	return in.Err()
}

// verifyPins issues n new distinct pins (each for a client never seen
// before, to a server of the snapshot) and passes each through the edge's
// request path: verify (with the cache), then resolve the pinned server in
// the snapshot. The pins are dropped after use, as a client's pin is once
// its request is done.
func verifyPins(w *watch.Watcher, issuer, verifier *pin.Keyring, pinned *atomic.Int64, n int) error {
	servers := w.Snapshot().Servers()
	if len(servers) == 0 {
		return fmt.Errorf("edge: no servers to pin to")
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	per := (n + workers - 1) / workers
	for k := range workers {
		count := min(per, n-k*per)
		if count <= 0 {
			break
		}
		wg.Go(func() {
			now := time.Now()
			for range count {
				c := pinned.Add(1)
				srv := servers[int(c)%len(servers)]
				// iat differs per client: distinct tokens even within a second.
				tok, err := issuer.Issue(srv.ID, srv.Region, now.Add(time.Duration(c)*time.Second), 24*time.Hour)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				p, err := verifier.Verify(tok)
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("pin %d for %s: %w", c, srv.ID, err))
					return
				}
				if w.Snapshot().Server(p.Server) == nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("pin %d: server %s is no longer in the snapshot", c, srv.ID))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

// edgeProc is the parent's handle on the edge child.
type edgeProc struct {
	*child
	mu   sync.Mutex
	seen map[string]chan int64
}

func startEdge(endpoint, prefix string) (*edgeProc, error) {
	e := &edgeProc{seen: map[string]chan int64{}}
	c, err := startChild("edge", []string{"-edge", "-etcd", endpoint, "-prefix", prefix}, e.notice)
	if err != nil {
		return nil, err
	}
	e.child = c
	return e, nil
}

// notice takes the "seen" lines, which arrive whenever the edge's
// snapshot shows what it was told to expect, between replies.
func (e *edgeProc) notice(line string) bool {
	rest, ok := strings.CutPrefix(line, "seen ")
	if !ok {
		return false
	}
	id, ns, _ := strings.Cut(rest, " ")
	t, _ := strconv.ParseInt(ns, 10, 64)
	e.mu.Lock()
	ch := e.seen[id]
	delete(e.seen, id)
	e.mu.Unlock()
	if ch != nil {
		ch <- t
	}
	return true
}

// expect arms a one-shot notice of the moment the edge's snapshot first
// shows server id with load; the channel receives that time (unix ns).
func (e *edgeProc) expect(id string, load float64) (<-chan int64, error) {
	ch := make(chan int64, 1)
	e.mu.Lock()
	e.seen[id] = ch
	e.mu.Unlock()
	r, err := e.command(10*time.Second, "expect %s %s", id, strconv.FormatFloat(load, 'g', -1, 64))
	if err != nil || r != "ok" {
		return nil, fmt.Errorf("edge: expect: %q %v", r, err)
	}
	return ch, nil
}

func (e *edgeProc) status() (servers, updates int64, err error) {
	r, err := e.command(10*time.Second, "status")
	if err != nil {
		return 0, 0, err
	}
	if _, err := fmt.Sscanf(r, "status %d %d", &servers, &updates); err != nil {
		return 0, 0, fmt.Errorf("edge: status %q: %w", r, err)
	}
	return servers, updates, nil
}

func (e *edgeProc) mem() (memStats, error) {
	var m memStats
	r, err := e.command(30*time.Second, "mem")
	if err != nil {
		return m, err
	}
	rest, ok := strings.CutPrefix(r, "mem ")
	if !ok {
		return m, fmt.Errorf("edge: mem %q", r)
	}
	return m, json.Unmarshal([]byte(rest), &m)
}

func (e *edgeProc) pins(n int) (time.Duration, error) {
	r, err := e.command(10*time.Minute, "pins %d", n)
	if err != nil {
		return 0, err
	}
	var got, ms int64
	if _, err := fmt.Sscanf(r, "pins %d %d", &got, &ms); err != nil {
		return 0, fmt.Errorf("edge: pins %q: %w", r, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
