package results

import (
	"fmt"
	"image/color"
	"io"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// The two sessionpin modes the comparison of data-aware moves sets side by
// side.
const (
	ModeAware = "sessionpin"
	ModeBlind = "sessionpin-blind"
)

// Pair is one scenario run in both sessionpin modes.
type Pair struct {
	Scenario     string
	Aware, Blind Row
}

// Pairs returns the scenarios that ran in both sessionpin modes, in the
// order they ran.
func Pairs(rows []Row) []Pair {
	var out []Pair
	idx := map[string]int{}
	seen := map[string]map[string]Row{}
	for _, r := range rows {
		if r.Mode != ModeAware && r.Mode != ModeBlind {
			continue
		}
		if seen[r.Scenario] == nil {
			seen[r.Scenario] = map[string]Row{}
			idx[r.Scenario] = len(idx)
		}
		seen[r.Scenario][r.Mode] = r
	}
	order := make([]string, len(idx))
	for sc, i := range idx {
		order[i] = sc
	}
	for _, sc := range order {
		a, okA := seen[sc][ModeAware]
		b, okB := seen[sc][ModeBlind]
		if okA && okB {
			out = append(out, Pair{Scenario: sc, Aware: a, Blind: b})
		}
	}
	return out
}

// withShares formats a total with the careless clients' share of it and,
// when roam, the roaming clients' ("–" where the run had none of them).
func withShares(total int, r Row, roam bool, part func(Counts) int) string {
	share := func(k *Counts) string {
		if k == nil {
			return "–"
		}
		return fmt.Sprint(part(*k))
	}
	switch {
	case roam:
		return fmt.Sprintf("%d (%s / %s)", total, share(r.Careless), share(r.Roaming))
	case r.Careless != nil:
		return fmt.Sprintf("%d (%s)", total, share(r.Careless))
	}
	return fmt.Sprint(total)
}

// CompareMarkdown writes the comparison of the two sessionpin modes as a
// Markdown table, one line per scenario and mode, blind first. When any
// run had roaming clients, their share of each stale count follows the
// careless clients'.
func CompareMarkdown(w io.Writer, pairs []Pair) {
	roam := false
	for _, p := range pairs {
		roam = roam || p.Aware.Roaming != nil || p.Blind.Roaming != nil
	}
	shares := "careless"
	if roam {
		shares = "careless / roaming"
	}
	fmt.Fprintf(w, "| scenario | mode | workflows | completed | stale_steps (%[1]s) | stale_after_move (%[1]s) | of them announced | moves (across regions) | held_moves | catch_up_waits (s) | unsafe_moves | errors_by_reason | recovery_s | lag p50 / p99 ms |\n", shares)
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|")
	for _, p := range pairs {
		for _, r := range []Row{p.Blind, p.Aware} {
			unsafe := "–"
			if r.UnsafeMoves != nil {
				unsafe = fmt.Sprint(*r.UnsafeMoves)
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %d | %d (%d) | %d | %d (%.1f) | %s | %s | %s | %.0f / %.0f |\n",
				r.Scenario, r.Mode, r.Workflows, r.Completed,
				withShares(r.StaleSteps, r, roam, func(c Counts) int { return c.StaleSteps }),
				withShares(r.StaleAfterMove, r, roam, func(c Counts) int { return c.StaleAfterMove }),
				r.StaleAnnounced, r.Moves, r.MovesAcrossRegions, r.HeldMoves, r.CatchUpWaits, r.CatchUpWaitSeconds, unsafe,
				strings.ReplaceAll(Errors(r.ErrorsByReason), "×", "× "), recovery(r.RecoverySeconds), r.LagP50MS, r.LagP99MS)
		}
	}
}

func recovery(s float64) string {
	if s < 0 {
		return "never"
	}
	return fmt.Sprintf("%.1f", s)
}

// CompareChart draws, per scenario that ran in both sessionpin modes, the
// reads that met data that had not caught up — stale steps within a
// workflow, stacked under stale reads right after a move — for
// sessionpin-blind beside sessionpin, into a PNG at path. It returns false
// when no scenario ran in both.
func CompareChart(path string, rows []Row) (bool, error) {
	pairs := Pairs(rows)
	if len(pairs) == 0 {
		return false, nil
	}
	careless := ""
	if c := pairs[0].Aware.CarelessClients; c > 0 {
		careless = fmt.Sprintf(", %d of %d clients careless", c, pairs[0].Aware.Clients)
	}
	if c := pairs[0].Aware.RoamingClients; c > 0 {
		careless += fmt.Sprintf(", %d roaming", c)
	}
	p := plot.New()
	p.Title.Text = "Reads of data that had not caught up: sessionpin with and without data-aware moves" + "\n(three-region lab" + careless + ")"
	p.Y.Label.Text = "reads that met data not caught up"
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid)

	var names []string
	steps := map[string]plotter.Values{}
	after := map[string]plotter.Values{}
	top := 0.0
	for _, pr := range pairs {
		names = append(names, pr.Scenario)
		for _, r := range []Row{pr.Blind, pr.Aware} {
			steps[r.Mode] = append(steps[r.Mode], float64(r.StaleSteps))
			after[r.Mode] = append(after[r.Mode], float64(r.StaleAfterMove))
			top = max(top, float64(r.StaleSteps+r.StaleAfterMove))
		}
	}
	shades := map[string][2]color.Color{
		ModeBlind: {color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, color.RGBA{R: 0xf0, G: 0x9a, B: 0x9a, A: 0xff}},
		ModeAware: {color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0x9e, G: 0xc9, B: 0xe8, A: 0xff}},
	}
	labels := map[string]string{ModeBlind: "sessionpin-blind (data-aware moves off)", ModeAware: "sessionpin (data-aware moves)"}
	width := vg.Points(36)
	for i, mode := range []string{ModeBlind, ModeAware} {
		x := -0.2 + 0.4*float64(i)
		lower, err := plotter.NewBarChart(steps[mode], width)
		if err != nil {
			return false, fmt.Errorf("chart: %w", err)
		}
		upper, err := plotter.NewBarChart(after[mode], width)
		if err != nil {
			return false, fmt.Errorf("chart: %w", err)
		}
		lower.XMin, upper.XMin = x, x
		lower.Color, upper.Color = shades[mode][0], shades[mode][1]
		lower.LineStyle.Width, upper.LineStyle.Width = 0, 0
		upper.StackOn(lower)
		// The total above each bar, so that a 0 shows.
		var xys plotter.XYs
		var texts []string
		for j := range steps[mode] {
			total := steps[mode][j] + after[mode][j]
			xys = append(xys, plotter.XY{X: x + float64(j), Y: total})
			texts = append(texts, fmt.Sprintf("%.0f", total))
		}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
		if err != nil {
			return false, fmt.Errorf("chart: %w", err)
		}
		for k := range lab.TextStyle {
			lab.TextStyle[k].XAlign = text.XCenter
		}
		lab.Offset = vg.Point{Y: vg.Points(3)}
		p.Add(lower, upper, lab)
		p.Legend.Add(labels[mode]+": stale steps within a workflow", lower)
		p.Legend.Add(labels[mode]+": stale reads right after a move", upper)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	// Room above the bars for the totals and the legend.
	p.Y.Min, p.Y.Max = 0, max(4, top*1.6)
	p.Legend.Top = true
	p.Legend.Left = true
	if err := p.Save(9*vg.Inch, 5*vg.Inch, path); err != nil {
		return false, fmt.Errorf("chart: %w", err)
	}
	return true, nil
}
