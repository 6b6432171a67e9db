// Command gobench turns the output of `go test -bench -benchmem` into the
// Go micro-benchmark section of BENCHMARKS.md, so that the table lists
// exactly the benchmarks that exist, with the run's machine, load average
// and command. It copies its input to stdout as it reads it.
//
//	go test -run '^$' -bench . -benchmem ./caddymodule/... ./discoverysvc/... | go run ./bench/gobench [-out BENCHMARKS.md]
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

// targets are the goals some benchmarks are held to, shown beside them.
var targets = map[string]string{
	"BenchmarkHandlerPinnedHS256": "≤ 2 µs, ≤ 6 allocs",
	"BenchmarkPlace10k":           "≤ 1 µs",
	"BenchmarkPlaceAnywhere10k":   "≤ 1 µs",
	"BenchmarkRebalance10k":       "≤ 1 µs",
	"BenchmarkSnapshotApply10k":   "≤ 1 ms",
}

// command is what `make bench-go` runs; the section names it.
const command = "go test -run '^$' -bench . -benchmem ./caddymodule/... ./discoverysvc/... | go run ./bench/gobench -out BENCHMARKS.md"

// result is one benchmark line.
type result struct {
	name                 string
	nsPerOp              float64
	bytesPerOp, allocsOp string
}

func main() {
	out := flag.String("out", "BENCHMARKS.md", "markdown file whose Go micro-benchmark section is (re)written; empty to only print")
	flag.Parse()
	machine := benchenv.DescribeMachine()
	loadBefore := benchenv.LoadAverage()
	started := time.Now().UTC()
	results, err := read(io.TeeReader(os.Stdin, os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
	text := markdown(results, machine, started, loadBefore, benchenv.LoadAverage())
	if *out == "" {
		fmt.Println(text)
		return
	}
	if err := benchenv.WriteSection(*out, "go", text); err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "wrote", *out)
}

// read parses the benchmark lines of go test's output; a failed package
// is an error, so that a broken benchmark does not leave a table that
// silently lacks it.
func read(r io.Reader) ([]result, error) {
	var results []result
	failed := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
			failed = true
		}
		if res, ok := parseLine(line); ok {
			results = append(results, res)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if failed {
		return nil, errors.New("go test failed; BENCHMARKS.md left as it was")
	}
	if len(results) == 0 {
		return nil, errors.New("no benchmark results in the input")
	}
	return results, nil
}

// parseLine reads "BenchmarkName-2  1000  123.4 ns/op  5 B/op  1 allocs/op"
// (other metrics, such as MB/s, are skipped).
func parseLine(line string) (result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return result{}, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return result{}, false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	res := result{name: name, nsPerOp: -1}
	for i := 2; i+1 < len(f); i += 2 {
		switch f[i+1] {
		case "ns/op":
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return result{}, false
			}
			res.nsPerOp = v
		case "B/op":
			res.bytesPerOp = f[i]
		case "allocs/op":
			res.allocsOp = f[i]
		}
	}
	if res.nsPerOp < 0 {
		return result{}, false
	}
	return res, true
}

func markdown(results []result, m benchenv.Machine, started time.Time, loadBefore, loadAfter float64) string {
	var b benchenv.Section
	b.Printf("## Go micro-benchmarks (`make bench-go`)\n\n")
	b.Printf("Run %s (default -benchtime 1s, GOMAXPROCS=%d).\n\n", started.Format("2006-01-02 15:04 UTC"), m.CPUs)
	b.Table("lrrrl", "benchmark", "time/op", "B/op", "allocs/op", "target")
	for _, r := range results {
		b.Row("`"+r.name+"`", perOp(r.nsPerOp), r.bytesPerOp, r.allocsOp, targets[r.name])
	}
	b.Text("\nWhat they measure is in each benchmark's doc comment. The main ones: `HandlerPinnedHS256` is the session_pin handler on a request with a valid HS256 pin, in process over a 1,000-server snapshot, down to the call of the next handler (no network); `Verify/*/cache` is the per-request pin check once a client's token is cached, `Verify/*/nocache` the first request of a client (or every request with the cache off); `VerifyManyClients` is the pin check of 100,000 clients in random order with a cache too small for them and with the default one; `Place10k`, `PlaceAnywhere10k` and `Rebalance10k` are the decisions on a 10,000-server snapshot; `SnapshotApply10k` is one watch event (a load change) applied to a 10,000-server snapshot, `BuildSnapshot10k` a full re-list of 10,000 servers.\n\n")
	b.Machine(m, "", loadBefore, loadAfter)
	b.Text("- The machine is shared with other work; compare figures of the same run, and the allocations (which do not depend on load) across runs.\n")
	b.Commands("make bench-go   # runs:", command)
	return b.String()
}

// perOp formats a time per operation with the precision its size deserves.
func perOp(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.0f ns", ns)
	}
}
