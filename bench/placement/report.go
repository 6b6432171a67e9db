package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/internal/mdsection"
)

// summary is one scenario under one policy over every seed.
type summary struct {
	scenario scenario
	policy   string
	runs     []result
}

func simulate(seeds int) []summary {
	var out []summary
	for _, sc := range scenarios {
		for _, p := range policies {
			s := summary{scenario: sc, policy: p.name}
			for seed := range seeds {
				s.runs = append(s.runs, run(sc, p, uint64(seed+1)))
			}
			out = append(out, s)
		}
	}
	return out
}

// worstPeak is the largest peak over the seeds.
func (s summary) worstPeak() float64 {
	w := 0.0
	for _, r := range s.runs {
		w = max(w, r.peak)
	}
	return w
}

// worstSettle is the longest settling time over the seeds; -1 when some
// run never settled.
func (s summary) worstSettle() float64 {
	w := 0.0
	for _, r := range s.runs {
		if r.settle < 0 {
			return -1
		}
		w = max(w, r.settle)
	}
	return w
}

func (s summary) mean(f func(result) float64) float64 {
	t := 0.0
	for _, r := range s.runs {
		t += f(r)
	}
	return t / float64(len(s.runs))
}

// goalMet: after the burst, sessionpin's largest server holds at most
// 1.15 times its fair share, less than under every other policy.
func goalMet(sums []summary) bool {
	var ours float64
	var others []float64
	for _, s := range sums {
		if s.scenario.name != "burst" {
			continue
		}
		if s.policy == "sessionpin" {
			ours = s.worstPeak()
		} else {
			others = append(others, s.worstPeak())
		}
	}
	return ours <= 1.15 && ours < slices.Min(others)
}

func markdown(sums []summary, seeds int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| event | policy | largest server / fair share, worst of %d runs | settled to ≤ %.2f after (s) | joining server's share of new clients, first %v (fair share) | its share in the %v after slow start |\n", seeds, settleAt, joinWindow, joinWindow)
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, s := range sums {
		settle := "never"
		if w := s.worstSettle(); w >= 0 {
			settle = fmt.Sprintf("%.1f", w)
		}
		join, after := "", ""
		if s.scenario.joining != "" {
			join = fmt.Sprintf("%.1f%% (%.1f%%)", 100*s.mean(func(r result) float64 { return r.joinShare }), 100*s.runs[0].joinFair)
			after = fmt.Sprintf("%.1f%%", 100*s.mean(func(r result) float64 { return r.joinAfter }))
		}
		peak := fmt.Sprintf("%.3f", s.worstPeak())
		if s.policy == "sessionpin" {
			peak = "**" + peak + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", s.scenario.title, s.policy, peak, settle, join, after)
	}
	return b.String()
}

func section(table, png string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Placement under bursts (`make bench-placement`)\n\n")
	fmt.Fprintf(&b, "Generated %s by `go run ./bench/placement` (%s, %s). A simulation, not a measurement: ", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOARCH)
	b.WriteString(modelText)
	b.WriteString("\n\n")
	b.WriteString(table)
	if png != "" {
		fmt.Fprintf(&b, "\n![largest server over its fair share, by policy, around each event](%s)\n", filepath.ToSlash(png))
	}
	return b.String()
}

const modelText = `one region of ten servers of capacities 1,000 to 3,500 clients (20,000 in all, ` +
	`limit 0.9), five edges, 40 new clients a second and sessions of 150 s on average ` +
	`(6,000 clients, load 0.3), heartbeats every 3 s at each server's own phase, ` +
	`written only when the load moved by 0.02 or more (as discovery does), hysteresis 0.1, ` +
	`slow start 15 s. Events at t = 0: a burst of 10,000 new clients within 1 s; ` +
	`a server of capacity 2,000 joining; a second region like the first failing, its ` +
	`clients coming back within 5 s through its own edges, which fall back to this region; ` +
	`the region's servers all restarting, back within 2–3 s, their clients returning ` +
	`within 10 s (measured from 3 s, when every server is back). "Largest server / fair ` +
	`share" is the most any live server holds over its share of the region's clients by ` +
	`capacity (1 is perfect), the largest value from the event to 60 s after it. ` +
	"`today` is the rule before capacities (uniform among servers within hysteresis " +
	"of the least reported load), `least-loaded` the least reported load, `two-choices` " +
	"the less loaded of two servers drawn at random, `sessionpin` the rule of " +
	"`placement.Choose` with the edge's own count of placements since each report."

// writeSection replaces the text between the placement markers of path,
// or appends it with the markers when there are none.
func writeSection(path, body string) error {
	return mdsection.Write(path, "placement", body, "")
}
