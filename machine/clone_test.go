package machine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// cloneSource makes a stopped UEFI VM whose disk held 'A' at snapshot s1
// and holds 'B' now, plus 'E' at 1M.
func cloneSource(t *testing.T, s *Store) string {
	t.Helper()
	createDiskVM(t, s, "src", true)
	disk := s.Paths("src").DiskPath("disk0.qcow2")
	qio(t, disk, "write -P 65 0 64k")
	if _, err := s.SnapshotCreate(context.Background(), "src", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	qio(t, disk, "write -P 66 0 64k", "write -P 69 1M 64k")
	return disk
}

func TestFullClone(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	srcDisk := cloneSource(t, s)
	srcSpec, _ := s.Load("src")
	srcSpec.NICs[0].MAC = "52:54:00:aa:bb:cc"
	if err := s.Save(ctx, srcSpec); err != nil {
		t.Fatal(err)
	}

	var last [2]float64
	if err := s.Clone(ctx, "src", "full", CloneOptions{Progress: func(d, tot float64) { last = [2]float64{d, tot} }}); err != nil {
		t.Fatal(err)
	}
	spec, err := s.Load("full")
	if err != nil {
		t.Fatal(err)
	}
	if spec.LinkedTo != "" || spec.Name != "full" || len(spec.NICs) != 1 || spec.NICs[0].MAC == srcSpec.NICs[0].MAC || spec.NICs[0].MAC == "" {
		t.Errorf("clone spec %+v", spec)
	}
	if last[1] == 0 || last[0] != last[1] {
		t.Errorf("last progress %v; want done == total", last)
	}
	p := s.Paths("full")
	disk := p.DiskPath("disk0.qcow2")
	if !holdsAt(t, disk, "66", "0") || !holdsAt(t, disk, "69", "1M") {
		t.Error("full clone does not hold the source's current data")
	}
	if _, err := os.Stat(p.EFIVars); err != nil {
		t.Errorf("clone has no UEFI vars of its own: %v", err)
	}
	if tr, _ := s.Snapshots(ctx, "full"); len(tr.Snapshots) != 0 {
		t.Errorf("full clone has snapshots: %v", tags(tr))
	}
	before := fileSum(t, srcDisk)
	qio(t, disk, "write -P 67 0 64k")
	if fileSum(t, srcDisk) != before {
		t.Error("writing the clone changed the source disk")
	}

	if err := s.Clone(ctx, "src", "at-s1", CloneOptions{Snapshot: "s1"}); err != nil {
		t.Fatal(err)
	}
	if !holdsAt(t, s.Paths("at-s1").DiskPath("disk0.qcow2"), "65", "0") {
		t.Error("clone at s1 does not hold the data of s1")
	}

	for _, c := range []struct {
		dst  string
		opts CloneOptions
		want string
	}{
		{"full", CloneOptions{}, "already exists"},
		{"bad/name", CloneOptions{}, "invalid"},
		{"x", CloneOptions{Snapshot: "nope"}, "no such snapshot"},
	} {
		if err := s.Clone(ctx, "src", c.dst, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("clone to %q %+v: %v; want %q", c.dst, c.opts, err, c.want)
		}
	}
	if err := s.Clone(ctx, "ghost", "y", CloneOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("clone of a missing vm: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dirs().Data, "machines"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".new-") {
			t.Errorf("failed clone left %s", e.Name())
		}
	}
}

func TestLinkedClone(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	srcDisk := cloneSource(t, s)
	sp := s.Paths("src")

	if err := s.Clone(ctx, "src", "thin", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	spec, _ := s.Load("thin")
	if spec.LinkedTo != "src" {
		t.Errorf("linked_to = %q", spec.LinkedTo)
	}
	disk := s.Paths("thin").DiskPath("disk0.qcow2")
	info, err := readImageInfo(ctx, "qemu-img", disk, "qcow2", false)
	if err != nil {
		t.Fatal(err)
	}
	if info.BackingFilename == "" || filepath.IsAbs(info.BackingFilename) || !strings.HasPrefix(filepath.Clean(info.FullBackingFilename), filepath.Join(sp.Dir, basesDir)) {
		t.Fatalf("clone disk backing %q (%q); want a relative path into the source's bases", info.BackingFilename, info.FullBackingFilename)
	}
	if fi, err := os.Stat(info.FullBackingFilename); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("base image %v mode %v; want read-only", err, fi.Mode())
	}
	if !holdsAt(t, disk, "66", "0") {
		t.Error("linked clone does not see the source's data")
	}

	// The clone's writes leave the source alone, and the source's later
	// writes (and snapshot restores) leave the clone alone.
	before := fileSum(t, srcDisk)
	qio(t, disk, "write -P 67 0 64k")
	if fileSum(t, srcDisk) != before {
		t.Error("writing the linked clone changed the source disk")
	}
	qio(t, srcDisk, "write -P 70 1M 64k")
	if err := s.SnapshotRestore(ctx, "src", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if !holdsAt(t, disk, "69", "1M") || !holdsAt(t, disk, "67", "0") {
		t.Error("the source's writes or restore changed what the linked clone reads")
	}

	// The source is protected while the clone exists.
	err = s.Delete(ctx, "src")
	if !errors.Is(err, ErrProtected) || !strings.Contains(err.Error(), "thin") {
		t.Fatalf("delete of the source: %v; want ErrProtected naming the clone", err)
	}

	// Two linked clones of one snapshot share one base.
	for _, dst := range []string{"s1-a", "s1-b"} {
		if err := s.Clone(ctx, "src", dst, CloneOptions{Linked: true, Snapshot: "s1"}); err != nil {
			t.Fatal(err)
		}
		if !holdsAt(t, s.Paths(dst).DiskPath("disk0.qcow2"), "65", "0") {
			t.Errorf("%s does not hold s1's data", dst)
		}
	}
	bases, _ := os.ReadDir(filepath.Join(sp.Dir, basesDir))
	if len(bases) != 2 {
		t.Errorf("bases = %d; want 2 (one for the current state, one shared for s1)", len(bases))
	}

	// Once no clone uses a base, the next clone drops it.
	for _, n := range []string{"thin", "s1-a", "s1-b"} {
		if err := s.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Clone(ctx, "src", "last", CloneOptions{Linked: true, Snapshot: "s1"}); err != nil {
		t.Fatal(err)
	}
	bases, _ = os.ReadDir(filepath.Join(sp.Dir, basesDir))
	if len(bases) != 1 {
		t.Errorf("bases after deleting their clones = %d; want 1 (the new clone's)", len(bases))
	}
	if !holdsAt(t, s.Paths("last").DiskPath("disk0.qcow2"), "65", "0") {
		t.Error("clone made after pruning does not hold s1's data")
	}
	if err := s.Delete(ctx, "last"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "src"); err != nil {
		t.Errorf("delete of the source once its clones are gone: %v", err)
	}
}

// A linked clone of a source without snapshots copies nothing: the
// source's disk file becomes the base and the source writes to a new
// overlay on it; further clones of the unchanged state share that base,
// and the base outlives its clones while the source sits on it.
func TestLinkedCloneFreezesInPlace(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "src", false)
	sp := s.Paths("src")
	srcDisk := sp.DiskPath("disk0.qcow2")
	qio(t, srcDisk, "write -P 65 0 64k")
	before, err := os.Stat(srcDisk)
	if err != nil {
		t.Fatal(err)
	}
	basesOf := func() []string {
		ents, _ := os.ReadDir(filepath.Join(sp.Dir, basesDir))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	if err := s.Clone(ctx, "src", "c1", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	bases := basesOf()
	if len(bases) != 1 {
		t.Fatalf("bases = %v; want one", bases)
	}
	frozen := filepath.Join(sp.Dir, basesDir, bases[0], "hd0.qcow2")
	if fi, err := os.Stat(frozen); err != nil || !os.SameFile(fi, before) || fi.Mode().Perm()&0o222 != 0 {
		t.Fatalf("base %s: %v; want the source's own disk file, read-only (no copy)", frozen, err)
	}
	info, err := readImageInfo(ctx, "qemu-img", srcDisk, "qcow2", false)
	if err != nil || filepath.Clean(info.FullBackingFilename) != frozen || filepath.IsAbs(info.BackingFilename) {
		t.Fatalf("source disk backing %q (%q), %v; want a relative path to %s", info.BackingFilename, info.FullBackingFilename, err, frozen)
	}
	if !holdsAt(t, srcDisk, "65", "0") || !holdsAt(t, s.Paths("c1").DiskPath("disk0.qcow2"), "65", "0") {
		t.Fatal("source or clone lost the data the source held")
	}

	// Unchanged since: the next clone shares the base.
	if err := s.Clone(ctx, "src", "c2", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	if got := basesOf(); len(got) != 1 {
		t.Errorf("bases after a second clone of the same state = %v; want the first one shared", got)
	}
	// The source writes to its overlay: base and clones stay as they were.
	sum := fileSum(t, frozen)
	qio(t, srcDisk, "write -P 66 0 64k")
	if fileSum(t, frozen) != sum || !holdsAt(t, s.Paths("c1").DiskPath("disk0.qcow2"), "65", "0") {
		t.Fatal("a write to the source reached its base or its clones")
	}
	// Changed since: a clone of the new state gets a base of its own, which
	// holds only what the source wrote since and sits on the first base.
	if err := s.Clone(ctx, "src", "c3", CloneOptions{Linked: true}); err != nil {
		t.Fatal(err)
	}
	if got := basesOf(); len(got) != 2 || !holdsAt(t, s.Paths("c3").DiskPath("disk0.qcow2"), "66", "0") || !holdsAt(t, s.Paths("c1").DiskPath("disk0.qcow2"), "65", "0") {
		t.Fatalf("bases %v; want a second base holding the source's new data, the first one unchanged", got)
	}
	second := ""
	for _, b := range basesOf() {
		if b != bases[0] {
			second = filepath.Join(sp.Dir, basesDir, b, "hd0.qcow2")
		}
	}
	delta, err := readImageInfo(ctx, "qemu-img", second, "qcow2", false)
	if err != nil || delta.BackingFilename != filepath.Join("..", bases[0], "hd0.qcow2") || filepath.Clean(delta.FullBackingFilename) != frozen {
		t.Fatalf("second base %s backs onto %q (%q), %v; want ../%s/hd0.qcow2", second, delta.BackingFilename, delta.FullBackingFilename, err, bases[0])
	}
	if own, err := holdsOwnData(ctx, "qemu-img", second); err != nil || !own {
		t.Errorf("second base holds own data: %v, %v", own, err)
	}
	if fileSum(t, frozen) != sum {
		t.Error("freezing again changed the first base")
	}

	// With every clone gone, the next clone reuses the base the source sits
	// on and prunes nothing: the source's disk needs both bases of its chain.
	for _, n := range []string{"c1", "c2", "c3"} {
		if err := s.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Clone(ctx, "src", "c4", CloneOptions{Linked: true, Snapshot: ""}); err != nil {
		t.Fatal(err)
	}
	if got := basesOf(); len(got) != 2 {
		t.Fatalf("bases after the last clone = %v; want the two of the source's chain", got)
	}
	if _, err := os.Stat(frozen); err != nil {
		t.Fatalf("the first base under the source's disk was pruned: %v", err)
	}
	if !holdsAt(t, srcDisk, "66", "0") || !holdsAt(t, s.Paths("c4").DiskPath("disk0.qcow2"), "66", "0") {
		t.Error("after pruning, the source or the new clone lost the source's data")
	}
	// Sitting on a base, the source still takes and restores snapshots.
	if _, err := s.SnapshotCreate(ctx, "src", "on-base", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	qio(t, srcDisk, "write -P 67 0 64k")
	if err := s.SnapshotRestore(ctx, "src", "on-base", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if !holdsAt(t, srcDisk, "66", "0") {
		t.Error("restoring a snapshot of the source on its base lost its data")
	}
	if err := s.Delete(ctx, "c4"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "src"); err != nil {
		t.Errorf("delete of the source once its clones are gone: %v", err)
	}
}

// Freezing again and again builds a chain of bases up to maxBaseChain; at
// it the source's disk is flattened and the chain starts anew, and every
// clone reads what the source held when it was made.
func TestLinkedCloneChainIsBounded(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "src", false)
	sp := s.Paths("src")
	srcDisk := sp.DiskPath("disk0.qcow2")
	for k := 1; k <= maxBaseChain+2; k++ {
		qio(t, srcDisk, fmt.Sprintf("write -P %d 0 64k", k))
		if err := s.Clone(ctx, "src", fmt.Sprintf("k%d", k), CloneOptions{Linked: true}); err != nil {
			t.Fatalf("clone %d: %v", k, err)
		}
	}
	for k := 1; k <= maxBaseChain+2; k++ {
		if !holdsAt(t, s.Paths(fmt.Sprintf("k%d", k)).DiskPath("disk0.qcow2"), strconv.Itoa(k), "0") {
			t.Errorf("clone k%d does not hold what the source held when it was made", k)
		}
	}
	info, err := readImageInfo(ctx, "qemu-img", srcDisk, "qcow2", false)
	if err != nil {
		t.Fatal(err)
	}
	base, ok := baseOf(sp.Dir, filepath.Join(sp.Dir, basesDir), info)
	if !ok {
		t.Fatalf("source disk backs onto %q, not a base", info.BackingFilename)
	}
	if n, err := chainLength(ctx, "qemu-img", filepath.Join(sp.Dir, basesDir), base); err != nil || n > maxBaseChain {
		t.Errorf("the source sits on a chain of %d bases (%v); want at most %d", n, err, maxBaseChain)
	}
}
