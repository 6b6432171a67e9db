package etcdtest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// CutProxy forwards TCP to target until Cut, which drops every connection
// and closes new ones as soon as they are accepted, or Refuse, which also
// stops listening so that dialling it is refused; Heal lets connections
// through again. It makes a server unreachable for whoever dials the proxy
// while the server itself runs on.
type CutProxy struct {
	t      testing.TB
	addr   string
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	l      net.Listener // nil while refusing
	cut    bool
	closed bool
	conns  map[net.Conn]struct{}
}

// StartCutProxy listens on a free loopback port and forwards to target
// until the test ends.
func StartCutProxy(t testing.TB, target string) *CutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CutProxy{t: t, addr: l.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.accept(l)
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.Refuse()
		p.wg.Wait()
	})
	return p
}

// Addr is the address to dial instead of target.
func (p *CutProxy) Addr() string { return p.addr }

// accept serves l until it is closed. Callers hold no lock.
func (p *CutProxy) accept(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
}

func (p *CutProxy) serve(in net.Conn) {
	if !p.track(in) {
		in.Close()
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(out) {
		in.Close()
		if out != nil {
			out.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
	in.Close()
	out.Close()
	<-done
}

// track registers c, or reports false while the proxy is cut.
func (p *CutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// Cut drops every connection and closes new ones as soon as they are
// accepted.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Refuse drops every connection and stops listening: dialling the proxy
// fails with connection refused, as it does for a host that stopped
// listening or a firewall that rejects.
func (p *CutProxy) Refuse() {
	p.Cut()
	p.mu.Lock()
	l := p.l
	p.l = nil
	p.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

// Heal lets connections through again, listening again on the same
// address after Refuse.
func (p *CutProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	relisten := p.l == nil && !p.closed
	p.mu.Unlock()
	if !relisten {
		return
	}
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("cut proxy: listen again on %s: %v", p.addr, err)
	}
	p.accept(l)
}
