package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
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
	settings := "at default settings (compaction retention " + embedetcd.DefaultCompactionRetention.String() + ", quota, upkeep)"
	if r.opts.retention > 0 {
		settings = "with --etcd-compaction-retention " + r.opts.retention.String() + " (the rest at default settings)"
	}
	s.Printf("## Registry history over a long run (`make bench-history`)\n\n")
	s.Printf("The `discoverysvc` binary with its embedded etcd %s, "+
		"written to many times faster than a fleet would: %d servers heartbeating with a load that moves every time (a write each), "+
		"an operator drain started and ended every second, %d edges reporting activity twice a second. "+
		"**%d revisions in %s (%.0f/s)**; %d writes failed.\n\n",
		settings, r.opts.servers, r.opts.edges, written, last.elapsed.Round(time.Second), float64(written)/last.elapsed.Seconds(), r.errors)

	// Periodic compaction keeps between one and two retentions of
	// history, so the level shows as the largest value in each retention
	// after the first two: equal peaks, not a slope.
	ret := r.opts.retention
	if ret == 0 {
		ret = embedetcd.DefaultCompactionRetention
	}
	// Windows of one retention from the third on; the last one takes in
	// the final sample rather than standing alone.
	var windows []time.Duration
	for w := 2 * ret; w+ret/2 < last.elapsed; w += ret {
		windows = append(windows, w)
	}
	end := func(i int) time.Duration {
		if i == len(windows)-1 {
			return last.elapsed + time.Nanosecond
		}
		return windows[i] + ret
	}
	header := []string{"", "first two retentions (no compaction yet)"}
	align := "lr"
	for i, w := range windows {
		header = append(header, fmt.Sprintf("%s–%s", w, end(i).Round(time.Second)))
		align += "r"
	}
	s.Printf("Largest value in each window of one retention:\n\n")
	s.Table(align, header...)
	row := func(name string, f func(sample) int64) {
		cells := []string{name, benchenv.MiB(r.largest(0, 2*ret, f))}
		for i, w := range windows {
			cells = append(cells, benchenv.MiB(r.largest(w, end(i), f)))
		}
		s.Row(cells...)
	}
	row("etcd database file", func(x sample) int64 { return x.dbSize })
	row("etcd database in use", func(x sample) int64 { return x.dbInUse })
	row("discoverysvc RSS (service and member)", func(x sample) int64 { return x.rss })
	row("discoverysvc Go heap in use", func(x sample) int64 { return x.heapInUse })
	if kept := r.largest(2*ret, last.elapsed+1, func(x sample) int64 { return x.dbInUse }); written > 0 {
		rate := float64(written) / last.elapsed.Seconds()
		s.Printf("\nAt %.0f revisions/s, two retentions of history are %.0f revisions: the largest database in use after the first compaction is %.0f bytes per revision of that, "+
			"and does not grow with the run's length. Without compaction the database would have kept every one of the %d revisions.\n",
			rate, rate*2*ret.Seconds(), float64(kept)/(rate*2*ret.Seconds()), written)
	}

	if len(r.defrags) == 0 {
		s.Printf("\nThe member's upkeep defragmented nothing during the run: compacted space was reused, and the file never was three quarters free.")
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

// largest is the largest f over the samples taken in [from, to).
func (r report) largest(from, to time.Duration, f func(sample) int64) int64 {
	var m int64
	for _, x := range r.samples {
		if x.elapsed >= from && x.elapsed < to {
			m = max(m, f(x))
		}
	}
	return m
}
