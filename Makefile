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

.PHONY: build test man bench lint demo install package

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

# Man pages for every command, generated from the command tree by a vlab
# built with the man page generator (-tags mangen; not in bin/vlab).
man:
	rm -rf man && go run -tags mangen ./cmd/vlab man man

# Benchmarks; results are written to bench/RESULTS.md.
bench: build fixtures
	go run ./bench/start -vlab bin/vlab

lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...

# Install bin/vlab, its man pages and shell completions under PREFIX
# (default /usr/local; DESTDIR for packaging), e.g. make install PREFIX=$$HOME/.local
PREFIX ?= /usr/local
install: build man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 bin/vlab $(DESTDIR)$(PREFIX)/bin/vlab
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	bin/vlab completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/vlab
	bin/vlab completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_vlab
	bin/vlab completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/vlab.fish

# dist/vlab_<version>_<arch>.deb and .rpm (nfpm, packaging/nfpm.yaml): the
# static binary, man pages, completions, LICENSE, README; they depend on
# the distribution's QEMU. scripts/package-check.sh (run by make test)
# installs the .deb into a clean Debian root.
package:
	./scripts/package.sh
