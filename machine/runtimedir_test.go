package machine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRuntimeDirRefusesForeignDirs: the runtime dirs (and the per-user root
// under the temp dir that holds the fallback ones) are refused when another
// local user could have made them first or can enter them: owned by another
// uid, open to group/others, or a symlink. A fresh one is made 0700 whatever
// the umask.
func TestRuntimeDirRefusesForeignDirs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make a folder owned by another uid")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	root := filepath.Join(tmp, "vlab-"+strconv.Itoa(os.Getuid()))
	deep := Dirs{Data: "/d", Runtime: "/" + strings.Repeat("deep/", 25) + "vlab", State: "/s"}
	run := deep.PathsFor("vm1").Run
	if filepath.Dir(run) != root {
		t.Fatalf("fallback runtime dir %s is not under %s", run, root)
	}
	reset := func() {
		t.Helper()
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
	}

	// Fresh: made 0700 even with a permissive umask.
	old := syscall.Umask(0)
	err := ensurePrivateDir(run)
	syscall.Umask(old)
	if err != nil {
		t.Fatalf("fresh runtime dir: %v", err)
	}
	for _, d := range []string{root, run} {
		if fi, err := os.Lstat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, want a 0700 folder (%v)", d, fi.Mode(), err)
		}
	}
	if err := ensurePrivateDir(run); err != nil {
		t.Errorf("second use of our own runtime dir: %v", err)
	}

	cases := []struct {
		name, want string
		make       func()
	}{
		{"root owned by uid 65534", "belongs to uid 65534", func() {
			mkdir(t, root, 0o700)
			if err := os.Chown(root, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{"vm dir owned by uid 65534", "belongs to uid 65534", func() {
			mkdir(t, run, 0o700)
			if err := os.Chown(run, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{"world-writable root", "open to other users", func() { mkdir(t, root, 0o777) }},
		{"group-readable vm dir", "open to other users", func() { mkdir(t, run, 0o750) }},
		{"root is a symlink", "symlink", func() {
			other := filepath.Join(tmp, "elsewhere")
			mkdir(t, other, 0o700)
			if err := os.Symlink(other, root); err != nil {
				t.Fatal(err)
			}
		}},
		{"vm dir is a symlink", "symlink", func() {
			mkdir(t, root, 0o700)
			other := filepath.Join(tmp, "elsewhere2")
			mkdir(t, other, 0o700)
			if err := os.Symlink(other, run); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reset()
			c.make()
			err := ensurePrivateDir(run)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line mentioning %q", err, c.want)
			}
		})
	}
}

// mkdir makes dir (parents 0700) with exactly mode perm.
func mkdir(t *testing.T, dir string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
}

// TestGDBPortMigrates: a machine.toml written when the gdb stub was a TCP
// port loads as the private socket form, and is saved that way.
func TestGDBPortMigrates(t *testing.T) {
	data := []byte("name = \"old\"\narch = \"x86_64\"\ncpus = 1\nmemory = \"512M\"\naccel = \"auto\"\ndisplay = \"none\"\ngdb_port = 1234\n")
	spec, err := decodeSpec("old", "/x/machine.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	if !spec.GDB || spec.GDBPort != 0 {
		t.Fatalf("gdb_port = 1234 loaded as gdb %v, gdb_port %d; want gdb = true and no port", spec.GDB, spec.GDBPort)
	}
	out, err := encodeSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "gdb = true") || strings.Contains(string(out), "gdb_port") {
		t.Errorf("saved as:\n%s", out)
	}
}
