package results

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrors(t *testing.T) {
	if got := Errors(nil); got != "0" {
		t.Errorf("no errors: %q", got)
	}
	got := Errors(map[string]int{"502": 2, "timeout": 5, "503 pinned_server_unavailable": 2})
	if want := "5×timeout, 2×502, 2×503 pinned_server_unavailable"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTableAndChart(t *testing.T) {
	rows := []Row{
		{Scenario: "lag-step", Mode: "rr", Workflows: 10, Completed: 2, RecoverySeconds: -1,
			Phases: []Phase{{LagP50MS: 200, Workflows: 5, FailureRate: 0.2}, {LagP50MS: 2000, Workflows: 5, FailureRate: 1}}},
		{Scenario: "lag-step", Mode: "sessionpin", Workflows: 10, Completed: 10,
			Phases: []Phase{{LagP50MS: 200, Workflows: 5}, {LagP50MS: 2000, Workflows: 5}}},
		{Scenario: "lag-step", Mode: ModeBlind, Workflows: 10, Completed: 9, CarelessClients: 2, Careless: &Counts{StaleSteps: 1, StaleAfterMove: 2},
			Phases: []Phase{{LagP50MS: 200, Workflows: 5}, {LagP50MS: 2000, Workflows: 5, FailureRate: 0.2}}},
	}
	var b bytes.Buffer
	Table(&b, rows)
	if !strings.Contains(b.String(), "never") || !strings.Contains(b.String(), " 2: 1/2 ") || strings.Count(b.String(), "\n") != 4 {
		t.Errorf("table:\n%s", b.String())
	}
	path := filepath.Join(t.TempDir(), "c.png")
	ok, err := Chart(path, rows)
	if err != nil || !ok {
		t.Fatalf("chart: %v, %v", ok, err)
	}
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("not a PNG: %v", err)
	}
	if ok, _ := Chart(path, rows[:0]); ok {
		t.Error("a chart with no lag-step run")
	}
}
