package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"vlab/internal/fixture"
)

// Images are data, never pointers into the host (issue 12): `vlab disk
// import` of an image that names a host file (a private key) as its
// external data file, backing file or VMDK extent is refused with one line,
// and the key's bytes reach no file of the library.
func TestDiskImportRefusesHostPointers(t *testing.T) {
	fixture.Program(t, "qemu-img")
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "victim", "--disk", "16M", "--display", "none", "--net", "none")

	secret := []byte("-----BEGIN OPENSSH PRIVATE KEY----- e2e-secret-5d1c")
	sshDir := filepath.Join(e.home, ".ssh")
	os.MkdirAll(sshDir, 0o700)
	key := filepath.Join(sshDir, "id_ed25519")
	keyData := make([]byte, 1<<20)
	copy(keyData, secret)
	if err := os.WriteFile(key, keyData, 0o600); err != nil {
		t.Fatal(err)
	}
	dl := filepath.Join(e.home, "Downloads")
	os.MkdirAll(dl, 0o755)
	qimg := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v %s", args, err, out)
		}
	}
	dataFile := filepath.Join(dl, "appliance.qcow2")
	qimg("create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dl, "tmp.raw")+",data_file_raw=on", dataFile, "1M")
	qimg("amend", "-f", "qcow2", "-o", "data_file="+key, dataFile)
	os.Remove(filepath.Join(dl, "tmp.raw"))
	backing := filepath.Join(dl, "overlay.qcow2")
	qimg("create", "-q", "-f", "qcow2", "-u", "-b", `json:{"driver":"raw","file":{"driver":"file","filename":"`+key+`"}}`, "-F", "raw", backing, "1M")
	vmdk := filepath.Join(dl, "disk.vmdk")
	desc := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n" +
		"RW 2048 FLAT \"../.ssh/id_ed25519\" 0\n\nddb.adapterType = \"ide\"\n"
	if err := os.WriteFile(vmdk, []byte(desc), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := e.show("victim").Dir
	before, _ := os.ReadDir(dir)
	e.fail([]string{dataFile, "external data file", key, "qemu-img convert"}, "disk", "import", "victim", dataFile)
	e.fail([]string{backing, "json:", "backing file"}, "disk", "import", "victim", backing)
	e.fail([]string{vmdk, "../.ssh/id_ed25519", "outside its folder"}, "disk", "import", "victim", vmdk)
	e.fail([]string{vmdk, "outside its folder"}, "disk", "import", "victim", vmdk, "--format", "vmdk")

	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("the vm folder changed: %d entries, then %d", len(before), len(after))
	}
	if n := len(e.show("victim").Disks); n != 1 {
		t.Errorf("victim has %d disks after refused imports", n)
	}
	filepath.WalkDir(filepath.Join(e.home, "data dir"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if data, _ := os.ReadFile(path); bytes.Contains(data, secret) {
				t.Errorf("the key's bytes are in %s", path)
			}
		}
		return nil
	})
}

// Deleting the wrong thing (issue 12): `vlab delete x/../base --yes` named
// a linked clone's protected base through its clone's folder and deleted
// it. A name with a path in it is refused before any file is touched.
func TestDeleteRefusesPathNames(t *testing.T) {
	fixture.Program(t, "qemu-img")
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "base", "--disk", "16M", "--display", "none", "--net", "none")
	e.ok("clone", "base", "x", "--linked")
	e.fail([]string{"x/../base", "invalid"}, "delete", "x/../base", "--yes")
	e.fail([]string{"invalid"}, "disk", "convert", "x/../base", "0")
	if s := e.show("base"); len(s.Disks) != 1 {
		t.Fatalf("base after the refused delete: %+v", s)
	}
	if _, err := os.Stat(e.show("base").Disks[0].Path); err != nil {
		t.Errorf("base's disk: %v", err)
	}
	e.fail([]string{"base", "x", "linked clone"}, "delete", "base", "--yes")
}
