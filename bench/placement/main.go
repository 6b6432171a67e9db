// Command placement simulates the placement of new clients under bursts:
// edges that see each server's load only at its heartbeats, servers of
// mixed sizes, and four events (a burst of new clients, a server joining,
// a region failing over, a fleet restart). It compares today's rule, least
// loaded, two random choices and sessionpin's rule, prints a table, and
// with -out and -png writes BENCHMARKS.md's section and a plot.
//
// Usage: go run ./bench/placement [-seeds 5] [-out BENCHMARKS.md] [-png docs/placement-bursts.png]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
)

func main() {
	seeds := flag.Int("seeds", 5, "runs of each scenario and policy, with different random draws")
	out := flag.String("out", "", "rewrite this file's placement section (BENCHMARKS.md)")
	png := flag.String("png", "", "write the plot of the largest server over its fair share here")
	flag.Parse()
	if *seeds < 1 {
		log.Fatal("-seeds must be at least 1")
	}
	sums := simulate(*seeds)
	table := markdown(sums, *seeds)
	fmt.Print(table)
	if *png != "" {
		if err := plotFairness(sums, *png); err != nil {
			log.Fatal(err)
		}
	}
	if *out != "" {
		if err := writeSection(*out, section(table, *png)); err != nil {
			log.Fatal(err)
		}
	}
	if !goalMet(sums) {
		fmt.Fprintln(os.Stderr, "goal not met: see the burst rows")
		os.Exit(1)
	}
}
