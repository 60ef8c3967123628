package emulator

import (
	"errors"
	"os"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// kvmHost is an x86_64 host where KVM works, with every binary.
func kvmHost() *Host {
	h := &Host{
		Arch:        ArchX86_64,
		Binaries:    map[Arch]Binary{},
		KVM:         KVMStatus{DevExists: true, DevRW: true, CPUVirt: true},
		MemTotalMiB: 16384,
	}
	for _, a := range Arches {
		accels := []string{"tcg"}
		if a == ArchX86_64 || a == ArchI386 {
			accels = []string{"tcg", "kvm"}
		}
		h.Binaries[a] = Binary{Path: "/usr/bin/" + archTable[a].binary, Version: "7.2.22", Accels: accels}
	}
	return h
}

func TestChooseAccel(t *testing.T) {
	type tc struct {
		name   string
		arch   Arch
		want   Accel
		host   func(h *Host)
		accel  Accel  // expected choice when no error
		reason string // substring of the Reason, or of the error
		err    bool
		multi  bool
	}
	cases := []tc{
		{name: "kvm works", arch: ArchX86_64, accel: AccelKVM, reason: "KVM: /dev/kvm opens read-write"},
		{name: "kvm works for i386 on x86_64", arch: ArchI386, accel: AccelKVM, reason: "KVM:"},
		{name: "kvm asked and works", arch: ArchX86_64, want: AccelKVM, accel: AccelKVM, reason: "KVM:"},
		{name: "tcg asked", arch: ArchX86_64, want: AccelTCG, accel: AccelTCG, reason: "TCG: requested", multi: true},
		{name: "tcg asked, no kvm at all", arch: ArchPPC, want: AccelTCG, host: func(h *Host) { h.KVM = KVMStatus{} }, accel: AccelTCG, reason: "TCG: requested"},
		{name: "foreign arch", arch: ArchAArch64, accel: AccelTCG, reason: "TCG: KVM on this x86_64 host cannot run aarch64 guests", multi: true},
		{name: "foreign arch ppc64", arch: ArchPPC64, accel: AccelTCG, reason: "ppc64 guests", multi: true},
		{name: "32-bit ppc has no mttcg", arch: ArchPPC, accel: AccelTCG, reason: "TCG:"},
		{name: "no /dev/kvm", arch: ArchX86_64, host: func(h *Host) { h.KVM = KVMStatus{CPUVirt: true} }, accel: AccelTCG, reason: "TCG: /dev/kvm does not exist", multi: true},
		{name: "no permission", arch: ArchX86_64, host: func(h *Host) {
			h.KVM = KVMStatus{DevExists: true, DevErr: "open /dev/kvm: permission denied", CPUVirt: true}
		}, accel: AccelTCG, reason: "TCG: /dev/kvm exists but does not open read-write (open /dev/kvm: permission denied)", multi: true},
		{name: "pvm: no vmx/svm", arch: ArchX86_64, host: func(h *Host) { h.KVM.CPUVirt = false }, accel: AccelTCG,
			reason: "TCG: /dev/kvm opens but this CPU exposes no vmx/svm (nested or paravirtual KVM cannot run ordinary guests)", multi: true},
		{name: "binary without kvm", arch: ArchX86_64, host: func(h *Host) {
			b := h.Binaries[ArchX86_64]
			b.Accels = []string{"tcg"}
			h.Binaries[ArchX86_64] = b
		}, accel: AccelTCG, reason: "TCG: qemu-system-x86_64 was built without KVM support", multi: true},
		{name: "arm64 host runs aarch64 under kvm", arch: ArchAArch64, host: func(h *Host) {
			h.Arch = ArchAArch64
			b := h.Binaries[ArchAArch64]
			b.Accels = []string{"tcg", "kvm"}
			h.Binaries[ArchAArch64] = b
		}, accel: AccelKVM, reason: "KVM:"},
		{name: "unprobed accel list does not block kvm", arch: ArchX86_64, host: func(h *Host) {
			h.Binaries[ArchX86_64] = Binary{Path: "/usr/bin/qemu-system-x86_64"}
		}, accel: AccelKVM, reason: "KVM:"},

		{name: "kvm asked, foreign arch", arch: ArchPPC64, want: AccelKVM, err: true, reason: "KVM on this x86_64 host cannot run ppc64 guests: use --accel tcg"},
		{name: "kvm asked, pvm", arch: ArchX86_64, want: AccelKVM, host: func(h *Host) { h.KVM.CPUVirt = false }, err: true, reason: "no vmx/svm"},
		{name: "kvm asked, no permission", arch: ArchX86_64, want: AccelKVM, host: func(h *Host) { h.KVM.DevRW = false }, err: true, reason: "add your user to the kvm group"},
		{name: "kvm asked, no /dev/kvm", arch: ArchI386, want: AccelKVM, host: func(h *Host) { h.KVM = KVMStatus{} }, err: true, reason: "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := kvmHost()
			if c.host != nil {
				c.host(h)
			}
			got, err := ChooseAccel(c.arch, c.want, h)
			if c.err {
				if !errors.Is(err, ErrKVMUnavailable) || !strings.Contains(err.Error(), c.reason) {
					t.Fatalf("ChooseAccel = %+v, %v; want an ErrKVMUnavailable error containing %q", got, err, c.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Accel != c.accel || !strings.Contains(got.Reason, c.reason) {
				t.Errorf("ChooseAccel = %+v; want %s with reason containing %q", got, c.accel, c.reason)
			}
			if got.Accel == AccelTCG {
				if got.MultiThread != c.multi || got.TBSizeMiB != TBSizeMiB(h.MemTotalMiB) {
					t.Errorf("ChooseAccel = %+v; want MultiThread %v, TBSizeMiB %d", got, c.multi, TBSizeMiB(h.MemTotalMiB))
				}
			} else if got.MultiThread || got.TBSizeMiB != 0 {
				t.Errorf("KVM choice carries TCG settings: %+v", got)
			}
		})
	}
}

func TestChooseAccelBadInput(t *testing.T) {
	if _, err := ChooseAccel(ArchX86_64, AccelAuto, nil); err == nil {
		t.Error("ChooseAccel with a nil host succeeded")
	}
	if _, err := ChooseAccel(ArchUnknown, AccelAuto, kvmHost()); err == nil {
		t.Error("ChooseAccel for an unknown arch succeeded")
	}
}

func TestTBSizeMiB(t *testing.T) {
	cases := map[int]int{0: 256, -5: 256, 512: 64, 1024: 64, 2048: 128, 4096: 256, 8192: 512, 24105: 512, 1 << 20: 512}
	for mem, want := range cases {
		if got := TBSizeMiB(mem); got != want {
			t.Errorf("TBSizeMiB(%d) = %d, want %d", mem, got, want)
		}
	}
}

// TestChooseAccelThisHost: on a host whose /dev/kvm opens but whose CPU
// shows no vmx/svm (the PVM build machines), auto must pick TCG and say why.
func TestChooseAccelThisHost(t *testing.T) {
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || HostArch() != ArchX86_64 {
		t.Skip("needs an x86_64 Linux host")
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("/dev/kvm does not open here (%v): the PVM case does not apply", err)
	}
	f.Close()
	if ParseCPUInfoVirt(string(cpuinfo)) {
		t.Skip("this CPU has vmx/svm: KVM works here, the PVM case does not apply")
	}
	fixture.Program(t, "qemu-system-x86_64")
	h, err := Probe(testCtxProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ChooseAccel(ArchX86_64, AccelAuto, h)
	if err != nil {
		t.Fatal(err)
	}
	want := AccelChoice{
		Accel:       AccelTCG,
		Reason:      "TCG: /dev/kvm opens but this CPU exposes no vmx/svm (nested or paravirtual KVM cannot run ordinary guests)",
		MultiThread: true,
		TBSizeMiB:   TBSizeMiB(h.MemTotalMiB),
	}
	if got != want {
		t.Errorf("ChooseAccel(x86_64, auto) here = %+v\nwant %+v", got, want)
	}
	if _, err := ChooseAccel(ArchX86_64, AccelKVM, h); !errors.Is(err, ErrKVMUnavailable) || !strings.Contains(err.Error(), "use --accel tcg") {
		t.Errorf("ChooseAccel(x86_64, kvm) here: %v; want ErrKVMUnavailable naming --accel tcg", err)
	}
}
