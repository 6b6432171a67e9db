package caddymodule_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// serviceSymbol matches a symbol of a discovery package the edge must not
// link: the service at discoverysvc's root, its API client, the agent and
// the embedded etcd. schema and watch are the edge's own.
var serviceSymbol = regexp.MustCompile(`sessionpin/discoverysvc(/client|/agent|/embedetcd)?\.`)

// TestCaddyBinaryLinksNoDiscoveryService builds the Caddy binary
// (cmd/caddy, what xcaddy builds) and reads what it links: no symbol of the
// discovery service, no discovery metric's name and no fleet page asset,
// which package initialisers would pull in unseen by the import check.
func TestCaddyBinaryLinksNoDiscoveryService(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "caddy")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sessionpin/sessionpin/cmd/caddy").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	nm, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	var linked []string
	for line := range strings.Lines(string(nm)) {
		if serviceSymbol.MatchString(line) {
			linked = append(linked, strings.TrimSpace(line))
		}
	}
	if len(linked) > 0 {
		t.Errorf("the Caddy binary links %d symbols of the discovery service, e.g.:\n%s", len(linked), strings.Join(linked[:min(len(linked), 10)], "\n"))
	}
	// The check must see the edge's own code, or it proves nothing.
	if !strings.Contains(string(nm), "sessionpin/discoverysvc/watch.(*Watcher).Run") {
		t.Error("go tool nm lists no watcher; is the check reading the right binary?")
	}

	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("sessionpin_discovery_")) {
		t.Error("the Caddy binary holds a discovery metric's name (sessionpin_discovery_...)")
	}
	if !bytes.Contains(data, []byte("sessionpin_pins_issued_total")) {
		t.Error("the Caddy binary lacks the edge's own metric; is the check reading the right binary?")
	}
	assets, err := filepath.Glob("../discoverysvc/fleetpage/*")
	if err != nil || len(assets) == 0 {
		t.Fatalf("no fleet page assets found to look for (%v)", err)
	}
	for _, path := range assets {
		asset, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, asset[:min(len(asset), 256)]) {
			t.Errorf("the Caddy binary holds the fleet page's %s", filepath.Base(path))
		}
	}
}
