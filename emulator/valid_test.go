package emulator

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// TestNICModelsExistInQEMU: every NIC model the allow-list offers for a
// machine is a network device the installed qemu-system binary of that arch
// builds in (its -device help), so an accepted model never fails at start.
func TestNICModelsExistInQEMU(t *testing.T) {
	name := regexp.MustCompile(`(?m)^name "([^"]+)"`)
	for _, a := range Arches {
		bin := fixture.Program(t, archTable[a].binary)
		out, err := exec.Command(bin, "-device", "help").Output()
		if err != nil {
			t.Fatalf("%s -device help: %v", bin, err)
		}
		have := map[string]bool{}
		for _, m := range name.FindAllStringSubmatch(string(out), -1) {
			have[m[1]] = true
		}
		for _, machine := range archTable[a].machines {
			for _, model := range NICModels(a, machine) {
				if !have[model] {
					t.Errorf("%s %s: nic model %s is not in %s -device help", a, machine, model, bin)
				}
			}
		}
	}
}

func TestCheckIfName(t *testing.T) {
	for _, ok := range []string{"br0", "vlab-br.0", "t", strings.Repeat("a", 15), "tap_1"} {
		if err := CheckIfName("bridge", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", strings.Repeat("a", 16), "a/b", "a:b", "a b", "a,b", "a=b", "a\tb", "é", "a\x00"} {
		if err := CheckIfName("bridge", bad); err == nil || !strings.Contains(err.Error(), "bridge") {
			t.Errorf("%q accepted or unnamed: %v", bad, err)
		}
	}
}

func TestCheckMAC(t *testing.T) {
	for _, ok := range []string{"52:54:00:12:34:56", "02:00:00:00:00:01", "FE:ff:00:00:00:00"} {
		if err := CheckMAC(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "52-54-00-12-34-56", "52:54:00:12:34", ""} {
		if err := CheckMAC(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckCPU(t *testing.T) {
	for _, ok := range []string{"", "max", "max,pauth-impdef=on", "pentium3,-sse", "qemu64,+ssse3,+sse4.1", "486", "cortex-a72", "power9_v2.2"} {
		if err := CheckCPU(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{",", "max,", "max,,x", "max,romfile=/etc/shadow", "max,a=b=c", "+max", "max,+-x", "max,+a=b", "max x", "-max"} {
		if err := CheckCPU(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMaxMemoryMiB(t *testing.T) {
	cases := []struct {
		arch         Arch
		machine, cpu string
		want         int
	}{
		{ArchPPC, "mac99", "", 2048},
		{ArchPPC, "", "", 2048},
		{ArchX86_64, "isapc", "", 3584},
		{ArchI386, "pc", "486", 3584},
		{ArchI386, "pc", "pentium,+x", 3584},
		{ArchI386, "pc", "pentium2", 64 << 10},
		{ArchX86_64, "pc-q35-7.2", "", 1 << 20},
		{ArchAArch64, "virt-7.2", "", 255 << 10},
		{ArchARM, "virt", "", 255 << 10},
		{ArchPPC64, "pseries", "", 0},
	}
	for _, c := range cases {
		if got, why := MaxMemoryMiB(c.arch, c.machine, c.cpu); got != c.want || (got != 0) != (why != "") {
			t.Errorf("MaxMemoryMiB(%s, %q, %q) = %d %q, want %d", c.arch, c.machine, c.cpu, got, why, c.want)
		}
	}
}

// TestParseNetDeviceHelp reads the network devices out of captured
// `qemu-system-ppc -device help` (QEMU 7.2).
func TestParseNetDeviceHelp(t *testing.T) {
	got := ParseNetDeviceHelp(readProbeData(t, "device-ppc.txt"))
	for _, want := range []string{"sungem", "e1000", "rtl8139", "virtio-net-pci", "ne2k_isa"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s missing from %v", want, got)
		}
	}
	for _, not := range []string{"VGA", "usb-tablet", "ide-hd", "virtio-net"} { // other classes; an alias
		if slices.Contains(got, not) {
			t.Errorf("%s is not a network device name, but parsed: %v", not, got)
		}
	}
}

// TestCheckHostNIC: a model the allow-list offers but the installed QEMU
// does not build in is refused by what the probe found; a probe without a
// device list leaves the allow-list to decide.
func TestCheckHostNIC(t *testing.T) {
	h := &Host{Binaries: map[Arch]Binary{ArchX86_64: {Path: "/q", NICs: []string{"e1000", "virtio-net-pci"}}, ArchPPC: {Path: "/p"}}}
	if err := CheckHostNIC(h, ArchX86_64, "q35", "e1000"); err != nil {
		t.Fatal(err)
	}
	if err := CheckHostNIC(h, ArchX86_64, "q35", ""); err != nil {
		t.Fatalf("the default model: %v", err)
	}
	err := CheckHostNIC(h, ArchX86_64, "pc", "vmxnet3")
	if err == nil || !strings.Contains(err.Error(), `"vmxnet3"`) || !strings.Contains(err.Error(), "e1000, virtio-net-pci") {
		t.Fatalf("a model the binary lacks: %v", err)
	}
	if err := CheckHostNIC(h, ArchPPC, "mac99", "sungem"); err != nil {
		t.Fatalf("no device list: %v", err)
	}
}
