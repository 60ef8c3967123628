#!/usr/bin/env bash
# package-check.sh builds vlab's .deb and .rpm (scripts/package.sh) and shows
# they work, failing (non-zero, with the reason) on the first thing wrong:
#
#   .deb  installs with dpkg into a clean Debian 12 root that holds only
#         what the package's own Depends pull in (plus man-db), made by
#         mmdebstrap from the host's apt sources; in it `vlab --version`
#         prints the version, `man -w vlab` finds the man page, the bash
#         completion loads, the zsh and fish ones are in place, and the
#         QEMU the Depends brought is what `vlab doctor` finds.
#   .rpm  read with rpm's own tools (not nfpm's): files, Requires, arch,
#         and the vlab in its payload prints the version.
#   .goreleaser.yaml  its build flags, before hook and nfpms section match
#         scripts/package.sh and packaging/nfpm.yaml (package-config-check.py).
#
#   scripts/package-check.sh      (as root, or through sudo; scripts/test.sh runs it)
#
# The clean root is cached as a tarball under
# ${VLAB_TESTDATA:-~/.cache/vlab-testdata}/pkgcheck-bookworm-ARCH/, keyed by
# the versions apt resolves for the Depends and the mmdebstrap command: a rerun
# only unpacks it. Needs mmdebstrap, rpm, rpm2cpio, cpio, python3-yaml
# (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "package-check: FAIL: $*" >&2
	exit 1
}
say() { echo "package-check: $*"; }

# chroot, dpkg -i and unpacking a root need root: sudo when not root (CI is root).
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run this script as root"
	SUDO=(sudo)
fi
for tool in mmdebstrap dpkg-deb rpm rpm2cpio cpio apt-cache python3 flock; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run make deps"
done

start=$SECONDS
python3 scripts/package-config-check.py || die ".goreleaser.yaml and packaging/nfpm.yaml disagree (above): change both"
scripts/package.sh || die "scripts/package.sh failed"
VERSION=$(scripts/package.sh --version)
. scripts/goenv.sh
GOARCH=$(go env GOARCH)
DEB=dist/vlab_${VERSION}_${GOARCH}.deb
RPM=dist/vlab_${VERSION}_${GOARCH}.rpm
[ -s "$DEB" ] || die "$DEB missing after scripts/package.sh"
[ -s "$RPM" ] || die "$RPM missing after scripts/package.sh"

# The files both packages must hold.
FILES=(
	/usr/bin/vlab
	/usr/share/man/man1/vlab.1.gz
	/usr/share/man/man1/vlab-start.1.gz
	/usr/share/bash-completion/completions/vlab
	/usr/share/fish/vendor_completions.d/vlab.fish
)
# nfpm writes semver prereleases the way dpkg and rpm sort them: 1.2.3-rc1 -> 1.2.3~rc1.
PKGVERSION=$(python3 -c 'import sys; v=sys.argv[1]; b,s,p=v.partition("+")[0].partition("-"); m=v.partition("+")[2]; print(b+("~"+p if s else "")+("+"+m if m else ""))' "$VERSION")

# --- .deb: fields and contents, read with dpkg-deb -------------------------
[ "$(dpkg-deb -f "$DEB" Package)" = vlab ] || die "$DEB: Package is not vlab"
[ "$(dpkg-deb -f "$DEB" Version)" = "$PKGVERSION" ] || die "$DEB: Version $(dpkg-deb -f "$DEB" Version), want $PKGVERSION"
[ "$(dpkg-deb -f "$DEB" Architecture)" = "$(dpkg --print-architecture)" ] || die "$DEB: Architecture $(dpkg-deb -f "$DEB" Architecture)"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
[ -n "$DEPENDS" ] || die "$DEB: no Depends (it needs QEMU)"
debfiles=$(dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\./|/|')
for f in "${FILES[@]}" /usr/share/zsh/vendor-completions/_vlab /usr/share/doc/vlab/copyright /usr/share/doc/vlab/README.md; do
	grep -qx "$f" <<<"$debfiles" || die "$DEB lacks $f"
done
say "deb: $DEB ($PKGVERSION; Depends: $DEPENDS)"

# --- .rpm: read with rpm itself ---------------------------------------------
rpmfiles=$(rpm -qpl "$RPM" 2>/dev/null) || die "rpm -qpl $RPM failed"
for f in "${FILES[@]}" /usr/share/zsh/site-functions/_vlab /usr/share/licenses/vlab/LICENSE; do
	grep -qx "$f" <<<"$rpmfiles" || die "$RPM lacks $f (rpm -qpl)"
done
requires=$(rpm -qp --requires "$RPM" 2>/dev/null) || die "rpm -qp --requires $RPM failed"
for r in qemu-system-x86-core qemu-img; do
	grep -qx "$r" <<<"$requires" || die "$RPM does not require $r"
done
rpmver=$(rpm -qp --queryformat '%{VERSION}' "$RPM" 2>/dev/null)
[ "$rpmver" = "$PKGVERSION" ] || die "$RPM: version $rpmver, want $PKGVERSION"
work=$(mktemp -d)
trap '"${SUDO[@]}" rm -rf "$work"' EXIT
mkdir "$work/rpm"
rpm2cpio "$RPM" | (cd "$work/rpm" && cpio -idm --quiet) || die "rpm2cpio $RPM failed"
got=$("$work/rpm/usr/bin/vlab" --version) || die "the rpm's vlab --version failed"
[ "$got" = "vlab version $VERSION" ] || die "the rpm's vlab --version printed \"$got\", want \"vlab version $VERSION\""
say "rpm: $RPM (files, Requires, version, payload ok)"

# --- a clean Debian 12 root holding the .deb's Depends ----------------------
# Each Depends entry: the first alternative, without a version constraint.
mapfile -t deps < <(tr ',' '\n' <<<"$DEPENDS" | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^$')
pkgs=("${deps[@]}" man-db)

SOURCES=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -s "$f" ] || continue
	grep -Eqs '^(deb |URIs:)' "$f" || continue
	grep -qs 'debian' "$f" || continue
	SOURCES+=("$f")
done
[ ${#SOURCES[@]} -gt 0 ] || die "no Debian apt source in /etc/apt/sources.list*: add the bookworm mirror"

OUT=${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}
CACHE="$OUT/pkgcheck-bookworm-$(dpkg --print-architecture)"
mkdir -p "$CACHE"
exec 8>"$CACHE/.lock"
flock 8 || die "lock $CACHE/.lock"
versions=$(apt-cache policy "${pkgs[@]}" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')
for p in "${pkgs[@]}"; do
	grep -q "^$p: [^(]" <<<"$versions" || die "apt knows no installable $p (a Depends of $DEB): wrong name, or run apt-get update"
done
# The cache key: what apt would install now, and how the root is made.
incl=$(IFS=,; echo "${pkgs[*]}")
MMDEBSTRAP=(mmdebstrap --variant=apt --include="$incl"
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' bookworm)
stamp=$(printf '%s\nrecipe %s\n' "$versions" "${MMDEBSTRAP[*]}")
if [ -f "$CACHE/root.tar" ] && [ -s "$CACHE/root.tar" ] && [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$stamp" ]; then
	say "clean root: cached ($CACHE/root.tar)"
else
	say "clean root: mmdebstrap --variant=apt bookworm + ${pkgs[*]}"
	rm -rf "$CACHE/stamp" "$CACHE/root.tar" "$CACHE/root.new.tar"
	"${SUDO[@]}" "${MMDEBSTRAP[@]}" "$CACHE/root.new.tar" "${SOURCES[@]}" >"$work/mmdebstrap.log" 2>&1 ||
		{ tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
	mv -f "$CACHE/root.new.tar" "$CACHE/root.tar"
	printf '%s\n' "$stamp" >"$CACHE/stamp"
fi
exec 8>&-

ROOT=$work/root
mkdir "$ROOT"
"${SUDO[@]}" tar -C "$ROOT" -xf "$CACHE/root.tar" || die "unpack $CACHE/root.tar"
if "${SUDO[@]}" chroot "$ROOT" dpkg-query -W vlab >/dev/null 2>&1; then
	die "the clean root already has vlab"
fi
"${SUDO[@]}" cp "$DEB" "$ROOT/tmp/vlab.deb"
"${SUDO[@]}" chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/vlab.deb >"$work/dpkg.log" 2>&1 ||
	{ cat "$work/dpkg.log" >&2; die "dpkg -i $DEB into a clean Debian 12 root failed"; }
status=$("${SUDO[@]}" chroot "$ROOT" dpkg-query -W -f='${Status} ${Version}' vlab)
[ "$status" = "install ok installed $PKGVERSION" ] || die "after dpkg -i: dpkg-query says \"$status\""

# What a user of the installed package runs.
got=$("${SUDO[@]}" chroot "$ROOT" vlab --version) || die "vlab --version failed in the clean root"
[ "$got" = "vlab version $VERSION" ] || die "vlab --version printed \"$got\", want \"vlab version $VERSION\""
man=$("${SUDO[@]}" chroot "$ROOT" man -w vlab) || die "man -w vlab found no man page in the clean root"
[ "$man" = /usr/share/man/man1/vlab.1.gz ] || die "man -w vlab gave $man"
page=$("${SUDO[@]}" chroot "$ROOT" env MANPAGER=cat MANWIDTH=80 man vlab-start 2>&1) || die "man vlab-start failed: $page"
grep -q 'vlab start' <<<"$page" || die "man vlab-start does not render: $page"
"${SUDO[@]}" chroot "$ROOT" bash -c '. /usr/share/bash-completion/completions/vlab && complete -p vlab' >/dev/null 2>&1 ||
	die "the bash completion does not load (complete -p vlab)"
for f in /usr/share/zsh/vendor-completions/_vlab /usr/share/fish/vendor_completions.d/vlab.fish; do
	"${SUDO[@]}" test -s "$ROOT$f" || die "$f missing after install"
done
# The Depends are enough: vlab's own check finds QEMU for x86_64 and qemu-img.
"${SUDO[@]}" chroot "$ROOT" env HOME=/root vlab doctor --json >"$work/doctor.json" 2>"$work/doctor.err" || true
python3 - "$work/doctor.json" <<'EOF' || { cat "$work/doctor.err" >&2; die "vlab doctor in the clean root does not find QEMU x86_64 and qemu-img"; }
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc
if isinstance(doc, dict):  # an object with a version: its list of checks
    rows = next((v for v in doc.values() if isinstance(v, list)), [])
ok = {r.get("what"): r.get("ok") for r in rows}
missing = [w for w in ("qemu x86_64", "qemu-img") if not ok.get(w)]
if missing:
    print("package-check: doctor:", ok, file=sys.stderr)
    sys.exit(1)
EOF
say "deb: installs on a clean Debian 12; vlab --version, man, completions, doctor (qemu x86_64, qemu-img) ok"
say "ok ($((SECONDS - start))s)"
