package caddymodule

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// dialGuard refuses registry entries that point the edge at itself: its
// Caddy admin endpoint (a client steered there could read the config, pin
// key included, through the edge) or its etcd endpoints. Whoever wrote the
// entry, it is dropped from the snapshot like a malformed value. Host names
// are compared as written and as they resolved when the guard was built;
// an entry's own DNS name is not resolved, since the edge never makes a
// lookup per registry event.
type dialGuard struct {
	rules []dialRule
}

// dialRule is one address the edge must not dial.
type dialRule struct {
	what  string // "admin endpoint localhost:2019", for the log
	port  string
	names map[string]bool     // lower-case host names, without a trailing dot
	ips   map[netip.Addr]bool // addresses, unmapped
	// local: the listener is on loopback or on every interface, so any
	// loopback address or name of this host reaches it.
	local bool
}

// newDialGuard builds the guard for the admin addresses and etcd
// endpoints given. Addresses it cannot parse guard nothing: they are not
// dialled by the edge either.
func newDialGuard(admin, etcd []string) *dialGuard {
	g := &dialGuard{}
	for _, a := range admin {
		if host, port, ok := adminHostPort(a); ok {
			g.add("admin endpoint "+a, host, port)
		}
	}
	for _, ep := range etcd {
		if host, port, ok := endpointHostPort(ep); ok {
			g.add("etcd endpoint "+ep, host, port)
		}
	}
	return g
}

func (g *dialGuard) add(what, host, port string) {
	r := dialRule{what: what, port: port, names: map[string]bool{}, ips: map[netip.Addr]bool{}}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		r.ips[addr] = true
		r.local = addr.IsLoopback() || addr.IsUnspecified()
	} else if host == "" {
		r.local = true
	} else {
		r.names[host] = true
		r.local = schema.IsLoopbackHost(host)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addrs, _ := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		for _, a := range addrs {
			a = a.Unmap()
			r.ips[a] = true
			r.local = r.local || a.IsLoopback()
		}
	}
	if r.local {
		for _, a := range localAddrs() {
			r.ips[a] = true
		}
		if h, err := os.Hostname(); err == nil {
			r.names[strings.ToLower(h)] = true
		}
	}
	g.rules = append(g.rules, r)
}

// check returns why the edge must not dial srv, or nil.
func (g *dialGuard) check(srv schema.Server) error {
	if g == nil || len(g.rules) == 0 {
		return nil
	}
	u, err := url.Parse(srv.URL)
	if err != nil {
		return err
	}
	addr, err := schema.DialAddress(srv.URL)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	ip, ipErr := netip.ParseAddr(host)
	if ipErr == nil {
		ip = ip.Unmap()
	}
	for _, r := range g.rules {
		if r.port != port {
			continue
		}
		hit := r.names[host] || (ipErr == nil && r.ips[ip]) ||
			(r.local && schema.IsLoopbackHost(host))
		if hit {
			return fmt.Errorf("url %s names this edge's %s", srv.URL, r.what)
		}
	}
	return nil
}

// localAddrs are the addresses of this host's interfaces.
func localAddrs() []netip.Addr {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(ifAddrs))
	for _, a := range ifAddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// adminHostPort splits a Caddy admin listen address ("localhost:2019",
// "tcp/:2019"); a Unix socket has no host and port to guard.
func adminHostPort(a string) (host, port string, ok bool) {
	na, err := caddy.ParseNetworkAddress(a)
	if err != nil || na.IsUnixNetwork() || na.PortRangeSize() != 1 {
		return "", "", false
	}
	return na.Host, fmt.Sprint(na.StartPort), true
}

// endpointHostPort splits an etcd endpoint: host:port or a URL.
func endpointHostPort(ep string) (host, port string, ok bool) {
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme == "unix" || u.Scheme == "unixs" {
			return "", "", false
		}
		ep = u.Host
	}
	host, port, err := net.SplitHostPort(ep)
	return host, port, err == nil
}

// adminAddresses returns the admin listen addresses of the config being
// provisioned. Caddy keeps the config in an unexported field of the
// context, and the edge must know its own admin address without the
// operator typing it twice; TestEdgeNeverDialsItself fails if a Caddy
// upgrade moves it. An unknown layout falls back to Caddy's default.
func adminAddresses(ctx caddy.Context) []string {
	cfg := reflect.ValueOf(ctx).FieldByName("cfg")
	if !cfg.IsValid() || cfg.Kind() != reflect.Pointer || cfg.IsNil() {
		return []string{caddy.DefaultAdminListen}
	}
	admin := cfg.Elem().FieldByName("Admin")
	if !admin.IsValid() || admin.Kind() != reflect.Pointer || admin.IsNil() {
		return []string{caddy.DefaultAdminListen}
	}
	if d := admin.Elem().FieldByName("Disabled"); d.IsValid() && d.Kind() == reflect.Bool && d.Bool() {
		return nil
	}
	var out []string
	listen := admin.Elem().FieldByName("Listen")
	if listen.IsValid() && listen.Kind() == reflect.String && listen.String() != "" {
		out = append(out, listen.String())
	} else {
		out = append(out, caddy.DefaultAdminListen)
	}
	if remote := admin.Elem().FieldByName("Remote"); remote.IsValid() && remote.Kind() == reflect.Pointer && !remote.IsNil() {
		if l := remote.Elem().FieldByName("Listen"); l.IsValid() && l.Kind() == reflect.String && l.String() != "" {
			out = append(out, l.String())
		} else {
			out = append(out, caddy.DefaultRemoteAdminListen)
		}
	}
	return out
}
