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
	r := &cloneRun{s: s, ctx: ctx, src: src, dst: dst, opts: opts, spec: spec, sp: s.Paths(src), dp: s.Paths(dst)}
	if _, err := os.Stat(r.dp.Dir); err == nil {
		return fmt.Errorf("clone %q to %q: %w: pick another name or `vlab delete %s` first", src, dst, ErrExists, dst)
	}
	l, err := lock(ctx, r.sp.Lock)
	if err != nil {
		return fmt.Errorf("clone %q: %w", src, err)
	}
	defer l.unlock()
	if err := r.plan(); err != nil {
		return err
	}
	if opts.Linked {
		s.pruneBases(ctx, src)
	}
	// The clone's lock keeps a settling vlab off its folder in the making.
	dl, err := tryLock(r.dp.Lock)
	if err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	defer dl.unlock()
	tmp, err := os.MkdirTemp(filepath.Dir(r.dp.Dir), ".new-"+dst+"-")
	if err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
			if _, err := os.Stat(r.dp.Spec); errors.Is(err, fs.ErrNotExist) {
				os.RemoveAll(r.dp.Run) // only the lock file this call made
			}
		}
	}()
	in := &intent{Op: intentClone, VM: src, Temps: []string{tmp}}
	if err := s.beginIntent(in); err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	defer s.endIntent(src)
	faultPoint("clone:intent")
	var base string
	if opts.Linked {
		if base, err = r.linkedBase(in); err != nil {
			return fmt.Errorf("clone %q to %q: %w", src, dst, err)
		}
	}
	clone := r.cloneSpec()
	if clone.Disks, err = r.copyDisks(tmp, base); err != nil {
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	if err := r.commit(tmp, clone); err != nil {
		return err
	}
	ok = true
	faultPoint("clone:renamed")
	return nil
}

// cloneRun is one Clone between its checks and its commit.
type cloneRun struct {
	s        *Store
	ctx      context.Context
	src, dst string
	opts     CloneOptions
	spec     *Spec
	sp, dp   Paths
	sc       *snapshotCtx
	snap     Snapshot   // opts.Snapshot's entry, when set
	jobs     []cloneJob // one per disk, then the UEFI vars
	total    float64    // bytes to copy, for progress
	done     float64    // bytes copied
}

// cloneJob is one image to copy.
type cloneJob struct {
	src, format string
	at          bool // read the snapshot, not the current state
	size        int64
	info        imageInfo
	img         *Image // set when read as outside data (not on src's own bases)
}

// plan checks that the source is stopped and the snapshot usable, and
// lists what to copy: every disk, then the UEFI vars, each from the
// snapshot when it holds it.
func (r *cloneRun) plan() error {
	sc, err := r.s.loadSnapshots(r.ctx, r.src, true)
	if err != nil {
		return err
	}
	r.sc = sc
	if sc.state.State.Active() {
		return fmt.Errorf("clone %q: %w: stop it first with `vlab stop %s` (a running disk cannot be copied consistently)", r.src, ErrRunning, r.src)
	}
	if tag := r.opts.Snapshot; tag != "" {
		var ok bool
		if r.snap, ok = sc.tree.Get(tag); !ok {
			return fmt.Errorf("clone %q at snapshot %q: %w: see `vlab snapshot list %s`", r.src, tag, ErrSnapshotNotFound, r.src)
		}
		if !r.snap.Restorable {
			return fmt.Errorf("clone %q at snapshot %q: images %s no longer hold it", r.src, tag, strings.Join(r.snap.Missing, ", "))
		}
	}
	imgs := make([]snapshotImage, 0, len(r.spec.Disks)+1)
	for _, d := range r.spec.Disks {
		imgs = append(imgs, snapshotImage{Key: d.File, Path: r.sp.DiskPath(d.File), Format: diskFormat(d)})
	}
	for _, im := range sc.imgs {
		if im.Key == efiVarsFile {
			imgs = append(imgs, im)
		}
	}
	for _, im := range imgs {
		j := cloneJob{src: im.Path, format: im.Format, at: r.opts.Snapshot != "" && slices.Contains(r.snap.Files, im.Key)}
		info, err := readImageInfo(r.ctx, sc.qimg, im.Path, im.Format, false)
		if err != nil {
			return fmt.Errorf("clone %q: %w", r.src, err)
		}
		j.size, j.info = info.VirtualSize, info
		if _, own := baseOf(filepath.Dir(im.Path), filepath.Join(r.sp.Dir, basesDir), info); !own {
			// Not an overlay on src's own bases: it must be plain data
			// (an attached image may name a backing or data file that is
			// any host file), and it is read the way InspectImage reads.
			img, err := InspectImage(r.ctx, sc.qimg, im.Path, im.Format)
			if err != nil {
				return fmt.Errorf("clone %q: %w", r.src, err)
			}
			j.img = &img
		}
		r.total += float64(j.size)
		r.jobs = append(r.jobs, j)
	}
	return nil
}

// convert copies job j into a new image of format at dst, reporting
// progress within the whole clone.
func (r *cloneRun) convert(j cloneJob, dst, format string) error {
	var extra []string
	if j.at {
		extra = []string{"-l", "snapshot.name=" + r.opts.Snapshot}
	}
	base := r.done
	step := func(d, t float64) {
		if r.opts.Progress != nil && t > 0 {
			r.opts.Progress(base+d/t*float64(j.size), r.total)
		}
	}
	var err error
	if j.img != nil {
		err = ConvertInspected(r.ctx, r.sc.qimg, *j.img, dst, format, extra, step)
	} else {
		err = ConvertImage(r.ctx, r.sc.qimg, j.src, j.format, dst, format, extra, step)
	}
	r.done += float64(j.size)
	return err
}

// infos is what qemu-img said of the first n images to copy.
func (r *cloneRun) infos(n int) []imageInfo {
	out := make([]imageInfo, n)
	for i := range out {
		out[i] = r.jobs[i].info
	}
	return out
}

// linkedBase returns the folder of the frozen base images a linked clone's
// disks are overlays on, making it unless it exists: the snapshot's shared
// base, or the source's current disks frozen in place (freezeInPlace), or
// else a copy of them.
func (r *cloneRun) linkedBase(in *intent) (string, error) {
	id := fmt.Sprintf("state-%d", time.Now().UnixNano())
	if r.opts.Snapshot != "" {
		id = snapBaseID(r.opts.Snapshot, r.infos(len(r.jobs)))
	}
	base := filepath.Join(r.sp.Dir, basesDir, id)
	if r.opts.Snapshot == "" {
		frozen, err := r.s.freezeInPlace(r.ctx, r.sc.qimg, r.sp, r.spec, r.sc, r.infos(len(r.spec.Disks)), func(base string, tops map[string]string) error {
			in.Base, in.Tops = base, tops
			return r.s.beginIntent(in)
		})
		if err != nil {
			return "", err
		}
		if frozen != "" {
			base = frozen
		}
	}
	if _, err := os.Stat(base); err == nil {
		return base, nil
	}
	err := r.s.makeBase(base, func(dir string) error {
		for i, d := range r.spec.Disks {
			if d.ReadOnly {
				continue // copied whole into the clone
			}
			if err := r.convert(r.jobs[i], filepath.Join(dir, fmt.Sprintf("hd%d.qcow2", i)), "qcow2"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	faultPoint("clone:base")
	return base, nil
}

// cloneSpec is the source's definition under the new name, with new MAC
// addresses and no disks yet.
func (r *cloneRun) cloneSpec() *Spec {
	clone := *r.spec
	clone.Name = r.dst
	clone.Disks = nil
	clone.NICs = append([]NICSpec(nil), r.spec.NICs...)
	for i := range clone.NICs {
		clone.NICs[i].MAC = NewMAC()
	}
	clone.LinkedTo = ""
	if r.opts.Linked {
		clone.LinkedTo = r.src
	}
	return &clone
}

// copyDisks makes the clone's disks and UEFI vars in tmp: overlays on base
// for a linked clone, full copies otherwise; read-only media are copied as
// they are.
func (r *cloneRun) copyDisks(tmp, base string) ([]DiskSpec, error) {
	var disks []DiskSpec
	for i, d := range r.spec.Disks {
		nd := d
		nd.File, nd.Format = fmt.Sprintf("disk%d.qcow2", i), "qcow2"
		if d.ReadOnly {
			// Read-only media (a cloud-init seed) are copied as they are.
			nd.File, nd.Format = filepath.Base(d.File), diskFormat(d)
			if err := r.convert(r.jobs[i], filepath.Join(tmp, nd.File), nd.Format); err != nil {
				return nil, err
			}
			disks = append(disks, nd)
			continue
		}
		out := filepath.Join(tmp, nd.File)
		if base != "" {
			backing := filepath.Join(base, fmt.Sprintf("hd%d.qcow2", i))
			rel, err := filepath.Rel(r.dp.Dir, backing)
			if err != nil {
				rel = backing
			}
			if err := createOverlay(r.ctx, r.sc.qimg, rel, "qcow2", out); err != nil {
				return nil, err
			}
		} else if err := r.convert(r.jobs[i], out, "qcow2"); err != nil {
			return nil, err
		}
		disks = append(disks, nd)
		faultPoint("clone:disk-" + nd.File)
	}
	for i := len(r.spec.Disks); i < len(r.jobs); i++ { // the UEFI vars
		if err := r.convert(r.jobs[i], filepath.Join(tmp, efiVarsFile), "qcow2"); err != nil {
			return nil, err
		}
	}
	return disks, nil
}

// commit writes the clone's definition into tmp and, once all of tmp is on
// disk, renames it into place: the clone appears whole or not at all.
func (r *cloneRun) commit(tmp string, clone *Spec) error {
	src, dst := r.src, r.dst
	if err := clone.Validate(); err != nil {
		return fmt.Errorf("clone %q to %q: %s", src, dst, oneLine(err.Error()))
	}
	data, err := encodeSpec(clone)
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
	if err := renameDurable(tmp, r.dp.Dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("clone %q to %q: %w", src, dst, ErrExists)
		}
		return fmt.Errorf("clone %q to %q: %w", src, dst, err)
	}
	return nil
}
