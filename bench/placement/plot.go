package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var colors = map[string]color.Color{
	"today":        color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"least-loaded": color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"two-choices":  color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"sessionpin":   color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// plotFairness draws, per event, the largest server over its fair share
// against time (the first seed's run), one line per policy.
func plotFairness(sums []summary, path string) error {
	var plots []*plot.Plot
	for _, sc := range scenarios {
		p := plot.New()
		p.Title.Text = sc.title
		p.X.Label.Text = "seconds after the event"
		p.Y.Label.Text = "largest server / fair share"
		p.Add(plotter.NewGrid())
		for _, s := range sums {
			if s.scenario.name != sc.name {
				continue
			}
			r := s.runs[0]
			xys := make(plotter.XYs, len(r.times))
			for i := range r.times {
				xys[i].X, xys[i].Y = r.times[i], r.fairness[i]
			}
			line, err := plotter.NewLine(xys)
			if err != nil {
				return fmt.Errorf("plot %s %s: %w", sc.name, s.policy, err)
			}
			line.Color = colors[s.policy]
			line.Width = vg.Points(1.5)
			p.Add(line)
			p.Legend.Add(s.policy, line)
		}
		p.Legend.Top = true
		// Least loaded reaches 20 and would flatten the others.
		p.Y.Min, p.Y.Max = 0.9, 2.5
		plots = append(plots, p)
	}
	const cols = 2
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i, p := range plots {
		grid[i/cols] = append(grid[i/cols], p)
	}
	for len(grid[rows-1]) < cols {
		grid[rows-1] = append(grid[rows-1], nil)
	}
	img := vgimg.New(vg.Points(900), vg.Points(330*float64(rows)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(grid, tiles, dc)
	for i, row := range grid {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
