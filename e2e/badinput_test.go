package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// libraryListing returns every file under the library, to prove a failed
// command left nothing behind.
func (e *env) libraryListing() []string {
	var files []string
	root := filepath.Join(e.home, "data dir")
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			files = append(files, strings.TrimPrefix(p, root))
		}
		return nil
	})
	return files
}

// TestBadInput: every bad input gets one clear line naming the fix, a
// non-zero exit, and leaves the library exactly as it was.
func TestBadInput(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "keeper", "--display", "none", "--disk", "16M")
	dir := t.TempDir()
	notISO := filepath.Join(dir, "notes.iso")
	os.WriteFile(notISO, []byte(strings.Repeat("not an iso\n", 10000)), 0o644)
	before := e.libraryListing()

	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"slash in name", []string{"create", "a/b"}, []string{"a/b", "invalid", "letters"}},
		{"dotdot name", []string{"create", ".."}, []string{"invalid"}},
		{"space in name", []string{"create", "my vm"}, []string{"invalid"}},
		{"control char name", []string{"create", "bad\x07name"}, []string{`\a`, "invalid"}},
		{"empty name", []string{"create", ""}, []string{"empty"}},
		{"long name", []string{"create", strings.Repeat("n", 201)}, []string{"201 bytes", "at most 64"}},
		{"negative size", []string{"create", "x", "--disk", "-1G"}, []string{"--disk", "positive"}},
		{"zero size", []string{"create", "x", "--disk", "0"}, []string{"--disk", "unit"}},
		{"bad unit", []string{"create", "x", "--memory", "1Q"}, []string{"--memory", "unknown unit", "K, M, G or T"}},
		{"huge disk", []string{"create", "x", "--disk", "9999T"}, []string{"disk 0 size", "out of range"}},
		{"iso missing", []string{"create", "x", "--iso", filepath.Join(dir, "nope.iso")}, []string{"nope.iso", "does not exist"}},
		{"iso is dir", []string{"create", "x", "--iso", dir}, []string{"is a directory"}},
		{"iso not iso", []string{"create", "x", "--iso", notISO}, []string{"not an ISO 9660"}},
		{"bad arch", []string{"create", "x", "--arch", "sparc"}, []string{"unknown arch", "x86_64"}},
		{"bad accel", []string{"create", "x", "--accel", "hvf"}, []string{"--accel", "auto, kvm or tcg"}},
		{"bad forward", []string{"create", "x", "--forward", "tcp:22"}, []string{"--forward", "tcp:HOSTPORT:GUESTPORT"}},
		{"exists", []string{"create", "keeper"}, []string{"already exists", "vlab delete keeper"}},
		{"start missing vm", []string{"start", "ghost"}, []string{"ghost", "no such vm", "vlab list"}},
		{"stop stopped vm", []string{"stop", "keeper"}, []string{"not running"}},
		{"qmp stopped vm", []string{"qmp", "keeper", `{"execute":"query-status"}`}, []string{"not running", "vlab start keeper"}},
		{"qmp not json", []string{"qmp", "keeper", "query-status"}, []string{"not JSON"}},
		{"force kvm here", []string{"start", "keeper", "--accel", "kvm"}, []string{"kvm", "--accel tcg"}},
		{"missing arg", []string{"start"}, []string{"NAME"}},
		{"delete unconfirmed", []string{"delete", "keeper"}, []string{"not confirmed", "--yes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.fail(c.wants, c.args...)
		})
	}
	e.t = t
	if after := e.libraryListing(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("bad input changed the library:\nbefore %v\nafter  %v", before, after)
	}
	if st := e.state("keeper"); st != "stopped" {
		t.Fatalf("keeper state %s", st)
	}
}

// TestCorruptSpec: a hand-broken machine.toml is reported with the file and
// the fix, and other VMs keep working.
func TestCorruptSpec(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "good", "--display", "none")
	e.ok("create", "broken", "--display", "none")
	spec := filepath.Join(e.show("broken").Dir, "machine.toml")
	os.WriteFile(spec, []byte("name = \"broken\"\nmemory = [[[\n"), 0o644)
	e.fail([]string{"machine.toml", "corrupt", "fix the file"}, "start", "broken")
	out, errs, code := e.run("list")
	if code != 0 || !strings.Contains(out, "good") || !strings.Contains(errs, "broken") {
		t.Fatalf("list with one corrupt vm: exit %d\n%s\n%s", code, out, errs)
	}
	e.ok("show", "good")
	// The broken file is still there for the user to fix.
	if data, _ := os.ReadFile(spec); !strings.Contains(string(data), "[[[") {
		t.Fatal("vlab rewrote the user's broken file")
	}
}

// TestMissingQEMUBinary: an arch whose qemu is not installed is refused at
// create with the package to install.
func TestMissingQEMUBinary(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	bin := filepath.Join(t.TempDir(), "bin dir")
	os.MkdirAll(bin, 0o755)
	for _, b := range []string{"qemu-system-x86_64", "qemu-img"} {
		os.Symlink(fixture.Program(t, b), filepath.Join(bin, b))
	}
	for i, v := range e.vars {
		if strings.HasPrefix(v, "PATH=") {
			e.vars[i] = "PATH=" + bin
		}
	}
	e.fail([]string{"ppc", "qemu-system-ppc", "apt-get install"}, "create", "mac", "--arch", "ppc")
	e.ok("create", "pc", "--display", "none")
}
