package emulator

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestPasstArgv(t *testing.T) {
	got := PasstArgv(PasstConfig{Bin: "/usr/bin/passt", Socket: "/run/u/vlab/dos/passt-0.sock", Log: "/s/dos/passt-net0.log", UID: 1000, GID: 100,
		Forwards: []Forward{{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 2222, GuestPort: 22}, {Proto: "tcp", HostPort: 8080, GuestPort: 80}}})
	want := []string{"/usr/bin/passt", "--foreground", "--one-off", "--quiet", "--no-map-gw", "--ipv4-only",
		"--runas", "1000:100", "--socket", "/run/u/vlab/dos/passt-0.sock", "--log-file", "/s/dos/passt-net0.log",
		"-t", "127.0.0.1/2222:22", "-t", "127.0.0.1/8080:80", "-u", "none"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("passt argv:\n got %q\nwant %q", got, want)
	}
	got = PasstArgv(PasstConfig{Bin: "passt", Socket: "s", Log: "l", Forwards: []Forward{{Proto: "udp", HostAddr: "127.0.0.2", HostPort: 5353, GuestPort: 53}}})
	if strings.Join(got[len(got)-2:], " ") != "-u 127.0.0.2/5353:53" || strings.Contains(strings.Join(got, " "), "none") {
		t.Errorf("udp forward argv: %q", got)
	}
	got = PasstArgv(PasstConfig{Bin: "passt", Socket: "s", Log: "l", OutIf: "eth0"})
	if !strings.Contains(strings.Join(got, " "), " --outbound-if4 eth0 ") {
		t.Errorf("argv with the default route's interface: %q", got)
	}
}

// QEMU's C daemon gets the folder as -o source= and asks for a read-only
// wrapper; the Rust one gets --readonly where it has it.
func TestVirtiofsdArgv(t *testing.T) {
	c := Virtiofsd{Path: "/usr/lib/qemu/virtiofsd"}
	got, wrap := c.Argv("/home/u/code", "/run/v/vfs-0.sock", false)
	want := []string{"/usr/lib/qemu/virtiofsd", "-f", "--socket-path=/run/v/vfs-0.sock", "-o", "source=/home/u/code",
		"-o", "cache=auto", "-o", "sandbox=namespace", "-o", "log_level=warn"}
	if !slices.Equal(got, want) || wrap {
		t.Errorf("C daemon argv %q wrap %v", got, wrap)
	}
	if got, wrap = c.Argv("/home/u/code", "/s", true); !wrap || got[0] != c.Path {
		t.Errorf("read-only C daemon: %q wrap %v, want the wrapper asked for", got, wrap)
	}
	r := Virtiofsd{Path: "/usr/libexec/virtiofsd", Rust: true, ReadOnly: true}
	got, wrap = r.Argv("/d", "/s", true)
	want = []string{"/usr/libexec/virtiofsd", "--socket-path", "/s", "--shared-dir", "/d", "--cache", "auto", "--sandbox", "namespace", "--readonly"}
	if !slices.Equal(got, want) || wrap {
		t.Errorf("Rust daemon argv %q wrap %v", got, wrap)
	}
	if _, wrap = (Virtiofsd{Path: "v", Rust: true}).Argv("/d", "/s", true); !wrap {
		t.Error("a Rust daemon without --readonly must be wrapped for a read-only share")
	}
}
