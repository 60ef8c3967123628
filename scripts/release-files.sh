#!/usr/bin/env bash
# release-files.sh writes what vlab's archives and packages ship beside the
# binary, generated from the command tree so they never drift from it:
#
#   man/*.1.gz         one man page per command (`vlab man DIR` of a vlab built
#                      with -tags mangen), gzipped
#   completions/       vlab.bash, _vlab (zsh), vlab.fish (`vlab completion`)
#
#   scripts/release-files.sh VERSION [VLAB]
#
# VLAB is a built vlab binary (scripts/package.sh passes bin/vlab); without
# it, one is built with VERSION stamped in (goreleaser's before hook). The
# man pages' header names the binary's version.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "release-files: $*" >&2
	exit 1
}
[ $# -ge 1 ] && [ $# -le 2 ] && [ -n "$1" ] || die "usage: scripts/release-files.sh VERSION [VLAB]"
version=$1
vlab=${2:-}
if [ -z "$vlab" ]; then
	command -v go >/dev/null 2>&1 || . scripts/goenv.sh
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$version" -o "$tmp/vlab" ./cmd/vlab ||
		die "go build ./cmd/vlab failed"
	vlab=$tmp/vlab
fi
[ -x "$vlab" ] || die "$vlab is not an executable vlab binary"

# The man page generator is not in the shipped binary (cmd/vlab/man.go): a
# vlab built with it, from the same tree and version, writes the pages.
command -v go >/dev/null 2>&1 || . scripts/goenv.sh
mangen=$(mktemp -d)
trap 'rm -rf "$mangen" ${tmp:+"$tmp"}' EXIT
CGO_ENABLED=0 go build -tags mangen -ldflags "-X main.version=$version" -o "$mangen/vlab" ./cmd/vlab ||
	die "go build -tags mangen ./cmd/vlab failed"
rm -rf man completions
"$mangen/vlab" man man || die "vlab man man failed"
compgen -G 'man/*.1' >/dev/null || die "$vlab man wrote no man pages"
gzip -9n man/*.1
mkdir -p completions
"$vlab" completion bash >completions/vlab.bash
"$vlab" completion zsh >completions/_vlab
"$vlab" completion fish >completions/vlab.fish
for f in completions/vlab.bash completions/_vlab completions/vlab.fish; do
	[ -s "$f" ] || die "$f is empty"
done
echo "release-files: $(ls man | wc -l) man pages, 3 completions (vlab $version)"
