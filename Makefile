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
