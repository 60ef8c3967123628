#!/usr/bin/env bash
# fixtures.sh builds the real-guest test fixtures: for each guest arch a Debian
# kernel (vmlinuz) and a busybox initramfs (initrd.img) that loads the kernel's
# virtio/USB/input modules and runs the vlab test script (scripts/fixture-init);
# then the ISO fixtures (fixtures-iso.sh) and, with x86_64, the Debian cloud
# userland of the guest-workflow test (fixtures-cloud.sh).
#
#   scripts/fixtures.sh [ARCH...]     ARCH: x86_64 aarch64 ppc64le
#
# Without arguments it builds $VLAB_FIXTURE_ARCHES (space-separated), else all.
#
# Output: ${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}/<arch>/.
# Kernel and busybox versions are resolved through apt (never pinned); a stamp
# file per arch names them, so a second run downloads and rebuilds nothing.
# Needs: apt-get, dpkg-deb, depmod (kmod), cpio, gzip, go; foreign dpkg
# architectures arm64 and ppc64el (scripts/deps.sh sets all of this up).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INITDIR="$ROOT/scripts/fixture-init"
OUT=${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}
CACHE="$OUT/.cache"
ALL_ARCHES=(x86_64 aarch64 ppc64le)

# Modules every guest gets, by module name; the resolver below adds their
# dependencies from modules.dep and skips what the kernel has built in.
COMMON_MODULES=(
	virtio_pci virtio_blk virtio_net virtio_input virtio_scsi virtio_console
	xhci_pci usbhid hid_generic evdev
	sd_mod sr_mod isofs
)

die() {
	echo "fixtures: $*" >&2
	exit 1
}

# arch_info ARCH sets the per-arch facts.
arch_info() {
	case $1 in
	x86_64)
		DEBARCH=amd64 META=linux-image-amd64 GOARCH_=amd64 CONSOLE=ttyS0
		# ACPI power button; AHCI for sata disks (q35's ICH9 controller,
		# imported VirtualBox VMs); 9p and virtiofs for shared folders.
		EXTRA_MODULES=(button ahci 9pnet_virtio 9p fuse virtiofs)
		;;
	aarch64)
		DEBARCH=arm64 META=linux-image-arm64 GOARCH_=arm64 CONSOLE=ttyAMA0
		EXTRA_MODULES=(virtio_mmio gpio_keys) # virt's power key: PL061 GPIO (built in) + gpio-keys
		;;
	ppc64le)
		DEBARCH=ppc64el META=linux-image-powerpc64le GOARCH_=ppc64le CONSOLE=hvc0
		EXTRA_MODULES=() # power-off comes through RTAS EPOW, built in
		;;
	*) die "unknown arch $1: use one of ${ALL_ARCHES[*]}" ;;
	esac
}

for tool in apt-get apt-cache dpkg dpkg-deb cpio gzip sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run make deps"
done
DEPMOD=$(command -v depmod || true)
[ -n "$DEPMOD" ] || { [ -x /sbin/depmod ] && DEPMOD=/sbin/depmod; } || die "depmod not found: run make deps (installs kmod)"
GO=$(command -v go || true)
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || die "go not found: install Go into /usr/local/go or put it on PATH"

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)
APT_OPTS=(-q -o Acquire::Retries=3)
# Root's downloads into a directory the _apt user cannot enter work, but warn.
[ "$(id -u)" -ne 0 ] || APT_OPTS+=(-o APT::Sandbox::User=root)

mkdir -p "$CACHE/debs" || die "create $CACHE"
exec 9>"$OUT/.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9 || die "lock $OUT/.lock"
fi

# The build inputs besides package versions: a change rebuilds the initramfs.
INPUTS=$(cd "$ROOT" && cat scripts/fixtures.sh scripts/fixture-init/* internal/fixture/udpecho/*.go | sha256sum | cut -c1-16)

# refresh_lists runs apt-get update once per run. Its failures are only
# reported: a transient error for one index must not fail the build when the
# packages themselves still download.
REFRESHED=0
refresh_lists() {
	[ "$REFRESHED" -eq 0 ] || return 0
	REFRESHED=1
	echo "fixtures: apt-get update" >&2
	"${SUDO[@]}" apt-get "${APT_OPTS[@]}" -o DPkg::Lock::Timeout=600 update >"$CACHE/apt-update.log" 2>&1 ||
		echo "fixtures: warning: apt-get update reported errors (see $CACHE/apt-update.log); continuing" >&2
}

# candidates PKG:ARCH... prints "package<TAB>arch<TAB>version<TAB>depends" for
# the candidate version of each package apt knows (one apt-cache call: each
# call re-reads every package list, a second or more).
candidates() {
	apt-cache show --no-all-versions "$@" 2>/dev/null | awk '
		/^Package: / { p = $2 }
		/^Architecture: / { a = $2 }
		/^Version: / { v = $2 }
		/^Depends: / { d = substr($0, 10) }
		/^$/ { if (p != "") print p "\t" a "\t" v "\t" d; p = a = v = d = "" }
		END { if (p != "") print p "\t" a "\t" v "\t" d }'
}

# resolve_all ARCH... fills KPKG_OF, KVER_OF and BBVER_OF (keyed by Debian
# arch): the kernel package the linux-image metapackage depends on, its
# version and the busybox-static version.
declare -A KPKG_OF=() KVER_OF=() BBVER_OF=()
resolve_all() {
	local a p pa v d metas=() pkgs=()
	KPKG_OF=() KVER_OF=() BBVER_OF=()
	for a in "$@"; do
		arch_info "$a"
		metas+=("$META:$DEBARCH")
	done
	while IFS=$'\t' read -r p pa v d; do
		d=$(grep -o 'linux-image-[0-9][^ ,|(]*' <<<"$d" | head -n 1) || true
		[ -z "$d" ] || KPKG_OF[$pa]=$d
	done < <(candidates "${metas[@]}")
	for a in "$@"; do
		arch_info "$a"
		[ -z "${KPKG_OF[$DEBARCH]:-}" ] || pkgs+=("${KPKG_OF[$DEBARCH]}:$DEBARCH")
		pkgs+=("busybox-static:$DEBARCH")
	done
	while IFS=$'\t' read -r p pa v d; do
		case $p in
		busybox-static) BBVER_OF[$pa]=$v ;;
		"${KPKG_OF[$pa]:-}") KVER_OF[$pa]=$v ;;
		esac
	done < <(candidates "${pkgs[@]}")
}

# resolved ARCH sets KPKG, KVER and BBVER for ARCH, or fails.
resolved() {
	arch_info "$1"
	KPKG=${KPKG_OF[$DEBARCH]:-} KVER=${KVER_OF[$DEBARCH]:-} BBVER=${BBVER_OF[$DEBARCH]:-}
	[ -n "$KPKG" ] && [ -n "$KVER" ] && [ -n "$BBVER" ]
}

deb_path() { # PKG ARCH VERSION
	echo "$CACHE/debs/${1}_${3//:/%3a}_${2}.deb"
}

# fetch PKG ARCH VERSION downloads the package into the cache unless it is
# there; older cached versions of it are removed.
fetch() {
	local pkg=$1 arch=$2 ver=$3 dest tmp
	dest=$(deb_path "$pkg" "$arch" "$ver")
	[ -s "$dest" ] && return 0
	tmp=$(mktemp -d "$CACHE/download.XXXXXX")
	if ! (cd "$tmp" && apt-get "${APT_OPTS[@]}" download "$pkg:$arch=$ver") >"$tmp.log" 2>&1; then
		sed 's/^/  /' "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		return 1
	fi
	rm -f "$CACHE/debs/${pkg}_"*"_${arch}.deb"
	mv "$tmp"/*.deb "$dest" || return 1
	rm -rf "$tmp" "$tmp.log"
	echo "fixtures: downloaded $pkg:$arch $ver" >&2
}

# module_order KROOT KVER NAME... prints the module files (relative to
# lib/modules/KVER) to insmod, dependencies first, read from modules.dep.
module_order() {
	local kroot=$1 kver=$2
	shift 2
	local moddir="$kroot/lib/modules/$kver" line path deps base name
	declare -gA DEP_OF=() PATH_OF=() BUILTIN=() SEEN=()
	ORDER=()
	while IFS= read -r line; do
		path=${line%%:*}
		deps=${line#*:}
		base=${path##*/}
		name=${base%%.ko*}
		name=${name//-/_}
		PATH_OF[$name]=$path
		DEP_OF[$name]=$deps
	done <"$moddir/modules.dep"
	while IFS= read -r path; do
		base=${path##*/}
		name=${base%%.ko*}
		BUILTIN[${name//-/_}]=1
	done <"$moddir/modules.builtin"
	for name in "$@"; do
		if [ -n "${PATH_OF[$name]+x}" ]; then
			visit "$name"
		elif [ -z "${BUILTIN[$name]+x}" ]; then
			die "module $name: neither a module nor built into kernel $kver"
		fi
	done
	printf '%s\n' "${ORDER[@]}"
}

visit() {
	local name=$1 dep base dname
	[ -z "${SEEN[$name]+x}" ] || return 0
	SEEN[$name]=1
	for dep in ${DEP_OF[$name]}; do
		base=${dep##*/}
		dname=${base%%.ko*}
		visit "${dname//-/_}"
	done
	ORDER+=("${PATH_OF[$name]}")
}

# copy_module SRC DESTDIR copies a module, decompressed, as DESTDIR/<name>.ko.
copy_module() {
	local src=$1 destdir=$2 base
	base=${src##*/}
	case $base in
	*.ko) cp "$src" "$destdir/$base" ;;
	*.ko.xz) xz -dc "$src" >"$destdir/${base%.xz}" ;;
	*.ko.zst) zstd -qdc "$src" >"$destdir/${base%.zst}" ;;
	*.ko.gz) gzip -dc "$src" >"$destdir/${base%.gz}" ;;
	*) die "module $src: unknown compression" ;;
	esac
}

build_arch() {
	local arch=$1 dir stamp kdeb bbdeb work kroot kver kimg stage m
	arch_info "$arch"
	dir="$OUT/$arch"

	if ! resolved "$arch"; then
		if [ "$DEBARCH" != "$(dpkg --print-architecture)" ] &&
			! dpkg --print-foreign-architectures | grep -qx "$DEBARCH"; then
			die "$arch: dpkg architecture $DEBARCH is not configured: run make deps"
		fi
		refresh_lists
		resolve_all "${arches[@]}"
		resolved "$arch" || die "$arch: cannot resolve $META:$DEBARCH and busybox-static:$DEBARCH with apt: run make deps"
	fi
	stamp=$(printf 'kernel %s %s\nbusybox busybox-static %s\ninputs %s\n' "$KPKG" "$KVER" "$BBVER" "$INPUTS")
	if [ -s "$dir/vmlinuz" ] && [ -s "$dir/initrd.img" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "$arch: cached ($KPKG $KVER, busybox-static $BBVER)"
		return 0
	fi

	if ! { fetch "$KPKG" "$DEBARCH" "$KVER" && fetch busybox-static "$DEBARCH" "$BBVER"; }; then
		# Stale lists name versions the archive no longer has: refresh, retry once.
		if [ "$REFRESHED" -eq 0 ]; then
			refresh_lists
			resolve_all "${arches[@]}"
		fi
		resolved "$arch" || die "$arch: cannot resolve $META:$DEBARCH after apt-get update"
		fetch "$KPKG" "$DEBARCH" "$KVER" || die "$arch: download $KPKG:$DEBARCH=$KVER failed"
		fetch busybox-static "$DEBARCH" "$BBVER" || die "$arch: download busybox-static:$DEBARCH=$BBVER failed"
		stamp=$(printf 'kernel %s %s\nbusybox busybox-static %s\ninputs %s\n' "$KPKG" "$KVER" "$BBVER" "$INPUTS")
	fi
	kdeb=$(deb_path "$KPKG" "$DEBARCH" "$KVER")
	bbdeb=$(deb_path busybox-static "$DEBARCH" "$BBVER")

	work=$(mktemp -d "$CACHE/build-$arch.XXXXXX")
	WORK_DIRS+=("$work")
	kroot="$work/kernel"
	stage="$work/initramfs"
	dpkg-deb -x "$kdeb" "$kroot" || die "$arch: unpack $kdeb failed"
	dpkg-deb -x "$bbdeb" "$work/busybox" || die "$arch: unpack $bbdeb failed"

	kver=$(ls "$kroot/lib/modules")
	{ [ -n "$kver" ] && [ "$(wc -l <<<"$kver")" -eq 1 ]; } || die "$arch: $KPKG has no single lib/modules/<version>"
	for kimg in "$kroot/boot/vmlinuz-$kver" "$kroot/boot/vmlinux-$kver" ""; do
		[ -z "$kimg" ] || [ ! -s "$kimg" ] || break
	done
	[ -n "$kimg" ] || die "$arch: no boot/vmlinu[xz]-$kver in $KPKG"
	"$DEPMOD" -b "$kroot" "$kver" || die "$arch: depmod for $kver failed"

	mkdir -p "$stage"/{bin,sbin,etc/vlab,etc/init.d,etc/acpi/PWRF,lib/modules,dev,proc,sys,tmp,run,root,srv,var/log,usr/bin,usr/sbin}
	if [ -x "$work/busybox/bin/busybox" ]; then
		cp "$work/busybox/bin/busybox" "$stage/bin/busybox"
	elif [ -x "$work/busybox/usr/bin/busybox" ]; then
		cp "$work/busybox/usr/bin/busybox" "$stage/bin/busybox"
	else
		die "$arch: no busybox binary in $bbdeb"
	fi
	ln -s busybox "$stage/bin/sh"

	module_order "$kroot" "$kver" "${COMMON_MODULES[@]}" "${EXTRA_MODULES[@]}" >"$work/modules.order"
	: >"$stage/etc/vlab/modules"
	while IFS= read -r m; do
		copy_module "$kroot/lib/modules/$kver/$m" "$stage/lib/modules"
		m=${m##*/}
		echo "${m%.ko*}.ko" >>"$stage/etc/vlab/modules"
	done <"$work/modules.order"

	install -m 0755 "$INITDIR/init" "$stage/init"
	sed "s/@CONSOLE@/$CONSOLE/" "$INITDIR/inittab" >"$stage/etc/inittab"
	install -m 0755 "$INITDIR/rcS" "$stage/etc/init.d/rcS"
	install -m 0755 "$INITDIR/test" "$stage/etc/vlab/test"
	install -m 0755 "$INITDIR/udhcpc.script" "$stage/etc/vlab/udhcpc.script"
	install -m 0755 "$INITDIR/poweroff" "$stage/sbin/poweroff"
	install -m 0755 "$INITDIR/acpi-power" "$stage/etc/acpi/PWRF/00000080"
	echo "$arch" >"$stage/etc/vlab/arch"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
	printf 'root:x:0:\n' >"$stage/etc/group"

	(cd "$ROOT" && CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH_ "$GO" build -trimpath -buildvcs=false -ldflags='-s -w' \
		-o "$stage/bin/vlab-udpecho" ./internal/fixture/udpecho) || die "$arch: go build vlab-udpecho failed"

	mkdir -p "$dir"
	find "$stage" -exec touch -h -d @0 {} + 2>/dev/null || true
	(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -9n >"$dir/initrd.img.tmp" ||
		die "$arch: create initramfs failed"
	cp "$kimg" "$dir/vmlinuz.tmp" || die "$arch: copy kernel failed"
	rm -f "$dir/stamp"
	mv -f "$dir/vmlinuz.tmp" "$dir/vmlinuz"
	mv -f "$dir/initrd.img.tmp" "$dir/initrd.img"
	cp "$work/modules.order" "$dir/modules.order"
	printf '%s\n' "$stamp" >"$dir/stamp.tmp" && mv -f "$dir/stamp.tmp" "$dir/stamp"
	rm -rf "$work"
	echo "$arch: built ($KPKG $KVER, busybox-static $BBVER, $(wc -l <"$dir/modules.order") modules)"
}

WORK_DIRS=()
cleanup() {
	local d
	for d in "${WORK_DIRS[@]}"; do rm -rf "$d"; done
	rm -f "$OUT"/*/vmlinuz.tmp "$OUT"/*/initrd.img.tmp "$OUT"/*/stamp.tmp
}
trap cleanup EXIT

arches=("$@")
# shellcheck disable=SC2206 # a space-separated list on purpose
[ ${#arches[@]} -gt 0 ] || arches=(${VLAB_FIXTURE_ARCHES:-})
[ ${#arches[@]} -gt 0 ] || arches=("${ALL_ARCHES[@]}")
for a in "${arches[@]}"; do
	arch_info "$a" # validates the names before anything runs
done
resolve_all "${arches[@]}"
for a in "${arches[@]}"; do
	build_arch "$a"
done
# VLAB_FIXTURES_GUESTS_ONLY=1 (scripts/demo.sh) stops after the guests.
[ "${VLAB_FIXTURES_GUESTS_ONLY:-}" = 1 ] && exit 0
"$ROOT/scripts/fixtures-iso.sh" "${arches[@]}" # ISO fixtures of the install and detection tests
# The Debian cloud userland (cloud-init, sshd, guest agent) of the guest-workflow
# e2e test (TestCloudImageWorkflow): x86_64 only; minutes the first time, then cached.
for a in "${arches[@]}"; do
	if [ "$a" = x86_64 ]; then
		"$ROOT/scripts/fixtures-cloud.sh"
	fi
done
