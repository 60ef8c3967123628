# goenv.sh (sourced) puts a Go toolchain that can build vlab on PATH:
#   1. a go already on PATH or in /usr/local/go, if it is Go >= 1.21: such a
#      go fetches the toolchain go.mod asks for through the module proxy by
#      itself (GOTOOLCHAIN=auto);
#   2. otherwise (no go, or an older one such as Debian 12's golang-go 1.19)
#      the Go release go.mod names, fetched once as the module
#      golang.org/toolchain through the module proxy the available go is
#      configured with (installing Debian's golang-go first when there is no
#      go at all), kept in ${XDG_CACHE_HOME:-~/.cache}/vlab-go.
# No download host is written here: the proxy is whatever `go env GOPROXY`
# says on this machine.
goenv_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
goenv_want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$goenv_root/go.mod")
goenv_cache="${XDG_CACHE_HOME:-$HOME/.cache}/vlab-go"
goenv_tc="$goenv_cache/golang.org/toolchain@v0.0.1-go$goenv_want.linux-$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')"
if [ -x "$goenv_tc/bin/go" ]; then
	export PATH="$goenv_tc/bin:$PATH"
fi
goenv_minor() { go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }
if ! command -v go >/dev/null 2>&1; then
	echo "goenv: go not found; installing Debian's golang-go to fetch Go $goenv_want through its module proxy" >&2
	goenv_sudo=(); [ "$(id -u)" -eq 0 ] || goenv_sudo=(sudo)
	"${goenv_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go >/dev/null ||
		{ echo "goenv: cannot install golang-go with apt-get: install Go $goenv_want and put it on PATH" >&2; exit 1; }
fi
goenv_m=$(goenv_minor)
if [ -z "$goenv_m" ] || [ "$goenv_m" -lt 21 ]; then
	# Too old to switch toolchains by itself: fetch the release as a module.
	echo "goenv: $(go env GOVERSION) cannot build vlab; fetching Go $goenv_want through the module proxy ($(go env GOPROXY))" >&2
	mkdir -p "$goenv_cache"
	if ! (cd "$goenv_cache" && GOMODCACHE="$goenv_cache" GOFLAGS=-modcacherw GO111MODULE=on \
		go mod download "golang.org/toolchain@v0.0.1-go$goenv_want.linux-$(go env GOARCH)" >&2); then
		echo "goenv: could not fetch Go $goenv_want through $(go env GOPROXY): check the proxy, or install Go $goenv_want and put it on PATH" >&2
		exit 1
	fi
	goenv_tc="$goenv_cache/golang.org/toolchain@v0.0.1-go$goenv_want.linux-$(go env GOARCH)"
	# Module zips carry no file modes: make the tools executable again.
	chmod +x "$goenv_tc"/bin/* "$goenv_tc"/pkg/tool/*/*
	export PATH="$goenv_tc/bin:$PATH"
	goenv_m=$(goenv_minor)
	if [ -z "$goenv_m" ] || [ "$goenv_m" -lt 21 ]; then
		echo "goenv: the fetched Go in $goenv_tc does not run: install Go $goenv_want and put it on PATH" >&2
		exit 1
	fi
fi
if ! (cd "$goenv_root" && go version >/dev/null 2>&1); then
	echo "goenv: $(go env GOVERSION) could not fetch the Go toolchain go.mod asks for through the module proxy" \
		"($(go env GOPROXY)): check the proxy, or install Go $goenv_want and put it on PATH" >&2
	exit 1
fi
unset goenv_root goenv_want goenv_cache goenv_tc goenv_m goenv_sudo
unset -f goenv_minor
export PATH="$(go env GOPATH)/bin:$PATH"
# vlab needs no cgo: a static binary starts faster (no dynamic loader) and
# runs on any Linux.
export CGO_ENABLED=0
