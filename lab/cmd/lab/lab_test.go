package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/lab/netns"
	"github.com/sessionpin/sessionpin/lab/pg"
	"github.com/sessionpin/sessionpin/lab/proc"
	"github.com/sessionpin/sessionpin/lab/results"
)

// needLab fails under CI and skips elsewhere when this machine cannot run
// the lab.
func needLab(t *testing.T) {
	t.Helper()
	for _, check := range []func() error{netns.Check, pg.Check} {
		if err := check(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the lab cannot run here (CI installs iproute2 and postgresql): %v", err)
			}
			t.Skipf("the lab cannot run here: %v", err)
		}
	}
}

func buildLab(t *testing.T) (bin, root string) {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "lab")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build lab: %v\n%s", err, out)
	}
	return bin, root
}

var runIDRe = regexp.MustCompile(`lab: run ([0-9a-f]+):`)

// leftAlone checks that the run left no namespace and no process behind.
// It looks only at what this run made (its namespaces are named after its
// run id): another lab, or another test, may make namespaces of its own at
// the same time.
func leftAlone(t *testing.T, stderr string) {
	t.Helper()
	m := runIDRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run id in the lab's output:\n%s", stderr)
	}
	all, err := netns.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		if strings.HasPrefix(n, "splab"+m[1]+"-") {
			t.Errorf("namespace %s of run %s left behind", n, m[1])
		}
	}
	if left := proc.Leftovers(m[1]); len(left) > 0 {
		t.Errorf("processes of run %s left behind: %v", m[1], left)
	}
}

// A short fault run in every default mode, a fifth of the clients
// careless and some roaming: sessionpin never serves a step from data that
// has not caught up, nor from another server than the pin, nor a read right
// after a move, careless and roaming clients included; and the lab leaves
// nothing behind.
func TestLabShortKill(t *testing.T) {
	needLab(t)
	bin, root := buildLab(t)
	out := filepath.Join(t.TempDir(), "lab-results.json")
	cmd := exec.Command(bin, "-scenario", "kill", "-scale", "0.6", "-clients", "3", "-careless", "0.2", "-roam", "0.3",
		"-out", out, "-chart", filepath.Join(t.TempDir(), "chart.png"), "-logs", filepath.Join(t.TempDir(), "logs"))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lab: %v\n%s", err, stderr.String())
	}
	leftAlone(t, stderr.String())
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var f results.File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Runs) != 3 {
		t.Fatalf("%d runs, want one per mode", len(f.Runs))
	}
	for _, r := range f.Runs {
		if r.Scenario != "kill" || r.Workflows == 0 || r.LagSamples == 0 {
			t.Errorf("%s/%s: %d workflows, %d lag samples", r.Scenario, r.Mode, r.Workflows, r.LagSamples)
		}
		if r.CarelessClients != 2 || r.Careless == nil || r.Careless.Workflows == 0 {
			t.Errorf("%s: %d careless clients, %+v; want 2 of 9, with workflows", r.Mode, r.CarelessClients, r.Careless)
		}
		// 0.3 of the 2 careless and of the 7 careful clients: 1 and 2.
		if r.RoamingClients != 3 || r.Roaming == nil || r.Roaming.Workflows == 0 {
			t.Errorf("%s: %d roaming clients, %+v; want 3 of 9, with workflows", r.Mode, r.RoamingClients, r.Roaming)
		}
		// Every server reports its distinct recent clients over the
		// lab's capacity: the registry shows loads above 0, and 3
		// clients a region keep every server far below its limit.
		if p := r.PeakLoad; p == nil || p.Samples == 0 || p.Load <= 0 || p.Limit != 0.9 || p.Ratio >= 1 {
			t.Errorf("%s: peak load %+v; want a load above 0, below the limit 0.9", r.Mode, p)
		}
		if r.Mode == "sessionpin" && (r.StaleSteps != 0 || r.WrongServerSteps != 0 || r.StaleAfterMove != 0) {
			t.Errorf("sessionpin: %d stale steps, %d steps on another server than the pin, %d stale reads after a move; want 0",
				r.StaleSteps, r.WrongServerSteps, r.StaleAfterMove)
		}
	}
}

// Ctrl-C while the lab is being built (namespaces, relay, etcd and
// PostgreSQL up, the rest starting) takes everything down.
func TestLabInterruptCleansUp(t *testing.T) {
	needLab(t)
	bin, root := buildLab(t)
	cmd := exec.Command(bin, "-scenario", "steady", "-modes", "sessionpin", "-clients", "1",
		"-out", filepath.Join(t.TempDir(), "r.json"), "-chart", filepath.Join(t.TempDir(), "c.png"), "-logs", filepath.Join(t.TempDir(), "logs"))
	cmd.Dir = root
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(150 * time.Second)
	for !strings.Contains(stderr.String(), "postgresql up") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the lab did not bring PostgreSQL up:\n%s", stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the lab did not stop within 90s of SIGINT:\n%s", stderr.String())
	}
	leftAlone(t, stderr.String())
}
