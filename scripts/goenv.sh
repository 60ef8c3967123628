# goenv.sh (sourced) puts a Go toolchain on PATH: the one already there, or
# /usr/local/go, or Debian's golang-go (Go >= 1.21 fetches the toolchain
# go.mod asks for through the module proxy).
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "goenv: go not found; installing Debian's golang-go" >&2
	SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go >/dev/null ||
		{ echo "goenv: cannot install Go: install Go 1.26 from go.dev/dl and put it on PATH" >&2; exit 1; }
fi
export PATH="$(go env GOPATH)/bin:$PATH"
# vlab needs no cgo: a static binary starts faster (no dynamic loader) and
# runs on any Linux.
export CGO_ENABLED=0
