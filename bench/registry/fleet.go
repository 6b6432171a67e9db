package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/rawhttp"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// fleet is the simulated server fleet: n servers that heartbeat through
// the discovery HTTP API, as their agents would.
type fleet struct {
	api string // host:port of the discovery API
	// conns are idle keep-alive connections to the API. The fleet speaks
	// minimal HTTP/1.1 (bench/internal/rawhttp) so that the simulated
	// agents, which run in the discovery benchmark's process, add little
	// to the CPU it measures.
	conns chan *rawhttp.Conn
	n     int
	// ids are the servers this fleet heartbeats, of 0..n-1.
	ids []int
	ttl string // the heartbeat's ttl field, whole seconds
	// load holds each server's reported base load (float64 bits). A
	// heartbeat reports it with jitter below LoadEpsilon, so it changes
	// nothing; a deliberate change moves it by much more.
	load []atomic.Uint64
	// beat is held across each heartbeat of a server and across a timed
	// change of it: a heartbeat still carrying the old load must not land
	// just after the change and write the old load back before the edge
	// has seen the new one (the edge would then wait for a load that a
	// jittered heartbeat never reports exactly).
	beat []sync.Mutex

	heartbeats, failures atomic.Int64
	lateMax              atomic.Int64 // worst lag behind schedule, ns
	late                 atomic.Int64 // heartbeats sent over 1s late
	errMu                sync.Mutex
	firstErr             string
}

const regions = 10

func newFleet(api string, n, conns int, ttl time.Duration, ids []int) *fleet {
	f := &fleet{
		api: api, n: n, ids: ids, load: make([]atomic.Uint64, n), beat: make([]sync.Mutex, n), ttl: strconv.FormatInt(int64(ttl/time.Second), 10),
		conns: make(chan *rawhttp.Conn, conns),
	}
	for range conns {
		f.conns <- &rawhttp.Conn{Addr: api, Timeout: 30 * time.Second}
	}
	for i := range f.load {
		f.load[i].Store(math.Float64bits(0.1 + 0.5*float64(i%97)/97))
	}
	return f
}

func serverID(i int) string     { return fmt.Sprintf("srv-%05d", i) }
func serverRegion(i int) string { return "region-" + strconv.Itoa(i%regions) }

func (f *fleet) baseLoad(i int) float64 { return math.Float64frombits(f.load[i].Load()) }

// server is server i's record reporting load.
func (f *fleet) server(i int, load float64) schema.Server {
	return schema.Server{ID: serverID(i), Region: serverRegion(i), URL: serverURL(i), Load: load}
}

func serverURL(i int) string {
	return fmt.Sprintf("http://10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
}

// put sends one heartbeat of server i reporting load, on one of the
// fleet's connections (waiting for one to be free, or ctx).
func (f *fleet) put(ctx context.Context, i int, load float64) error {
	body := fmt.Sprintf(`{"region":%q,"url":%q,"load":%s,"ttl":%s}`, serverRegion(i), serverURL(i), strconv.FormatFloat(load, 'f', 4, 64), f.ttl)
	req := rawhttp.Request(http.MethodPut, f.api, "/v1/servers/"+serverID(i), []string{"Content-Type: application/json"}, []byte(body))
	var c *rawhttp.Conn
	select {
	case c = <-f.conns:
	case <-ctx.Done():
		return ctx.Err()
	}
	status, err := c.Do(req)
	f.conns <- c
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("PUT %s: status %d", serverID(i), status)
	}
	return nil
}

// heartbeat renews every server once per interval, spread evenly over the
// interval, with conns requests in flight, until ctx is done. Each reports
// its base load with jitter of at most ±0.009, below the 0.02 that makes a
// heartbeat write. When the API falls behind, heartbeats go out late; the
// lag is recorded.
func (f *fleet) heartbeat(ctx context.Context, interval time.Duration, conns int) {
	due := make(chan int, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for i := range due {
				jitter := (rand.Float64()*2 - 1) * 0.009
				f.beat[i].Lock()
				err := f.put(ctx, i, max(f.baseLoad(i)+jitter, 0))
				f.beat[i].Unlock()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					f.failures.Add(1)
					f.errMu.Lock()
					if f.firstErr == "" {
						f.firstErr = err.Error()
					}
					f.errMu.Unlock()
					continue
				}
				f.heartbeats.Add(1)
			}
		})
	}
	start := time.Now()
	step := interval / time.Duration(len(f.ids))
	defer func() { close(due); wg.Wait() }()
	for k := 0; ; k++ {
		i := f.ids[k%len(f.ids)]
		at := start.Add(time.Duration(k) * step)
		if d := time.Until(at); d > time.Millisecond {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		select {
		case <-ctx.Done():
			return
		case due <- i:
		}
		lag := time.Since(at)
		if lag > time.Second {
			f.late.Add(1)
		}
		if lag > time.Duration(f.lateMax.Load()) {
			f.lateMax.Store(int64(lag))
		}
	}
}

// resetLag forgets the lag of the start-up, so that the steady phase
// reports its own.
func (f *fleet) resetLag() {
	f.late.Store(0)
	f.lateMax.Store(0)
}

func (f *fleet) firstError() string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.firstErr
}

// changedServer is the server whose load the k-th timed change of series
// moves: spread over the fleet, and the same in the parent and the fleet
// child.
func changedServer(k, series, n int) int { return (k*7919 + series*104729) % n }

// splitFleet divides servers 0..n-1 between the parent's fleet, which
// heartbeats the servers whose load the timed changes move (so that a
// change and the heartbeats of its server are ordered in one process), and
// the rest.
func splitFleet(n, changes int) (changed, rest []int) {
	in := make([]bool, n)
	for series := range 2 {
		for k := range changes {
			in[changedServer(k, series, n)] = true
		}
	}
	for i := range n {
		if in[i] {
			changed = append(changed, i)
		} else {
			rest = append(rest, i)
		}
	}
	return changed, rest
}
