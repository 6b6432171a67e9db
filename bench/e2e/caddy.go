package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

// buildCaddy builds ./cmd/caddy of the module at root into dir, as
// `make build` does, and returns the binary's path.
func buildCaddy(root, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building caddy: %w", err)
	}
	return bin, nil
}

// moduleRoot is the directory of the go.mod of the current module.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the sessionpin module (run from the repository)")
	}
	return filepath.Dir(gomod), nil
}

// writeEd25519Key writes a fresh Ed25519 private key as PKCS#8 PEM.
func writeEd25519Key(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// benchSecret is the HS256 secret of the HS256 edge.
const benchSecret = "bench-secret-0123456789abcdefghijklmnop"

// edgeRegion is the region of the edges and of every registered backend.
const edgeRegion = "bench"

// registryPrefix is the etcd prefix the session_pin edges watch.
const registryPrefix = "/sessionpin-bench/"

// caddyfile returns the Caddyfile of one Caddy under test. handler is the
// site's body. Every Caddy listens on loopback only, with its admin
// endpoint on a free port and no config persisted.
func caddyfile(listen, admin, global, handler string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
%s}

:%s {
	bind 127.0.0.1
%s}
`, admin, global, portOf(listen), handler)
}

func portOf(hostport string) string {
	return hostport[strings.LastIndexByte(hostport, ':')+1:]
}

// caddyProc is one running Caddy.
type caddyProc struct {
	name  string
	url   string // http://127.0.0.1:port
	addr  string
	admin string // host:port of the admin endpoint (serves /debug/pprof)
	cmd   *exec.Cmd
	// exited is closed when the process has ended.
	exited chan struct{}
}

// startCaddy writes the Caddyfile into dir and runs bin on it with
// GOMAXPROCS procs and the extra environment env; XDG directories point
// into dir so that nothing outside it is written.
func startCaddy(bin, dir, name, listen, admin, config string, procs int, env ...string) (*caddyProc, error) {
	cfgPath := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"GOMAXPROCS="+strconv.Itoa(procs),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"),
		"HOME="+dir,
	)
	cmd.Env = append(cmd.Env, env...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("caddy %s: start: %w", name, err)
	}
	c := &caddyProc{name: name, url: "http://" + listen, addr: listen, admin: admin, cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// waitReady polls the Caddy until a plain GET answers 200: for a
// session_pin edge that means its watch has listed the registry.
func (c *caddyProc) waitReady(ctx context.Context, logPath string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for ctx.Err() == nil {
		select {
		case <-c.exited:
			return c.notReady("exited", logPath)
		default:
		}
		resp, err := client.Get(c.url + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c.notReady(last, logPath)
}

// notReady is the error of a Caddy that did not come up, with the end of
// its log.
func (c *caddyProc) notReady(last, logPath string) error {
	log, _ := os.ReadFile(logPath)
	if len(log) > 4000 {
		log = log[len(log)-4000:]
	}
	return fmt.Errorf("caddy %s not ready (last: %s); log:\n%s", c.name, last, log)
}

func (c *caddyProc) pid() int { return c.cmd.Process.Pid }

func (c *caddyProc) cpu() time.Duration {
	d, _ := benchenv.ProcessCPU(c.pid())
	return d
}

func (c *caddyProc) stop() {
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

// profile fetches a CPU profile of d from the Caddy's admin endpoint into
// path.
func (c *caddyProc) profile(ctx context.Context, d time.Duration, path string) error {
	resp, err := c.adminGet(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(int(d/time.Second), 1)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// adminGet is a GET of path on the Caddy's admin endpoint; an answer other
// than 200 is an error.
func (c *caddyProc) adminGet(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.admin+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("caddy %s: %s: %s", c.name, path, resp.Status)
	}
	return resp, nil
}
