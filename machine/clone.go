package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
