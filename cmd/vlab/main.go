// Command vlab is a virtualization lab for the terminal: a TUI and a
// scriptable CLI that define virtual machines and drive local QEMU.
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// A second line of defence behind the library's own modes: whatever
	// QEMU and qemu-img create for vlab (sockets, logs, images) is
	// owner-only too.
	syscall.Umask(0o077)
	ctx, stop := signalContext() // signals.go
	err := newRootCmd(os.Args[1:]).ExecuteContext(ctx)
	stop()
	var guest exitStatus
	if errors.As(err, &guest) {
		// `vlab exec`/`ssh NAME -- CMD`: the guest command's own output
		// said what happened; vlab adds nothing, like ssh itself.
		os.Exit(guest.code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlab: "+oneLine(err.Error()))
		os.Exit(exitCode(err))
	}
}
