package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"vlab/internal/fixture"
)

// The private-files tests of issue 12: with umask 022 every folder vlab
// makes is 0700 and every file 0600, including what QEMU and qemu-img make
// for it; another local user cannot read a VM's definition, disk or serial
// console log; `vlab doctor` finds and repairs open permissions.

// openToOthers makes the test's world traversable by another user, as a
// real home is: the temp folders above "my home" (0700 from t.TempDir), the
// home, the XDG parents and the runtime parent. Only vlab's own folders may
// then stand in another user's way.
func (e *env) openToOthers() {
	e.t.Helper()
	base := filepath.Dir(e.home)
	for _, d := range []string{filepath.Dir(base), base, e.home} {
		if err := os.Chmod(d, 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, d := range []string{"config dir", "data dir", "state dir", "cache dir", "run"} {
		if err := os.MkdirAll(filepath.Join(e.home, d), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(e.home, d), 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
}

// vlabRoots are vlab's own folders in e's world.
func (e *env) vlabRoots() []string {
	var out []string
	for _, d := range []string{"config dir", "data dir", "state dir", "cache dir", "run"} {
		out = append(out, filepath.Join(e.home, d, "vlab"))
	}
	return out
}

// offenders lists every folder under roots that is not 0700 and every
// regular file that is not 0600 (0400 for the read-only base images of
// linked clones), and counts the regular files seen.
func offenders(roots []string) (bad []string, files int) {
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			perm := fi.Mode().Perm()
			switch {
			case d.IsDir() && perm != 0o700:
				bad = append(bad, fmt.Sprintf("%04o %s/", perm, path))
			case d.Type().IsRegular():
				files++
				// An ISO added by hard link shares the user's own file
				// (and its mode): the 0700 isos folder guards that path.
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && strings.Contains(path, "/isos/") {
					return nil
				}
				if perm != 0o600 && !(perm == 0o400 && strings.Contains(path, "/bases/")) {
					bad = append(bad, fmt.Sprintf("%04o %s", perm, path))
				}
			case d.Type()&fs.ModeSocket != 0 && perm&0o077 != 0:
				bad = append(bad, fmt.Sprintf("%04o %s (socket)", perm, path))
			}
			return nil
		})
	}
	return bad, files
}

// asNobody runs argv as uid/gid 65534 with no groups and returns its
// combined output and error.
func asNobody(t *testing.T, argv ...string) (string, error) {
	t.Helper()
	setpriv := fixture.Program(t, "setpriv")
	out, err := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)...).CombinedOutput()
	return string(out), err
}

// TestLibraryIsPrivate: create (with --iso and --cloud-init), start (logs,
// sockets), a live snapshot, linked and full clones, disk import, iso add and
// a lab, all under umask 022; then every folder of vlab's is 0700 and every
// file 0600, and another user cannot read machine.toml, a disk or the serial
// log.
func TestLibraryIsPrivate(t *testing.T) {
	fixture.Program(t, "qemu-img")
	fixture.Umask(t, 0o022) // the usual permissive umask
	e := newEnv(t)
	e.openToOthers()

	ud := filepath.Join(e.home, "user-data.yaml")
	if err := os.WriteFile(ud, []byte("#cloud-config\nhostname: private\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := isoFixture(t, "installer-x86_64.iso")
	e.ok("create", "inst", "--iso", iso, "--cloud-init", ud, "--disk", "32M", "--display", "none", "--net", "none")
	e.createGuest("g", guests["x86_64"], nil, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", "g")
	e.waitSerial("g", fixture.MarkerBootOK)
	e.ok("snapshot", "create", "g", "live1")
	e.ok("stop", "--force", "g")
	e.ok("clone", "g", "thin", "--linked")
	e.ok("clone", "g", "full")
	raw := filepath.Join(e.home, "import me.raw")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "raw", raw, "4M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	e.ok("disk", "import", "inst", raw, "--format", "raw")
	e.ok("iso", "add", iso)
	e.ok("net", "lab", "create", "lab1", "--subnet", "10.77.1.0/24")
	e.ok("start", "g") // running: sockets, pidfile, process record, logs
	e.waitSerial("g", fixture.MarkerBootOK)

	bad, files := offenders(e.vlabRoots())
	if files < 15 {
		t.Fatalf("saw only %d files under %v: the walk does not see the library", files, e.vlabRoots())
	}
	if len(bad) > 0 {
		t.Errorf("not owner-only under umask 022:\n%s", strings.Join(bad, "\n"))
	}

	// Another local user. The control shows that only vlab's own folders
	// and files stand in the way: a file left readable next to them is read.
	control := filepath.Join(e.home, "data dir", "control.txt")
	if err := os.WriteFile(control, []byte("readable"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := asNobody(t, "cat", control); err != nil || out != "readable" {
		t.Fatalf("control: uid 65534 cannot read %s (%v %s): the test's own folders block it", control, err, out)
	}
	s := e.show("g")
	for _, f := range []string{filepath.Join(s.Dir, "machine.toml"), s.Disks[0].Path, s.SerialLog, s.QEMULog} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out, err := asNobody(t, "cat", f)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid 65534 reading %s: err %v, output %q; want permission denied", f, err, tail(out, 200))
		}
	}
	e.ok("stop", "--force", "g")
}

// TestDoctorRepairsPermissions: an existing library with open modes is
// reported by `vlab doctor`, repaired by `vlab doctor --fix-permissions`, and
// a link planted in the library pointing outside is never followed.
func TestDoctorRepairsPermissions(t *testing.T) {
	fixture.Program(t, "qemu-img")
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "vm", "--disk", "16M", "--display", "none", "--net", "none")
	s := e.show("vm")
	spec := filepath.Join(s.Dir, "machine.toml")
	opened := map[string]os.FileMode{s.Dir: 0o755, spec: 0o644, s.Disks[0].Path: 0o644}
	for p, m := range opened {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(e.home, "outside")
	os.Mkdir(outside, 0o755)
	outFile := filepath.Join(outside, "notes.txt")
	os.WriteFile(outFile, []byte("x"), 0o644)
	os.Chmod(outside, 0o755)
	os.Chmod(outFile, 0o644)
	if err := os.Symlink(outside, filepath.Join(s.Dir, "planted-dir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outFile, filepath.Join(e.home, "data dir", "vlab", "planted-file")); err != nil {
		t.Fatal(err)
	}

	out := e.doctor()
	for p := range opened {
		if !strings.Contains(out, p) {
			t.Errorf("doctor does not report %s:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "vlab doctor --fix-permissions") {
		t.Errorf("doctor does not name the fix:\n%s", out)
	}
	if strings.Contains(out, outside) {
		t.Errorf("doctor reports something outside vlab's dirs:\n%s", out)
	}
	if fi, _ := os.Stat(spec); fi.Mode().Perm() != 0o644 {
		t.Error("plain doctor changed a mode")
	}

	e.doctor("--fix-permissions")
	if bad, _ := offenders(e.vlabRoots()); len(bad) > 0 {
		t.Errorf("left open after --fix-permissions:\n%s", strings.Join(bad, "\n"))
	}
	for p, want := range map[string]os.FileMode{outside: 0o755, outFile: 0o644} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != want {
			t.Errorf("--fix-permissions followed a link: %s is %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	if out := e.doctor(); strings.Contains(out, "others may access") {
		t.Errorf("doctor after the fix still reports:\n%s", out)
	}
	e.ok("show", "vm")
}
