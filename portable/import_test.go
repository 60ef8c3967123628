package portable

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vlab/emulator"
	"vlab/internal/fixture"
	"vlab/internal/ovafixture"
	"vlab/machine"
)

func testStore(t *testing.T) *machine.Store {
	t.Helper()
	root := filepath.Join(t.TempDir(), "a home")
	s, err := machine.Open(machine.Dirs{
		Config:  filepath.Join(root, "config"),
		Data:    filepath.Join(root, "data"),
		Runtime: filepath.Join(root, "run"),
		State:   filepath.Join(root, "state"),
		Cache:   filepath.Join(root, "cache"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// firstLine reads the first line of the disk image at path (any format).
func firstLine(t *testing.T, path string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sector")
	if b, err := exec.Command("qemu-img", "dd", "-O", "raw", "bs=512", "count=1", "if="+path, "of="+out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img dd %s: %v: %s", path, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return line
}

// vendorCases are the fixture packages: one per vendor, two disks, EFI.
func vendorCases() []struct {
	name, vendor string
	vm           ovafixture.VM
	memory       machine.Size
	bus, nic     string
	profile      string
	efi          bool
	macs         []string
} {
	return []struct {
		name, vendor string
		vm           ovafixture.VM
		memory       machine.Size
		bus, nic     string
		profile      string
		efi          bool
		macs         []string
	}{
		{"vmware", "vmware", ovafixture.VM{Name: "vmw-deb", CPUs: 2, Memory: "768", Units: "byte * 2^20",
			Disks: []ovafixture.Disk{{Marker: "VMW-MARK-1", Size: 64 << 20}}, NICs: []string{"PCNet32"}, OSID: 96, OSType: "debian10_64Guest"},
			768 * machine.MiB, "scsi", "pcnet", "debian", false, nil},
		{"vbox", "vbox", ovafixture.VM{Name: "vbox-xp", CPUs: 1, Memory: "512", Units: "MegaBytes",
			Disks: []ovafixture.Disk{{Marker: "VBOX-MARK-1", Size: 32 << 20}}, NICs: []string{"E1000"}, OSID: 67, OSType: "WindowsXP",
			VBoxMACs: []string{"0800271A2B3C"}},
			512 * machine.MiB, "sata", "e1000", "winxp", false, []string{"08:00:27:1a:2b:3c"}},
		{"two-disks", "vmware", ovafixture.VM{Name: "two", CPUs: 4, Memory: "1", Units: "byte * 2^30",
			Disks: []ovafixture.Disk{{Marker: "TWO-MARK-A", Size: 16 << 20}, {Marker: "TWO-MARK-B", Size: 48 << 20}},
			NICs:  []string{"E1000e", "VmxNet3"}, OSID: 101, OSType: "otherLinux64Guest"},
			machine.GiB, "scsi", "e1000e", "linux-bios", false, nil},
		{"efi-vbox", "vbox", ovafixture.VM{Name: "efi", CPUs: 2, Memory: "1024", Units: "MegaBytes",
			Disks: []ovafixture.Disk{{Marker: "EFI-MARK", Size: 32 << 20}}, NICs: []string{"virtio"}, EFI: true, OSID: 94, OSType: "Ubuntu_64"},
			machine.GiB, "sata", "virtio-net-pci", "ubuntu", true, nil},
		{"efi-vmware", "vmware", ovafixture.VM{Name: "efi-w", CPUs: 1, Memory: "256", Units: "byte * 2^20",
			Disks: []ovafixture.Disk{{Marker: "EFIW-MARK", Size: 16 << 20}}, NICs: []string{"E1000"}, EFI: true, OSID: 1, OSType: "otherGuest64"},
			256 * machine.MiB, "scsi", "e1000", "linux-uefi", true, nil},
	}
}

// TestImportVendorPackages imports OVAs written as VMware and VirtualBox
// write them and checks that the hardware, the firmware, the OS profile
// and every disk's data come across.
func TestImportVendorPackages(t *testing.T) {
	fixture.Program(t, "qemu-img")
	fixture.Program(t, "qemu-system-x86_64")
	for _, c := range vendorCases() {
		t.Run(c.name, func(t *testing.T) {
			s := testStore(t)
			ova := filepath.Join(t.TempDir(), c.vm.Name+".ova")
			vm := c.vm
			ovafixture.OVA(t, ova, c.vendor, &vm)
			res, err := Import(context.Background(), s, ova, ImportOptions{})
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if res.Manifest == "" || len(res.VMs) != 1 {
				t.Fatalf("manifest %q, %d VMs", res.Manifest, len(res.VMs))
			}
			spec, err := s.Load(vm.Name)
			if err != nil {
				t.Fatal(err)
			}
			if spec.CPUs != vm.CPUs || spec.Memory != c.memory {
				t.Errorf("cpus %d memory %s, want %d %s", spec.CPUs, spec.Memory, vm.CPUs, c.memory)
			}
			if spec.Profile != c.profile {
				t.Errorf("profile %q, want %q", spec.Profile, c.profile)
			}
			if got := spec.Firmware == emulator.FirmwareUEFI; got != c.efi {
				t.Errorf("firmware %q, want uefi=%v", spec.Firmware, c.efi)
			}
			if len(spec.NICs) != len(vm.NICs) || spec.NICs[0].Model != c.nic {
				t.Errorf("nics %+v, want %d with model %s first", spec.NICs, len(vm.NICs), c.nic)
			}
			for i, mac := range c.macs {
				if spec.NICs[i].MAC != mac {
					t.Errorf("nic %d mac %q, want %q", i, spec.NICs[i].MAC, mac)
				}
			}
			if len(spec.Disks) != len(vm.Disks) {
				t.Fatalf("%d disks, want %d", len(spec.Disks), len(vm.Disks))
			}
			p := s.Paths(vm.Name)
			for i, d := range spec.Disks {
				if int64(d.Size) != vm.Disks[i].Size || d.Bus != c.bus || d.Format != "qcow2" {
					t.Errorf("disk %d: %+v, want size %d bus %s qcow2", i, d, vm.Disks[i].Size, c.bus)
				}
				if got := firstLine(t, p.DiskPath(d.File)); got != vm.Disks[i].Marker {
					t.Errorf("disk %d starts with %q, want the marker %q", i, got, vm.Disks[i].Marker)
				}
			}
			if c.efi {
				if _, err := os.Stat(filepath.Join(p.Dir, "efivars.qcow2")); err != nil {
					t.Errorf("an EFI import has no UEFI vars: %v", err)
				}
			}
		})
	}
}
