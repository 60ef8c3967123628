package e2e

import (
	"archive/tar"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"vlab/internal/fixture"
	"vlab/internal/ovafixture"
)

type importOut struct {
	VMs []struct {
		Name        string
		Profile     string
		CPUs        int
		MemoryBytes int64 `json:"memory_bytes"`
		Firmware    string
		Disks       []struct {
			SizeBytes int64 `json:"size_bytes"`
			Bus       string
		}
		NICs []struct {
			Model string
			MAC   string
		}
		Dropped []string
	}
	Manifest string
}

// bootImported points VM name at the fixture kernel (an imported VM has no
// kernel of its own: the appliance's disk is data here) and starts it under
// BIOS.
func (e *env) bootImported(name string, params ...string) {
	e.t.Helper()
	e.bootImportedOn(name, "bios", params...)
}

// bootImportedOn is bootImported with the firmware to boot: "bios", "uefi",
// or "" to keep the firmware the import set.
func (e *env) bootImportedOn(name, firmware string, params ...string) {
	e.t.Helper()
	fixture.Program(e.t, "qemu-system-x86_64")
	kernel, initrd := fixture.Guest(e.t, "x86_64")
	args := []string{"edit", name, "--kernel", kernel, "--initrd", initrd, "--append", fixture.Append("x86_64", params...),
		"--display", "none", "--net", "none"}
	if firmware != "" {
		args = append(args, "--firmware", firmware)
	}
	e.ok(args...)
	e.ok("start", name)
	e.waitSerial(name, "VLAB-BOOT-OK")
}

// needAHCI stops a test whose guest must see sata disks when the x86_64
// fixture's initramfs predates the ahci module (scripts/fixtures.sh loads
// it since the VirtualBox import test).
func needAHCI(t *testing.T) {
	t.Helper()
	kernel, _ := fixture.Guest(t, "x86_64")
	order, err := os.ReadFile(filepath.Join(filepath.Dir(kernel), "modules.order"))
	if err != nil || !strings.Contains(string(order), "/ahci.ko") {
		fixture.Need(t, "the x86_64 fixture has no ahci module (sata disks): run make fixtures")
	}
}

// TestImportVendorOVAsBoot: VMs imported from both vendors boot. A
// VirtualBox OVA (SATA/AHCI, two disks, SHA1 manifest) imports with its
// hardware and the guest reads each disk's marker from its own SATA disk;
// a VMware OVA whose firmware is EFI imports as uefi and boots under UEFI.
func TestImportVendorOVAsBoot(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-img")
	t.Run("vbox-sata-two-disks", func(t *testing.T) {
		t.Parallel()
		needAHCI(t)
		e := newEnv(t)
		ova := filepath.Join(e.home, "vbox appliance.ova")
		vm := ovafixture.VM{Name: "vboxapp", CPUs: 2, Memory: "384", Units: "MegaBytes",
			Disks: []ovafixture.Disk{{Marker: "E2E-VBOX-DISK1", Size: 24 << 20}, {Marker: "E2E-VBOX-DISK2", Size: 16 << 20}},
			NICs:  []string{"E1000", "E1000"}, OSID: 96, OSType: "Debian_64",
			VBoxMACs: []string{"080027A1B2C3", "080027D4E5F6"}}
		ovafixture.OVA(t, ova, "vbox", &vm)
		var out importOut
		if err := json.Unmarshal([]byte(e.ok("import", ova, "--json")), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.VMs) != 1 || out.Manifest != "vboxapp.mf" {
			t.Fatalf("import: %+v", out)
		}
		got := out.VMs[0]
		if got.Name != "vboxapp" || got.CPUs != 2 || got.MemoryBytes != 384<<20 || got.Firmware == "uefi" ||
			len(got.Disks) != 2 || got.Disks[0].SizeBytes != 24<<20 || got.Disks[1].SizeBytes != 16<<20 ||
			got.Disks[0].Bus != "sata" || got.Disks[1].Bus != "sata" ||
			len(got.NICs) != 2 || got.NICs[0].Model != "e1000" || got.NICs[1].Model != "e1000" ||
			got.NICs[0].MAC != "08:00:27:a1:b2:c3" || got.NICs[1].MAC != "08:00:27:d4:e5:f6" {
			t.Errorf("imported %+v", got)
		}
		e.bootImported("vboxapp")
		// Both disks hang off q35's AHCI controller, ports 0 and 1: the
		// kernel's libata names them sda and sdb in port order.
		e.shell("vboxapp", `echo "R1=$(head -n 1 /dev/sda) R2=$(head -n 1 /dev/sdb)"`,
			regexp.MustCompile(`R1=E2E-VBOX-DISK1 R2=E2E-VBOX-DISK2`))
		e.ok("stop", "vboxapp")
	})
	t.Run("vmware-efi", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ova := filepath.Join(e.home, "efi.ova")
		vm := ovafixture.VM{Name: "efiapp", CPUs: 1, Memory: "256", Units: "byte * 2^20", EFI: true,
			Disks: []ovafixture.Disk{{Marker: "E2E-VMW-EFI", Size: 16 << 20}}, NICs: []string{"VmxNet3"},
			OSID: 96, OSType: "debian11_64Guest"}
		ovafixture.OVA(t, ova, "vmware", &vm)
		var out importOut
		if err := json.Unmarshal([]byte(e.ok("import", ova, "--json")), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.VMs) != 1 {
			t.Fatalf("import: %+v", out)
		}
		got := out.VMs[0]
		if got.Name != "efiapp" || got.Firmware != "uefi" || got.MemoryBytes != 256<<20 ||
			len(got.Disks) != 1 || got.Disks[0].Bus != "scsi" || got.Disks[0].SizeBytes != 16<<20 {
			t.Errorf("imported %+v", got)
		}
		e.bootImportedOn("efiapp", "") // keeps the imported uefi
		if spec, _ := os.ReadFile(filepath.Join(e.show("efiapp").Dir, "machine.toml")); !strings.Contains(string(spec), `firmware = "uefi"`) {
			t.Errorf("booted VM's machine.toml has no uefi firmware:\n%s", spec)
		}
		e.shell("efiapp", `echo "R=$(head -n 1 /dev/sda) EFI=$(ls -d /sys/firmware/efi 2>/dev/null)"`,
			regexp.MustCompile(`R=E2E-VMW-EFI EFI=/sys/firmware/efi`))
		e.ok("stop", "efiapp")
	})
}

// TestImportOVABoots: a VMware-written OVA (LSI Logic SCSI, PCNet32)
// imports through `vlab import` with its hardware, and the VM boots with
// the appliance's disk data on its SCSI disk.
func TestImportOVABoots(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-img")
	e := newEnv(t)
	ova := filepath.Join(e.home, "my appliance.ova")
	vm := ovafixture.VM{Name: "appliance", CPUs: 2, Memory: "640", Units: "byte * 2^20",
		Disks: []ovafixture.Disk{{Marker: "E2E-VMW-MARK", Size: 32 << 20}}, NICs: []string{"PCNet32", "E1000"},
		OSID: 96, OSType: "debian11_64Guest"}
	ovafixture.OVA(t, ova, "vmware", &vm)
	var out importOut
	if err := json.Unmarshal([]byte(e.ok("import", ova, "--json")), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.VMs) != 1 || out.Manifest != "appliance.mf" {
		t.Fatalf("import: %+v", out)
	}
	got := out.VMs[0]
	if got.Name != "appliance" || got.CPUs != 2 || got.MemoryBytes != 640<<20 || got.Profile != "debian" ||
		len(got.Disks) != 1 || got.Disks[0].SizeBytes != 32<<20 || got.Disks[0].Bus != "scsi" ||
		len(got.NICs) != 2 || got.NICs[0].Model != "pcnet" || got.NICs[1].Model != "e1000" {
		t.Errorf("imported %+v", got)
	}
	if !strings.Contains(strings.Join(got.Dropped, ","), "Video card") {
		t.Errorf("dropped %v: the video card item is not listed", got.Dropped)
	}
	e.bootImported("appliance")
	e.shell("appliance", `echo "R=$(head -n 1 /dev/sda)"`, regexp.MustCompile(`R=E2E-VMW-MARK`))
	e.ok("stop", "appliance")
	// The same package again: the name is taken, nothing is replaced.
	e.fail([]string{"appliance", "exists"}, "import", ova)
}

// TestImportRefusesBadPackagesCLI: `vlab import` of a damaged or hostile
// package exits non-zero with one line and leaves no VM and no file.
func TestImportRefusesBadPackagesCLI(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-img")
	e := newEnv(t)
	dir := filepath.Join(e.home, "pkgs")
	os.MkdirAll(dir, 0o700)
	vm := ovafixture.VM{Name: "evil", CPUs: 1, Memory: "256", Units: "MegaBytes",
		Disks: []ovafixture.Disk{{Marker: "EVIL", Size: 8 << 20}}, NICs: []string{"E1000"}, OSID: 96, OSType: "Debian_64"}
	desc, disks := ovafixture.Build(t, dir, "vbox", &vm)
	d := ovafixture.Member{Name: "evil.ovf", Data: desc}
	mf := ovafixture.Member{Name: "evil.mf", Data: ovafixture.Manifest(t, "SHA1", append([]ovafixture.Member{d}, disks...))}
	link := filepath.Join(dir, "link.ova")
	ovafixture.Pack(t, link, []ovafixture.Member{d, mf, {Name: disks[0].Name, Link: "/etc/shadow"}})
	e.fail([]string{"link", "/etc/shadow"}, "import", link)
	bad := append([]byte(nil), mf.Data...)
	bad[len(bad)-2] = "10"[bad[len(bad)-2]&1]
	digest := filepath.Join(dir, "digest.ova")
	ovafixture.Pack(t, digest, append([]ovafixture.Member{d, {Name: "evil.mf", Data: bad}}, disks...))
	e.fail([]string{"digest", evilDisk(disks)}, "import", digest)
	if out := e.ok("list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("VMs after refused imports: %s", out)
	}
	ents, _ := os.ReadDir(filepath.Join(e.home, "data dir", "vlab", "machines"))
	for _, en := range ents {
		t.Errorf("left in the library: %s", en.Name())
	}
	// The positive control: the same parts, whole, import.
	good := filepath.Join(dir, "good.ova")
	ovafixture.Pack(t, good, append([]ovafixture.Member{d, mf}, disks...))
	e.ok("import", good)
}

func evilDisk(disks []ovafixture.Member) string { return disks[0].Name }

// TestExportRoundTripBoots: a guest writes its disk, `vlab export` packs
// the VM as an OVA (descriptor first, SHA256 manifest, streamOptimized
// VMDK), `vlab import` brings it back under a new name, and that VM boots
// and reads what the guest wrote.
func TestExportRoundTripBoots(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-img")
	e := newEnv(t)
	e.createGuest("src", guests["x86_64"], []string{"vlab.write=exported-77"}, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", "src")
	e.waitSerial("src", "VLAB-DISK-WROTE exported-77")
	e.ok("stop", "src")
	ova := filepath.Join(e.home, "out dir", "src.ova")
	os.MkdirAll(filepath.Dir(ova), 0o700)
	var ex struct {
		Path  string
		Disks []struct{ File string }
		Notes []string
	}
	if err := json.Unmarshal([]byte(e.ok("export", "src", ova, "--json")), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Path != ova || len(ex.Disks) != 1 || !strings.Contains(strings.Join(ex.Notes, ","), "kernel") {
		t.Errorf("export: %+v", ex)
	}
	e.fail([]string{"exists"}, "export", "src", ova)
	members := tarMembers(t, ova)
	if len(members) != 3 || members[0] != "src.ovf" || members[1] != "src.mf" {
		t.Errorf("OVA members %v: want src.ovf, src.mf, then the disk", members)
	}
	var out importOut
	if err := json.Unmarshal([]byte(e.ok("import", ova, "--name", "copy", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	if out.Manifest != "src.mf" || len(out.VMs) != 1 || out.VMs[0].MemoryBytes != 512<<20 {
		t.Errorf("import of the export: %+v", out)
	}
	e.bootImported("copy")
	e.waitSerial("copy", "VLAB-DISK-READ exported-77")
	e.ok("stop", "copy")
}

// tarMembers lists the member names of the tar archive at path.
func tarMembers(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

// libraryLeftovers lists what an import left in the library at data:
// vlab's temporary folders and intent records.
func libraryLeftovers(data string) []string {
	var found []string
	filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(data, path)
		if strings.HasPrefix(d.Name(), ".new-") || strings.HasPrefix(filepath.ToSlash(rel), "vlab/intents/") {
			found = append(found, rel)
		}
		return nil
	})
	return found
}

// TestImportKilledAtEveryStep: `vlab import` killed with SIGKILL at each of
// its steps leaves either no VM or the whole VM (its disk holding the
// appliance's data), and no temporary file once the next vlab ran.
func TestImportKilledAtEveryStep(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-img")
	e := newEnv(t)
	ova := filepath.Join(e.home, "kill.ova")
	vm := ovafixture.VM{Name: "k", CPUs: 1, Memory: "256", Units: "byte * 2^20",
		Disks: []ovafixture.Disk{{Marker: "KILL-MARK", Size: 16 << 20}}, NICs: []string{"E1000"}, OSID: 96, OSType: "debian10_64Guest"}
	ovafixture.OVA(t, ova, "vmware", &vm)
	w := &faultWorld{e: e}
	trace := filepath.Join(e.home, "trace")
	if out, code := w.runFault([]string{"VLAB_FAULT_TRACE=" + trace}, "import", ova, "--name", "traced"); code != 0 {
		t.Fatalf("traced import: %s", out)
	}
	steps, _ := os.ReadFile(trace)
	var seen []string
	for _, s := range strings.Fields(string(steps)) {
		if strings.HasPrefix(s, "import-vm:") {
			seen = append(seen, s)
		}
	}
	if len(seen) < 4 {
		t.Fatalf("import steps %v: want intent, disk, synced, renamed", seen)
	}
	data := filepath.Join(e.home, "data dir")
	for i, step := range seen {
		name := "k" + strconv.Itoa(i)
		out, code := w.runFault([]string{"VLAB_FAULT=" + step}, "import", ova, "--name", name)
		if code == 0 {
			t.Fatalf("import killed at %s exited 0: %s", step, out)
		}
		e.ok("list") // the next vlab settles what the killed one left
		if left := libraryLeftovers(data); len(left) > 0 {
			t.Errorf("killed at %s: left %v", step, left)
		}
		if _, _, code := e.run("show", name); code == 0 {
			s := e.show(name)
			if len(s.Disks) != 1 || firstSectorLine(t, s.Disks[0].Path) != "KILL-MARK" {
				t.Errorf("killed at %s: VM %s is there but its disk is not whole: %+v", step, name, s.Disks)
			}
		} else if step == "import-vm:renamed" {
			t.Errorf("killed after the rename, VM %s is missing", name)
		}
	}
	e.ok("import", ova, "--name", "after")
}

// firstSectorLine reads the first line of a qcow2 image.
func firstSectorLine(t *testing.T, path string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "s")
	if b, err := exec.Command("qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=1", "if="+path, "of="+out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img dd: %v: %s", err, b)
	}
	data, _ := os.ReadFile(out)
	line, _, _ := strings.Cut(string(data), "\n")
	return line
}

// TestImportDiskFull: an import that runs out of space in the library
// fails with one line naming the folder and the fix, and leaves nothing.
func TestImportDiskFull(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-img")
	fixture.Program(t, "mount")
	if os.Geteuid() != 0 {
		fixture.Need(t, "the disk-full test mounts a tmpfs: run it as root")
	}
	e := newEnv(t)
	data := filepath.Join(e.home, "data dir")
	os.MkdirAll(data, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", data, err, out)
		}
	})
	ova := filepath.Join(e.home, "big.ova")
	vm := ovafixture.VM{Name: "big", CPUs: 1, Memory: "256", Units: "byte * 2^20",
		Disks: []ovafixture.Disk{{Marker: "BIG", Size: 32 << 20, Random: 20 << 20}}, NICs: []string{"E1000"}, OSID: 96, OSType: "debian10_64Guest"}
	ovafixture.OVA(t, ova, "vmware", &vm)
	// Progress lines come first on stderr; the error is the last line, alone.
	_, errs, code := e.run("import", ova)
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	last := lines[len(lines)-1]
	if code == 0 || !strings.HasPrefix(last, "vlab: ") || !strings.Contains(last, "no space left") || !strings.Contains(last, "free some space") {
		t.Errorf("import on a full disk: exit %d, stderr %q", code, errs)
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "importing ") {
			t.Errorf("stderr line %q is neither progress nor the error", l)
		}
	}
	if left := libraryLeftovers(data); len(left) > 0 {
		t.Errorf("left %v", left)
	}
	if _, _, code := e.run("show", "big"); code == 0 {
		t.Error("a VM exists after the failed import")
	}
	// The positive control: a small appliance fits.
	small := filepath.Join(e.home, "small.ova")
	vm = ovafixture.VM{Name: "small", CPUs: 1, Memory: "256", Units: "byte * 2^20",
		Disks: []ovafixture.Disk{{Marker: "SMALL", Size: 8 << 20}}, NICs: []string{"E1000"}, OSID: 96, OSType: "debian10_64Guest"}
	ovafixture.OVA(t, small, "vmware", &vm)
	e.ok("import", small)
}
