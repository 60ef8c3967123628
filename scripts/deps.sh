#!/usr/bin/env bash
# deps.sh installs what vlab's tests and demo need on a Debian 12 or Ubuntu
# machine: QEMU for x86/ARM/PPC, firmware, ISO tools, busybox, VNC clients,
# rpm's tools and a YAML reader (scripts/package-check.sh).
# `scripts/deps.sh --demo` installs only what the demo needs (see below).
# It is idempotent: it installs only what is missing, adds the foreign dpkg
# architectures the fixtures need (arm64, ppc64el: busybox-static for the
# guests) and runs `apt-get update` only when something is missing.
set -euo pipefail

# Every package exists in Debian 12 (bookworm).
PACKAGES=(
	qemu-system-x86 qemu-system-arm qemu-system-ppc qemu-utils
	ovmf qemu-efi-aarch64 seabios
	xorriso isolinux syslinux-common syslinux-utils grub-pc-bin grub-efi-amd64-bin mtools genisoimage
	busybox-static cpio kmod osinfo-db iproute2 tmux xvfb
	gvncviewer tigervnc-viewer vncsnapshot socat ca-certificates curl python3
	passt gdb-multiarch util-linux e2fsprogs
	libsixel-bin xterm x11-apps
	mmdebstrap cloud-image-utils openssh-client
	rpm rpm2cpio python3-yaml
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libxml2-utils openssh-server
	memtest86+
)
# Guest arches whose busybox-static the fixtures take from apt, less the host's.
FOREIGN_ARCHES=()
for a in amd64 arm64 ppc64el; do
	[ "$a" = "$(dpkg --print-architecture)" ] || FOREIGN_ARCHES+=("$a")
done

# --demo installs only what scripts/demo.sh needs: QEMU for x86 with its
# BIOS, qemu-img, and what the x86_64 guest fixture is built with (busybox,
# cpio, kmod); no foreign dpkg architectures.
if [ "${1:-}" = --demo ]; then
	PACKAGES=(qemu-system-x86 qemu-utils seabios busybox-static cpio kmod ca-certificates)
	FOREIGN_ARCHES=()
	[ "$(dpkg --print-architecture)" = amd64 ] || FOREIGN_ARCHES=(amd64)
elif [ $# -gt 0 ]; then
	echo "deps: unknown argument $1: run scripts/deps.sh (everything the tests need) or scripts/deps.sh --demo" >&2
	exit 2
fi

die() {
	echo "deps: $*" >&2
	exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run this script as root"
	SUDO=(sudo)
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian 12 and Ubuntu only"

# apt runs: wait for another apt/dpkg process holding the lock instead of failing.
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)

installed() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[[ $status == ii* ]]
}

# has_candidate PKG[:ARCH] tells whether apt's lists know an installable version.
has_candidate() {
	local cand
	cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
	[ -n "$cand" ] && [ "$cand" != "(none)" ]
}

need_update=0
added=()
for arch in "${FOREIGN_ARCHES[@]}"; do
	if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		"${SUDO[@]}" dpkg --add-architecture "$arch"
		added+=("$arch")
		need_update=1
	elif ! has_candidate "busybox-static:$arch"; then
		need_update=1
	fi
done
[ ${#added[@]} -eq 0 ] || echo "deps: added dpkg architectures: ${added[*]}"

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || need_update=1

if [ "$need_update" -eq 1 ]; then
	echo "deps: apt-get update"
	# A transient failure of one index (a foreign arch, a third-party source)
	# is not fatal here: the install below fails loudly if a package is
	# really unavailable.
	if ! "${APT[@]}" update -qq; then
		echo "deps: warning: apt-get update reported errors; continuing" >&2
	fi
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	"${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"
else
	echo "deps: all ${#PACKAGES[@]} packages already installed"
fi

for arch in "${FOREIGN_ARCHES[@]}"; do
	has_candidate "busybox-static:$arch" ||
		echo "deps: warning: apt has no busybox-static:$arch (needed by make fixtures); check the apt sources for $arch" >&2
done

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	die "go not found: install Go 1.26 into /usr/local/go and add /usr/local/go/bin to PATH"
fi
echo "deps: ok"
