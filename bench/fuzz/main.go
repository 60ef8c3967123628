// Command fuzz writes the "Fuzzing" section of bench/RESULTS.md from the
// rows scripts/fuzz.sh collects on stdin (tab-separated: package, target,
// executions, executions per second, seed files, inputs found, status).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"vlab/bench/results"
)

func main() {
	secs := flag.Int("seconds", 10, "the SECONDS given to scripts/fuzz.sh (each target ran SECONDS×3000 executions)")
	path := flag.String("results", "bench/RESULTS.md", "results file to update")
	flag.Parse()
	var b strings.Builder
	fmt.Fprintf(&b, "`scripts/fuzz.sh %d` runs every Go fuzz target for %d executions (about %d s at the slowest targets' rate), one at a time on one worker (`-parallel 1`,\n", *secs, *secs*3000, *secs)
	b.WriteString("new inputs minimized for at most 1000 runs); execs/s is executions over the whole run, baseline coverage included.\n")
	b.WriteString("Corpus: seed files in the package's `testdata/fuzz/FuzzXxx/` plus the inputs Go's fuzzer found\n")
	b.WriteString("interesting so far (kept in `$(go env GOCACHE)/fuzz`, so it grows across runs on one machine).\n\n")
	b.WriteString("| package | target | execs | execs/s | corpus (seeds + found) | result |\n|---|---|---|---|---|---|\n")
	sc := bufio.NewScanner(os.Stdin)
	n := 0
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 7 {
			continue
		}
		var seeds, found int
		fmt.Sscan(f[4], &seeds)
		fmt.Sscan(f[5], &found)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d (%d + %d) | %s |\n", f[0], f[1], f[2], f[3], seeds+found, seeds, found, f[6])
		n++
	}
	if n == 0 {
		fmt.Fprintln(os.Stderr, "fuzz: no results on stdin: run scripts/fuzz.sh")
		os.Exit(1)
	}
	fmt.Fprintf(&b, "\nMachine: %s.\n", results.Machine())
	if err := results.Write(*path, "Fuzzing", b.String()); err != nil {
		fmt.Fprintf(os.Stderr, "fuzz: write %s: %v\n", *path, err)
		os.Exit(1)
	}
}
