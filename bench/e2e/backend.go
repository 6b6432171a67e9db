package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// backendBody is what every backend answers: small, so that the benchmark
// measures the proxy rather than the copying of bodies.
var backendBody = []byte("hello from the bench backend\n")

// serveBackends is the child-process mode: n fast HTTP servers on free
// loopback ports. It prints "listening addr,addr,..." and serves until
// killed.
func serveBackends(n int) error {
	var addrs []string
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("backend %d: %w", i, err)
		}
		addrs = append(addrs, l.Addr().String())
		srv := &http.Server{Handler: http.HandlerFunc(serveBackend), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
	}
	fmt.Println("listening " + strings.Join(addrs, ","))
	select {}
}

func serveBackend(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = []string{strconv.Itoa(len(backendBody))}
	w.Write(backendBody)
}

// backends is the running child process.
type backends struct {
	cmd   *exec.Cmd
	addrs []string
}

// startBackends runs this program again in backend mode with GOMAXPROCS
// procs, so that the backend's CPU share is fixed and measurable apart
// from the load generator's.
func startBackends(n, procs int) (*backends, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	cmd := exec.Command(self, "-serve-backends", strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("backends: start: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("backends: no listening line (got %q): %v", line, err)
	}
	b := &backends{cmd: cmd, addrs: strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "listening ")), ",")}
	return b, nil
}

func (b *backends) pid() int { return b.cmd.Process.Pid }

func (b *backends) stop() {
	b.cmd.Process.Kill()
	b.cmd.Wait()
}
