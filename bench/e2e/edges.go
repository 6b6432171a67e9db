package main

// The edges a run compares: the backends registered as servers, the
// sessionpin Caddies (this binary and any -compare one) and the plain
// reverse_proxy controls beside them.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// registerBackends registers the backends as servers of edgeRegion through
// discoverysvc's Registry, as their agents would, and renews them until the
// returned stop is called.
func registerBackends(ctx context.Context, etcd *benchenv.Etcd, addrs []string) (stop func(), err error) {
	reg := discoverysvc.NewRegistry(etcd.Client, registryPrefix)
	beat := func() error {
		for i, a := range addrs {
			srv := schema.Server{ID: fmt.Sprintf("b%d", i+1), Region: edgeRegion, URL: "http://" + a, Load: 0.1}
			if _, err := reg.Heartbeat(ctx, srv, 30*time.Second); err != nil {
				return err
			}
		}
		return nil
	}
	if err := beat(); err != nil {
		return nil, fmt.Errorf("registering backends: %w", err)
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				if err := beat(); err != nil && hctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "e2e: heartbeat:", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// startCaddies starts one Caddy per distinct Caddy configuration and
// returns the configurations under test (the placement run shares the
// HS256 edge).
func startCaddies(ctx context.Context, bin, dir, etcdEndpoint, keyPath string, backs []string, o options) ([]*config, error) {
	want := map[string]bool{"plain": true}
	if o.only == "" {
		for _, k := range []string{"plainhdr", "cookie", "hs256", "eddsa", "hs256many", "eddsamany", "place"} {
			want[k] = true
		}
	}
	for k := range strings.SplitSeq(o.only, ",") {
		if k = strings.TrimSpace(k); k != "" {
			want[k] = true
		}
	}
	global := fmt.Sprintf("\tsession_pin {\n\t\tetcd %s\n\t\tprefix %s\n\t}\n", etcdEndpoint, registryPrefix)
	edge := func(key string) string {
		return fmt.Sprintf("\tsession_pin {\n\t\tregion %s\n\t\tkey %s\n\t}\n\treverse_proxy {\n\t\tdynamic session_pin\n\t}\n", edgeRegion, key)
	}
	type spec struct{ name, bin, global, handler string }
	specs := []spec{
		{"plain", bin, "", "\treverse_proxy " + backs[0] + "\n"},
		{"cookie", bin, "", "\treverse_proxy " + strings.Join(backs, " ") + " {\n\t\tlb_policy cookie\n\t}\n"},
	}
	// The edges of -compare binaries run the same Caddyfiles, suffixed
	// with the comparison's name.
	edges := append([]comparison{{}}, o.compare...)
	for _, e := range edges {
		b := bin
		if e.bin != "" {
			b = e.bin
		}
		if want["hs256"] || want["hs256many"] || want["place"] && e.name == "" {
			specs = append(specs, spec{"hs256" + e.suffix(), b, global, edge("hs256 " + benchSecret)})
		}
		if want["eddsa"] || want["eddsamany"] {
			specs = append(specs, spec{"eddsa" + e.suffix(), b, global, edge("ed25519 " + keyPath)})
		}
	}
	procs := map[string]*caddyProc{}
	stopAll := func() {
		for _, p := range procs {
			p.stop()
		}
	}
	for _, s := range specs {
		if s.name == "cookie" && !want["cookie"] {
			continue
		}
		listen, err := benchenv.FreePort()
		if err != nil {
			stopAll()
			return nil, err
		}
		admin, err := benchenv.FreePort()
		if err != nil {
			stopAll()
			return nil, err
		}
		p, err := startCaddy(s.bin, dir, s.name, listen, admin, caddyfile(listen, admin, s.global, s.handler), o.caddyProcs)
		if err != nil {
			stopAll()
			return nil, err
		}
		procs[s.name] = p
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for name, p := range procs {
		if err := p.waitReady(rctx, filepath.Join(dir, name+".log")); err != nil {
			stopAll()
			return nil, err
		}
	}
	hs256, err := newMinter(pin.KeyConfig{Algorithm: pin.AlgHS256, Secret: benchSecret}, len(backs))
	if err != nil {
		stopAll()
		return nil, err
	}
	eddsa, err := newMinter(pin.KeyConfig{Algorithm: pin.AlgEd25519, File: keyPath}, len(backs))
	if err != nil {
		stopAll()
		return nil, err
	}
	perConn := func(h func(int) ([]string, error)) func() ([][]string, error) {
		return func() ([][]string, error) {
			out := make([][]string, o.conns)
			for i := range out {
				var err error
				if out[i], err = h(i); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	none := perConn(func(int) ([]string, error) { return nil, nil })
	var configs []*config
	add := func(key, name, proc string, pinned int, headers func() ([][]string, error)) {
		if want[key] {
			configs = append(configs, &config{key: key, name: name, caddy: procs[proc], pinned: pinned, headers: headers})
		}
	}
	add("plain", "reverse_proxy, 1 upstream", "plain", 0, none)
	add("plainhdr", "reverse_proxy, 1 upstream, pin-sized header", "plain", 0, perConn(dummyPin))
	add("cookie", "lb_policy cookie, 4 upstreams", "cookie", 0, perConn(lbCookie(procs["cookie"])))
	for _, e := range edges {
		pinned := func(key, alg, proc string, m *minter, n int) {
			if want[key] {
				name := fmt.Sprintf("session_pin pinned, %s, %s clients", alg, count(n))
				if e.name != "" {
					name += " [" + e.name + "]"
				}
				configs = append(configs, &config{key: key + e.suffix(), name: name, caddy: procs[proc+e.suffix()], pinned: n, many: n > o.clients, headers: func() ([][]string, error) { return m.headers(n) }})
			}
		}
		pinned("hs256", "HS256", "hs256", hs256, o.clients)
		pinned("eddsa", "EdDSA", "eddsa", eddsa, o.clients)
		pinned("hs256many", "HS256", "hs256", hs256, o.many)
		pinned("eddsamany", "EdDSA", "eddsa", eddsa, o.many)
	}
	add("place", "session_pin placement (no pin), HS256", "hs256", 0, none)
	return configs, nil
}

// comparison is a -compare flag: another Caddy binary whose session_pin
// edges run beside this one's in the same interleaved rounds.

// forwards: the control that separates the cost of carrying a pin (parsing
// it, forwarding it to the backend) from the cost of acting on it.
func dummyPin(i int) ([]string, error) {
	return []string{"X-Session-Pin: " + strings.Repeat("x", 180) + fmt.Sprintf("%04d", i)}, nil
}

// lbCookie gives each connection the sticky cookie of its own first
// request, so that Caddy's cookie policy routes on it instead of choosing
// and setting a cookie on every request.
func lbCookie(p *caddyProc) func(int) ([]string, error) {
	return func(int) ([]string, error) {
		resp, err := http.Get(p.url + "/")
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "lb" {
				return []string{"Cookie: lb=" + ck.Value}, nil
			}
		}
		return nil, fmt.Errorf("first request: status %d, no lb cookie", resp.StatusCode)
	}
}

// startGCControl starts plain Caddy with GOGC set so that its heap target
// (live heap × (1 + GOGC/100)) is the HS256 edge's under the default GOGC,
// warms it up and returns its configuration; nil when the run has no plain
// or no HS256 edge.
func startGCControl(ctx context.Context, configs []*config, bin, dir, backend string, o options) (*config, error) {
	var plain, edge *caddyProc
	for _, c := range configs {
		switch c.key {
		case "plain":
			plain = c.caddy
		case "hs256", "hs256many":
			edge = c.caddy
		}
	}
	if plain == nil || edge == nil {
		return nil, nil
	}
	pm, err := plain.memoryOf(ctx, 0)
	if err != nil {
		return nil, err
	}
	em, err := edge.memoryOf(ctx, 0)
	if err != nil {
		return nil, err
	}
	gogc := max(100, int(100*(2*float64(em.live)/float64(pm.live)-1)))
	listen, err := benchenv.FreePort()
	if err != nil {
		return nil, err
	}
	admin, err := benchenv.FreePort()
	if err != nil {
		return nil, err
	}
	p, err := startCaddy(bin, dir, "plaingc", listen, admin, caddyfile(listen, admin, "", "\treverse_proxy "+backend+"\n"), o.caddyProcs, "GOGC="+strconv.Itoa(gogc))
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := p.waitReady(rctx, filepath.Join(dir, "plaingc.log")); err != nil {
		p.stop()
		return nil, err
	}
	reqs := make([][][]byte, o.conns)
	for i := range reqs {
		reqs[i] = [][]byte{newRequest(p.addr, nil)}
	}
	c := &config{key: "plaingc", name: fmt.Sprintf("reverse_proxy, 1 upstream, GOGC=%d (the HS256 edge's GC target)", gogc), caddy: p, clients: newClients(p.addr, reqs)}
	if o.warmup > 0 {
		runLoad(ctx, c.clients, o.warmup)
	}
	return c, nil
}
