package portable

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vlab/internal/fixture"
	"vlab/internal/ovafixture"
)

// badPackage builds a hostile or damaged package in dir and returns its path.
type badPackage struct {
	name  string
	want  []string // words the one-line error must carry
	build func(t *testing.T, dir string, desc []byte, disks []ovafixture.Member) string
}

func goodParts(t *testing.T, dir string) ([]byte, []ovafixture.Member) {
	vm := &ovafixture.VM{Name: "bad", CPUs: 1, Memory: "256", Units: "byte * 2^20",
		Disks: []ovafixture.Disk{{Marker: "BAD-MARK", Size: 8 << 20}}, NICs: []string{"E1000"}, OSID: 96, OSType: "debian10_64Guest"}
	return ovafixture.Build(t, dir, "vmware", vm)
}

// pack writes desc, a SHA256 manifest of what is given, and the members.
func pack(t *testing.T, dir string, desc []byte, members []ovafixture.Member) string {
	d := ovafixture.Member{Name: "bad.ovf", Data: desc}
	mf := ovafixture.Member{Name: "bad.mf", Data: ovafixture.Manifest(t, "SHA256", append([]ovafixture.Member{d}, members...))}
	path := filepath.Join(dir, "bad.ova")
	ovafixture.Pack(t, path, append([]ovafixture.Member{d, mf}, members...))
	return path
}

// pointingDisk makes a qcow2 image in dir that names a host file through
// the given qemu-img create option.
func pointingDisk(t *testing.T, dir, opt string) string {
	secret := filepath.Join(dir, "secret.raw")
	if err := os.WriteFile(secret, []byte(strings.Repeat("HOST-SECRET\n", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bad-disk1.vmdk") // the name the descriptor references
	var args []string
	if opt == "backing" {
		args = []string{"create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", path}
	} else {
		args = []string{"create", "-q", "-f", "qcow2", "-o", "data_file=" + secret, path, "48K"}
	}
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v: %s", args, err, out)
	}
	return path
}

var badPackages = []badPackage{
	{"wrong digest", []string{"bad-disk1.vmdk", "digest"}, func(t *testing.T, dir string, desc []byte, disks []ovafixture.Member) string {
		d := ovafixture.Member{Name: "bad.ovf", Data: desc}
		mf := ovafixture.Manifest(t, "SHA256", append([]ovafixture.Member{d}, disks...))
		i := strings.LastIndex(string(mf), "= ") + 2
		mf[i] = "10"[mf[i]&1] // one nibble of the disk's digest, changed
		path := filepath.Join(dir, "bad.ova")
		ovafixture.Pack(t, path, append([]ovafixture.Member{d, {Name: "bad.mf", Data: mf}}, disks...))
		return path
	}},
	{"missing file", []string{"bad-disk1.vmdk", "missing"}, func(t *testing.T, dir string, desc []byte, _ []ovafixture.Member) string {
		return pack(t, dir, desc, nil)
	}},
	{"dot-dot member", []string{"../bad-disk1.vmdk", "outside"}, func(t *testing.T, dir string, desc []byte, disks []ovafixture.Member) string {
		disks[0].Name = "../bad-disk1.vmdk"
		return pack(t, dir, desc, disks)
	}},
	{"absolute member", []string{"/tmp/bad-disk1.vmdk", "outside"}, func(t *testing.T, dir string, desc []byte, disks []ovafixture.Member) string {
		disks[0].Name = "/tmp/bad-disk1.vmdk"
		return pack(t, dir, desc, disks)
	}},
	{"symlink member", []string{"bad-disk1.vmdk", "link"}, func(t *testing.T, dir string, desc []byte, _ []ovafixture.Member) string {
		return pack(t, dir, desc, []ovafixture.Member{{Name: "bad-disk1.vmdk", Link: "/etc/passwd"}})
	}},
	{"href outside", []string{"../../etc/passwd", "outside"}, func(t *testing.T, dir string, desc []byte, disks []ovafixture.Member) string {
		desc = []byte(strings.Replace(string(desc), `ovf:href="bad-disk1.vmdk"`, `ovf:href="../../etc/passwd"`, 1))
		return pack(t, dir, desc, disks)
	}},
	{"href absolute", []string{"/etc/passwd", "outside"}, func(t *testing.T, dir string, desc []byte, disks []ovafixture.Member) string {
		desc = []byte(strings.Replace(string(desc), `ovf:href="bad-disk1.vmdk"`, `ovf:href="/etc/passwd"`, 1))
		return pack(t, dir, desc, disks)
	}},
	{"truncated", []string{"truncated"}, func(t *testing.T, dir string, desc []byte, disks []ovafixture.Member) string {
		path := pack(t, dir, desc, disks)
		fi, _ := os.Stat(path)
		if err := os.Truncate(path, fi.Size()-fi.Size()/3); err != nil {
			t.Fatal(err)
		}
		return path
	}},
	{"not xml", []string{"not OVF XML"}, func(t *testing.T, dir string, _ []byte, disks []ovafixture.Member) string {
		return pack(t, dir, []byte("this is { not an envelope"), disks)
	}},
	{"backing file in disk", []string{"backing file"}, func(t *testing.T, dir string, desc []byte, _ []ovafixture.Member) string {
		desc = []byte(strings.Replace(string(desc), "vmdk.html#streamOptimized", "qcow2", 1))
		return pack(t, dir, desc, []ovafixture.Member{{Name: "bad-disk1.vmdk", Path: pointingDisk(t, dir, "backing")}})
	}},
	{"data file in disk", []string{"external data file"}, func(t *testing.T, dir string, desc []byte, _ []ovafixture.Member) string {
		desc = []byte(strings.Replace(string(desc), "vmdk.html#streamOptimized", "qcow2", 1))
		return pack(t, dir, desc, []ovafixture.Member{{Name: "bad-disk1.vmdk", Path: pointingDisk(t, dir, "data")}})
	}},
}

// TestImportRefusesBadPackages: each damaged or hostile package is refused
// with a one-line error, and no VM and no file is left in the library.
func TestImportRefusesBadPackages(t *testing.T) {
	fixture.Program(t, "qemu-img")
	s := testStore(t)
	machines := filepath.Join(s.Dirs().Data, "machines")
	for _, c := range badPackages {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			desc, disks := goodParts(t, dir)
			path := c.build(t, dir, desc, disks)
			_, err := Import(context.Background(), s, path, ImportOptions{})
			if err == nil {
				t.Fatal("import succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if names, _ := s.Names(); len(names) != 0 {
				t.Errorf("VMs left: %v", names)
			}
			ents, _ := os.ReadDir(machines)
			for _, e := range ents {
				t.Errorf("left in the library: %s", e.Name())
			}
			intents, _ := os.ReadDir(filepath.Join(s.Dirs().Data, "intents"))
			for _, e := range intents {
				t.Errorf("intent left: %s", e.Name())
			}
		})
	}
	// The positive control: the same parts, packed whole, import.
	dir := t.TempDir()
	desc, disks := goodParts(t, dir)
	if _, err := Import(context.Background(), s, pack(t, dir, desc, disks), ImportOptions{}); err != nil {
		t.Fatalf("the good package: %v", err)
	}
}
