package app

import (
	"strconv"
	"testing"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		in     string
		region string
		n      int64
		ok     bool
	}{
		{"us-east.17", "us-east", 17, true},
		{"a.b.3", "a.b", 3, true},
		{"us-east.0", "", 0, false},
		{"us-east.-1", "", 0, false},
		{".5", "", 0, false},
		{"us-east", "", 0, false},
		{"us-east.x", "", 0, false},
		{"us-east.+1", "", 0, false},
		{"us-east.07", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		r, n, ok := parseID(tt.in)
		if ok != tt.ok || ok && (r != tt.region || n != tt.n) {
			t.Errorf("parseID(%q) = %q, %d, %v; want %q, %d, %v", tt.in, r, n, ok, tt.region, tt.n, tt.ok)
		}
	}
}

// A workflow id comes from a URL: whatever it is, parsing never panics, and
// what it accepts prints back to itself.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"us-east.17", "a.b.3", ".5", "x.0", "x.07", "x.99999999999999999999", "é.1", "x.+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, n, ok := parseID(s)
		if !ok {
			return
		}
		if back := r + "." + strconv.FormatInt(n, 10); n <= 0 || back != s {
			t.Fatalf("accepted %q as %q, %d", s, r, n)
		}
	})
}
