// Package metrictest reads a Prometheus text scrape in tests and in the
// lab: the edge's and the discovery service's tests assert on the same
// format.
package metrictest

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// Sum adds every sample of the metric name, whatever its labels, in a
// scrape in Prometheus' text format; found is false when the scrape has
// none. A counter with labels that never counted has no sample at all.
func Sum(scrape io.Reader, name string) (sum float64, found bool, err error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(scrape)
	if err != nil {
		return 0, false, fmt.Errorf("parse metrics: %w", err)
	}
	f, ok := families[name]
	if !ok {
		return 0, false, nil
	}
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, len(f.GetMetric()) > 0, nil
}
