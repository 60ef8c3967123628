package machine

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vlab/emulator"
)

// The finding: `vlab delete x/../base --yes` deleted a linked clone's
// protected base. Every entry point that takes a name refuses it before a
// path is joined.
func TestEntryPointsRefuseTraversalNames(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "base", false)
	if err := s.Clone(ctx, "base", "x", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	bad := "x/../base"
	calls := map[string]func() error{
		"Delete":     func() error { return s.Delete(ctx, bad) },
		"Status":     func() error { _, err := s.Status(ctx, bad); return err },
		"Stop":       func() error { _, err := s.Stop(ctx, bad, StopOptions{Force: true}); return err },
		"Monitor":    func() error { _, err := s.Monitor(ctx, bad); return err },
		"Dependents": func() error { _, err := s.Dependents(bad); return err },
		"DiskAdd":    func() error { _, err := s.DiskAdd(ctx, bad, DiskOptions{Size: MiB}); return err },
		"DiskRemove": func() error { _, err := s.DiskRemove(ctx, bad, "0", true); return err },
		"DiskResize": func() error { return s.DiskResize(ctx, bad, "0", 32*MiB) },
		"DiskImport": func() error { _, err := s.DiskImport(ctx, bad, "/dev/null", ImportOptions{}); return err },
		"DiskConv":   func() error { _, err := s.DiskConvert(ctx, bad, "0", nil); return err },
		"Clone":      func() error { return s.Clone(ctx, bad, "y", CloneOptions{}) },
		"Snapshot":   func() error { _, err := s.SnapshotCreate(ctx, bad, "t", SnapshotOptions{}); return err },
	}
	for name, call := range calls {
		err := call()
		if err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("%s(%q) = %v; want an invalid-name error", name, bad, err)
		}
	}
	if _, err := s.Load("base"); err != nil {
		t.Fatalf("base is gone: %v", err)
	}
	if spec, _ := s.Load("base"); len(spec.Disks) != 1 {
		t.Errorf("base's disks changed: %+v", spec.Disks)
	}
	if p := s.Paths(bad); strings.Contains(p.Dir, "base") || strings.Contains(p.Run, "base") {
		t.Errorf("Paths(%q) leads into base: %s %s", bad, p.Dir, p.Run)
	}
}

// The finding: Dependents skipped specs it could not load, so a linked
// clone with a hand-broken machine.toml left its source deletable (and its
// base prunable). Now an unreadable spec blocks the delete, naming it.
func TestDependentsFailClosed(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "src", false)
	if err := s.Clone(ctx, "src", "thin", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	thin := s.Paths("thin")
	info, err := readImageInfo(ctx, "qemu-img", thin.DiskPath("disk0.qcow2"), "qcow2", false)
	if err != nil {
		t.Fatal(err)
	}
	// Broken but still telling: linked_to is readable, another field is not
	// valid. The clone still counts.
	data, _ := os.ReadFile(thin.Spec)
	if err := os.WriteFile(thin.Spec, []byte(strings.Replace(string(data), "memory = ", "memory_typo = ", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("thin"); err == nil {
		t.Fatal("the edited spec still loads; the test needs it broken")
	}
	if err := s.Delete(ctx, "src"); !errors.Is(err, ErrProtected) || !strings.Contains(err.Error(), "thin") {
		t.Errorf("delete src with an invalid clone spec: %v; want ErrProtected naming thin", err)
	}
	// Not TOML at all: nobody can tell, so nothing is deleted.
	if err := os.WriteFile(thin.Spec, []byte("name = [\x00garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Delete(ctx, "src")
	if err == nil || !strings.Contains(err.Error(), `"thin"`) || !strings.Contains(err.Error(), "fix or delete") || strings.Contains(err.Error(), "\n") {
		t.Errorf("delete src with a corrupt clone spec: %v; want one line naming thin and the fix", err)
	}
	// Cloning again prunes unused bases: the broken clone's must stay.
	if err := s.Clone(ctx, "src", "again", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(info.FullBackingFilename); err != nil {
		t.Errorf("the broken clone's base was pruned: %v", err)
	}
	if _, err := os.Stat(s.Paths("src").Spec); err != nil {
		t.Errorf("src is gone: %v", err)
	}
}

// The finding: a linked clone of a VM whose disk lives outside its folder
// moved that disk into the VM's bases and put an overlay (whose relative
// backing path is wrong from there) in its place, ruining it. Now the disk
// is copied into a base and never touched.
func TestLinkedCloneLeavesOutsideDiskAlone(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	outside := filepath.Join(t.TempDir(), "shared disk.qcow2")
	qimgRun(t, "create", "-q", "-f", "qcow2", outside, "16M")
	qio(t, outside, "write -P 88 0 64k")
	before := fileSum(t, outside)
	spec := NewSpec("ext", emulator.ArchX86_64)
	spec.Display = emulator.DisplayNone
	spec.Disks = []DiskSpec{{File: outside, Size: 16 * MiB, Format: "qcow2"}}
	if err := s.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := s.Clone(ctx, "ext", "thin", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	info, err := readImageInfo(ctx, "qemu-img", outside, "qcow2", false)
	if err != nil {
		t.Fatalf("the outside disk no longer opens: %v", err)
	}
	if info.BackingFilename != "" || fileSum(t, outside) != before {
		t.Errorf("the outside disk was changed (backing %q)", info.BackingFilename)
	}
	if !holds(t, outside, 88) {
		t.Error("the outside disk lost its data")
	}
	if !holds(t, s.Paths("thin").DiskPath("disk0.qcow2"), 88) {
		t.Error("the linked clone does not see the disk's data")
	}
	if got, _ := s.Load("ext"); got.Disks[0].File != outside {
		t.Errorf("the source's disk entry changed: %+v", got.Disks[0])
	}
}

// The finding: base ids were snap-<tag>-<seconds>, so a linked clone of a
// snapshot deleted and taken again (same tag, same second) got the stale
// base of the old one. Now the base belongs to the snapshot it froze.
func TestRetakenSnapshotGetsItsOwnBase(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "src", false)
	disk := s.Paths("src").DiskPath("disk0.qcow2")
	qio(t, disk, "write -P 65 0 64k")
	first, err := s.SnapshotCreate(ctx, "src", "s1", SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Clone(ctx, "src", "old", CloneOptions{Linked: true, Snapshot: "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SnapshotDelete(ctx, "src", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	qio(t, disk, "write -P 66 0 64k")
	if _, err := s.SnapshotCreate(ctx, "src", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	// "Within one second", every time: the new s1's record gets the old
	// one's time (a slow machine would otherwise cross a second).
	p := s.Paths("src")
	m, err := readMeta(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Snapshots {
		if m.Snapshots[i].Tag == "s1" {
			m.Snapshots[i].Time = first.Time
		}
	}
	data, _ := json.Marshal(m)
	if err := os.WriteFile(metaPath(p), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Clone(ctx, "src", "new", CloneOptions{Linked: true, Snapshot: "s1"}); err != nil {
		t.Fatal(err)
	}
	if !holds(t, s.Paths("new").DiskPath("disk0.qcow2"), 66) {
		t.Error("the clone of the re-taken s1 holds the old s1's data (a stale base)")
	}
	if !holds(t, s.Paths("old").DiskPath("disk0.qcow2"), 65) {
		t.Error("the clone of the old s1 changed")
	}
}

// The finding: `disk convert` of a raw disk named by a relative path that
// leads out of the VM folder deleted the original. Now only a file directly
// in the VM folder is deleted.
func TestDiskConvertKeepsOutsideOriginal(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	spec := NewSpec("conv", emulator.ArchX86_64)
	spec.Display = emulator.DisplayNone
	if err := s.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	p := s.Paths("conv")
	shared := filepath.Join(filepath.Dir(filepath.Dir(p.Dir)), "shared.img")
	qimgRun(t, "create", "-q", "-f", "raw", shared, "4M")
	if out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 77 0 64k", shared).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// machine.toml edited by hand: the disk is ../../shared.img.
	spec, _ = s.Load("conv")
	spec.Disks = []DiskSpec{{File: filepath.Join("..", "..", "shared.img"), Size: 4 * MiB, Format: "raw"}}
	if err := s.Save(ctx, spec); err != nil {
		t.Fatal(err)
	}
	d, err := s.DiskConvert(ctx, "conv", "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(shared); err != nil {
		t.Fatalf("the original outside the vm folder was deleted: %v", err)
	}
	if !holds(t, p.DiskPath(d.File), 77) || filepath.Dir(p.DiskPath(d.File)) != p.Dir {
		t.Errorf("converted disk %+v lacks the data or is not in the vm folder", d)
	}
}
