package caddymodule_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoEtcdServerDependency: the plugin is a pure etcd client;
// linking the etcd server into every Caddy would add megabytes and a
// second raft implementation nobody runs.
func TestNoEtcdServerDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "etcd/server") || strings.HasSuffix(dep, "/embedetcd") || strings.HasSuffix(dep, "/etcdtest") {
			t.Errorf("caddymodule depends on %s", dep)
		}
	}
	if !strings.Contains(string(out), "go.etcd.io/etcd/client/v3") {
		t.Error("go list output lacks the etcd client; is the check looking at the right package?")
	}
}

// discovery is the import path of the discovery packages.
const discovery = "github.com/sessionpin/sessionpin/discoverysvc"

// edgeMayImport are the only discovery packages the edge may depend on:
// what lives in etcd and the watch of it. The service, its API client, the
// agent and the embedded etcd are other programs' code.
var edgeMayImport = map[string]bool{
	discovery + "/schema": true,
	discovery + "/watch":  true,
}

// TestImportsOnlySchemaAndWatchOfDiscovery: caddymodule and every package
// below it depend, directly or not, on no discovery package but schema and
// watch, so nothing but this check keeps the service out of Caddy.
func TestImportsOnlySchemaAndWatchOfDiscovery(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, dep := range strings.Fields(string(out)) {
		if dep != discovery && !strings.HasPrefix(dep, discovery+"/") {
			continue
		}
		seen[dep] = true
		if !edgeMayImport[dep] {
			t.Errorf("caddymodule depends on %s; it may use only %s/schema and %s/watch", dep, discovery, discovery)
		}
	}
	for dep := range edgeMayImport {
		if !seen[dep] {
			t.Errorf("go list output lacks %s; is the check looking at the right packages?", dep)
		}
	}
}
