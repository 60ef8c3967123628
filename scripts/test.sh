#!/usr/bin/env bash
# test.sh runs vlab's whole test suite on a fresh Debian 12 / Ubuntu machine:
# it installs QEMU and the other packages the tests use (scripts/deps.sh),
# builds the real-guest fixtures (scripts/fixtures.sh; cached, so a second
# run downloads nothing), then runs vet and every Go test, the end-to-end
# tests that boot real guests under QEMU included, then checks the .deb and
# .rpm (scripts/package-check.sh), and then every fuzz target
# for a few seconds (scripts/fuzz.sh). Missing prerequisites are
# failures here, never skips (VLAB_REQUIRE_E2E=1).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

scripts/deps.sh
scripts/fixtures.sh

echo "test: go vet"
go vet ./...
echo "test: build"
mkdir -p bin
go build -o bin/vlab ./cmd/vlab
echo "test: go test"
export VLAB_REQUIRE_E2E=1
export VLAB_BIN="$PWD/bin/vlab" # the TUI's tmux test drives this binary
go test -count=1 -timeout 85m "$@" ./...
# The .deb and .rpm: built with nfpm, the .deb installed into a clean
# Debian 12 root where vlab --version, man and completions must work.
echo "test: packages"
scripts/package-check.sh
# Every decoder of untrusted bytes, fuzzed a few seconds each (issue 12);
# a crash fails the run. bench/RESULTS.md is left alone here.
echo "test: fuzz"
VLAB_FUZZ_RESULTS=0 scripts/fuzz.sh "${VLAB_FUZZ_SECONDS:-5}"
