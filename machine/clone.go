package machine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CloneOptions tune Clone.
type CloneOptions struct {
	// Linked makes the clone's disks thin qcow2 overlays on a frozen base
	// image kept in the source's folder, instead of full copies.
	Linked bool
	// Snapshot clones the disks as they were at this snapshot of the
	// source; "" clones their current state. (RAM state is never cloned:
	// the clone boots.)
	Snapshot string
	// Progress reports bytes copied out of the total.
	Progress ProgressFunc
}

// Clone makes VM dst from stopped VM src: same settings, new name, new MAC
// addresses, its own UEFI variable store, no snapshots.
//
// A full clone copies every disk (qemu-img convert). A linked clone's disks
// are qcow2 overlays on frozen base images that live in the source's folder
// under bases/: the source keeps using (and snapshotting) its own disks, so
// nothing it does can corrupt a clone's backing data, and the source cannot
// be deleted while a linked clone exists (Spec.LinkedTo). Linked clones of
// the same snapshot share one base. A clone of the current state of a
// source without snapshots copies at most what the source wrote since its
// last linked clone: the source's disk files become the base and the
// source writes to new overlays on them (freezeInPlace); otherwise making a
// base costs one copy of the source's used data.
func (s *Store) Clone(ctx context.Context, src, dst string, opts CloneOptions) (err error) {
	defer func() {
		err = noSpace(fmt.Sprintf("clone %q to %q", src, dst), err, filepath.Join(s.dirs.Data, "machines"), 0)
	}()
	if err := ValidateName(dst); err != nil {
		return fmt.Errorf("clone %q: %w", src, err)
	}
	if opts.Snapshot != "" {
		if err := ValidateTag(opts.Snapshot); err != nil {
			return fmt.Errorf("clone %q: %w", src, err)
		}
	}
	spec, err := s.Load(src)
	if err != nil {
		return err
	}
	sp, dp := s.Paths(src), s.Paths(dst)
	if _, err := os.Stat(dp.Dir); err == nil {
		return fmt.Errorf("clone %q to %q: %w: pick another name or `vlab delete %s` first", src, dst, ErrExists, dst)
	}
	l, err := lock(ctx, sp.Lock)
	if err != nil {
		return fmt.Errorf("clone %q: %w", src, err)
	}
	defer l.unlock()
	sc, err := s.loadSnapshots(ctx, src, true)
	if err != nil {
		return err
	}
	if sc.state.State.Active() {
		return fmt.Errorf("clone %q: %w: stop it first with `vlab stop %s` (a running disk cannot be copied consistently)", src, ErrRunning, src)
	}
	var snap Snapshot
	if opts.Snapshot != "" {
		var ok bool
		if snap, ok = sc.tree.Get(opts.Snapshot); !ok {
			return fmt.Errorf("clone %q at snapshot %q: %w: see `vlab snapshot list %s`", src, opts.Snapshot, ErrSnapshotNotFound, src)
		}
		if !snap.Restorable {
			return fmt.Errorf("clone %q at snapshot %q: images %s no longer hold it", src, opts.Snapshot, strings.Join(snap.Missing, ", "))
		}
	}
	qimg := sc.qimg

	// What to copy: every disk, then the UEFI vars, each from the
	// snapshot when it holds it.
	type job struct {
		src, format string
		at          bool // read the snapshot, not the current state
		size        int64
		info        imageInfo
		img         *Image // set when read as outside data (not on src's own bases)
	}
	var jobs []job // one per disk, then the UEFI vars
	var total float64
	imgs := make([]snapshotImage, 0, len(spec.Disks)+1)
	for _, d := range spec.Disks {
		imgs = append(imgs, snapshotImage{Key: d.File, Path: sp.DiskPath(d.File), Format: diskFormat(d)})
	}
	for _, im := range sc.imgs {
		if im.Key == efiVarsFile {
			imgs = append(imgs, im)
		}
	}
	for _, im := range imgs {
		j := job{src: im.Path, format: im.Format, at: opts.Snapshot != "" && slices.Contains(snap.Files, im.Key)}
		info, err := readImageInfo(ctx, qimg, im.Path, im.Format, false)
		if err != nil {
			return fmt.Errorf("clone %q: %w", src, err)
		}
		j.size, j.info = info.VirtualSize, info
		if _, own := baseOf(filepath.Dir(im.Path), filepath.Join(sp.Dir, basesDir), info); !own {
			// Not an overlay on src's own bases: it must be plain data
			// (an attached image may name a backing or data file that is
			// any host file), and it is read the way InspectImage reads.
			img, err := InspectImage(ctx, qimg, im.Path, im.Format)
			if err != nil {
				return fmt.Errorf("clone %q: %w", src, err)
			}
			j.img = &img
		}
		total += float64(j.size)
		jobs = append(jobs, j)
	}
	var done float64
	step := func(size int64) ProgressFunc {
		base := done
		return func(d, t float64) {
			if opts.Progress != nil && t > 0 {
				opts.Progress(base+d/t*float64(size), total)
			}
		}
	}
	convertTo := func(j job, dst, format string) error {
		var extra []string
		if j.at {
			extra = []string{"-l", "snapshot.name=" + opts.Snapshot}
		}
		var err error
		if j.img != nil {
			err = ConvertInspected(ctx, qimg, *j.img, dst, format, extra, step(j.size))
		} else {
			err = ConvertImage(ctx, qimg, j.src, j.format, dst, format, extra, step(j.size))
		}
		done += float64(j.size)
		return err
	}
	convert := func(j job, dst string) error { return convertTo(j, dst, "qcow2") }

	if opts.Linked {
		s.pruneBases(ctx, src)
	}
	// The clone's lock keeps a settling vlab off its folder in the making.
	dl, err := tryLock(dp.Lock)
	if err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	defer dl.unlock()
	tmp, err := os.MkdirTemp(filepath.Dir(dp.Dir), ".new-"+dst+"-")
	if err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
			if _, err := os.Stat(dp.Spec); errors.Is(err, fs.ErrNotExist) {
				os.RemoveAll(dp.Run) // only the lock file this call made
			}
		}
	}()
	in := &intent{Op: intentClone, VM: src, Temps: []string{tmp}}
	if err := s.beginIntent(in); err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	defer s.endIntent(src)
	faultPoint("clone:intent")
	clone := *spec
	clone.Name = dst
	clone.Disks = nil
	clone.NICs = append([]NICSpec(nil), spec.NICs...)
	for i := range clone.NICs {
		clone.NICs[i].MAC = NewMAC()
	}
	clone.LinkedTo = ""
	var base string
	if opts.Linked {
		clone.LinkedTo = src
		id := fmt.Sprintf("state-%d", time.Now().UnixNano())
		if opts.Snapshot != "" {
			infos := make([]imageInfo, len(jobs))
			for i := range jobs {
				infos[i] = jobs[i].info
			}
			id = snapBaseID(opts.Snapshot, infos)
		}
		base = filepath.Join(sp.Dir, basesDir, id)
	}
	if opts.Linked && opts.Snapshot == "" {
		infos := make([]imageInfo, len(spec.Disks))
		for i := range spec.Disks {
			infos[i] = jobs[i].info
		}
		frozen, err := s.freezeInPlace(ctx, qimg, sp, spec, sc, infos, func(base string, tops map[string]string) error {
			in.Base, in.Tops = base, tops
			return s.beginIntent(in)
		})
		if err != nil {
			return fmt.Errorf("clone %q to %q: %w", src, dst, err)
		}
		if frozen != "" {
			base = frozen
		}
	}
	if opts.Linked {
		if _, err := os.Stat(base); err != nil {
			if err := s.makeBase(base, func(dir string) error {
				for i, d := range spec.Disks {
					if d.ReadOnly {
						continue // copied whole into the clone
					}
					if err := convert(jobs[i], filepath.Join(dir, fmt.Sprintf("hd%d.qcow2", i))); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("clone %q to %q: %w", src, dst, err)
			}
			faultPoint("clone:base")
		}
	}
	for i, d := range spec.Disks {
		nd := d
		nd.File, nd.Format = fmt.Sprintf("disk%d.qcow2", i), "qcow2"
		if d.ReadOnly {
			// Read-only media (a cloud-init seed) are copied as they are.
			nd.File, nd.Format = filepath.Base(d.File), diskFormat(d)
			if err := convertTo(jobs[i], filepath.Join(tmp, nd.File), nd.Format); err != nil {
				return fmt.Errorf("clone %q to %q: %w", src, dst, err)
			}
			clone.Disks = append(clone.Disks, nd)
			continue
		}
		out := filepath.Join(tmp, nd.File)
		if opts.Linked {
			backing := filepath.Join(base, fmt.Sprintf("hd%d.qcow2", i))
			rel, err := filepath.Rel(dp.Dir, backing)
			if err != nil {
				rel = backing
			}
			if err := createOverlay(ctx, qimg, rel, "qcow2", out); err != nil {
				return fmt.Errorf("clone %q to %q: %w", src, dst, err)
			}
		} else if err := convert(jobs[i], out); err != nil {
			return fmt.Errorf("clone %q to %q: %w", src, dst, err)
		}
		clone.Disks = append(clone.Disks, nd)
		faultPoint("clone:disk-" + nd.File)
	}
	for i := len(spec.Disks); i < len(jobs); i++ { // the UEFI vars
		if err := convert(jobs[i], filepath.Join(tmp, efiVarsFile)); err != nil {
			return fmt.Errorf("clone %q to %q: %w", src, dst, err)
		}
	}
	if err := clone.Validate(); err != nil {
		return fmt.Errorf("clone %q to %q: %s", src, dst, oneLine(err.Error()))
	}
	data, err := encodeSpec(&clone)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(tmp, specFile), data, 0o600); err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	if err := os.Chmod(tmp, privateDirMode); err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	if err := syncTree(tmp); err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	faultPoint("clone:synced")
	if err := renameDurable(tmp, dp.Dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("clone %q to %q: %w", src, dst, ErrExists)
		}
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	ok = true
	faultPoint("clone:renamed")
	return nil
}

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
func (s *Store) freezeInPlace(ctx context.Context, qimg string, sp Paths, spec *Spec, sc *snapshotCtx, infos []imageInfo, record func(base string, tops map[string]string) error) (string, error) {
	if len(sc.tree.Snapshots) > 0 {
		return "", nil
	}
	type disk struct {
		i      int
		path   string
		size   int64
		onBase string // the base dir it sits on, "" for a plain image
	}
	var disks []disk
	reuse, allClean := "", true
	bases := filepath.Join(sp.Dir, basesDir)
	for i, d := range spec.Disks {
		if d.ReadOnly {
			continue
		}
		path, info := sp.DiskPath(d.File), infos[i]
		if diskFormat(d) != "qcow2" {
			return "", nil
		}
		if !inFolder(sp.Dir, path) {
			// A disk attached from outside the VM folder is the user's
			// file: never move it into a base or put an overlay in its
			// place. The caller copies it into a base instead.
			return "", nil
		}
		if len(info.Snapshots) > 0 {
			return "", nil
		}
		dk := disk{i: i, path: path, size: info.VirtualSize}
		disks = append(disks, dk)
		if info.BackingFilename == "" {
			allClean = false
			continue
		}
		dir, ok := baseOf(sp.Dir, bases, info)
		if !ok {
			return "", nil
		}
		n, err := chainLength(ctx, qimg, bases, dir)
		if err != nil {
			return "", err
		}
		if n >= maxBaseChain {
			// Flatten the disk into a plain image (one copy, as without a
			// freeze), which then freezes like a new one.
			allClean = false
			if err := flattenDisk(ctx, qimg, path); err != nil {
				return "", err
			}
			continue
		}
		own, err := holdsOwnData(ctx, qimg, path)
		if err != nil {
			return "", err
		}
		if own || (reuse != "" && reuse != dir) {
			allClean = false
		}
		reuse, disks[len(disks)-1].onBase = dir, dir
	}
	if len(disks) == 0 {
		return "", nil
	}
	if allClean {
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
		if d.onBase == "" {
			err = os.Link(d.path, frozen)
		} else {
			err = copyFile(ctx, d.path, frozen)
			if err == nil {
				// The copy now lives in bases/ID/: name its backing
				// file from there.
				below := filepath.Join("..", filepath.Base(d.onBase), name)
				if out, rerr := runCmd(ctx, qimg, "rebase", "-u", "-f", "qcow2", "-b", below, "-F", "qcow2", frozen); rerr != nil {
					err = fmt.Errorf("qemu-img rebase: %s", oneLine(strings.TrimSpace(out)))
				}
			}
		}
		if err != nil {
			cleanup()
			return "", fmt.Errorf("freeze %s: %w", d.path, err)
		}
		tops[n] = filepath.Join(sp.Dir, ".freeze-"+filepath.Base(d.path))
		backing := filepath.Join(basesDir, id, name)
		// -u: the backing file exists only once the base is renamed in.
		if out, err := runCmd(ctx, qimg, "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "qcow2", tops[n], strconv.FormatInt(d.size, 10)); err != nil {
			cleanup()
			return "", fmt.Errorf("create overlay on %s: %s", backing, oneLine(strings.TrimSpace(out)))
		}
		if err := privateFile(tops[n]); err != nil {
			cleanup()
			return "", err
		}
	}
	// Everything new is on disk before the base appears and the source's
	// disks are switched.
	if err := syncTree(tmp); err == nil {
		for _, t := range tops {
			if err = syncFile(t); err != nil {
				break
			}
		}
	}
	if err != nil {
		cleanup()
		return "", fmt.Errorf("freeze %s: %w", sp.Dir, err)
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

// flattenDisk rewrites the qcow2 overlay at path as a plain image holding
// everything its backing chain shows, in a temp file renamed over it.
func flattenDisk(ctx context.Context, qimg, path string) error {
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
func chainLength(ctx context.Context, qimg, bases, dir string) (int, error) {
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
func holdsOwnData(ctx context.Context, qimg, path string) (bool, error) {
	out, err := exec.CommandContext(ctx, qimg, "map", "--output=json", "-f", "qcow2", path).Output()
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
