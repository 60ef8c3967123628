package machine

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"vlab/emulator"
)

// Check is one line of `vlab doctor`: what was looked at, whether it is
// fine, what was found, and the command that fixes a gap. The JSON names
// are `vlab doctor --json`'s (docs/json.md).
type Check struct {
	What string `json:"what"`
	OK   bool   `json:"ok"`
	Info string `json:"info"`
	Fix  string `json:"fix,omitempty"`
}

// Finding says whether c is a gap the user can fix (it names the fix). A
// gap without a fix (a /dev/kvm without vmx/svm, where vlab falls back to
// TCG by design) is information, not a finding.
func (c Check) Finding() bool { return !c.OK && c.Fix != "" }

// Doctor lists what this host has and lacks for vlab, each gap with the
// command that fixes it: QEMU for every arch (with the accelerator vlab
// would choose and why), qemu-img, KVM, firmware, helper programs on PATH,
// the bridge helper, the permissions of vlab's own files (made private
// first when fixPermissions is set) and where the library and the runtime
// dir are. The host is probed afresh, not read from the probe cache.
func (s *Store) Doctor(ctx context.Context, fixPermissions bool) ([]Check, error) {
	h, err := emulator.Probe(ctx)
	if err != nil {
		return nil, err
	}
	checks := hostChecks(h)
	checks = append(checks, toolChecks(exec.LookPath)...)
	ok, info, fix := BridgeHelperStatus()
	checks = append(checks, Check{What: "bridge helper", OK: ok, Info: info, Fix: fix})
	perms, err := s.permissionChecks(fixPermissions)
	if err != nil {
		return nil, err
	}
	checks = append(checks, perms...)
	return append(checks,
		Check{What: "library", OK: true, Info: filepath.Join(s.dirs.Data, "machines")},
		Check{What: "runtime dir", OK: true, Info: s.dirs.Runtime + " (0700: QMP, VNC and serial sockets)"}), nil
}

// hostChecks are doctor's lines about what the probe found: QEMU per arch,
// qemu-img, KVM and firmware.
func hostChecks(h *emulator.Host) []Check {
	var checks []Check
	for _, ar := range emulator.Arches {
		b, ok := h.Binaries[ar]
		c := Check{What: "qemu " + ar.String(), OK: ok}
		if ok {
			c.Info = fmt.Sprintf("%s %s (accels: %s)", b.Path, b.Version, strings.Join(b.Accels, ", "))
			if choice, err := emulator.ChooseAccel(ar, emulator.AccelAuto, h); err == nil {
				c.Info += "; " + choice.Reason
			}
		} else {
			c.Info = "missing"
			c.Fix = "sudo apt-get install " + emulator.AptPackage(ar)
		}
		checks = append(checks, c)
	}
	checks = append(checks, pathCheck("qemu-img", string(h.QemuImg), "qemu-utils"), kvmCheck(h.KVM))
	for _, f := range []struct{ what, path, pkg string }{
		{"UEFI x86_64 (OVMF)", h.Firmware.OVMFCode, "ovmf"},
		{"UEFI aarch64 (AAVMF)", h.Firmware.AAVMFCode, "qemu-efi-aarch64"},
		{"SLOF (ppc64 pseries)", h.Firmware.SLOF, "qemu-system-ppc"},
		{"OpenBIOS (ppc mac99)", h.Firmware.OpenBIOS, "qemu-system-ppc"},
	} {
		checks = append(checks, pathCheck(f.what, f.path, f.pkg))
	}
	return checks
}

// kvmCheck is doctor's line about /dev/kvm.
func kvmCheck(k emulator.KVMStatus) Check {
	c := Check{What: "kvm", OK: k.DevRW && k.CPUVirt}
	switch {
	case !k.DevExists:
		c.Info, c.Fix = "/dev/kvm missing: guests run under TCG emulation (slow)", "enable virtualization in the firmware setup and `sudo modprobe kvm_intel` (or kvm_amd)"
	case !k.DevRW:
		c.Info, c.Fix = "/dev/kvm does not open read-write: "+k.DevErr, "sudo usermod -aG kvm $USER (then log in again)"
	case !k.CPUVirt:
		c.Info = "/dev/kvm opens but the CPU exposes no vmx/svm (nested or paravirtual KVM): vlab uses TCG"
	default:
		c.Info = "usable"
	}
	return c
}

// toolChecks are doctor's lines about helper programs vlab runs when they
// are on PATH (lookPath finds them).
func toolChecks(lookPath func(string) (string, error)) []Check {
	var checks []Check
	for _, t := range []struct{ what, bin, pkg string }{
		{"VNC viewer", "vncviewer", "tigervnc-viewer"},
		{"tmux (tests)", "tmux", "tmux"},
		{"xorriso (ISO building)", "xorriso", "xorriso"},
		{"passt (--net sandbox)", "passt", "passt"},
	} {
		p, err := lookPath(t.bin)
		c := pathCheck(t.what, p, t.pkg)
		if err != nil { // a program found only through "." in PATH (exec.ErrDot) is not used
			c.OK, c.Fix = false, "sudo apt-get install "+t.pkg
		}
		checks = append(checks, c)
	}
	return checks
}

// pathCheck is a line about a file found at path ("" when missing), which
// Debian package pkg installs.
func pathCheck(what, path, pkg string) Check {
	if path == "" {
		return Check{What: what, Info: "missing", Fix: "sudo apt-get install " + pkg}
	}
	return Check{What: what, OK: true, Info: path}
}

// permissionChecks are doctor's lines about vlab's own files: one per file
// or folder others may access (or that fix made private), or one "ok" line.
func (s *Store) permissionChecks(fix bool) ([]Check, error) {
	walk := s.CheckPermissions
	if fix {
		walk = s.FixPermissions
	}
	probs, err := walk()
	if err != nil {
		return nil, err
	}
	if len(probs) == 0 {
		return []Check{{What: "permissions", OK: true, Info: "vlab's folders are 0700 and its files owner-only"}}, nil
	}
	var out []Check
	for _, p := range probs {
		c := Check{What: "permissions", Info: fmt.Sprintf("%s is %04o, others may access it", p.Path, p.Mode)}
		switch {
		case p.Fixed:
			c.OK, c.Info = true, fmt.Sprintf("%s was %04o, now %04o", p.Path, p.Mode, p.Want)
		case p.Err != nil:
			c.Info += ": " + p.Err.Error()
			c.Fix = fmt.Sprintf("chmod %04o %q", p.Want, p.Path)
		default:
			c.Fix = "vlab doctor --fix-permissions"
		}
		out = append(out, c)
	}
	return out, nil
}
