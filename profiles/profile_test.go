package profiles

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"vlab/emulator"
)

// The profiles issue 4 asks for, by the name vlab gives them.
var required = []string{
	"linux-bios", "linux-uefi", "debian", "ubuntu", "fedora", "alpine", "archlinux",
	"debian-arm64", "alpine-arm64", "debian-ppc64el",
	"linux-ppc", "macos9", "macos9.0", "macosx10.4",
	"freedos", "msdos622", "win95", "win98", "win2000", "winxp", "win10", "win11",
	"freebsd", "openbsd", "haiku", "reactos",
}

func TestEmbeddedProfilesLoad(t *testing.T) {
	ps, err := loadFS(dataFS, "data")
	if err != nil {
		t.Fatalf("embedded profiles: %v", err)
	}
	names := Names()
	for _, want := range required {
		if !slices.Contains(names, want) {
			t.Errorf("profile %q missing (have %v)", want, names)
		}
	}
	if len(ps) != len(names) {
		t.Errorf("loadFS found %d profiles, Names %d", len(ps), len(names))
	}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestGet(t *testing.T) {
	p, err := Get("win98")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "win98" || p.Title == "" {
		t.Errorf("Get(win98) = %+v", p)
	}
	// The returned slices are copies: changing them leaves the data alone.
	p.Notes[0] = "changed"
	again, _ := Get("win98")
	if again.Notes[0] == "changed" {
		t.Error("Get returns shared slices")
	}
	_, err = Get("os2-warp")
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "vlab profiles") {
		t.Errorf("Get(os2-warp) error = %v, want ErrUnknown naming `vlab profiles`", err)
	}
}

func TestListOrder(t *testing.T) {
	ps := List()
	rank := map[string]int{}
	for i, f := range familyOrder {
		rank[f] = i
	}
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		if rank[a.Family] > rank[b.Family] || (a.Family == b.Family && a.Name > b.Name) {
			t.Errorf("List order: %s (%s) before %s (%s)", a.Name, a.Family, b.Name, b.Family)
		}
	}
}

// TestPeriodHardware pins what the issue and the peers' experience say each
// kind of guest needs.
func TestPeriodHardware(t *testing.T) {
	get := func(name string) Profile {
		t.Helper()
		p, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, n := range []string{"win95", "win98"} {
		p := get(n)
		if p.Machine != "pc" || p.VGA != "cirrus" || p.Sound != "sb16" || p.Input != emulator.InputPS2 || !p.RTCLocalTime {
			t.Errorf("%s: want pc, cirrus, sb16, ps2, rtc localtime; got %s %s %s %s %v", n, p.Machine, p.VGA, p.Sound, p.Input, p.RTCLocalTime)
		}
		if !slices.Contains([]string{"ne2k_pci", "ne2k_isa", "rtl8139", "pcnet"}, p.NICModel) {
			t.Errorf("%s: NIC %q is not a period NIC", n, p.NICModel)
		}
		if p.DiskBus != "ide" {
			t.Errorf("%s: disk bus %q, want ide", n, p.DiskBus)
		}
	}
	for _, n := range []string{"freedos", "msdos622"} {
		if p := get(n); p.Input != emulator.InputPS2 || p.DiskBus != "ide" || p.Machine != "pc" {
			t.Errorf("%s: want pc, ide, ps2; got %s %s %s", n, p.Machine, p.DiskBus, p.Input)
		}
	}
	for n, via := range map[string]string{"macos9": "via=pmu", "macos9.0": "via=pmu-adb", "macosx10.4": "via=pmu", "linux-ppc": "via=pmu"} {
		p := get(n)
		if p.Arch != emulator.ArchPPC || p.Machine != "mac99" || !slices.Contains(p.MachineOpts, via) || p.Firmware != FirmwareOpenBIOS {
			t.Errorf("%s: want ppc mac99 %s openbios; got %s %s %v %s", n, via, p.Arch, p.Machine, p.MachineOpts, p.Firmware)
		}
	}
	for _, n := range []string{"debian-arm64", "alpine-arm64"} {
		p := get(n)
		if p.Arch != emulator.ArchAArch64 || p.Machine != "virt" || p.EmulatorFirmware() != emulator.FirmwareUEFI || p.Console != "ttyAMA0" {
			t.Errorf("%s: want aarch64 virt uefi ttyAMA0; got %+v", n, p)
		}
	}
	if p := get("debian-ppc64el"); p.Arch != emulator.ArchPPC64 || p.Machine != "pseries" || p.Firmware != FirmwareSLOF || p.Console != "hvc0" {
		t.Errorf("debian-ppc64el: want ppc64 pseries slof hvc0; got %+v", p)
	}
	for _, n := range []string{"win10", "win11"} {
		p := get(n)
		if p.Machine != "q35" || p.EmulatorFirmware() != emulator.FirmwareUEFI || p.DiskBus == "virtio" || !p.RTCLocalTime {
			t.Errorf("%s: want q35 uefi, a disk bus Windows setup has drivers for, rtc localtime; got %+v", n, p)
		}
	}
	if p := get("win11"); !anyNote(p, "TPM optional") {
		t.Errorf("win11 notes do not say the TPM is optional: %q", p.Notes)
	}
	if p := get("linux-uefi"); p.EmulatorFirmware() != emulator.FirmwareUEFI {
		t.Error("linux-uefi is not UEFI")
	}
	if p := get("linux-bios"); p.EmulatorFirmware() != emulator.FirmwareBIOS {
		t.Error("linux-bios is not BIOS")
	}
	// Old systems people sandbox must say emulation does not isolate them.
	for _, n := range []string{"msdos622", "freedos", "win95", "win98", "win2000", "winxp", "macos9", "macos9.0", "macosx10.4", "reactos"} {
		if !anyNote(get(n), "TCG is not a security boundary") {
			t.Errorf("%s: notes lack the TCG security note", n)
		}
	}
}

func anyNote(p Profile, s string) bool {
	for _, n := range p.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func TestLoadFSRejectsBadData(t *testing.T) {
	good := `title = "T"
family = "linux"
arch = "x86_64"
machine = "q35"
cpus = 1
memory_mib = 512
disk_mib = 1024
firmware = "bios"
disk_bus = "virtio"
nic_model = "e1000"
vga = "std"
input = "usb-tablet"
`
	cases := []struct {
		name, data, want string
	}{
		{"unknown-key", good + "colour = \"red\"\n", `unknown key "colour"`},
		{"bad-firmware", strings.Replace(good, `"bios"`, `"slof"`, 1), `firmware "slof" does not boot x86_64`},
		{"bad-bus", strings.Replace(good, `"virtio"`, `"floppy"`, 1), `disk_bus "floppy" unknown`},
		{"bad-input", strings.Replace(good, `"usb-tablet"`, `"lightpen"`, 1), `input "lightpen" unknown`},
		{"bad-arch", strings.Replace(good, `"x86_64"`, `"vax"`, 1), `unknown arch "vax"`},
		{"no-memory", strings.Replace(good, "memory_mib = 512", "memory_mib = 0", 1), "memory_mib 0"},
		{"bad-boot", good + "boot_order = \"x\"\n", `boot_order "x"`},
		{"bad-glob", good + "osinfo = [\"[\"]\n", `osinfo glob "["`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{"d/" + c.name + ".toml": {Data: []byte(c.data)}, "d/ok.toml": {Data: []byte(good)}}
			_, err := loadFS(fsys, "d")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to mention %q", err, c.want)
			}
			if !strings.Contains(err.Error(), c.name) {
				t.Errorf("error %q does not name the profile %q", err, c.name)
			}
		})
	}
	ps, err := loadFS(fstest.MapFS{"d/ok.toml": {Data: []byte(good)}, "d/rules.toml": {Data: []byte("junk")}}, "d")
	if err != nil || len(ps) != 1 || ps[0].Name != "ok" {
		t.Errorf("good data: %v %v", ps, err)
	}
}
