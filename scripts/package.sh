#!/usr/bin/env bash
# package.sh builds vlab's Linux packages with nfpm (packaging/nfpm.yaml):
#
#   scripts/package.sh            # = make package
#   scripts/package.sh --version  # print the package version and exit
#
# Output: dist/vlab_<version>_<arch>.deb and .rpm for the host's arch,
# holding the static bin/vlab (CGO_ENABLED=0, -trimpath, -s -w, version
# stamped in with -X main.version like the Makefile and .goreleaser.yaml),
# man pages, bash/zsh/fish completions, LICENSE and README.md.
#
# The version: VLAB_VERSION if set; else the newest vX.Y.Z tag (X.Y.Z, with
# +N.gHASH after it for later commits); else 0.0.0-gitDATE.gHASH. All are
# semver, which nfpm turns into versions dpkg and rpm order correctly.
# nfpm is a pinned Go module (NFPM_VERSION), installed once into
# ${VLAB_TESTDATA:-~/.cache/vlab-testdata}/tools; goreleaser is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM_VERSION=v2.48.0

die() {
	echo "package: $*" >&2
	exit 1
}

pkg_version() {
	if [ -n "${VLAB_VERSION:-}" ]; then
		echo "$VLAB_VERSION"
		return
	fi
	local d dirty=""
	git rev-parse --git-dir >/dev/null 2>&1 || { echo 0.0.0-dev; return; }
	git diff --quiet HEAD -- 2>/dev/null || dirty=.dirty
	if d=$(git describe --tags --match 'v[0-9]*.[0-9]*.[0-9]*' --long 2>/dev/null); then
		# v1.2.3-4-gabcdef0 -> 1.2.3+4.gabcdef0; v1.2.3-0-g... -> 1.2.3
		local tag=${d%-*-g*} rest=${d#"${d%-*-g*}"-}
		local n=${rest%%-*} hash=${rest#*-}
		tag=${tag#v}
		if [ "$n" = 0 ] && [ -z "$dirty" ]; then
			echo "$tag"
		else
			echo "$tag+$n.$hash$dirty"
		fi
		return
	fi
	echo "0.0.0-git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S).g$(git rev-parse --short=7 HEAD)$dirty"
}

VERSION=$(pkg_version)
if [ "${1:-}" = --version ]; then
	echo "$VERSION"
	exit 0
fi
[ $# -eq 0 ] || die "usage: scripts/package.sh [--version]"

. scripts/goenv.sh
ARCH=$(go env GOARCH)

# nfpm, built from the Go module proxy once per version.
TOOLS=${VLAB_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/vlab-testdata}/tools/nfpm-$NFPM_VERSION
NFPM=$TOOLS/nfpm
if [ ! -x "$NFPM" ]; then
	echo "package: go install github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
	mkdir -p "$TOOLS"
	GOBIN=$TOOLS go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" ||
		die "go install nfpm@$NFPM_VERSION failed (is the Go module proxy reachable?)"
fi

echo "package: build bin/vlab $VERSION ($ARCH)"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o bin/vlab ./cmd/vlab ||
	die "go build ./cmd/vlab failed"
scripts/release-files.sh "$VERSION" bin/vlab

mkdir -p dist
rm -f dist/vlab_*.deb dist/vlab_*.rpm # only this build's packages in dist/
for p in deb rpm; do
	out=dist/vlab_${VERSION}_${ARCH}.$p
	rm -f "$out"
	VLAB_VERSION=$VERSION VLAB_ARCH=$ARCH "$NFPM" package --config packaging/nfpm.yaml \
		--packager "$p" --target "$out" >/dev/null || die "nfpm $p failed"
	[ -s "$out" ] || die "nfpm wrote no $out"
	echo "package: $out"
done
