#!/usr/bin/env bash
# Measures issue 14's guest workflows on real guests and writes the
# "## Guest workflows" section of bench/RESULTS.md (bench/guest/main.go says
# exactly what is timed):
#   1. cloud image to a working ssh: `vlab create --image` + `vlab start` until
#      `vlab ssh NAME -- true` works, against qemu-img + cloud-localds + qemu +
#      ssh by hand (vlab/hand ratio of the medians);
#   2. shared folder throughput: dd in the guest on a virtiofs and a 9p share
#      (MB/s read and write, virtiofs/9p ratio), the host's dd beside.
# vlab is built from this tree into a temporary folder; every VM lives in a
# private XDG world that is removed afterwards. Run it as root (virtiofs is
# served by QEMU's virtiofsd, which needs root). Not run by CI.
#
#   bash bench/guest/run.sh                  # 3 rounds of each (~20 min under TCG)
#   N=5 bash bench/guest/run.sh              # more rounds
#   bash bench/guest/run.sh -only share      # one of them (ssh or share); the other's numbers stay
#   bash bench/guest/run.sh -mb 64           # smaller files on the shares (default 256 MiB)
#
# Needs the x86_64 fixtures (scripts/fixtures.sh x86_64, which also builds the
# cloud userland with scripts/fixtures-cloud.sh); they are built here if
# missing. cloud-localds (Debian cloud-image-utils) is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${N:-3}
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0

die() {
	echo "bench/guest: $*" >&2
	exit 1
}

if ! command -v cloud-localds >/dev/null 2>&1; then
	SUDO=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "cloud-localds is missing: install cloud-image-utils (apt-get install cloud-image-utils)"
		SUDO=(sudo)
	fi
	echo "bench/guest: installing cloud-image-utils (cloud-localds)"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends cloud-image-utils ||
		{ "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cloud-image-utils; } ||
		die "apt-get install cloud-image-utils failed"
fi

testdata=${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}
[ -s "$testdata/x86_64/vmlinuz" ] || scripts/fixtures.sh x86_64
[ -s "$testdata/cloud-x86_64/rootfs.qcow2" ] || scripts/fixtures-cloud.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/vlab" ./cmd/vlab
go run ./bench/guest -n "$N" -vlab "$work/vlab" "$@"
