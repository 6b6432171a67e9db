package results

import (
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart draws workflow failure rate against measured replication lag, one
// line per mode, from the lag-step runs' phases, into a PNG at path. It
// returns false when no run has phases.
func Chart(path string, rows []Row) (bool, error) {
	p := plot.New()
	p.Title.Text = "Workflows that fail, against replication lag (three-region lab)"
	p.X.Label.Text = "replication lag between regions, p50 (s)"
	p.Y.Label.Text = "workflows failed (%)"
	p.Y.Min, p.Y.Max = 0, 100
	p.Add(plotter.NewGrid())
	// Right, below round robin's line and above the lines along 0.
	p.Legend.Top = true
	p.Legend.YOffs = -1.2 * vg.Inch
	p.Legend.XOffs = -0.2 * vg.Inch
	colors := map[string]color.Color{
		"rr":         color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
		"cookie":     color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		"sessionpin": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		ModeBlind:    color.RGBA{R: 0x9e, G: 0xc9, B: 0xe8, A: 0xff},
	}
	labels := map[string]string{"rr": "round robin", "cookie": "Caddy lb_policy cookie", "sessionpin": "sessionpin",
		ModeBlind: "sessionpin, data-aware moves off"}
	any := false
	for _, r := range rows {
		if len(r.Phases) == 0 {
			continue
		}
		var pts plotter.XYs
		for _, ph := range r.Phases {
			if ph.Workflows == 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: ph.LagP50MS / 1000, Y: 100 * ph.FailureRate})
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return false, fmt.Errorf("chart: %w", err)
		}
		c := colors[r.Mode]
		if c == nil {
			c = color.Black
		}
		line.Color, line.Width = c, vg.Points(2)
		switch r.Mode {
		case "cookie":
			// Drawn under sessionpin's line where both stay at 0.
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			line.Width = vg.Points(4)
		case ModeBlind:
			line.Dashes = []vg.Length{vg.Points(2), vg.Points(4)}
			line.Width = vg.Points(3)
		}
		points.Color, points.Shape = c, draw.CircleGlyph{}
		p.Add(line, points)
		name := labels[r.Mode]
		if name == "" {
			name = r.Mode
		}
		p.Legend.Add(name, line, points)
		any = true
	}
	if !any {
		return false, nil
	}
	if err := p.Save(8*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return false, fmt.Errorf("chart: %w", err)
	}
	return true, nil
}
