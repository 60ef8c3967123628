package machine

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// openFiles lists, one per line, every folder under roots that is not
// 0700 and every regular file with group or world bits (read-only base
// images are 0400).
func openFiles(t *testing.T, roots ...string) (offenders []string, files int) {
	t.Helper()
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
				offenders = append(offenders, fmt.Sprintf("%04o %s/", perm, path))
			case d.Type().IsRegular():
				files++
				if perm != 0o600 && perm != 0o400 {
					offenders = append(offenders, fmt.Sprintf("%04o %s", perm, path))
				}
			}
			return nil
		})
	}
	return offenders, files
}

// The finding: with umask 022 the library came out 0755/0644. Everything
// the library code makes in-process (as the TUI does) is owner-only.
func TestLibraryIsPrivateWhateverTheUmask(t *testing.T) {
	fixture.Umask(t, 0o022) // the usual permissive umask
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "vm", true)
	if _, err := s.DiskAdd(ctx, "vm", DiskOptions{Size: MiB, Format: "raw"}); err != nil {
		t.Fatal(err)
	}
	raw := patternedRaw(t, t.TempDir())
	if _, err := s.DiskImport(ctx, "vm", raw, ImportOptions{Format: "raw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DiskConvert(ctx, "vm", "1", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCloudInit(ctx, "vm", CloudInit{UserData: []byte("#cloud-config\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SnapshotCreate(ctx, "vm", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Clone(ctx, "vm", "full", CloneOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Clone(ctx, "vm", "thin", CloneOptions{Linked: true, Snapshot: "s1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateLab(ctx, Lab{Name: "lab1", Subnet: "10.77.9.0/24", DHCP: true}); err != nil {
		t.Fatal(err)
	}
	d := s.Dirs()
	offenders, files := openFiles(t, d.Data, d.State, d.Cache, d.Runtime)
	if files < 8 {
		t.Fatalf("walked only %d files: the test does not see the library", files)
	}
	if len(offenders) > 0 {
		t.Errorf("group/world-accessible under umask 022:\n%s", strings.Join(offenders, "\n"))
	}
}

// vlab doctor's check and fix: it finds what others may read, repairs it,
// and never follows a link planted in the library.
func TestFixPermissionsNeverFollowsLinks(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "vm", false)
	p := s.Paths("vm")
	outside := t.TempDir()
	outFile := filepath.Join(outside, "not vlab's.txt")
	if err := os.WriteFile(outFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(outFile, 0o644)
	os.Chmod(outside, 0o755)
	if err := os.Symlink(outFile, filepath.Join(p.Dir, "link-to-file")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(s.Dirs().Data, "machines", "link-to-dir")); err != nil {
		t.Fatal(err)
	}
	opened := map[string]os.FileMode{p.Dir: 0o755, p.Spec: 0o644, p.DiskPath("disk0.qcow2"): 0o664}
	for path, mode := range opened {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	probs, err := s.CheckPermissions()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, pr := range probs {
		found[pr.Path] = true
		if pr.Fixed {
			t.Errorf("check fixed %s", pr.Path)
		}
		if strings.HasPrefix(pr.Path, outside) {
			t.Errorf("check reported a path outside vlab's dirs: %s", pr.Path)
		}
	}
	for path := range opened {
		if !found[path] {
			t.Errorf("check missed %s", path)
		}
	}
	if fi, _ := os.Stat(p.Spec); fi.Mode().Perm() != 0o644 {
		t.Errorf("check changed a mode")
	}
	if _, err := s.FixPermissions(); err != nil {
		t.Fatal(err)
	}
	if offenders, _ := openFiles(t, s.Dirs().Data, s.Dirs().State, s.Dirs().Runtime); len(offenders) > 0 {
		t.Errorf("left open after fix:\n%s", strings.Join(offenders, "\n"))
	}
	for path, want := range map[string]os.FileMode{outFile: 0o644, outside: 0o755} {
		if fi, _ := os.Stat(path); fi.Mode().Perm() != want {
			t.Errorf("fix followed a link: %s is %04o, was %04o", path, fi.Mode().Perm(), want)
		}
	}
	if probs, _ := s.CheckPermissions(); len(probs) != 0 {
		t.Errorf("after fix: %+v", probs)
	}
	if _, err := s.Load("vm"); err != nil {
		t.Errorf("vm after fix: %v", err)
	}
	_ = ctx
}
