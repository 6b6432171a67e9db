package main

import (
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want result
		ok   bool
	}{
		{"BenchmarkPlace10k-2   	30000000	        39.12 ns/op	       0 B/op	       0 allocs/op", result{"BenchmarkPlace10k", 39.12, "0", "0"}, true},
		{"BenchmarkVerify/HS256/cache-2   3378763   312.1 ns/op   615.09 MB/s   0 B/op   0 allocs/op", result{"BenchmarkVerify/HS256/cache", 312.1, "0", "0"}, true},
		{"BenchmarkVerifyManyClients/HS256/cache=16384-2  127744  9207 ns/op  3732 B/op  67 allocs/op", result{"BenchmarkVerifyManyClients/HS256/cache=16384", 9207, "3732", "67"}, true},
		{"BenchmarkNoProcs   100   5 ns/op", result{"BenchmarkNoProcs", 5, "", ""}, true},
		{"goos: linux", result{}, false},
		{"BenchmarkX-2 --- FAIL", result{}, false},
		{"BenchmarkX-2  10  abc ns/op", result{}, false},
		{"BenchmarkX-2  10  5 MB/s", result{}, false},
	} {
		got, ok := parseLine(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReadRefusesFailedRun(t *testing.T) {
	if _, err := read(strings.NewReader("BenchmarkA-2 10 5 ns/op\nFAIL\tpkg\t1s\n")); err == nil {
		t.Fatal("a failed run was accepted")
	}
	if _, err := read(strings.NewReader("PASS\n")); err == nil {
		t.Fatal("a run without benchmarks was accepted")
	}
	rs, err := read(strings.NewReader("BenchmarkA-2 10 5 ns/op 0 B/op 0 allocs/op\nok\tpkg\t1s\n"))
	if err != nil || len(rs) != 1 || rs[0].name != "BenchmarkA" {
		t.Fatalf("read = %+v, %v", rs, err)
	}
}
