package emulator

import (
	"errors"
	"fmt"
	"slices"
)

// ErrKVMUnavailable is wrapped by ChooseAccel (and Cmdline) when KVM was
// asked for but cannot run the guest; the message names the cause and the fix.
var ErrKVMUnavailable = errors.New("kvm unavailable")

// TCG translation-cache sizing. QEMU's default since 5.0 is 1 GiB per guest,
// which has OOM-killed QEMU on small hosts; vlab uses a sixteenth of the
// host's RAM, clamped to [tbMinMiB, tbMaxMiB], and tbUnknownMiB when the
// host's RAM is unknown. 512 MiB holds the hot code of any desktop guest.
const (
	tbMinMiB     = 64
	tbMaxMiB     = 512
	tbUnknownMiB = 256
)

// TBSizeMiB is the TCG translation cache vlab gives a guest on a host with
// memTotalMiB of RAM: memTotalMiB/16 clamped to [64, 512] MiB (256 MiB when
// the host's RAM is unknown).
func TBSizeMiB(memTotalMiB int) int {
	if memTotalMiB <= 0 {
		return tbUnknownMiB
	}
	return min(max(memTotalMiB/16, tbMinMiB), tbMaxMiB)
}

// kvmCanRun reports whether a KVM host of arch host can run a guest of arch
// guest: the same arch, or a 32-bit x86 guest on an x86_64 host.
func kvmCanRun(host, guest Arch) bool {
	return host == guest || (host == ArchX86_64 && guest == ArchI386)
}

// ChooseAccel picks the accelerator for a guest of arch on h.
//
// KVM is used only when the guest arch matches the host (an x86_64 host also
// runs i386 guests), /dev/kvm opens read-write, the CPU exposes hardware
// virtualization (vmx/svm on x86) and the qemu binary lists kvm. Otherwise
// the guest runs under TCG, with thread=multi where the target supports MTTCG
// and a translation cache sized by TBSizeMiB. The choice carries one
// sentence saying why.
//
// want=AccelKVM where KVM cannot work returns an error wrapping
// ErrKVMUnavailable that names the cause and the fix; want=AccelTCG always
// succeeds. A binary missing from h is not an error here (Cmdline reports it).
func ChooseAccel(arch Arch, want Accel, h *Host) (AccelChoice, error) {
	info, ok := archTable[arch]
	if !ok {
		return AccelChoice{}, fmt.Errorf("choose accel: unknown arch %q", arch)
	}
	if h == nil {
		return AccelChoice{}, errors.New("choose accel: no host facts (probe the host first)")
	}
	tcg := func(reason string) AccelChoice {
		return AccelChoice{Accel: AccelTCG, Reason: reason, MultiThread: info.mttcg, TBSizeMiB: TBSizeMiB(h.MemTotalMiB)}
	}
	if want == AccelTCG {
		return tcg("TCG: requested"), nil
	}
	cause, fix := kvmBlocker(arch, info, h)
	if cause == "" {
		return AccelChoice{Accel: AccelKVM, Reason: "KVM: /dev/kvm opens read-write, the CPU has hardware virtualization and " + info.binary + " supports kvm"}, nil
	}
	if want == AccelKVM {
		return AccelChoice{}, fmt.Errorf("%w for %s guests: %s: %s", ErrKVMUnavailable, arch, cause, fix)
	}
	return tcg("TCG: " + cause), nil
}

// kvmBlocker returns why KVM cannot run arch guests on h ("" when it can)
// and what a person can do about it.
func kvmBlocker(arch Arch, info archInfo, h *Host) (cause, fix string) {
	switch {
	case !kvmCanRun(h.Arch, arch):
		return fmt.Sprintf("KVM on this %s host cannot run %s guests", h.Arch, arch), "use --accel tcg"
	case !h.KVM.DevExists:
		return "/dev/kvm does not exist (no KVM on this host)", "enable virtualization in the firmware setup and load kvm_intel or kvm_amd, or use --accel tcg"
	case !h.KVM.DevRW:
		why := ""
		if h.KVM.DevErr != "" {
			why = " (" + h.KVM.DevErr + ")"
		}
		return "/dev/kvm exists but does not open read-write" + why, "add your user to the kvm group (sudo usermod -aG kvm $USER, then log in again), or use --accel tcg"
	case !h.KVM.CPUVirt:
		return "/dev/kvm opens but this CPU exposes no vmx/svm (nested or paravirtual KVM cannot run ordinary guests)", "use --accel tcg"
	}
	// An unprobed accel list (a hand-built Host) does not block KVM.
	if b, ok := h.Binaries[arch]; ok && len(b.Accels) > 0 && !slices.Contains(b.Accels, "kvm") {
		return info.binary + " was built without KVM support", "install a qemu build with KVM, or use --accel tcg"
	}
	return "", ""
}
