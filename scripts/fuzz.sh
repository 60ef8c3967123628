#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target in vlab (every `func FuzzXxx` in a
# *_test.go file) for about SECONDS each (default 10), one at a time (Go allows one
# -fuzz per invocation), prints each target's executions per second and
# corpus size, and writes the table to the "Fuzzing" section of
# bench/RESULTS.md. The corpus is the seeds kept in the package's
# testdata/fuzz/FuzzXxx/ plus the interesting inputs Go found so far, kept
# in $(go env GOCACHE)/fuzz/. A target that finds a crash fails the script
# (after the others ran); Go writes the crasher to testdata/fuzz/FuzzXxx/:
# fix the bug and commit the crasher with the fix.
#
# New interesting inputs are minimized for at most 1000 runs each (Go's
# default, 60 s each, can eat a short run: an ISO's sectors are large).
#
# The budget is a count of executions, SECONDS × 3000 (the slowest targets'
# rate here), not a wall-clock -fuzztime: with a duration Go's fuzz
# coordinator can report "context deadline exceeded" as a failure when the
# time runs out while a worker is busy (golang/go#75804, fixed in Go 1.27;
# CI saw it with go1.26.8). A count has no deadline to race.
#
# Usage: scripts/fuzz.sh [SECONDS]     (VLAB_FUZZ_RESULTS=0 skips RESULTS.md)
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

secs=${1:-10}
case $secs in
'' | *[!0-9]* | 0) echo "fuzz: SECONDS must be a positive whole number, e.g. scripts/fuzz.sh 30" >&2; exit 2 ;;
esac
module=$(go list -m)
cache=$(go env GOCACHE)/fuzz
rows=$(mktemp)
log=$(mktemp)
trap 'rm -f "$rows" "$log"' EXIT
failed=0

# Every package directory with a fuzz target, and its targets.
for dir in $(find . -name '*_test.go' -not -path './.git/*' -exec grep -l '^func Fuzz' {} + | xargs -n1 dirname | sort -u); do
	pkg=${dir#./}
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		printf 'fuzz: %-28s %-10s ' "$target" "$pkg"
		status=ok
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$((secs * 3000))x" -fuzzminimizetime 1000x -parallel 1 "./$pkg" >"$log" 2>&1; then
			status=FAIL
			failed=1
		fi
		# The last progress line: "fuzz: elapsed: 10s, execs: 123456 (12345/sec), new interesting: 3 (total: 40)".
		# The rate is over the test's whole run ("ok  vlab/machine  3.322s"),
		# baseline coverage included, in milliseconds to keep short runs exact.
		last=$(grep -E '^fuzz: elapsed: [0-9]+s, execs: [0-9]+' "$log" | tail -n1)
		execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
		ms=$(sed -nE 's/^(ok|FAIL)[[:space:]]+[^[:space:]]+[[:space:]]+([0-9]+)\.([0-9]{3})s.*/\2\3/p' "$log" | tail -n1)
		rate=0
		if [ -n "$execs" ] && [ "${ms:-0}" -gt 0 ]; then
			rate=$((execs * 1000 / 10#$ms))
		fi
		seeds=$(find "$pkg/testdata/fuzz/$target" -type f 2>/dev/null | wc -l)
		found=$(find "$cache/$module/$pkg/$target" -type f 2>/dev/null | wc -l)
		printf '%8s execs/s  corpus %4d (%d seeds + %d found)  %s\n' "$rate" $((seeds + found)) "$seeds" "$found" "$status"
		if [ "$status" = FAIL ]; then
			grep -v -E '^fuzz: elapsed: ' "$log" | head -n 20 | sed 's/^/    /'
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pkg" "$target" "${execs:-0}" "$rate" "$seeds" "$found" "$status" >>"$rows"
	done
done

if [ "${VLAB_FUZZ_RESULTS:-1}" != 0 ]; then
	go run ./bench/fuzz -seconds "$secs" -results bench/RESULTS.md <"$rows" || failed=1
fi
exit $failed
