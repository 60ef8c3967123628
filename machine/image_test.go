package machine

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vlab/emulator"
)

// secretBytes is what a hostile image tries to copy into a guest.
var secretBytes = []byte("-----BEGIN OPENSSH PRIVATE KEY----- vlab-test-secret 7f3a9c")

// writeSecret puts a 1 MiB "private key" at dir/name (the secret at its
// start) and returns its path.
func writeSecret(t *testing.T, dir, name string) string {
	t.Helper()
	data := make([]byte, 1<<20)
	copy(data, secretBytes)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostileImages makes, in a folder of their own next to a secret file
// outside it, every image that points into the host: it returns the images
// by what they do and the secret's path.
func hostileImages(t *testing.T) (map[string]string, string) {
	t.Helper()
	root := t.TempDir()
	secret := writeSecret(t, root, "id_ed25519")
	dir := filepath.Join(root, "images")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	imgs := map[string]string{}

	// An external data file set afterwards with qemu-img amend, as the
	// finding did: the header names the key; a read of the image reads it.
	df := filepath.Join(dir, "datafile.qcow2")
	qimgRun(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "placeholder.raw")+",data_file_raw=on", df, "1M")
	qimgRun(t, "amend", "-f", "qcow2", "-o", "data_file="+secret, df)
	os.Remove(filepath.Join(dir, "placeholder.raw"))
	imgs["data-file"] = df

	abs := filepath.Join(dir, "backing-abs.qcow2")
	qimgRun(t, "create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", abs, "1M")
	imgs["backing absolute"] = abs

	rel := filepath.Join(dir, "backing-rel.qcow2")
	qimgRun(t, "create", "-q", "-f", "qcow2", "-u", "-b", "../id_ed25519", "-F", "raw", rel, "1M")
	imgs["backing relative"] = rel

	js := filepath.Join(dir, "backing-json.qcow2")
	qimgRun(t, "create", "-q", "-f", "qcow2", "-u", "-b", `json:{"driver":"raw","file":{"driver":"file","filename":"`+secret+`"}}`, "-F", "raw", js, "1M")
	imgs["backing json"] = js

	vmdk := filepath.Join(dir, "extent.vmdk")
	desc := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n" +
		"RW 2048 FLAT \"../id_ed25519\" 0\n\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"2\"\n" +
		"ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n"
	if err := os.WriteFile(vmdk, []byte(desc), 0o600); err != nil {
		t.Fatal(err)
	}
	imgs["vmdk extent"] = vmdk
	return imgs, secret
}

// containsSecret lists the files under root holding the secret's bytes.
func containsSecret(t *testing.T, root string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err == nil && bytes.Contains(data, secretBytes) {
			hits = append(hits, path)
		}
		return nil
	})
	return hits
}

// The finding: each of these imported "fine" (or, for data-file, copied
// the key into the new disk). Now each is refused with one line naming the
// image and what it points at, and nothing reaches the library.
func TestImportRefusesImagesPointingIntoTheHost(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "victim", false)
	imgs, secret := hostileImages(t)

	// The fixtures do what they claim: QEMU, left to itself, reads the
	// secret through each of them.
	for what, img := range imgs {
		out, _ := exec.Command("qemu-io", "-r", "-c", "read -v 0 64", img).CombinedOutput()
		if !strings.Contains(string(out), "BEGIN.OPENS") {
			t.Fatalf("fixture %s does not read the secret through plain qemu-io:\n%s", what, out)
		}
	}

	p := s.Paths("victim")
	before, _ := os.ReadDir(p.Dir)
	wants := map[string]string{
		"data-file":        "external data file",
		"backing absolute": "backing file",
		"backing relative": "backing file",
		"backing json":     "json:",
		"vmdk extent":      "outside its folder",
	}
	for what, img := range imgs {
		_, err := s.DiskImport(ctx, "victim", img, ImportOptions{})
		if err == nil {
			t.Errorf("%s: import succeeded", what)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, img) || !strings.Contains(msg, wants[what]) {
			t.Errorf("%s: error %q; want one line naming %s and %q", what, msg, img, wants[what])
		}
		if what != "vmdk extent" && !strings.Contains(msg, "id_ed25519") {
			t.Errorf("%s: error %q does not name the reference", what, msg)
		}
	}
	after, _ := os.ReadDir(p.Dir)
	if len(after) != len(before) {
		t.Errorf("vm folder changed: %d entries before, %d after", len(before), len(after))
	}
	if spec, _ := s.Load("victim"); len(spec.Disks) != 1 {
		t.Errorf("refused imports changed the disks: %+v", spec.Disks)
	}
	if hits := containsSecret(t, s.Dirs().Data); len(hits) > 0 {
		t.Errorf("the secret's bytes are in the library: %v", hits)
	}
	if data, _ := os.ReadFile(secret); !bytes.HasPrefix(data, secretBytes) {
		t.Error("the secret file itself changed")
	}
}

// InspectImage accepts plain images of every format and detects their
// format without help; a VMDK whose extent sits next to it is fine.
func TestInspectImageAcceptsPlainImages(t *testing.T) {
	needQemuImg(t)
	ctx := context.Background()
	dir := t.TempDir()
	raw := patternedRaw(t, dir)
	for _, format := range ImportFormats {
		if format == "raw" {
			continue
		}
		dst := filepath.Join(dir, "x,with comma."+format)
		qimgRun(t, "convert", "-f", "raw", "-O", format, raw, dst)
		img, err := InspectImage(ctx, "qemu-img", dst, "")
		if err != nil || img.Format != format || img.VirtualSize == 0 {
			t.Errorf("%s: %+v %v", format, img, err)
		}
	}
	flat := filepath.Join(dir, "flat.vmdk")
	qimgRun(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", raw, flat)
	if _, err := InspectImage(ctx, "qemu-img", flat, ""); err != nil {
		t.Errorf("vmdk with its extent beside it: %v", err)
	}
}

// Clone reads an attached disk that is not on the source's own bases the
// way import does: a disk whose header names a host file is refused.
func TestCloneRefusesAttachedImagePointingIntoTheHost(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	imgs, _ := hostileImages(t)
	for _, what := range []string{"data-file", "backing json"} {
		name := strings.ReplaceAll(what, " ", "-")
		spec := NewSpec(name, emulator.ArchX86_64)
		spec.Display = emulator.DisplayNone
		spec.Disks = []DiskSpec{{File: imgs[what], Size: MiB, Format: "qcow2"}}
		if err := s.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
		for _, linked := range []bool{false, true} {
			err := s.Clone(ctx, name, name+"-copy", CloneOptions{Linked: linked})
			if err == nil || !strings.Contains(err.Error(), imgs[what]) || !strings.Contains(err.Error(), "refusing") {
				t.Errorf("clone of a vm on %s (linked %v): %v; want a refusal naming the image", what, linked, err)
			}
			if _, err := os.Stat(s.Paths(name + "-copy").Dir); err == nil {
				t.Errorf("refused clone left %s", s.Paths(name+"-copy").Dir)
			}
		}
	}
	if hits := containsSecret(t, s.Dirs().Data); len(hits) > 0 {
		t.Errorf("the secret's bytes are in the library: %v", hits)
	}
}
