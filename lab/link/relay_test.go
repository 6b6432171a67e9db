package link_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/lab/link"
	"github.com/sessionpin/sessionpin/lab/netns"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// needNamespaces fails under CI and skips elsewhere when this machine cannot
// make network namespaces.
func needNamespaces(t *testing.T) {
	t.Helper()
	if err := netns.Check(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the lab needs network namespaces: %v", err)
		}
		t.Skipf("no network namespaces here: %v", err)
	}
}

// A round trip between two regions takes the configured time; within a
// region it takes none; a cut stops new connections until healed.
func TestRelayDelayAndCut(t *testing.T) {
	needNamespaces(t)
	n := netns.NewNetwork(fmt.Sprintf("splt%d", os.Getpid()))
	t.Cleanup(func() {
		if err := n.Down(); err != nil {
			t.Error(err)
		}
	})
	a, b, a2 := topo.InfraHost("us-east"), topo.InfraHost("ap-south"), topo.EdgeHost("us-east")
	if err := n.Up([]topo.Host{a, b, a2}); err != nil {
		t.Fatal(err)
	}
	r, err := link.Start(func(addr string) (net.Listener, error) { return netns.Listen(n.Router(), addr) },
		netns.Dialer(n.Router()), []int{topo.PortApp}, topo.DefaultRTTs(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	// An echo server on b and on a2.
	for _, h := range []topo.Host{b, a2} {
		l, err := netns.Listen(n.NS(h), fmt.Sprintf("%s:%d", h.Addr, topo.PortApp))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					s := bufio.NewScanner(c)
					for s.Scan() {
						fmt.Fprintln(c, s.Text())
					}
				}()
			}
		}()
	}
	rtt := func(to topo.Host) time.Duration {
		t.Helper()
		c, err := netns.Dialer(n.NS(a))(t.Context(), "tcp", fmt.Sprintf("%s:%d", to.Addr, topo.PortApp))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := bufio.NewScanner(c)
		best := time.Hour
		for i := range 3 {
			start := time.Now()
			fmt.Fprintf(c, "ping %d\n", i)
			if !s.Scan() {
				t.Fatal("no echo")
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	if got := rtt(b); got < 200*time.Millisecond || got > 400*time.Millisecond {
		t.Errorf("us-east to ap-south round trip %v, want about 200ms", got)
	}
	if got := rtt(a2); got > 50*time.Millisecond {
		t.Errorf("round trip within us-east %v, want about 0", got)
	}
	if err := n.Cut("x", topo.RegionPrefix("us-east"), topo.RegionPrefix("ap-south")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextTimeout(t, 1500*time.Millisecond)
	defer cancel()
	if c, err := netns.Dialer(n.NS(a))(ctx, "tcp", fmt.Sprintf("%s:%d", b.Addr, topo.PortApp)); err == nil {
		c.Close()
		t.Fatal("connected across a cut")
	}
	if err := n.Heal("x"); err != nil {
		t.Fatal(err)
	}
	if got := rtt(b); got < 200*time.Millisecond {
		t.Errorf("after heal round trip %v", got)
	}
}
