package benchenv

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Section builds one benchmark program's markdown section: its tables, the
// machine and load it ran under, and the command that produced it, in the
// same words whichever program writes it.
type Section struct {
	b strings.Builder
}

// Printf appends formatted text.
func (s *Section) Printf(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

// Text appends text as it is.
func (s *Section) Text(text string) { s.b.WriteString(text) }

// Table starts a table; align has one letter per column, l or r.
func (s *Section) Table(align string, header ...string) {
	s.b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for _, a := range align {
		if a == 'r' {
			s.b.WriteString("---:|")
		} else {
			s.b.WriteString("---|")
		}
	}
	s.b.WriteString("\n")
}

// Row appends one table row.
func (s *Section) Row(cells ...string) { s.b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }

// Machine appends the set-up line naming the machine and the 1-minute load
// average before and after the run, which every figure must carry on a
// shared machine.
func (s *Section) Machine(m Machine, extra string, loadBefore, loadAfter float64) {
	if extra != "" {
		extra = "; " + extra
	}
	s.Printf("- Machine: %d CPUs, %s; %s; %s%s. 1-minute load average %.2f before, %.2f after the run.\n",
		m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, extra, loadBefore, loadAfter)
}

// Commands appends a shell block with the commands that produced the
// section.
func (s *Section) Commands(lines ...string) {
	s.b.WriteString("\nCommands:\n\n```sh\n" + strings.Join(lines, "\n") + "\n```\n")
}

func (s *Section) String() string { return s.b.String() }

// CommandLine is prog and args as a shell would need them typed: empty and
// spaced arguments quoted.
func CommandLine(prog string, args []string) string {
	parts := []string{prog}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// Latency formats a duration with the precision its size deserves.
func Latency(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
}

// Quantile is the q-quantile of ds (nearest rank); 0 for none.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

// Spread is the median of xs with their minimum and maximum, formatted as
// "median (min–max)" with the given verb; "–" for none.
func Spread(verb string, xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", median, s[0], s[len(s)-1])
}
