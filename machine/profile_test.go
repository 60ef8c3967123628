package machine

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"vlab/emulator"
	"vlab/profiles"
)

func mustProfile(t *testing.T, name string) profiles.Profile {
	t.Helper()
	p, err := profiles.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyProfileFillsZeroFields(t *testing.T) {
	p := mustProfile(t, "win98")
	spec := &Spec{
		Name:    "retro",
		Display: emulator.DisplayVNC,
		Disks:   []DiskSpec{{File: "disk0.qcow2"}},
		NICs:    []NICSpec{{Mode: emulator.NetUser}},
	}
	ApplyProfile(spec, p)
	want := Spec{
		Name: "retro", Display: emulator.DisplayVNC, Profile: "win98", Arch: emulator.ArchI386, Machine: "pc", CPU: "pentium2", CPUs: 1,
		Memory: 256 * MiB, Accel: emulator.AccelTCG, Firmware: emulator.FirmwareBIOS, Input: emulator.InputPS2,
		VGA: "cirrus", Sound: "sb16", RTCLocal: true,
	}
	got := *spec
	got.Disks, got.NICs, got.Notes, got.MachineOpts = nil, nil, "", nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ApplyProfile:\n got %+v\nwant %+v", got, want)
	}
	if d := spec.Disks[0]; d.Bus != "ide" || d.Size != 4*GiB {
		t.Errorf("disk = %+v, want ide 4G", d)
	}
	if n := spec.NICs[0]; n.Model != "ne2k_pci" {
		t.Errorf("nic model = %q, want ne2k_pci", n.Model)
	}
	if !strings.Contains(spec.Notes, "TCG is not a security boundary") {
		t.Errorf("notes not copied: %q", spec.Notes)
	}
	if err := spec.Validate(); err != nil {
		t.Errorf("spec from profile does not validate: %v", err)
	}
}

func TestApplyProfileKeepsUserChoices(t *testing.T) {
	p := mustProfile(t, "macos9")
	spec := &Spec{
		Name: "mac", Arch: emulator.ArchPPC, Machine: "g3beige", CPUs: 1, Memory: 768 * MiB,
		VGA: "virtio", Notes: "mine", Input: emulator.InputUSBTablet,
		Disks: []DiskSpec{{File: "d.qcow2", Size: GiB, Bus: "scsi"}},
		NICs:  []NICSpec{{Mode: emulator.NetUser, Model: "e1000"}},
	}
	ApplyProfile(spec, p)
	if spec.Machine != "g3beige" || len(spec.MachineOpts) != 0 {
		t.Errorf("machine %q opts %v: the user's machine must not get mac99's via=", spec.Machine, spec.MachineOpts)
	}
	if spec.Memory != 768*MiB || spec.VGA != "virtio" || spec.Notes != "mine" || spec.Input != emulator.InputUSBTablet {
		t.Errorf("user fields overwritten: %+v", spec)
	}
	if spec.Disks[0].Size != GiB || spec.Disks[0].Bus != "scsi" || spec.NICs[0].Model != "e1000" {
		t.Errorf("user disk/nic overwritten: %+v %+v", spec.Disks, spec.NICs)
	}
	if spec.CPUs != 1 || !spec.RTCLocal || spec.Profile != "macos9" || spec.Firmware != emulator.FirmwareDefault {
		t.Errorf("unset fields not filled: cpus %d rtc %v profile %q firmware %q", spec.CPUs, spec.RTCLocal, spec.Profile, spec.Firmware)
	}
}

func TestApplyProfileMachineOpts(t *testing.T) {
	spec := &Spec{Name: "m"}
	ApplyProfile(spec, mustProfile(t, "macos9.0"))
	if spec.Machine != "mac99" || !slices.Equal(spec.MachineOpts, []string{"via=pmu-adb"}) {
		t.Errorf("machine %q opts %v, want mac99 via=pmu-adb", spec.Machine, spec.MachineOpts)
	}
	// The profile's slice is not shared with the spec.
	spec.MachineOpts[0] = "via=cuda"
	if p := mustProfile(t, "macos9.0"); p.MachineOpts[0] != "via=pmu-adb" {
		t.Error("ApplyProfile shares the profile's slice")
	}
}

func TestApplyProfileOtherArch(t *testing.T) {
	// An aarch64 VM given an x86 profile takes only the sizes: the x86
	// hardware would not exist on its machine.
	spec := &Spec{Name: "a", Arch: emulator.ArchAArch64}
	ApplyProfile(spec, mustProfile(t, "win10"))
	if spec.Arch != emulator.ArchAArch64 || spec.Machine != "" || spec.Firmware != "" || spec.VGA != "" {
		t.Errorf("x86 hardware applied to an aarch64 vm: %+v", spec)
	}
	if spec.Memory != 4*GiB || spec.CPUs != 2 {
		t.Errorf("sizes not applied: %s %d", spec.Memory, spec.CPUs)
	}
	// An i386 profile suits an x86_64 VM.
	spec = &Spec{Name: "b", Arch: emulator.ArchX86_64}
	ApplyProfile(spec, mustProfile(t, "winxp"))
	if spec.Arch != emulator.ArchX86_64 || spec.Machine != "pc" || spec.VGA != "cirrus" {
		t.Errorf("i386 profile not applied to x86_64 vm: %+v", spec)
	}
}

func TestConsoleFor(t *testing.T) {
	cases := []struct {
		spec Spec
		want string
	}{
		{Spec{Arch: emulator.ArchX86_64}, "ttyS0"},
		{Spec{Arch: emulator.ArchAArch64}, "ttyAMA0"},
		{Spec{Arch: emulator.ArchPPC64}, "hvc0"},
		{Spec{Arch: emulator.ArchPPC}, "ttyPZ0"},
		{Spec{Arch: emulator.ArchX86_64, Profile: "freebsd"}, "ttyu0"},
		{Spec{Arch: emulator.ArchAArch64, Profile: "freebsd"}, "ttyAMA0"}, // profile of another arch
		{Spec{Arch: emulator.ArchX86_64, Profile: "gone"}, "ttyS0"},
	}
	for _, c := range cases {
		if got := ConsoleFor(&c.spec); got != c.want {
			t.Errorf("ConsoleFor(%s, %q) = %q, want %q", c.spec.Arch, c.spec.Profile, got, c.want)
		}
	}
}
