package machine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vlab/emulator"
)

// makeBase builds a base folder with fill in a temp folder and renames it
// into place, its images read-only: a base appears whole or not at all, and
// nothing writes it afterwards.
func (s *Store) makeBase(base string, fill func(dir string) error) error {
	parent := filepath.Dir(base)
	if err := mkdirPrivate(parent); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		_ = os.Chmod(filepath.Join(tmp, e.Name()), 0o400) // read-only, owner-only
	}
	if err := syncTree(tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create base %s: %w", base, err)
	}
	if err := renameDurable(tmp, base); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create base %s: %w", base, err)
	}
	return nil
}

// pruneBases removes the base folders of VM name that neither a linked
// clone nor the VM itself uses any more, directly or as the base under a
// used base (and leftovers of interrupted clones). The caller holds name's
// lock. When anything is unclear it removes nothing.
func (s *Store) pruneBases(ctx context.Context, name string) {
	dir := filepath.Join(s.Paths(name).Dir, basesDir)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return
	}
	qimg, err := s.qemuImg(ctx)
	if err != nil {
		return
	}
	deps, err := s.Dependents(name)
	if err != nil {
		return
	}
	used := map[string]bool{}
	var queue []string // used bases whose own images are still to look at
	mark := func(imgDir string, info imageInfo) {
		if b, ok := baseOf(imgDir, dir, info); ok && !used[filepath.Base(b)] {
			used[filepath.Base(b)] = true
			queue = append(queue, b)
		}
	}
	// The linked clones' disks, and the VM's own: after a freeze in place
	// its disks are overlays on a base too.
	for _, dep := range append(deps, name) {
		spec, err := s.Load(dep)
		if err != nil {
			return
		}
		dp := s.Paths(dep)
		for _, d := range spec.Disks {
			info, err := readImageInfo(ctx, qimg, dp.DiskPath(d.File), diskFormat(d), true)
			if err != nil {
				return
			}
			mark(dp.Dir, info)
		}
	}
	// A base that a used base's images sit on is used too.
	for len(queue) > 0 {
		b := queue[0]
		queue = queue[1:]
		files, _ := filepath.Glob(filepath.Join(b, "hd*.qcow2"))
		for _, f := range files {
			info, err := readImageInfo(ctx, qimg, f, "qcow2", true)
			if err != nil {
				return
			}
			mark(b, info)
		}
	}
	for _, e := range ents {
		if !used[e.Name()] {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// maxBaseChain bounds how many bases a frozen disk may sit on (every read
// walks the chain): at it, the source's disk is flattened once.
const maxBaseChain = 8

// freezeInPlace makes the base of a linked clone of src's current state
// without copying src's data, when it can: each writable disk becomes part
// of a new read-only base, and src goes on writing to a fresh, empty
// overlay on it. A disk that is a plain image moves into the base by hard
// link (nothing is copied). A disk that already is an overlay on an earlier
// base (src was frozen before) has its own clusters copied, which are only
// what src wrote since, and the copy sits on that earlier base: bases form
// a chain. When src's overlays hold nothing new, the base they sit on is
// reused as it is. It returns "" when none of this applies (src has
// snapshots, which live inside its disk files; a disk is not qcow2 or sits
// on something other than src's bases): the caller then copies. A disk on
// a chain maxBaseChain long is first flattened into a plain image.
//
// Every step leaves src's disk paths valid: until the final rename a disk
// is its old file, after it the new overlay. infos are what qemu-img info
// said of spec's disks, in order.
//
// Before the base is renamed in, record (the clone's intent record) is
// given the base and the overlays, so that a killed vlab's freeze is
// finished by the next one (see intent.go).
func (s *Store) freezeInPlace(ctx context.Context, qimg emulator.QemuImg, sp Paths, spec *Spec, sc *snapshotCtx, infos []imageInfo, record func(base string, tops map[string]string) error) (string, error) {
	if len(sc.tree.Snapshots) > 0 {
		return "", nil
	}
	bases := filepath.Join(sp.Dir, basesDir)
	disks, reuse, err := planFreeze(ctx, qimg, sp, spec, infos)
	if err != nil || len(disks) == 0 {
		return "", err
	}
	if reuse != "" {
		return reuse, nil
	}

	id := fmt.Sprintf("state-%d", time.Now().UnixNano())
	base := filepath.Join(bases, id)
	if err := mkdirPrivate(bases); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(bases, ".tmp-")
	if err != nil {
		return "", err
	}
	tops, err := stageFreeze(ctx, qimg, sp, tmp, id, disks)
	if err != nil {
		return "", err
	}
	cleanup := func() {
		os.RemoveAll(tmp) // hard links and copies only: src's files stay
		for _, t := range tops {
			os.Remove(t)
		}
	}
	faultPoint("freeze:copied")
	switched := map[string]string{}
	for n, d := range disks {
		switched[tops[n]] = d.path
	}
	if err := record(base, switched); err != nil {
		cleanup()
		return "", fmt.Errorf("freeze %s: %w", sp.Dir, err)
	}
	faultPoint("freeze:recorded")
	if err := renameDurable(tmp, base); err != nil {
		cleanup()
		return "", fmt.Errorf("create base %s: %w", base, err)
	}
	faultPoint("freeze:base")
	for n, d := range disks {
		if err := os.Rename(tops[n], d.path); err != nil {
			return "", fmt.Errorf("freeze %s: %w", d.path, err)
		}
		_ = os.Chmod(filepath.Join(base, fmt.Sprintf("hd%d.qcow2", d.i)), 0o400)
		faultPoint("freeze:switched-" + filepath.Base(d.path))
	}
	if err := syncDir(sp.Dir); err != nil {
		return "", fmt.Errorf("freeze %s: %w", sp.Dir, err)
	}
	return base, nil
}

// stageFreeze fills tmp (the base-to-be bases/id) with the frozen disks —
// hard links of plain images, rebased copies of overlays — and makes each
// disk's new top overlay beside it, all on disk; on failure it removes what
// it made.
func stageFreeze(ctx context.Context, qimg emulator.QemuImg, sp Paths, tmp, id string, disks []freezeDisk) ([]string, error) {
	tops := make([]string, len(disks))
	cleanup := func() {
		os.RemoveAll(tmp) // hard links and copies only: src's files stay
		for _, t := range tops {
			if t != "" {
				os.Remove(t)
			}
		}
	}
	for n, d := range disks {
		name := fmt.Sprintf("hd%d.qcow2", d.i)
		frozen := filepath.Join(tmp, name)
		var err error
		if d.onBase == "" {
			err = os.Link(d.path, frozen)
		} else {
			err = copyFile(ctx, d.path, frozen, nil)
			if err == nil {
				// The copy now lives in bases/ID/: name its backing
				// file from there.
				below := filepath.Join("..", filepath.Base(d.onBase), name)
				if rerr := qimg.Rebase(ctx, frozen, below); rerr != nil {
					err = fmt.Errorf("qemu-img rebase: %w", rerr)
				}
			}
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("freeze %s: %w", d.path, err)
		}
		tops[n] = filepath.Join(sp.Dir, ".freeze-"+filepath.Base(d.path))
		backing := filepath.Join(basesDir, id, name)
		// -u: the backing file exists only once the base is renamed in.
		top := emulator.ImgCreate{Path: tops[n], Size: d.size, Backing: backing, BackingFormat: "qcow2", Unsafe: true}
		if err := qimg.Create(ctx, top); err != nil {
			cleanup()
			return nil, fmt.Errorf("create overlay on %s: %w", backing, err)
		}
		if err := privateFile(tops[n]); err != nil {
			cleanup()
			return nil, err
		}
	}
	// Everything new is on disk before the base appears and the source's
	// disks are switched.
	err := syncTree(tmp)
	for _, t := range tops {
		if err != nil {
			break
		}
		err = syncFile(t)
	}
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("freeze %s: %w", sp.Dir, err)
	}
	return tops, nil
}

// freezeDisk is one disk freezeInPlace freezes.
type freezeDisk struct {
	i      int
	path   string
	size   int64
	onBase string // the base dir it sits on, "" for a plain image
}

// planFreeze lists the disks of spec a freeze moves into a base; none when
// a disk cannot be frozen in place (not qcow2, outside the VM folder, with
// snapshots, on a foreign backing file): the caller copies instead. reuse
// names an existing base every disk is a clean overlay on: nothing to
// freeze. Chains grown too long are flattened here.
func planFreeze(ctx context.Context, qimg emulator.QemuImg, sp Paths, spec *Spec, infos []imageInfo) ([]freezeDisk, string, error) {
	var disks []freezeDisk
	reuse, allClean := "", true
	bases := filepath.Join(sp.Dir, basesDir)
	for i, d := range spec.Disks {
		if d.ReadOnly {
			continue
		}
		path, info := sp.DiskPath(d.File), infos[i]
		if diskFormat(d) != "qcow2" {
			return nil, "", nil
		}
		if !inFolder(sp.Dir, path) {
			// A disk attached from outside the VM folder is the user's
			// file: never move it into a base or put an overlay in its
			// place. The caller copies it into a base instead.
			return nil, "", nil
		}
		if len(info.Snapshots) > 0 {
			return nil, "", nil
		}
		dk := freezeDisk{i: i, path: path, size: info.VirtualSize}
		disks = append(disks, dk)
		if info.BackingFilename == "" {
			allClean = false
			continue
		}
		dir, ok := baseOf(sp.Dir, bases, info)
		if !ok {
			return nil, "", nil
		}
		n, err := chainLength(ctx, qimg, bases, dir)
		if err != nil {
			return nil, "", err
		}
		if n >= maxBaseChain {
			// Flatten the disk into a plain image (one copy, as without a
			// freeze), which then freezes like a new one.
			allClean = false
			if err := flattenDisk(ctx, qimg, path); err != nil {
				return nil, "", err
			}
			continue
		}
		own, err := holdsOwnData(ctx, qimg, path)
		if err != nil {
			return nil, "", err
		}
		if own || (reuse != "" && reuse != dir) {
			allClean = false
		}
		reuse, disks[len(disks)-1].onBase = dir, dir
	}
	if !allClean {
		reuse = ""
	}
	return disks, reuse, nil
}

// flattenDisk rewrites the qcow2 overlay at path as a plain image holding
// everything its backing chain shows, in a temp file renamed over it.
func flattenDisk(ctx context.Context, qimg emulator.QemuImg, path string) error {
	tmp := filepath.Join(filepath.Dir(path), ".flat-"+filepath.Base(path))
	os.Remove(tmp)
	if err := ConvertImage(ctx, qimg, path, "qcow2", tmp, "qcow2", nil, nil); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("flatten %s: %w", path, err)
	}
	faultPoint("flatten:synced") // ConvertImage synced the flat copy
	if err := renameDurable(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("flatten %s: %w", path, err)
	}
	return nil
}

// baseOf returns the folder under bases that the image described by info
// (found in dir) has as its backing file, if it is one.
func baseOf(dir, bases string, info imageInfo) (string, bool) {
	b := info.BackingFilename
	if b == "" {
		return "", false
	}
	if !filepath.IsAbs(b) {
		b = filepath.Join(dir, b)
	}
	rel, err := filepath.Rel(bases, filepath.Clean(b))
	if err != nil || strings.HasPrefix(rel, "..") || strings.HasPrefix(filepath.Base(filepath.Dir(rel)), ".") {
		return "", false
	}
	parts := strings.Split(rel, string(filepath.Separator))
	if len(parts) != 2 {
		return "", false
	}
	return filepath.Join(bases, parts[0]), true
}

// chainLength counts the bases below and including base dir: 1 for a base
// of plain images.
func chainLength(ctx context.Context, qimg emulator.QemuImg, bases, dir string) (int, error) {
	n := 0
	for dir != "" && n <= maxBaseChain {
		n++
		files, _ := filepath.Glob(filepath.Join(dir, "hd*.qcow2"))
		next := ""
		for _, f := range files {
			info, err := readImageInfo(ctx, qimg, f, "qcow2", true)
			if err != nil {
				return 0, err
			}
			if b, ok := baseOf(dir, bases, info); ok {
				next = b
			}
		}
		dir = next
	}
	return n, nil
}

// holdsOwnData reports whether the qcow2 overlay at path has any cluster
// of its own (data or zeroes written over its backing file).
func holdsOwnData(ctx context.Context, qimg emulator.QemuImg, path string) (bool, error) {
	out, err := qimg.Map(ctx, path, "qcow2")
	if err != nil {
		return false, fmt.Errorf("qemu-img map %s: %w", path, err)
	}
	var extents []struct {
		Depth   int  `json:"depth"`
		Present bool `json:"present"`
	}
	if err := json.Unmarshal(out, &extents); err != nil {
		return false, fmt.Errorf("qemu-img map %s: %w", path, err)
	}
	for _, e := range extents {
		if e.Depth == 0 && e.Present {
			return true, nil
		}
	}
	return false, nil
}

// snapBaseID names the base of linked clones of snapshot tag: the tag and a
// digest of the snapshot's identity in every image that holds it (qcow2
// snapshot id, date to the microsecond, size of the guest clock), so a
// snapshot deleted and taken again under the same tag gets a new base and
// never reuses the stale one.
func snapBaseID(tag string, infos []imageInfo) string {
	h := sha256.New()
	for i, info := range infos {
		for _, sn := range info.Snapshots {
			if sn.Name == tag {
				fmt.Fprintf(h, "%d\x00%s\x00%d\x00%d\x00%d\n", i, sn.ID, sn.DateSec, sn.DateNsec, sn.VMClockNsec)
			}
		}
	}
	return fmt.Sprintf("snap-%s-%x", tag, h.Sum(nil)[:8])
}

// inFolder reports whether path names an entry directly inside dir.
func inFolder(dir, path string) bool {
	return filepath.Dir(filepath.Clean(path)) == filepath.Clean(dir)
}
