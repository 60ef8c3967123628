package machine

import (
	"strings"
	"testing"

	"vlab/emulator"
	"vlab/profiles"
)

// TestValidateRules: one bad value per rule is refused with one line that
// names the field, the value and the fix; the nearest good value passes.
func TestValidateRules(t *testing.T) {
	cases := []struct {
		name  string
		bad   func(*Spec)
		good  func(*Spec)
		wants []string
	}{
		{"boot letter twice", func(s *Spec) { s.Boot.Order = "dd" }, func(s *Spec) { s.Boot.Order = "dcn" },
			[]string{"boot order", `"dd"`, "at most once"}},
		{"boot letter unknown", func(s *Spec) { s.Boot.Order = "cx" }, func(s *Spec) { s.Boot.Order = "nc" },
			[]string{"boot order", `"cx"`, "c (disk)"}},
		{"machine unknown", func(s *Spec) { s.Machine = "nosuch" }, func(s *Spec) { s.Machine = "pc-i440fx-7.2" },
			[]string{"machine", `"nosuch"`, "q35, pc, isapc"}},
		{"machine of another arch", func(s *Spec) { s.Machine = "mac99" }, func(s *Spec) { s.Machine = "isapc"; s.NICs = nil },
			[]string{"machine", `"mac99"`, "x86_64"}},
		{"machine with an option", func(s *Spec) { s.Machine = "pc,dumpdtb=/x" }, func(s *Spec) { s.Machine = "pc" },
			[]string{"machine", "dumpdtb", "q35"}},
		{"memory not whole MiB", func(s *Spec) { s.Memory = 17000001 }, func(s *Spec) { s.Memory = 17 * MiB },
			[]string{"memory", "17000001 bytes", "whole number of MiB", "16M"}},
		{"memory over mac99", func(s *Spec) { s.Arch, s.Machine, s.NICs, s.Memory = emulator.ArchPPC, "mac99", nil, 2*GiB+MiB },
			func(s *Spec) { s.Arch, s.Machine, s.NICs, s.Memory = emulator.ArchPPC, "mac99", nil, 2*GiB },
			[]string{"memory", "mac99", "2 GiB", "at most 2G"}},
		{"memory over isapc", func(s *Spec) { s.Machine, s.NICs, s.Memory = "isapc", nil, 4*GiB },
			func(s *Spec) { s.Machine, s.NICs, s.Memory = "isapc", nil, 3584*MiB },
			[]string{"memory", "isapc", "PAE", "3584M"}},
		{"memory over a 486", func(s *Spec) { s.Arch, s.Machine, s.CPU, s.Memory = emulator.ArchI386, "pc", "486", 4*GiB },
			func(s *Spec) { s.Arch, s.Machine, s.CPU, s.Memory = emulator.ArchI386, "pc", "pentium2", 4*GiB },
			[]string{"memory", "CPU has no PAE"}},
		{"memory over i386", func(s *Spec) { s.Arch, s.Machine, s.Memory = emulator.ArchI386, "pc", 65*GiB },
			func(s *Spec) { s.Arch, s.Machine, s.Memory = emulator.ArchI386, "pc", 64*GiB },
			[]string{"memory", "64 GiB"}},
		{"memory over virt", func(s *Spec) { s.Arch, s.Machine, s.Memory = emulator.ArchAArch64, "virt", 256*GiB },
			func(s *Spec) { s.Arch, s.Machine, s.Memory = emulator.ArchAArch64, "virt", 255*GiB },
			[]string{"memory", "255 GiB"}},
		{"nic model unknown", func(s *Spec) { s.NICs[0].Model = "nosuch" }, func(s *Spec) { s.NICs[0].Model = "e1000e" },
			[]string{"nic 0", "model", `"nosuch"`, "virtio-net-pci, e1000"}},
		{"nic model injection", func(s *Spec) { s.NICs[0].Model = "e1000,romfile=/etc/shadow" }, func(s *Spec) { s.NICs[0].Model = "e1000" },
			[]string{"nic 0", "romfile", "use one of"}},
		{"nic model of another board", func(s *Spec) { s.NICs[0].Model = "sungem" }, func(s *Spec) { s.NICs[0].Model = "ne2k_isa" },
			[]string{"nic 0", `"sungem"`, "q35"}},
		{"mac multicast", func(s *Spec) { s.NICs[0].MAC = "01:00:5e:00:00:01" }, func(s *Spec) { s.NICs[0].MAC = "52:54:00:00:00:01" },
			[]string{"nic 0", "mac", "multicast", "52:54:00"}},
		{"mac dashes", func(s *Spec) { s.NICs[0].MAC = "52-54-00-00-00-01" }, func(s *Spec) { s.NICs[0].MAC = "52:54:00:AB:cd:01" },
			[]string{"nic 0", "mac", "52:54:00:12:34:56"}},
		{"bridge injection", func(s *Spec) { s.NICs[0] = NICSpec{Mode: emulator.NetBridge, Bridge: "br0,helper=/bin/sh"} },
			func(s *Spec) { s.NICs[0] = NICSpec{Mode: emulator.NetBridge, Bridge: "vlab-br.0"} },
			[]string{"nic 0", "bridge", "helper", "15"}},
		{"tap too long", func(s *Spec) { s.NICs[0] = NICSpec{Mode: emulator.NetTap, Tap: strings.Repeat("t", 16)} },
			func(s *Spec) { s.NICs[0] = NICSpec{Mode: emulator.NetTap, Tap: strings.Repeat("t", 15)} },
			[]string{"nic 0", "tap", "longer than 15"}},
		{"tap slash", func(s *Spec) { s.NICs[0] = NICSpec{Mode: emulator.NetTap, Tap: "a/b"} },
			func(s *Spec) { s.NICs[0] = NICSpec{Mode: emulator.NetTap, Tap: "a_b"} },
			[]string{"nic 0", "tap", `"a/b"`}},
		{"machine opt file", func(s *Spec) { s.MachineOpts = []string{"dumpdtb=/tmp/x"} }, func(s *Spec) { s.MachineOpts = []string{"vmport=off"} },
			[]string{"machine option", `"dumpdtb"`, "via"}},
		{"machine opt comma", func(s *Spec) { s.MachineOpts = []string{"usb=on,dumpdtb=x"} }, func(s *Spec) { s.MachineOpts = []string{"usb=on"} },
			[]string{"machine option usb", "value"}},
		{"machine opt pflash", func(s *Spec) { s.MachineOpts = []string{"pflash0=x"} }, func(s *Spec) { s.MachineOpts = []string{"hpet=off"} },
			[]string{"machine option", "pflash0"}},
		{"cpu injection", func(s *Spec) { s.CPU = "max,romfile=/etc/shadow" }, func(s *Spec) { s.CPU = "max,-sse4.2,+avx,pmu=off" },
			[]string{"cpu", "romfile"}},
		{"vga unknown", func(s *Spec) { s.VGA = "std,romfile=/x" }, func(s *Spec) { s.VGA = "vmware" },
			[]string{"vga", "romfile", "cirrus"}},
		{"sound unknown", func(s *Spec) { s.Sound = "sb17" }, func(s *Spec) { s.Sound = "es1370" },
			[]string{"sound", `"sb17"`, "ac97"}},
		{"input unknown", func(s *Spec) { s.Input = "mouse" }, func(s *Spec) { s.Input = emulator.InputPS2 },
			[]string{"input", `"mouse"`, "usb-tablet"}},
		{"disk bus unknown", func(s *Spec) { s.Disks = []DiskSpec{{File: "a.qcow2", Size: GiB, Bus: "usb"}} },
			func(s *Spec) { s.Disks = []DiskSpec{{File: "a.qcow2", Size: GiB, Bus: "nvme"}} },
			[]string{"disk 0", "bus", `"usb"`, "virtio"}},
		{"linked_to path", func(s *Spec) { s.LinkedTo = "../base" }, func(s *Spec) { s.LinkedTo = "base" },
			[]string{"linked_to", "../base"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			good := NewSpec("vm", emulator.ArchX86_64)
			c.good(good)
			if err := good.Validate(); err != nil {
				t.Fatalf("the good value is refused: %v", err)
			}
			bad := NewSpec("vm", emulator.ArchX86_64)
			c.bad(bad)
			err := bad.Validate()
			if err == nil {
				t.Fatal("the bad value is accepted")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("want one error line, got %q", msg)
			}
			for _, w := range c.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// TestValidateProfiles: every OS profile's hardware passes the validator
// (the allow-lists hold what profiles/data uses).
func TestValidateProfiles(t *testing.T) {
	for _, p := range profiles.List() {
		spec := NewSpec("vm", emulator.ArchUnknown)
		spec.Machine = ""
		ApplyProfile(spec, p)
		if err := spec.Validate(); err != nil {
			t.Errorf("profile %s: %v", p.Name, err)
		}
	}
}

// TestValidateFor: the installed QEMU's machine list is consulted, and a
// probe without one is said to be so.
func TestValidateFor(t *testing.T) {
	h := &emulator.Host{Binaries: map[emulator.Arch]emulator.Binary{
		emulator.ArchX86_64: {Path: "/usr/bin/qemu-system-x86_64", Machines: []string{"q35", "pc", "pc-q35-7.2", "isapc"}},
		emulator.ArchPPC:    {Path: "/usr/bin/qemu-system-ppc"},
	}}
	spec := NewSpec("vm", emulator.ArchX86_64)
	if err := spec.ValidateFor(h); err != nil {
		t.Fatalf("q35 on a host with q35: %v", err)
	}
	spec.Machine = "pc-q35-9.9" // a q35 QEMU 7.2 does not have
	if err := spec.Validate(); err != nil {
		t.Fatalf("a versioned q35 is a valid shape: %v", err)
	}
	err := spec.ValidateFor(h)
	if err == nil || !strings.Contains(err.Error(), `"pc-q35-9.9"`) || !strings.Contains(err.Error(), "q35, pc, isapc") {
		t.Fatalf("unknown versioned machine: %v", err)
	}
	ppc := NewSpec("mac", emulator.ArchPPC)
	ppc.NICs = nil
	if err := ppc.ValidateFor(h); err != nil {
		t.Fatalf("a family name on a probe without a machine list: %v", err)
	}
	if err := emulator.CheckHostMachine(h, emulator.ArchPPC, "pseries-7.2"); err == nil || !strings.Contains(err.Error(), "listed no machine types") {
		t.Fatalf("a versioned name on a probe without a machine list: %v", err)
	}
	arm := NewSpec("arm", emulator.ArchAArch64)
	if err := arm.ValidateFor(h); err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-arm") {
		t.Fatalf("no qemu for the arch: %v", err)
	}
}
