// Package link is the distance between the lab's regions: a relay in the
// router namespace that accepts every connection between regions and
// carries its bytes with a one-way delay and jitter.
package link

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/lab/topo"
)

// Relay carries connections between regions with delay.
type Relay struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	rtts   topo.RTTs
	jitter time.Duration

	listeners []net.Listener
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// Listen is how the relay opens its listeners (in the router namespace).
type Listen func(addr string) (net.Listener, error)

// Start listens on every port on all of the router's addresses (the
// router delivers every lab address to itself) and relays each accepted
// connection to the address it was sent to.
func Start(listen Listen, dial func(ctx context.Context, network, addr string) (net.Conn, error), ports []int, rtts topo.RTTs, jitter time.Duration) (*Relay, error) {
	r := &Relay{dial: dial, rtts: rtts, jitter: jitter, conns: map[net.Conn]struct{}{}}
	for _, p := range ports {
		l, err := listen(":" + strconv.Itoa(p))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("relay listen on port %d: %w", p, err)
		}
		r.listeners = append(r.listeners, l)
		r.wg.Add(1)
		go r.serve(l)
	}
	return r, nil
}

// SetRTTs changes the round trips for the bytes read from now on.
func (r *Relay) SetRTTs(rtts topo.RTTs) {
	r.mu.Lock()
	r.rtts = rtts
	r.mu.Unlock()
}

// oneWay returns the delay from src to dst, with jitter drawn once.
func (r *Relay) oneWay(src, dst string) time.Duration {
	r.mu.Lock()
	d := r.rtts.Get(src, dst) / 2
	j := r.jitter
	r.mu.Unlock()
	if j > 0 && d > 0 {
		d += time.Duration(rand.Int64N(int64(2*j+1))) - j
	}
	return max(d, 0)
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *Relay) serve(l net.Listener) {
	defer r.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if !r.track(c) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			r.relay(c)
		}()
	}
}

func addrOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (r *Relay) relay(c net.Conn) {
	defer c.Close()
	src, dst := addrOf(c.RemoteAddr()), addrOf(c.LocalAddr())
	srcRegion, dstRegion := topo.RegionOf(src.Addr().Unmap()), topo.RegionOf(dst.Addr().Unmap())
	if srcRegion == "" || dstRegion == "" {
		return
	}
	// A connection across the distance costs a round trip before the
	// first byte can go.
	time.Sleep(2 * r.oneWay(srcRegion, dstRegion))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := r.dial(ctx, "tcp", netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()).String())
	cancel()
	if err != nil {
		// Refused or unreachable at the far end: reset the client's
		// connection rather than closing it cleanly.
		if t, ok := c.(*net.TCPConn); ok {
			_ = t.SetLinger(0)
		}
		return
	}
	if !r.track(up) {
		up.Close()
		return
	}
	defer r.untrack(up)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { r.pipe(up, c, srcRegion, dstRegion); done <- struct{}{} }()
	go func() { r.pipe(c, up, dstRegion, srcRegion); done <- struct{}{} }()
	<-done
	<-done
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies from src to dst, each chunk released a one-way delay after
// it was read, in order.
func (r *Relay) pipe(dst, src net.Conn, from, to string) {
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now().Add(r.oneWay(from, to))
				if at.Before(last) {
					at = last // jitter never reorders bytes
				}
				last = at
				q <- chunk{b: buf[:n], at: at}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		if d := time.Until(ch.at); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(ch.b); err != nil {
			src.Close()
			for range q {
			}
			return
		}
	}
	if t, ok := dst.(*net.TCPConn); ok {
		_ = t.CloseWrite()
	} else {
		dst.Close()
	}
}

// Close stops the listeners and every relayed connection.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	var errs []error
	for _, l := range r.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return errors.Join(errs...)
}
