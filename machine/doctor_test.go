package machine

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vlab/emulator"
)

// findCheck returns the check named what (failing the test when there is none).
func findCheck(t *testing.T, checks []Check, what string) Check {
	t.Helper()
	for _, c := range checks {
		if c.What == what {
			return c
		}
	}
	t.Fatalf("no %q line in %+v", what, checks)
	return Check{}
}

func TestHostChecks(t *testing.T) {
	h := fakeHost()
	delete(h.Binaries, emulator.ArchPPC)
	h.Firmware.OpenBIOS = ""
	checks := hostChecks(h)
	x86 := findCheck(t, checks, "qemu x86_64")
	if !x86.OK || !strings.HasPrefix(x86.Info, "/usr/bin/qemu-system-x86_64 7.2.19 (accels: kvm, tcg); ") || x86.Fix != "" {
		t.Errorf("x86_64 line %+v: want the binary, its accels and the accel reason", x86)
	}
	choice, _ := emulator.ChooseAccel(emulator.ArchX86_64, emulator.AccelAuto, h)
	if !strings.HasSuffix(x86.Info, "; "+choice.Reason) {
		t.Errorf("x86_64 line %q lacks the accel reason %q", x86.Info, choice.Reason)
	}
	if ppc := findCheck(t, checks, "qemu ppc"); ppc.OK || ppc.Info != "missing" || ppc.Fix != "sudo apt-get install "+emulator.AptPackage(emulator.ArchPPC) {
		t.Errorf("missing qemu-system-ppc: %+v", ppc)
	}
	if c := findCheck(t, checks, "qemu-img"); !c.OK || c.Info != "/usr/bin/qemu-img" {
		t.Errorf("qemu-img: %+v", c)
	}
	if c := findCheck(t, checks, "OpenBIOS (ppc mac99)"); c.OK || c.Info != "missing" || c.Fix != "sudo apt-get install qemu-system-ppc" {
		t.Errorf("missing OpenBIOS: %+v", c)
	}
	if c := findCheck(t, checks, "UEFI x86_64 (OVMF)"); !c.OK || c.Info != "/usr/share/OVMF/OVMF_CODE_4M.fd" || c.Fix != "" {
		t.Errorf("OVMF: %+v", c)
	}
	if c := findCheck(t, checks, "kvm"); !c.OK || c.Info != "usable" {
		t.Errorf("kvm: %+v", c)
	}
	if len(checks) != len(emulator.Arches)+2+4 {
		t.Errorf("%d lines, want one per arch, qemu-img, kvm and four firmware", len(checks))
	}
}

func TestKVMCheck(t *testing.T) {
	for _, tc := range []struct {
		kvm     emulator.KVMStatus
		ok      bool
		info    string
		finding bool
	}{
		{emulator.KVMStatus{}, false, "/dev/kvm missing: guests run under TCG emulation (slow)", true},
		{emulator.KVMStatus{DevExists: true, DevErr: "permission denied"}, false, "/dev/kvm does not open read-write: permission denied", true},
		// vlab uses TCG there by design: information, not a finding.
		{emulator.KVMStatus{DevExists: true, DevRW: true}, false, "/dev/kvm opens but the CPU exposes no vmx/svm (nested or paravirtual KVM): vlab uses TCG", false},
		{emulator.KVMStatus{DevExists: true, DevRW: true, CPUVirt: true}, true, "usable", false},
	} {
		c := kvmCheck(tc.kvm)
		if c.What != "kvm" || c.OK != tc.ok || c.Info != tc.info || c.Finding() != tc.finding {
			t.Errorf("kvmCheck(%+v) = %+v (finding %v), want ok %v, info %q, finding %v", tc.kvm, c, c.Finding(), tc.ok, tc.info, tc.finding)
		}
	}
}

func TestToolChecks(t *testing.T) {
	lookPath := func(bin string) (string, error) {
		switch bin {
		case "tmux":
			return "/usr/bin/tmux", nil
		case "passt":
			return "./passt", exec.ErrDot // found through "." in PATH: not used
		}
		return "", exec.ErrNotFound
	}
	checks := toolChecks(lookPath)
	if c := findCheck(t, checks, "tmux (tests)"); !c.OK || c.Info != "/usr/bin/tmux" || c.Fix != "" {
		t.Errorf("tmux: %+v", c)
	}
	if c := findCheck(t, checks, "VNC viewer"); c.OK || c.Info != "missing" || c.Fix != "sudo apt-get install tigervnc-viewer" {
		t.Errorf("vncviewer: %+v", c)
	}
	if c := findCheck(t, checks, "passt (--net sandbox)"); c.OK || c.Info != "./passt" || c.Fix != "sudo apt-get install passt" {
		t.Errorf("passt in .: %+v", c)
	}
	findCheck(t, checks, "xorriso (ISO building)")
}

// Doctor on a host with nothing on PATH: every QEMU and helper is a finding,
// and the lines about vlab's own files and folders follow.
func TestDoctor(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s := emptyStore(t)
	ctx := context.Background()
	checks, err := s.Doctor(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, ar := range emulator.Arches {
		if c := findCheck(t, checks, "qemu "+ar.String()); c.OK || !c.Finding() {
			t.Errorf("no qemu on PATH: %+v", c)
		}
	}
	if c := findCheck(t, checks, "tmux (tests)"); c.OK || c.Info != "missing" {
		t.Errorf("no tmux on PATH: %+v", c)
	}
	findCheck(t, checks, "bridge helper")
	if c := findCheck(t, checks, "permissions"); !c.OK || c.Info != "vlab's folders are 0700 and its files owner-only" {
		t.Errorf("a fresh library: %+v", c)
	}
	n := len(checks)
	if lib := checks[n-2]; lib != (Check{What: "library", OK: true, Info: filepath.Join(s.Dirs().Data, "machines")}) {
		t.Errorf("library line %+v", lib)
	}
	if run := checks[n-1]; run != (Check{What: "runtime dir", OK: true, Info: s.Dirs().Runtime + " (0700: QMP, VNC and serial sockets)"}) {
		t.Errorf("runtime dir line %+v", run)
	}
}

// A file others may read is a finding until --fix-permissions makes it
// private.
func TestDoctorPermissions(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s := emptyStore(t)
	loose := filepath.Join(s.Dirs().Data, "notes.txt")
	if err := os.WriteFile(loose, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	checks, err := s.Doctor(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Check{What: "permissions", Info: loose + " is 0644, others may access it", Fix: "vlab doctor --fix-permissions"}
	if c := findCheck(t, checks, "permissions"); c != want || !c.Finding() {
		t.Errorf("loose file: %+v, want %+v", c, want)
	}
	checks, err = s.Doctor(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	want = Check{What: "permissions", OK: true, Info: loose + " was 0644, now 0600"}
	if c := findCheck(t, checks, "permissions"); c != want {
		t.Errorf("fixed file: %+v, want %+v", c, want)
	}
	if fi, err := os.Stat(loose); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("after the fix %s is %v, %v", loose, fi.Mode(), err)
	}
}

// The JSON names are `vlab doctor --json`'s (docs/json.md): what, ok, info
// and fix only when there is one.
func TestCheckJSON(t *testing.T) {
	b, err := json.Marshal([]Check{{What: "kvm", OK: true, Info: "usable"}, {What: "tmux (tests)", Info: "missing", Fix: "sudo apt-get install tmux"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"what":"kvm","ok":true,"info":"usable"},{"what":"tmux (tests)","ok":false,"info":"missing","fix":"sudo apt-get install tmux"}]`
	if string(b) != want {
		t.Errorf("json %s\nwant %s", b, want)
	}
}
