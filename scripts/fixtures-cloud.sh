#!/usr/bin/env bash
# fixtures-cloud.sh builds the "real Linux userland" fixture of the guest
# workflow tests: a minimal Debian 12 (bookworm, x86_64) with cloud-init,
# openssh-server, qemu-guest-agent and the cloud kernel, made by mmdebstrap
# from the mirror apt already uses, as a plain ext4 file system in a qcow2
# (no partition table, no boot loader: the tests boot it directly with the
# kernel and initrd copied out beside it).
#
#   scripts/fixtures-cloud.sh
#
# Output: ${VLAB_TESTDATA:-~/.cache/vlab-testdata}/cloud-x86_64/
#   rootfs.qcow2  vmlinuz  initrd.img  rootfs.sha256  stamp
# The stamp names the package versions apt resolves and this script's hash:
# a second run with the same versions builds nothing.
# Needs: mmdebstrap, mke2fs (e2fsprogs), qemu-img (scripts/deps.sh).
# e2fsprogs is in the image too: cloud-init's resizefs grows the root to --disk.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}
DIR="$OUT/cloud-x86_64"
PKGS=(linux-image-cloud-amd64 cloud-init openssh-server qemu-guest-agent systemd-sysv udev sudo kmod iproute2 netbase e2fsprogs)

die() {
	echo "fixtures-cloud: $*" >&2
	exit 1
}
[ "$(dpkg --print-architecture)" = amd64 ] || { echo "fixtures-cloud: skipped (host is not amd64)"; exit 0; }
for tool in mmdebstrap mke2fs qemu-img apt-cache sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/sbin/$tool" ] || die "$tool not found: run make deps"
done
MKE2FS=$(command -v mke2fs || echo /sbin/mke2fs)

# The mirror: the host's own apt sources (never a hard-coded host).
SOURCES=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -s "$f" ] || continue
	grep -Eqs '^(deb |URIs:)' "$f" || continue
	grep -qs 'debian' "$f" || continue
	SOURCES+=("$f")
done
[ ${#SOURCES[@]} -gt 0 ] || die "no Debian apt source in /etc/apt/sources.list*: add the bookworm mirror"

mkdir -p "$OUT"
exec 8>"$OUT/.cloud.lock"
command -v flock >/dev/null 2>&1 && { flock 8 || die "lock $OUT/.cloud.lock"; }

versions=$(apt-cache policy "${PKGS[@]}" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')
INPUTS=$(sha256sum "$ROOT/scripts/fixtures-cloud.sh" | cut -c1-16)
stamp=$(printf '%s\ninputs %s\n' "$versions" "$INPUTS")
if [ -s "$DIR/rootfs.qcow2" ] && [ -s "$DIR/vmlinuz" ] && [ "$(cat "$DIR/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "cloud-x86_64: cached"
	exit 0
fi

work=$(mktemp -d "$OUT/.cloud-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/root"
incl=$(IFS=,; echo "${PKGS[*]}")
echo "cloud-x86_64: mmdebstrap bookworm (${PKGS[*]})" >&2
# Small: no docs, man pages or locales; apt lists and caches dropped.
mmdebstrap --variant=apt --include="$incl" \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
	bookworm "$rootfs" "${SOURCES[@]}" >"$work/mmdebstrap.log" 2>&1 ||
	{ tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }

# Configuration of the image (what a distro's cloud image sets itself).
echo "/dev/vda / ext4 rw,discard,errors=remount-ro 0 1" >"$rootfs/etc/fstab"
: >"$rootfs/etc/hostname"
rm -f "$rootfs/etc/machine-id" && : >"$rootfs/etc/machine-id"
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/network" "$rootfs/etc/cloud/cloud.cfg.d"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$rootfs/etc/systemd/network/10-dhcp.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$rootfs/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# Under TCG every cloud-init module costs seconds: keep the ones vlab's seed uses.
cat >"$rootfs/etc/cloud/cloud.cfg.d/90-vlab-fixture.cfg" <<'EOF'
datasource_list: [NoCloud, None]
network: {config: disabled}
ssh_genkeytypes: [ed25519]
manage_etc_hosts: true
cloud_init_modules: [seed_random, bootcmd, write_files, growpart, resizefs, set_hostname, update_hostname, update_etc_hosts, users_groups, ssh]
cloud_config_modules: [mounts, runcmd]
cloud_final_modules: [scripts_per_once, scripts_user, final_message]
EOF
# Serial getty only; no waiting for a network that is not there.
systemctl --root="$rootfs" mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
systemctl --root="$rootfs" enable qemu-guest-agent.service >/dev/null 2>&1 || true

kver=$(ls "$rootfs/lib/modules")
[ -s "$rootfs/boot/vmlinuz-$kver" ] && [ -s "$rootfs/boot/initrd.img-$kver" ] || die "no kernel/initrd for $kver in the image"
cp "$rootfs/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$rootfs/boot/initrd.img-$kver" "$work/initrd.img"

used=$(du -sm "$rootfs" | cut -f1)
: >"$work/rootfs.raw" # (mke2fs -q still says "Creating regular file" for a new one)
"$MKE2FS" -q -t ext4 -L vlabroot -d "$rootfs" "$work/rootfs.raw" "$((used + used / 2 + 256))M" || die "mke2fs failed"
qemu-img convert -q -f raw -O qcow2 -c "$work/rootfs.raw" "$work/rootfs.qcow2" || die "qemu-img convert failed"

mkdir -p "$DIR"
rm -f "$DIR/stamp"
(cd "$work" && sha256sum rootfs.qcow2 >rootfs.sha256)
for f in rootfs.qcow2 vmlinuz initrd.img rootfs.sha256; do
	mv -f "$work/$f" "$DIR/$f"
done
printf '%s\n' "$stamp" >"$DIR/stamp.tmp" && mv -f "$DIR/stamp.tmp" "$DIR/stamp"
echo "cloud-x86_64: built ($kver, $(du -h "$DIR/rootfs.qcow2" | cut -f1))"
