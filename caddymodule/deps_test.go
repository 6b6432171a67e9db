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
