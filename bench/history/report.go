package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

type report struct {
	opts                  options
	machine               benchenv.Machine
	loadBefore, loadAfter float64
	command               string
	samples               []sample
	errors                int64
	defrags               []time.Duration
	defrag                defragAtEnd
}

// defragAtEnd is a defragmentation asked for once the run ended, at the
// size it levelled off at.
type defragAtEnd struct {
	took                         time.Duration
	sizeBefore, inUse, sizeAfter int64
}

// tableRows is about how many samples the table shows.
const tableRows = 12

func (r report) markdown() string {
	var s benchenv.Section
	first, last := r.samples[0], r.samples[len(r.samples)-1]
	written := last.revision - first.revision
	retention := "its default"
	if r.opts.retention > 0 {
		retention = r.opts.retention.String()
	}
	s.Printf("## Registry history over a long run (`make bench-history`)\n\n")
	s.Printf("The `discoverysvc` binary with its embedded etcd at default settings (compaction retention %s, quota, upkeep), "+
		"written to many times faster than a fleet would: %d servers heartbeating with a load that moves every time (a write each), "+
		"an operator drain started and ended every second, %d edges reporting activity twice a second. "+
		"**%d revisions in %s (%.0f/s)**; %d writes failed.\n\n",
		retention, r.opts.servers, r.opts.edges, written, last.elapsed.Round(time.Second), float64(written)/last.elapsed.Seconds(), r.errors)

	half := r.since(last.elapsed / 2)
	s.Table("lrrrr", "", "at half time", "end", "largest", "slope over the second half")
	row := func(name string, f func(sample) int64) {
		largest := slices.MaxFunc(r.samples, func(a, b sample) int {
			return int(f(a) - f(b))
		})
		s.Row(name, benchenv.MiB(f(half[0])), benchenv.MiB(f(last)), benchenv.MiB(f(largest)),
			fmt.Sprintf("%+.1f MiB/h", slope(half, f)/(1<<20)))
	}
	row("etcd database file", func(x sample) int64 { return x.dbSize })
	row("etcd database in use", func(x sample) int64 { return x.dbInUse })
	row("discoverysvc RSS (service and member)", func(x sample) int64 { return x.rss })
	row("discoverysvc Go heap in use", func(x sample) int64 { return x.heapInUse })

	if len(r.defrags) == 0 {
		s.Printf("\nThe member's upkeep defragmented nothing during the run: compacted space was reused, and the file never was half free.")
	} else {
		s.Printf("\nThe member's upkeep defragmented %d times during the run, each blocking the member for %s at most.", len(r.defrags), benchenv.Latency(slices.Max(r.defrags)))
	}
	s.Printf(" A defragmentation asked for after the run, at the level reached (file %s, %s in use), blocked the member for **%s** and left a file of %s.\n",
		benchenv.MiB(r.defrag.sizeBefore), benchenv.MiB(r.defrag.inUse), benchenv.Latency(r.defrag.took), benchenv.MiB(r.defrag.sizeAfter))

	s.Printf("\nSamples (every %s; a few shown):\n\n", r.opts.sample)
	s.Table("rrrrrrr", "at", "revision", "revisions/s", "db file", "db in use", "RSS", "heap in use")
	step := max(1, len(r.samples)/tableRows)
	for i, x := range r.samples {
		if i%step != 0 && i != len(r.samples)-1 {
			continue
		}
		s.Row(x.elapsed.Round(time.Second).String(), fmt.Sprint(x.revision), fmt.Sprintf("%.0f", x.revPerSec),
			benchenv.MiB(x.dbSize), benchenv.MiB(x.dbInUse), benchenv.MiB(x.rss), benchenv.MiB(x.heapInUse))
	}
	s.Text("\n")
	s.Machine(r.machine, "", r.loadBefore, r.loadAfter)
	s.Commands("make bench-history   # " + r.command)
	return s.String()
}

// since returns the samples taken at or after elapsed.
func (r report) since(elapsed time.Duration) []sample {
	for i, x := range r.samples {
		if x.elapsed >= elapsed {
			return r.samples[i:]
		}
	}
	return r.samples[len(r.samples)-1:]
}

// slope is the least-squares slope of f over the samples, per hour.
func slope(xs []sample, f func(sample) int64) float64 {
	if len(xs) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	n := float64(len(xs))
	for _, x := range xs {
		t, v := x.elapsed.Hours(), float64(f(x))
		sx += t
		sy += v
		sxx += t * t
		sxy += t * v
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
