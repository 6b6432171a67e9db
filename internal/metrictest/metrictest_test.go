package metrictest

import (
	"strings"
	"testing"
)

// Sum adds a metric's samples over every label set, and reads nothing else
// as one of them: not another metric that shares its name's start, not a
// comment, not a line that is no sample at all.
func TestSum(t *testing.T) {
	tests := []struct {
		scrape  string
		sum     float64
		found   bool
		invalid bool
	}{
		{"sessionpin_unsafe_moves_total 3\n", 3, true, false},
		{"sessionpin_unsafe_moves_total{reason=\"catch_up_limit\"} 2\n", 2, true, false},
		{"sessionpin_unsafe_moves_total{a=\"}\"} 5\n", 5, true, false},
		{"sessionpin_unsafe_moves_total{a=\"x\"} 2\nsessionpin_unsafe_moves_total{a=\"y\"} 3\n", 5, true, false},
		{"sessionpin_unsafe_moves_total_created 1.7e9\n", 0, false, false},
		{"# HELP sessionpin_unsafe_moves_total Moves.\n", 0, false, false},
		{"go_goroutines 12\n", 0, false, false},
		{"sessionpin_unsafe_moves_total\n", 0, false, true},
		{"sessionpin_unsafe_moves_total{\n", 0, false, true},
		{"sessionpin_unsafe_moves_total x\n", 0, false, true},
	}
	for _, tt := range tests {
		sum, found, err := Sum(strings.NewReader(tt.scrape), "sessionpin_unsafe_moves_total")
		if sum != tt.sum || found != tt.found || (err != nil) != tt.invalid {
			t.Errorf("%q: %v, %v, %v; want %v, %v, error %v", tt.scrape, sum, found, err, tt.sum, tt.found, tt.invalid)
		}
	}
}
