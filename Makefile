# vlab Makefile.

.PHONY: deps fixtures

# Install what tests and the demo need (Debian 12 / Ubuntu; root or sudo).
deps:
	bash scripts/deps.sh

# Build the real-guest fixtures (kernel + busybox initramfs per arch) into
# $${VLAB_TESTDATA:-$${XDG_CACHE_HOME:-$$HOME/.cache}/vlab-testdata}; cached by package version.
fixtures:
	bash scripts/fixtures.sh

# --- other targets below ---

.PHONY: build test man bench lint demo

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# bin/vlab, static, with the version stamped in.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/vlab ./cmd/vlab

# The whole suite, exactly what CI runs: deps, fixtures, vet, every test
# (real-guest end-to-end tests included).
test:
	./scripts/test.sh

# The TUI with a ready demo VM.
demo:
	./scripts/demo.sh

# Man pages for every command, generated from the command tree.
man: build
	bin/vlab man man

# Benchmarks; results are written to bench/RESULTS.md.
bench: build fixtures
	go run ./bench/start -vlab bin/vlab

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
