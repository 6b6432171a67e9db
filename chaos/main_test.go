package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// binDir holds the binaries TestMain builds for this run. The edges must be
// separate processes: one process can run only one Caddy.
var binDir string

// TestMain builds caddy, discoverysvc and demo-backend once into a temporary
// directory, so every test drives the binaries of this very tree rather than
// whatever a previous `make build` left in bin/. They are built without the
// race detector: the edge's code is raced by caddymodule's in-process tests,
// and here the fleet should run at the speed it runs in production.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sessionpin-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	// Listing the tests (go test -list, as scripts/fuzz.sh does) needs no
	// binaries.
	if !listing() {
		for name, pkg := range map[string]string{
			"caddy": "./cmd/caddy", "discoverysvc": "./cmd/discoverysvc", "demo-backend": "./examples/backend",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
			cmd.Dir = moduleRoot()
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "chaos: build %s: %v\n", pkg, err)
				return 1
			}
		}
	}
	return m.Run()
}

// listing reports whether the test binary was only asked to list tests.
func listing() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.list") {
			return true
		}
	}
	return false
}

// moduleRoot is the directory of go.mod, one level above this package.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func binPath(name string) string { return filepath.Join(binDir, name) }
