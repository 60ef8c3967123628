package emulator

import (
	"fmt"
	"strconv"
)

// The command lines of the helper daemons QEMU talks to. They are built
// here, as QEMU's own, so that machine speaks of NICs and shares, not of
// the daemons' flags. No shell ever sees them.

// PasstConfig is what one passt (the user-mode network of a sandbox NIC)
// is started with.
type PasstConfig struct {
	Bin      string
	Socket   string // where QEMU (or vlab's sandbox filter) connects
	Log      string
	UID, GID int       // --runas: the user vlab (and QEMU) run as
	OutIf    string    // --outbound-if4: the default route's interface ("" = none known)
	Forwards []Forward // host ports resolved (none is 0) and host addresses set
}

// PasstArgv is passt's command line: one guest, in the foreground, no route
// to the host through its gateway (--no-map-gw), IPv4 only, and exactly
// the forwards given (an explicit -u none when none of them is UDP).
func PasstArgv(c PasstConfig) []string {
	argv := []string{c.Bin, "--foreground", "--one-off", "--quiet", "--no-map-gw", "--ipv4-only",
		"--runas", strconv.Itoa(c.UID) + ":" + strconv.Itoa(c.GID),
		"--socket", c.Socket, "--log-file", c.Log}
	if c.OutIf != "" {
		argv = append(argv, "--outbound-if4", c.OutIf)
	}
	udp := false
	for _, f := range c.Forwards {
		addr := f.HostAddr
		if addr == "" {
			addr = "127.0.0.1"
		}
		flag := "-t"
		if f.Proto == "udp" {
			flag, udp = "-u", true
		}
		argv = append(argv, flag, fmt.Sprintf("%s/%d:%d", addr, f.HostPort, f.GuestPort))
	}
	if !udp {
		argv = append(argv, "-u", "none")
	}
	return argv
}

// Virtiofsd is the virtio-fs daemon found on the host.
type Virtiofsd struct {
	Path     string
	Rust     bool // the Rust daemon (--shared-dir, --readonly); else QEMU's C one (-o source=)
	ReadOnly bool // it has --readonly
}

// Argv is the daemon's command line serving dir on the vhost-user socket
// sock. For a read-only share a daemon without --readonly cannot refuse
// writes itself: wrap is then true, and the caller must run argv where dir
// is mounted read-only (vlab's `share virtiofsd-ro`).
func (v Virtiofsd) Argv(dir, sock string, readOnly bool) (argv []string, wrap bool) {
	if v.Rust {
		argv = []string{v.Path, "--socket-path", sock, "--shared-dir", dir, "--cache", "auto", "--sandbox", "namespace"}
		if readOnly && v.ReadOnly {
			return append(argv, "--readonly"), false
		}
		return argv, readOnly
	}
	return []string{v.Path, "-f", "--socket-path=" + sock, "-o", "source=" + dir, "-o", "cache=auto",
		"-o", "sandbox=namespace", "-o", "log_level=warn"}, readOnly
}
