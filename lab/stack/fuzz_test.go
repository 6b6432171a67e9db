package stack

import (
	"strings"
	"testing"
)

// A metrics line of any shape is read as a sample of the metric only when
// it is one: its name exactly, labels or not, then a number.
func FuzzSampleValue(f *testing.F) {
	for _, s := range []string{"m 3", `m{a="b"} 2`, `m{a="}"} 5`, "m_total 1", "# HELP m x", "m", "m{", "m x", "m NaN", "m +Inf", "m 1 1700000000000", "mm 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		v, ok := sampleValue(line, "m")
		if !ok {
			if v != 0 {
				t.Fatalf("%q: not a sample, yet %v", line, v)
			}
			return
		}
		if !strings.HasPrefix(line, "m ") && !strings.HasPrefix(line, "m{") {
			t.Fatalf("%q read as a sample of m (%v)", line, v)
		}
	})
}
