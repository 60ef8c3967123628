package e2e

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
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
// kernel of its own: the appliance's disk is data here) and starts it.
func (e *env) bootImported(name string, params ...string) {
	e.t.Helper()
	fixture.Program(e.t, "qemu-system-x86_64")
	kernel, initrd := fixture.Guest(e.t, "x86_64")
	e.ok("edit", name, "--kernel", kernel, "--initrd", initrd, "--append", fixture.Append("x86_64", params...),
		"--display", "none", "--net", "none", "--firmware", "bios")
	e.ok("start", name)
	e.waitSerial(name, "VLAB-BOOT-OK")
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
