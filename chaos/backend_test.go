package chaos

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// backendTokenKey is the demo apps' own token key (not the pin key); every
// server shares it, as the demo does.
const backendTokenKey = "chaos-demo-backend-token-key-0123456789"

// backend is one demo server (bin/demo-backend, the unchanged app with
// server-local workflow state replicated after a delay) that can crash and
// restart on the same address, with an empty memory each time.
type backend struct {
	ID, Region string
	Addr       string // 127.0.0.1:port, fixed for the backend's life
	URL        string
	Peers      []string
	Delay      time.Duration // replication delay of its workflow state

	proc *proc
	// cut, when set, stands between the edges and the backend: the
	// registry has its address, so the test can cut the edges off while
	// the agent (which probes the backend directly) keeps heartbeating.
	cut *etcdtest.CutProxy
}

// public is the URL the backend registers: its cut proxy's when it has one.
func (b *backend) public() string {
	if b.cut != nil {
		return "http://" + b.cut.Addr()
	}
	return b.URL
}

// start runs a new process of the backend and waits until it answers.
func (b *backend) start(t testing.TB) {
	t.Helper()
	b.proc = b.spawn(t)
	poll.Until(t, 20*time.Second, b.ID+" to answer", func() error {
		if !b.proc.running() {
			// The port of a killed process can take a moment to be free.
			if contains([]byte(b.proc.output()), "address already in use") {
				b.proc = b.spawn(t)
				return fmt.Errorf("port busy")
			}
			t.Fatalf("%s exited:\n%s", b.ID, b.proc.tail(20))
		}
		resp, err := http.Get(b.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func (b *backend) spawn(t testing.TB) *proc {
	return startProc(t, "backend-"+b.ID, "demo-backend",
		[]string{"DEMO_BACKEND_TOKEN_KEY=" + backendTokenKey},
		"--id", b.ID, "--region", b.Region, "--listen", b.Addr,
		"--peers", joinComma(b.Peers), "--replication-delay", b.Delay.String(),
		"--access-ttl", "1h")
}

// kill crashes the backend: the process dies at once, in-flight requests
// fail, and its memory is gone.
func (b *backend) kill() {
	if b.proc != nil {
		b.proc.kill()
	}
}

// newBackends lays out servers on free ports; each replicates its workflow
// state to the other servers of its region, as a regional database replica
// would (and at a fraction of the cost of replicating to every server).
func newBackends(t testing.TB, layout [][2]string, delay time.Duration) []*backend {
	t.Helper()
	bs := make([]*backend, len(layout))
	for i, l := range layout {
		addr := freeAddr(t)
		bs[i] = &backend{ID: l[0], Region: l[1], Addr: addr, URL: "http://" + addr, Delay: delay}
	}
	for _, b := range bs {
		for _, o := range bs {
			if o != b && o.Region == b.Region {
				b.Peers = append(b.Peers, o.URL)
			}
		}
	}
	return bs
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	return etcdtest.FreePort(t)
}
