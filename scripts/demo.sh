#!/usr/bin/env bash
# demo.sh is vlab's main job on a fresh Debian 12 / Ubuntu machine: it
# installs QEMU for x86 and nothing the demo does not use (scripts/deps.sh
# --demo), builds vlab, builds a small real Linux
# guest from Debian packages (kernel + busybox initramfs, cached), defines it
# as the VM "demo" (serial console, VNC screen, a web server forwarded to
# 127.0.0.1:8080) and opens the TUI, where Enter/s starts it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/goenv.sh

scripts/deps.sh --demo
VLAB_FIXTURE_ARCHES=x86_64 VLAB_FIXTURES_GUESTS_ONLY=1 scripts/fixtures.sh
mkdir -p bin
go build -trimpath -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/vlab ./cmd/vlab

data="${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}/x86_64"
if ! bin/vlab show demo >/dev/null 2>&1; then
	bin/vlab create demo --memory 512M --disk 256M \
		--kernel "$data/vmlinuz" --initrd "$data/initrd.img" \
		--append "console=ttyS0 vlab.marker=hello-from-demo vlab.net=1 vlab.httpd=80" \
		--forward tcp:8080:80
fi
exec bin/vlab
