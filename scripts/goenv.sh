# goenv.sh (sourced) puts a Go toolchain on PATH: the one already there, or
# /usr/local/go, or Debian's golang-go (Go >= 1.21 fetches the toolchain
# go.mod asks for through the module proxy).
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "goenv: go not found; installing Debian's golang-go (to fetch Go 1.26 through the module proxy)" >&2
	SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go >/dev/null ||
		{ echo "goenv: cannot install Go: install Go 1.26 from go.dev/dl and put it on PATH" >&2; exit 1; }
fi
# A go older than 1.21 cannot fetch the toolchain go.mod asks for (Debian
# 12's golang-go is 1.19): say so instead of failing on go.mod's syntax.
# From 1.21 on, go fetches that toolchain from the module proxy by itself;
# check that it can now, once, with a clear message.
goenv_minor=$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -z "$goenv_minor" ] || [ "$goenv_minor" -lt 21 ]; then
	echo "goenv: $(go version 2>/dev/null || echo go) cannot build vlab and cannot fetch a newer Go:" \
		"install Go 1.26 from go.dev/dl into /usr/local/go (or golang-1.2x from bookworm-backports) and run again" >&2
	exit 1
fi
if ! (cd "$(dirname "${BASH_SOURCE[0]}")/.." && go version >/dev/null 2>&1); then
	echo "goenv: $(go env GOVERSION) could not fetch the Go toolchain go.mod asks for through the module proxy" \
		"($(go env GOPROXY)): check the proxy, or install Go 1.26 from go.dev/dl" >&2
	exit 1
fi
unset goenv_minor
export PATH="$(go env GOPATH)/bin:$PATH"
# vlab needs no cgo: a static binary starts faster (no dynamic loader) and
# runs on any Linux.
export CGO_ENABLED=0
