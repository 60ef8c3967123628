package machine

import (
	"os"
	"slices"
	"strings"
	"testing"

	"vlab/emulator"
)

// TestVirtiofsdArgv: QEMU's C daemon gets the folder as -o source= and is
// wrapped by `vlab share virtiofsd-ro` for a read-only share; the Rust one
// gets --readonly where it has it.
func TestVirtiofsdArgv(t *testing.T) {
	sh := Share{HostDir: "/home/u/code", Tag: "code"}
	c := virtiofsd{emulator.Virtiofsd{Path: "/usr/lib/qemu/virtiofsd"}}
	got := c.argv("/usr/bin/vlab", sh, "/run/v/vfs-0.sock")
	if got[0] != c.Path || !slices.Contains(got, "source=/home/u/code") || !slices.Contains(got, "--socket-path=/run/v/vfs-0.sock") || !slices.Contains(got, "sandbox=namespace") {
		t.Errorf("C daemon argv %q", got)
	}
	sh.ReadOnly = true
	got = c.argv("/usr/bin/vlab", sh, "/run/v/vfs-0.sock")
	if !slices.Equal(got[:5], []string{"/usr/bin/vlab", "share", "virtiofsd-ro", "/home/u/code", "--"}) || got[5] != c.Path {
		t.Errorf("read-only C daemon argv %q", got)
	}
	r := virtiofsd{emulator.Virtiofsd{Path: "/usr/libexec/virtiofsd", Rust: true, ReadOnly: true}}
	got = r.argv("/usr/bin/vlab", sh, "/s")
	if got[0] != r.Path || !slices.Contains(got, "--readonly") || !slices.Contains(got, "--shared-dir") {
		t.Errorf("Rust daemon argv %q", got)
	}
	if err := c.usable(); (err == nil) != (os.Geteuid() == 0) {
		t.Errorf("C daemon usable = %v as euid %d", err, os.Geteuid())
	}
	if err := r.usable(); err != nil {
		t.Errorf("Rust daemon: %v", err)
	}
}

func TestMountCommand(t *testing.T) {
	sh := Share{HostDir: "/h", Tag: "code", ReadOnly: true}
	if got := MountCommand(sh, ShareVirtiofs); got != "sudo mount -t virtiofs -o ro code /mnt/code" {
		t.Errorf("virtiofs: %q", got)
	}
	if got := MountCommand(sh, Share9P); !strings.HasPrefix(got, "sudo mount -t 9p -o trans=virtio,") || !strings.HasSuffix(got, ",ro code /mnt/code") {
		t.Errorf("9p: %q", got)
	}
	if got := MountCommand(sh, ""); !strings.Contains(got, " || ") {
		t.Errorf("unknown kind should try both: %q", got)
	}
}
