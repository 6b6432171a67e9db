package results

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func comparedRows() []Row {
	three := 3
	zero := 0
	return []Row{
		{Scenario: "kill", Mode: "rr", Workflows: 5},
		{Scenario: "kill", Mode: ModeAware, Workflows: 100, Completed: 100, Clients: 18, CarelessClients: 4,
			Careless: &Counts{Workflows: 20}, HeldMoves: 2, CatchUpWaits: 3, CatchUpWaitSeconds: 4.5, UnsafeMoves: &zero},
		{Scenario: "kill", Mode: ModeBlind, Workflows: 98, Completed: 90, StaleSteps: 6, StaleAfterMove: 3, Moves: 7, MovesAcrossRegions: 2, Clients: 18, CarelessClients: 4,
			Careless: &Counts{Workflows: 19, StaleSteps: 5, StaleAfterMove: 1}, ErrorsByReason: map[string]int{"503 pinned_server_unavailable": 2}},
		{Scenario: "cut-region", Mode: ModeBlind, Workflows: 50, StaleSteps: 1, UnsafeMoves: &three},
		{Scenario: "lag-step", Mode: ModeBlind, Workflows: 40, StaleAfterMove: 2},
		{Scenario: "lag-step", Mode: ModeAware, Workflows: 41, StaleAfterMove: 2, StaleAnnounced: 2, RecoverySeconds: -1, UnsafeMoves: &three},
	}
}

// Only scenarios run in both sessionpin modes are compared, in the order
// they ran.
func TestPairs(t *testing.T) {
	pairs := Pairs(comparedRows())
	if len(pairs) != 2 || pairs[0].Scenario != "kill" || pairs[1].Scenario != "lag-step" {
		t.Fatalf("pairs %+v", pairs)
	}
	if pairs[0].Aware.Mode != ModeAware || pairs[0].Blind.Mode != ModeBlind || pairs[0].Blind.StaleSteps != 6 {
		t.Errorf("kill pair %+v", pairs[0])
	}
	if len(Pairs(comparedRows()[:2])) != 0 {
		t.Error("a pair from one mode")
	}
}

func TestCompareMarkdown(t *testing.T) {
	var b bytes.Buffer
	CompareMarkdown(&b, Pairs(comparedRows()))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2+4 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for _, want := range []string{
		"| kill | sessionpin-blind | 98 | 90 | 6 (5) | 3 (1) | 0 | 7 (2) | 0 | 0 (0.0) | – | 2× 503 pinned_server_unavailable |",
		"| kill | sessionpin | 100 | 100 | 0 (0) | 0 (0) | 0 | 0 (0) | 2 | 3 (4.5) | 0 | 0 |",
		"| lag-step | sessionpin | 41 | 0 | 0 | 2 | 2 | 0 (0) | 0 | 0 (0.0) | 3 | 0 | never |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no line with %q in:\n%s", want, b.String())
		}
	}
	if !strings.Contains(lines[2], "sessionpin-blind") {
		t.Errorf("blind is not first: %s", lines[2])
	}
}

// With roaming clients, their share follows the careless clients'.
func TestCompareMarkdownRoaming(t *testing.T) {
	rows := comparedRows()
	rows[2].RoamingClients, rows[2].Roaming = 5, &Counts{StaleSteps: 4, StaleAfterMove: 2}
	var b bytes.Buffer
	CompareMarkdown(&b, Pairs(rows))
	for _, want := range []string{
		"| stale_steps (careless / roaming) | stale_after_move (careless / roaming) |",
		"| kill | sessionpin-blind | 98 | 90 | 6 (5 / 4) | 3 (1 / 2) |",
		"| kill | sessionpin | 100 | 100 | 0 (0 / –) | 0 (0 / –) |",
		"| lag-step | sessionpin | 41 | 0 | 0 (– / –) | 2 (– / –) | 2 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no line with %q in:\n%s", want, b.String())
		}
	}
}

func TestCompareChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.png")
	ok, err := CompareChart(path, comparedRows())
	if err != nil || !ok {
		t.Fatalf("chart: %v, %v", ok, err)
	}
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("not a PNG: %v", err)
	}
	// All zeros still draw.
	if ok, err := CompareChart(path, []Row{{Scenario: "kill", Mode: ModeAware}, {Scenario: "kill", Mode: ModeBlind}}); err != nil || !ok {
		t.Errorf("all zeros: %v, %v", ok, err)
	}
	if ok, _ := CompareChart(path, comparedRows()[:1]); ok {
		t.Error("a chart with no scenario in both modes")
	}
}

func TestWriteSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	if err := WriteSection(path, "x", "one"); err == nil {
		t.Error("a missing file was written")
	}
	if err := os.WriteFile(path, []byte("# B\n\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct{ text, want string }{
		{"one\n", "# B\n\nkept\n\n<!-- x:begin -->\none\n<!-- x:end -->\n"},
		{"two", "# B\n\nkept\n\n<!-- x:begin -->\ntwo\n<!-- x:end -->\n"},
	}
	for _, s := range steps {
		if err := WriteSection(path, "x", s.text); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if string(b) != s.want {
			t.Errorf("got %q, want %q", b, s.want)
		}
	}
	// Text after the section, written by hand, stays.
	if err := os.WriteFile(path, []byte("<!-- x:begin -->\nold\n<!-- x:end -->\n\nby hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSection(path, "x", "new"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "<!-- x:begin -->\nnew\n<!-- x:end -->\n\nby hand\n" {
		t.Errorf("got %q", b)
	}
}
