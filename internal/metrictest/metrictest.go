// Package metrictest reads a Prometheus text scrape in tests: the edge's
// and the discovery service's tests assert on the same format.
package metrictest

import (
	"strconv"
	"strings"
)

// Value finds the sample named series (name{labels} exactly as Prometheus
// writes it, labels sorted) in a scrape; ok is false when absent.
func Value(text, series string) (float64, bool) {
	for line := range strings.Lines(text) {
		rest, found := strings.CutPrefix(line, series+" ")
		if !found {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}
