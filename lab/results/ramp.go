package results

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// MergeRamps adds ramps bin by bin into one (server "all"): placements
// summed, expected shares weighted by each ramp's placements in the bin.
// Ramps with fewer bins than the first contribute to theirs only.
func MergeRamps(ramps []Ramp) Ramp {
	out := Ramp{Server: "all"}
	if len(ramps) == 0 {
		return out
	}
	out.Bins = make([]RampBin, len(ramps[0].Bins))
	weights := make([]float64, len(out.Bins))
	for _, r := range ramps {
		for b, bin := range r.Bins {
			if b >= len(out.Bins) {
				break
			}
			o := &out.Bins[b]
			o.FromS, o.ToS = bin.FromS, bin.ToS
			o.Placements += bin.Placements
			o.OnServer += bin.OnServer
			w := float64(max(bin.Placements, 1))
			o.RampShare += w * bin.RampShare
			o.RuleShare += w * bin.RuleShare
			o.PeersAtLimit += w * bin.PeersAtLimit
			weights[b] += w
		}
	}
	for b := range out.Bins {
		o := &out.Bins[b]
		if o.Placements > 0 {
			o.Share = float64(o.OnServer) / float64(o.Placements)
		}
		if weights[b] > 0 {
			o.RampShare /= weights[b]
			o.RuleShare /= weights[b]
			o.PeersAtLimit /= weights[b]
		}
	}
	return out
}

// RampTable prints row's ramps, one line per bin of each restarted server
// and of all of them together; nothing when the row has none.
func RampTable(w io.Writer, r Row) {
	if len(r.Ramps) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s/%s: each restarted server's share of its region's new placements, from its return\n", r.Scenario, r.Mode)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\treturned_s\tbin_s\tplacements\ton_server\tshare\tramp_share\trule_share\tpeers_at_limit\t")
	all := MergeRamps(r.Ramps)
	for _, rp := range append(append([]Ramp(nil), r.Ramps...), all) {
		back := fmt.Sprintf("%.1f", rp.ReturnedAtS)
		if rp.Server == "all" {
			back = "-"
		}
		for _, b := range rp.Bins {
			fmt.Fprintf(tw, "%s\t%s\t%.0f–%.0f\t%d\t%d\t%s\t%.2f\t%.2f\t%.2f\t\n", rp.Server, back, b.FromS, b.ToS, b.Placements, b.OnServer, share(b), b.RampShare, b.RuleShare, b.PeersAtLimit)
		}
	}
	tw.Flush()
}

func share(b RampBin) string {
	if b.Placements == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", b.Share)
}
