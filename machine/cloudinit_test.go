package machine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"vlab/emulator"
	"vlab/internal/fixture"
	"vlab/profiles"
)

const testUserData = "#cloud-config\n# vlab-marker: hello\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q test@vlab\n"

// needTool returns the path of a tool the test reads the seed with; missing,
// it fails under VLAB_REQUIRE_E2E=1 and skips otherwise.
func needTool(t *testing.T, name string) string {
	t.Helper()
	return fixture.Program(t, name)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestSeedISOReadableByIsoinfoAndXorriso(t *testing.T) {
	isoinfo := needTool(t, "isoinfo")
	xorriso := needTool(t, "xorriso")
	seed := filepath.Join(t.TempDir(), "cidata.iso")
	net := "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
	if err := WriteSeedISO(seed, "web1", CloudInit{UserData: []byte(testUserData), NetworkConfig: []byte(net)}); err != nil {
		t.Fatal(err)
	}
	// The volume id, by isoinfo and by vlab's own reader.
	if out := run(t, isoinfo, "-d", "-i", seed); !regexp.MustCompile(`(?m)^Volume id: cidata$`).MatchString(out) {
		t.Errorf("isoinfo -d: no 'Volume id: cidata' in\n%s", out)
	}
	if m, err := profiles.ReadMediaFile(seed); err != nil || m.VolumeID != SeedVolumeID {
		t.Errorf("ReadMediaFile = %+v, %v", m, err)
	}
	// The files, through Rock Ridge and through Joliet.
	for _, ext := range []string{"-R", "-J"} {
		if got := run(t, isoinfo, ext, "-x", "/user-data", "-i", seed); got != testUserData {
			t.Errorf("isoinfo %s user-data = %q, want %q", ext, got, testUserData)
		}
		if got := run(t, isoinfo, ext, "-x", "/network-config", "-i", seed); got != net {
			t.Errorf("isoinfo %s network-config = %q", ext, got)
		}
		meta := run(t, isoinfo, ext, "-x", "/meta-data", "-i", seed)
		if !regexp.MustCompile(`(?m)^instance-id: vlab-web1-[0-9a-f]{12}$`).MatchString(meta) || !strings.Contains(meta, "local-hostname: web1\n") {
			t.Errorf("isoinfo %s meta-data = %q", ext, meta)
		}
	}
	out := run(t, xorriso, "-indev", seed, "-ls", "/")
	for _, f := range []string{"'meta-data'", "'network-config'", "'user-data'"} {
		if !strings.Contains(out, f) {
			t.Errorf("xorriso -ls / lacks %s:\n%s", f, out)
		}
	}
	if out := run(t, xorriso, "-indev", seed, "-pvd_info"); !strings.Contains(out, "Volume Id    : cidata") {
		t.Errorf("xorriso -pvd_info lacks the volume id:\n%s", out)
	}
	// Nothing else is left in the folder (work dir, temp file).
	ents, _ := os.ReadDir(filepath.Dir(seed))
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries, want only the seed", len(ents))
	}
}

func TestSeedISOCustomMetaData(t *testing.T) {
	isoinfo := needTool(t, "isoinfo")
	seed := filepath.Join(t.TempDir(), "seed.iso")
	meta := "instance-id: i-1234\nlocal-hostname: mine\n"
	if err := WriteSeedISO(seed, "ignored", CloudInit{UserData: []byte("#!/bin/sh\necho hi\n"), MetaData: []byte(meta)}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, isoinfo, "-R", "-x", "/meta-data", "-i", seed); got != meta {
		t.Errorf("meta-data = %q, want the user's %q", got, meta)
	}
	if out := run(t, isoinfo, "-R", "-l", "-i", seed); strings.Contains(out, "network-config") {
		t.Errorf("network-config written although none was given:\n%s", out)
	}
}

func TestCloudInitValidate(t *testing.T) {
	for _, ok := range []string{"#cloud-config\n", "#!/bin/bash\necho\n", "Content-Type: multipart/mixed; boundary=x\n"} {
		if err := (CloudInit{UserData: []byte(ok)}).Validate(); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "  \n", "ssh_authorized_keys:\n  - ssh-ed25519 AAA\n", "cloud-config\n"} {
		err := (CloudInit{UserData: []byte(bad)}).Validate()
		if err == nil || !strings.Contains(err.Error(), "#cloud-config") {
			t.Errorf("%q: err = %v, want one naming #cloud-config", bad, err)
		}
	}
	dir := t.TempDir()
	if err := WriteSeedISO(filepath.Join(dir, "x.iso"), "x", CloudInit{UserData: []byte("hello")}); err == nil {
		t.Error("WriteSeedISO wrote invalid user-data")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused seed left %d files", len(ents))
	}
}

// testStore opens a Store in a temp dir and defines VM name by writing its
// machine.toml (no qemu-img needed).
func testStore(t *testing.T, spec *Spec) *Store {
	t.Helper()
	s := emptyStore(t)
	if spec != nil {
		p := s.Paths(spec.Name)
		if err := os.MkdirAll(p.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := encodeSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.Spec, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestSetCloudInitAttachesReadOnlySeed(t *testing.T) {
	spec := NewSpec("cloud", emulator.ArchX86_64)
	spec.Disks = []DiskSpec{{File: "disk0.qcow2", Size: GiB, Format: "qcow2", Bus: "virtio"}}
	s := testStore(t, spec)
	ctx := context.Background()
	if err := s.SetCloudInit(ctx, "cloud", CloudInit{UserData: []byte(testUserData)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("cloud")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Disks) != 2 {
		t.Fatalf("disks = %+v, want the disk and the seed", got.Disks)
	}
	seed := got.Disks[1]
	fi, err := os.Stat(filepath.Join(s.Paths("cloud").Dir, SeedFile))
	if err != nil {
		t.Fatal(err)
	}
	if seed.File != SeedFile || !seed.ReadOnly || seed.Format != "raw" || seed.Bus != "virtio" || int64(seed.Size) != fi.Size() || fi.Size()%2048 != 0 {
		t.Errorf("seed disk = %+v (file %d bytes)", seed, fi.Size())
	}
	m1, _ := profiles.ReadMediaFile(filepath.Join(s.Paths("cloud").Dir, SeedFile))
	if m1.VolumeID != "cidata" {
		t.Errorf("seed volume id %q", m1.VolumeID)
	}
	// Setting it again replaces the seed, keeps one seed disk.
	if err := s.SetCloudInit(ctx, "cloud", CloudInit{UserData: []byte("#cloud-config\nhostname: other\n")}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Load("cloud")
	if len(got.Disks) != 2 {
		t.Errorf("second SetCloudInit: disks = %+v", got.Disks)
	}
	// The emulator config carries the seed read-only.
	cfg, err := s.config(got, fakeHost(), emulator.AccelTCG)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Disks[1]; !d.ReadOnly || d.Format != "raw" {
		t.Errorf("emulator disk = %+v, want read-only raw", d)
	}
	// Refused data changes nothing.
	if err := s.SetCloudInit(ctx, "cloud", CloudInit{UserData: []byte("nope")}); err == nil {
		t.Error("invalid user-data accepted")
	}
	if err := s.SetCloudInit(ctx, "ghost", CloudInit{UserData: []byte(testUserData)}); err == nil {
		t.Error("SetCloudInit on a missing vm succeeded")
	}
}
