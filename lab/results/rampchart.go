package results

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// RampChart draws, for the first sessionpin run with ramps, the restarted
// servers' share of their region's new placements bin by bin from their
// return (all of them together, and each as a dot), beside the share slow
// start gives and the share the placement rule gives from the registry's
// loads, into a PNG at path. It returns false when no such run exists.
func RampChart(path string, rows []Row) (bool, error) {
	var r *Row
	for i := range rows {
		if rows[i].Mode == "sessionpin" && len(rows[i].Ramps) > 0 {
			r = &rows[i]
			break
		}
	}
	if r == nil {
		return false, nil
	}
	all := MergeRamps(r.Ramps)
	mid := func(b RampBin) float64 { return (b.FromS + b.ToS) / 2 }
	var observed, ramp, rule, each plotter.XYs
	for _, b := range all.Bins {
		if b.Placements > 0 {
			observed = append(observed, plotter.XY{X: mid(b), Y: 100 * b.Share})
		}
		ramp = append(ramp, plotter.XY{X: mid(b), Y: 100 * b.RampShare})
		rule = append(rule, plotter.XY{X: mid(b), Y: 100 * b.RuleShare})
	}
	for _, rp := range r.Ramps {
		for _, b := range rp.Bins {
			if b.Placements > 0 {
				each = append(each, plotter.XY{X: mid(b), Y: 100 * b.Share})
			}
		}
	}
	p := plot.New()
	p.Title.Text = "A restarted server's share of its region's new clients (three-region lab, sessionpin)"
	p.X.Label.Text = "seconds since the server came back (5 s bins)"
	p.Y.Label.Text = "new clients placed on it (%)"
	p.Y.Min, p.Y.Max = 0, 100
	p.X.Min = 0
	p.Add(plotter.NewGrid())
	// Bottom right, below the shares once the window is over.
	p.Legend.Top = false
	p.Legend.Left = false
	blue := color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	add := func(name string, pts plotter.XYs, c color.Color, dashes []vg.Length, width vg.Length) error {
		if len(pts) == 0 {
			return nil
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("ramp chart: %w", err)
		}
		line.Color, line.Width, line.Dashes = c, width, dashes
		points.Color, points.Shape = c, draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(name, line, points)
		return nil
	}
	if len(each) > 0 {
		sc, err := plotter.NewScatter(each)
		if err != nil {
			return false, fmt.Errorf("ramp chart: %w", err)
		}
		sc.Color, sc.Shape = color.RGBA{R: 0x9e, G: 0xc9, B: 0xe8, A: 0xff}, draw.CircleGlyph{}
		p.Add(sc)
		p.Legend.Add("each restarted server", sc)
	}
	if err := add("all restarted servers", observed, blue, nil, vg.Points(2)); err != nil {
		return false, err
	}
	if err := add("slow start's share (equal loads)", ramp, color.Black, []vg.Length{vg.Points(6), vg.Points(3)}, vg.Points(1.5)); err != nil {
		return false, err
	}
	if err := add("the placement rule's share (registry loads, edge's count)", rule, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, []vg.Length{vg.Points(2), vg.Points(3)}, vg.Points(2)); err != nil {
		return false, err
	}
	if err := p.Save(8*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return false, fmt.Errorf("ramp chart: %w", err)
	}
	return true, nil
}
