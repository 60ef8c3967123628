#!/usr/bin/env bash
# fixtures-iso.sh builds the ISO fixtures of the install and detection tests
# from the real-guest fixtures scripts/fixtures.sh made (run it first) and
# Debian packages:
#
#   iso/installer-x86_64.iso  BIOS installer (xorriso + isolinux): boots the
#                             fixture kernel, writes a bootable system image
#                             to /dev/vda, powers off. The installed system
#                             (an isohybrid image: MBR + isolinux) boots from
#                             the disk and prints VLAB-MARKER installed-system.
#   iso/boot-aarch64.iso      UEFI-bootable ISO (grub-mkrescue, arm64-efi)
#   iso/boot-ppc64le.iso      pseries/SLOF-bootable ISO (grub-mkrescue,
#                             powerpc-ieee1275); both print VLAB-MARKER
#                             iso-<arch> and power off.
#   iso/detect/*.iso          tiny ISOs with the volume, system, publisher and
#                             application ids real releases use.
#
#   scripts/fixtures-iso.sh [ARCH...]   ARCH: x86_64 aarch64 ppc64le (default: all)
#
# The foreign GRUB platforms (grub-efi-arm64-bin:arm64,
# grub-ieee1275-bin:ppc64el) are downloaded with apt-get download and
# unpacked, never installed. Everything is cached: a stamp per image names
# its inputs, so a second run rebuilds nothing. A failure exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}
ISO="$OUT/iso"
CACHE="$OUT/.cache"
ALL_ARCHES=(x86_64 aarch64 ppc64le)

die() {
	echo "fixtures-iso: $*" >&2
	exit 1
}

for tool in xorriso grub-mkrescue mformat cpio gzip sha256sum apt-get apt-cache dpkg-deb; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run make deps"
done
ISOLINUX_BIN=/usr/lib/ISOLINUX/isolinux.bin
ISOHDPFX=/usr/lib/ISOLINUX/isohdpfx.bin
LDLINUX=/usr/lib/syslinux/modules/bios/ldlinux.c32
for f in "$ISOLINUX_BIN" "$ISOHDPFX" "$LDLINUX"; do
	[ -s "$f" ] || die "$f missing: run make deps (isolinux, syslinux-common)"
done

APT_OPTS=(-q -o Acquire::Retries=3)
[ "$(id -u)" -ne 0 ] || APT_OPTS+=(-o APT::Sandbox::User=root)

mkdir -p "$ISO/detect" "$CACHE/debs" || die "create $ISO"
exec 8>"$OUT/.iso.lock"
if command -v flock >/dev/null 2>&1; then
	flock 8 || die "lock $OUT/.iso.lock"
fi

WORK_DIRS=()
cleanup() {
	local d
	for d in "${WORK_DIRS[@]}"; do rm -rf "$d"; done
	rm -f "$ISO"/*.tmp "$ISO"/*.log "$ISO"/detect/*.tmp
}
trap cleanup EXIT

# workdir sets W to a fresh scratch directory the EXIT trap removes.
workdir() {
	W=$(mktemp -d "$CACHE/iso-build.XXXXXX")
	WORK_DIRS+=("$W")
}

# quietly LOG CMD... runs CMD with its output in LOG, shown only on failure.
quietly() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		sed 's/^/  /' "$log" >&2
		return 1
	fi
}

SELF=$(sha256sum "$ROOT/scripts/fixtures-iso.sh" | cut -c1-16)

# guest ARCH checks that fixtures.sh built ARCH and sets KERNEL, INITRD and
# GSTAMP (its stamp, an input of every image made from it).
guest() {
	KERNEL="$OUT/$1/vmlinuz" INITRD="$OUT/$1/initrd.img"
	if [ ! -s "$KERNEL" ] || [ ! -s "$INITRD" ] || [ ! -s "$OUT/$1/stamp" ]; then
		die "$1: fixture kernel missing in $OUT/$1: run scripts/fixtures.sh $1 first"
	fi
	GSTAMP=$(sha256sum "$OUT/$1/stamp" | cut -c1-16)
}

# fresh IMAGE STAMP tells whether IMAGE was built from these inputs.
fresh() {
	[ -s "$1" ] && [ "$(cat "$1.stamp" 2>/dev/null)" = "$2" ]
}

# publish TMP IMAGE STAMP moves a finished image into place with its stamp.
publish() {
	rm -f "$2.stamp"
	mv -f "$1" "$2"
	printf '%s\n' "$3" >"$2.stamp"
}

# grub_dir PKG DEBARCH PLATFORM prints the unpacked GRUB platform directory
# of a foreign-arch GRUB package, downloading it once per version.
grub_dir() {
	local pkg=$1 debarch=$2 platform=$3 ver deb dir tmp
	ver=$(apt-cache policy "$pkg:$debarch" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		die "$pkg:$debarch has no candidate in apt: run make deps (adds the $debarch architecture and runs apt-get update)"
	fi
	deb="$CACHE/debs/${pkg}_${ver//:/%3a}_${debarch}.deb"
	dir="$CACHE/$pkg-$debarch-${ver//:/%3a}"
	if [ ! -d "$dir/usr/lib/grub/$platform" ]; then
		if [ ! -s "$deb" ]; then
			tmp=$(mktemp -d "$CACHE/iso-download.XXXXXX")
			# (a command substitution: the EXIT trap does not clean up here)
			(cd "$tmp" && apt-get "${APT_OPTS[@]}" download "$pkg:$debarch=$ver") >"$tmp/log" 2>&1 ||
				{ sed 's/^/  /' "$tmp/log" >&2; rm -rf "$tmp"; die "download $pkg:$debarch=$ver failed"; }
			rm -f "$CACHE/debs/${pkg}_"*"_${debarch}.deb"
			mv "$tmp"/*.deb "$deb"
			rm -rf "$tmp"
			echo "fixtures-iso: downloaded $pkg:$debarch $ver" >&2
		fi
		rm -rf "$CACHE/$pkg-$debarch-"*
		dpkg-deb -x "$deb" "$dir.tmp" || { rm -rf "$dir.tmp"; die "unpack $deb failed"; }
		mv "$dir.tmp" "$dir"
	fi
	[ -f "$dir/usr/lib/grub/$platform/modinfo.sh" ] || die "$pkg has no $platform platform"
	echo "$pkg $ver" >"$dir/.version"
	echo "$dir/usr/lib/grub/$platform"
}

# isolinux_tree DIR KERNEL INITRD APPEND lays out an isolinux CD tree that
# boots KERNEL at once.
isolinux_tree() {
	local dir=$1
	mkdir -p "$dir/isolinux"
	cp "$ISOLINUX_BIN" "$LDLINUX" "$dir/isolinux/"
	cp "$2" "$dir/vmlinuz"
	cp "$3" "$dir/initrd.img"
	printf 'default vlab\nprompt 0\ntimeout 0\nlabel vlab\n  kernel /vmlinuz\n  append initrd=/initrd.img %s\n' "$4" >"$dir/isolinux/isolinux.cfg"
}

isolinux_iso() { # TREE OUT VOLID [extra mkisofs args]
	local tree=$1 out=$2 volid=$3
	shift 3
	quietly "$out.log" xorriso -as mkisofs -o "$out" -V "$volid" -J -R \
		-c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table \
		"$@" "$tree" || die "xorriso $out failed"
	rm -f "$out.log"
}

build_x86_64() {
	local out="$ISO/installer-x86_64.iso" stamp w
	guest x86_64
	stamp="self $SELF guest $GSTAMP isolinux $(sha256sum "$ISOLINUX_BIN" "$ISOHDPFX" | cut -c1-16 | tr '\n' ' ')"
	if fresh "$out" "$stamp"; then
		echo "x86_64 installer ISO: cached"
		return
	fi
	workdir
	w=$W
	# The installed system: an isohybrid image (an MBR whose boot code finds
	# isolinux on the disk) that boots the fixture kernel with its marker.
	isolinux_tree "$w/system" "$KERNEL" "$INITRD" "console=ttyS0 quiet loglevel=3 vlab.marker=installed-system vlab.poweroff=1"
	isolinux_iso "$w/system" "$w/system.img" VLAB_INSTALLED_SYSTEM -isohybrid-mbr "$ISOHDPFX"

	# The installer: the fixture initramfs with its test script replaced by
	# one that writes the system image to the empty disk and powers off
	# (concatenated initramfs archives overlay each other).
	mkdir -p "$w/overlay/etc/vlab"
	gzip -9n <"$w/system.img" >"$w/overlay/etc/vlab/system.img.gz"
	cat >"$w/overlay/etc/vlab/test" <<'EOF'
#!/bin/sh
# vlab fixture installer: writes the bundled system image to /dev/vda.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
echo "VLAB-INSTALLER-START"
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do
	usleep 100000
	i=$((i + 1))
done
if [ ! -b /dev/vda ]; then
	echo "VLAB-ERROR installer: no /dev/vda"
elif gunzip -c /etc/vlab/system.img.gz | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null && sync; then
	echo "VLAB-INSTALL-DONE $(gunzip -c /etc/vlab/system.img.gz | wc -c) bytes"
else
	echo "VLAB-ERROR installer: write failed"
fi
sync
busybox poweroff -f
EOF
	chmod 0755 "$w/overlay/etc/vlab/test"
	find "$w/overlay" -exec touch -h -d @0 {} +
	(cd "$w/overlay" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -9n >"$w/overlay.cpio.gz" ||
		die "installer overlay cpio failed"
	cat "$INITRD" "$w/overlay.cpio.gz" >"$w/installer-initrd.img"
	isolinux_tree "$w/installer" "$KERNEL" "$w/installer-initrd.img" "console=ttyS0 quiet loglevel=3"
	isolinux_iso "$w/installer" "$out.tmp" VLAB_INSTALLER -publisher "VLAB TEST FIXTURES"
	publish "$out.tmp" "$out" "$stamp"
	echo "x86_64 installer ISO: built ($(du -h "$out" | cut -f1))"
}

# grub_iso ARCH PKG DEBARCH PLATFORM CONSOLE builds boot-ARCH.iso.
grub_iso() {
	local arch=$1 pkg=$2 debarch=$3 platform=$4 console=$5 out gdir stamp w
	out="$ISO/boot-$arch.iso"
	guest "$arch"
	gdir=$(grub_dir "$pkg" "$debarch" "$platform")
	stamp="self $SELF guest $GSTAMP grub $(cat "$gdir/../../../../.version")"
	if fresh "$out" "$stamp"; then
		echo "$arch boot ISO: cached"
		return
	fi
	workdir
	w=$W
	mkdir -p "$w/tree/boot/grub"
	cp "$KERNEL" "$w/tree/vmlinuz"
	cp "$INITRD" "$w/tree/initrd.img"
	cat >"$w/tree/boot/grub/grub.cfg" <<EOF
set timeout=0
menuentry "vlab $arch" {
	linux /vmlinuz console=$console quiet loglevel=3 vlab.marker=iso-$arch vlab.poweroff=1
	initrd /initrd.img
}
EOF
	quietly "$w/log" grub-mkrescue -d "$gdir" -o "$out.tmp" "$w/tree" -- -volid "VLAB_BOOT_${arch^^}" ||
		die "grub-mkrescue for $arch failed"
	publish "$out.tmp" "$out" "$stamp"
	echo "$arch boot ISO: built ($(du -h "$out" | cut -f1))"
}

# Detection fixtures: NAME|VOLUME ID|SYSTEM ID|PUBLISHER|APPLICATION, with
# the ids the real release media carry (see osinfo-db's <media> entries).
DETECT=(
	"debian-12.7.0-amd64-netinst.iso|Debian 12.7.0 amd64 n|LINUX||"
	"debian-11.7.0-arm64-netinst.iso|Debian 11.7.0 arm64 n|LINUX||"
	"ubuntu-22.04.4-live-server-amd64.iso|Ubuntu-Server 22.04.4 LTS amd64|LINUX||"
	"Fedora-Workstation-Live-x86_64-40-1.14.iso|Fedora-WS-Live-40-1-14|LINUX||"
	"alpine-virt-3.17.0-aarch64.iso|alpine-virt 3.17.0 aarch64|LINUX||"
	"archlinux-2022.11.01-x86_64.iso|ARCH_202211|LINUX|ARCH LINUX <HTTPS://ARCHLINUX.ORG>|ARCH LINUX LIVE/RESCUE CD"
	"FreeBSD-13.1-RELEASE-amd64-disc1.iso|13_1_RELEASE_AMD64_CD|FreeBSD||"
	"en_windows_xp_professional_sp3.iso|WXPFPP_EN||MICROSOFT CORPORATION|"
	"Win11_23H2_English_x64.iso|CCCOMA_X64FRE_EN-US_DV9||MICROSOFT CORPORATION|"
	"mystery.iso|VLAB_MYSTERY_DISC|LINUX|NOBODY|"
)

build_detect() {
	local stamp entry name vol sys pub app w args
	stamp="self $SELF"
	if [ "$(cat "$ISO/detect/.stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "detect ISOs: cached"
		return
	fi
	workdir
	w=$W
	mkdir -p "$w/tree"
	echo "vlab detection fixture: only the volume descriptor is real" >"$w/tree/README.TXT"
	rm -f "$ISO/detect/"*.iso
	for entry in "${DETECT[@]}"; do
		IFS='|' read -r name vol sys pub app <<<"$entry"
		args=(-V "$vol")
		[ -z "$pub" ] || args+=(-publisher "$pub")
		[ -z "$app" ] || args+=(-A "$app")
		quietly "$w/log" xorriso -as mkisofs -o "$ISO/detect/$name.tmp" "${args[@]}" "$w/tree" || die "xorriso $name failed"
		# xorriso upper-cases the system id (ECMA-119 a-characters); real
		# media carry e.g. "FreeBSD": write the field (32 bytes at 32776).
		if [ -n "$sys" ]; then
			printf '%-32s' "$sys" | dd of="$ISO/detect/$name.tmp" bs=1 seek=32776 conv=notrunc status=none ||
				die "set the system id of $name failed"
		fi
		mv -f "$ISO/detect/$name.tmp" "$ISO/detect/$name"
	done
	printf '%s\n' "$stamp" >"$ISO/detect/.stamp"
	echo "detect ISOs: built ${#DETECT[@]}"
}

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=("${ALL_ARCHES[@]}")
for a in "${arches[@]}"; do
	case $a in
	x86_64) build_x86_64 ;;
	aarch64) grub_iso aarch64 grub-efi-arm64-bin arm64 arm64-efi ttyAMA0 ;;
	ppc64le) grub_iso ppc64le grub-ieee1275-bin ppc64el powerpc-ieee1275 hvc0 ;;
	*) die "unknown arch $a: use one of ${ALL_ARCHES[*]}" ;;
	esac
done
build_detect
