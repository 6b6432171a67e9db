package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
	"github.com/sessionpin/sessionpin/bench/internal/rawhttp"
	"github.com/sessionpin/sessionpin/caddymodule/pin"
)

// memory is a Caddy process's memory at one point of a run.
type memory struct {
	clients int   // distinct clients (pins) the edge has seen
	rss     int64 // resident set size, from /proc
	heap    int64 // Go heap in use after a forced GC (HeapInuse)
	live    int64 // live Go objects after that GC (HeapAlloc)
}

// memoryOf reads c's RSS and, through its admin endpoint, its Go heap
// after a garbage collection (the heap profile handler runs one when asked
// with gc=1; /debug/vars then has the memstats).
func (c *caddyProc) memoryOf(ctx context.Context, clients int) (memory, error) {
	m := memory{clients: clients}
	get := func(path string, into any) error {
		resp, err := c.adminGet(ctx, path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if into == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
		return json.NewDecoder(resp.Body).Decode(into)
	}
	if err := get("/debug/pprof/heap?gc=1", nil); err != nil {
		return m, fmt.Errorf("caddy %s memory: %w", c.name, err)
	}
	var vars struct {
		Memstats struct{ HeapInuse, HeapAlloc int64 }
	}
	if err := get("/debug/vars", &vars); err != nil {
		return m, fmt.Errorf("caddy %s memory: %w", c.name, err)
	}
	m.heap, m.live = vars.Memstats.HeapInuse, vars.Memstats.HeapAlloc
	rss, _, err := benchenv.RSS(c.pid())
	if err != nil {
		return m, fmt.Errorf("caddy %s memory: %w", c.name, err)
	}
	m.rss = rss
	return m, nil
}

// fillEdge is one HS256 edge of the fill run.
type fillEdge struct {
	name       string
	tokenCache int // 0: the default
	caddy      *caddyProc
	steps      []memory
}

// runFill is the -fill mode: it sends n distinct clients' pins, each once,
// to HS256 edges with the default token_cache and with one that holds every
// client, and records each edge's memory every tenth of the way. It only
// measures memory: the load generator mints each pin as it sends it.
func runFill(ctx context.Context, o options) error {
	machine := benchenv.DescribeMachine()
	loadBefore := benchenv.LoadAverage()
	started := time.Now().UTC()
	su, err := newSetup(ctx, o, "fill")
	if err != nil {
		return err
	}
	defer su.close()
	dir, bin, back, etcd := su.dir, su.bin, su.back, su.etcd

	global := fmt.Sprintf("\tsession_pin {\n\t\tetcd %s\n\t\tprefix %s\n\t}\n", etcd.Member.Endpoint, registryPrefix)
	edges := []*fillEdge{{name: "default"}, {name: "all", tokenCache: o.fill}}
	for _, e := range edges {
		cache := ""
		if e.tokenCache > 0 {
			cache = fmt.Sprintf("\t\ttoken_cache %d\n", e.tokenCache)
		}
		handler := fmt.Sprintf("\tsession_pin {\n\t\tregion %s\n\t\tkey hs256 %s\n%s\t}\n\treverse_proxy {\n\t\tdynamic session_pin\n\t}\n", edgeRegion, benchSecret, cache)
		listen, err := benchenv.FreePort()
		if err != nil {
			return err
		}
		admin, err := benchenv.FreePort()
		if err != nil {
			return err
		}
		if e.caddy, err = startCaddy(bin, dir, "fill-"+e.name, listen, admin, caddyfile(listen, admin, global, handler), o.caddyProcs); err != nil {
			return err
		}
		defer e.caddy.stop()
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err = e.caddy.waitReady(rctx, filepath.Join(dir, "fill-"+e.name+".log"))
		cancel()
		if err != nil {
			return err
		}
	}
	m, err := newMinter(pin.KeyConfig{Algorithm: pin.AlgHS256, Secret: benchSecret}, len(back.addrs))
	if err != nil {
		return err
	}
	const steps = 10
	for _, e := range edges {
		mem, err := e.caddy.memoryOf(ctx, 0)
		if err != nil {
			return err
		}
		e.steps = append(e.steps, mem)
		for s := range steps {
			from, to := o.fill*s/steps, o.fill*(s+1)/steps
			if err := fillRange(ctx, e.caddy.addr, m, from, to, o.conns); err != nil {
				return fmt.Errorf("edge %s: %w", e.name, err)
			}
			mem, err := e.caddy.memoryOf(ctx, to)
			if err != nil {
				return err
			}
			e.steps = append(e.steps, mem)
			fmt.Fprintf(os.Stderr, "edge %-7s %8d clients: RSS %s, heap in use %s, live heap %s\n", e.name, to, benchenv.MiB(mem.rss), benchenv.MiB(mem.heap), benchenv.MiB(mem.live))
		}
	}
	rep := fillReport{
		machine: machine, started: started, loadBefore: loadBefore, loadAfter: benchenv.LoadAverage(),
		clients: o.fill, edges: edges, command: benchenv.CommandLine("go run ./bench/e2e", os.Args[1:]),
	}
	text := rep.markdown()
	fmt.Println(text)
	if o.out != "" {
		if err := benchenv.WriteSection(o.out, "e2e-memory", text); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", o.out)
	}
	return nil
}

// fillRange sends the pins of clients [from, to) once each over conns
// connections, minting them as it goes.
func fillRange(ctx context.Context, addr string, m *minter, from, to, conns int) error {
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for j := range conns {
		wg.Go(func() {
			c := &client{conn: rawhttp.Conn{Addr: addr}}
			defer c.close()
			for i := from + j; i < to && ctx.Err() == nil; i += conns {
				tok, err := m.pin(i)
				if err != nil {
					errs[j] = err
					return
				}
				c.reqs = [][]byte{newRequest(addr, []string{"X-Session-Pin: " + tok})}
				c.next = 0
				status, err := c.do()
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("client %d: status %d", i, status)
				}
				if err != nil {
					errs[j] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}
