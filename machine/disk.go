package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vlab/emulator"
)

// ProgressFunc receives progress reports of a long operation (a disk
// conversion, a clone, a snapshot job): done out of total, in whatever unit
// the operation counts (bytes for copies). It is called from the goroutine
// running the operation and must not block.
type ProgressFunc func(done, total float64)

// ImportFormats are the image formats DiskImport reads.
var ImportFormats = []string{"raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc"}

// imageInfo is what `qemu-img info --output=json` reports about one image.
type imageInfo struct {
	Filename            string          `json:"filename"`
	Format              string          `json:"format"`
	VirtualSize         int64           `json:"virtual-size"`
	ActualSize          int64           `json:"actual-size"`
	BackingFilename     string          `json:"backing-filename"`
	FullBackingFilename string          `json:"full-backing-filename"`
	Snapshots           []imageSnapshot `json:"snapshots"`
	FormatSpecific      struct {
		Type string `json:"type"`
		Data struct {
			Extents []struct {
				Filename string `json:"filename"`
			} `json:"extents"`
			DataFile string `json:"data-file"` // a qcow2 external data file
		} `json:"data"`
	} `json:"format-specific"`
}

// imageSnapshot is one internal snapshot of a qcow2 image.
type imageSnapshot struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	VMStateSize int64  `json:"vm-state-size"`
	DateSec     int64  `json:"date-sec"`
	DateNsec    int64  `json:"date-nsec"`
	VMClockNsec int64  `json:"vm-clock-nsec"`
}

// Time is when the snapshot was taken.
func (s imageSnapshot) Time() time.Time { return time.Unix(s.DateSec, s.DateNsec) }

// parseImageInfo decodes `qemu-img info --output=json` of one image.
func parseImageInfo(data []byte) (imageInfo, error) {
	var info imageInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return imageInfo{}, fmt.Errorf("parse qemu-img info: %w", err)
	}
	if info.Format == "" {
		return imageInfo{}, errors.New("parse qemu-img info: no format in the output")
	}
	return info, nil
}

// readImageInfo runs `qemu-img info --output=json` on path. shared adds -U,
// so an image a running QEMU holds can be read (its metadata may be a moment
// old). format "" lets qemu-img probe; vlab passes it for its own images.
func readImageInfo(ctx context.Context, qimg emulator.QemuImg, path, format string, shared bool) (imageInfo, error) {
	out, err := qimg.Info(ctx, emulator.ImgSource{Path: path, Format: format}, shared)
	if err != nil {
		return imageInfo{}, fmt.Errorf("inspect image %s: %w", path, err)
	}
	info, err := parseImageInfo(out)
	if err != nil {
		return imageInfo{}, fmt.Errorf("inspect image %s: %w", path, err)
	}
	return info, nil
}

// ConvertImage copies src (format srcFormat; "" refuses to guess and is an
// error) into a new dstFormat image at dst with `qemu-img convert -p`,
// reporting progress in bytes of src's virtual size. extra are options put
// before the file names (e.g. "-l", "snapshot.name=TAG"). On failure dst is
// removed.
func ConvertImage(ctx context.Context, qimg emulator.QemuImg, src, srcFormat, dst, dstFormat string, extra []string, progress ProgressFunc) error {
	if srcFormat == "" {
		return fmt.Errorf("convert image %s: no source format given", src)
	}
	total := 100.0
	if info, err := readImageInfo(ctx, qimg, src, srcFormat, true); err == nil && info.VirtualSize > 0 {
		total = float64(info.VirtualSize)
	}
	return convertImage(ctx, qimg, src, emulator.ImgSource{Path: src, Format: srcFormat}, total, dst, dstFormat, extra, progress)
}

// convertImage copies the image from (src names it in messages) to a new
// dstFormat image at dst, owner-only and on disk, with progress in bytes of
// total.
func convertImage(ctx context.Context, qimg emulator.QemuImg, src string, from emulator.ImgSource, total float64, dst, dstFormat string, extra []string, progress ProgressFunc) error {
	if total <= 0 {
		total = 100
	}
	var report func(pct float64)
	if progress != nil {
		report = func(pct float64) { progress(pct/100*total, total) }
	}
	stop := writeBehind(dst)
	err := qimg.Convert(ctx, emulator.ImgConvert{Src: from, Dst: dst, DstFormat: dstFormat, Extra: extra}, report)
	stop()
	if err != nil {
		os.Remove(dst)
		if ctx.Err() != nil {
			return fmt.Errorf("convert image %s: %w", src, ctx.Err())
		}
		return fmt.Errorf("convert image %s: %w", src, err)
	}
	if err := privateFile(dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("convert image %s: %w", src, err)
	}
	// The copy must be on disk before anything it replaces goes.
	if err := syncFile(dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("convert image %s: %w", src, err)
	}
	return nil
}

// stoppedForDisks checks that VM name exists and no QEMU runs it: vlab
// changes disks only while the VM is off.
func (s *Store) stoppedForDisks(ctx context.Context, name, op string) (*Spec, error) {
	spec, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return nil, err
	}
	if st.State.Active() {
		return nil, fmt.Errorf("%s of vm %q: %w: stop it first with `vlab stop %s`", op, name, ErrRunning, name)
	}
	return spec, nil
}

// saveSpecLocked writes spec while the caller holds the VM lock (Save would
// wait for that same lock).
func (s *Store) saveSpecLocked(spec *Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("save vm %q: %s", spec.Name, oneLine(err.Error()))
	}
	data, err := encodeSpec(spec)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.Paths(spec.Name).Spec, data, 0o600)
}

// qemuImg returns the path of qemu-img, or an error naming the package.
func (s *Store) qemuImg(ctx context.Context) (emulator.QemuImg, error) {
	h, err := s.Host(ctx)
	if err != nil {
		return "", err
	}
	if h.QemuImg == "" {
		return "", emulator.ErrNoQemuImg
	}
	return h.QemuImg, nil
}

// nextDiskFile returns the first diskN.qcow2 (or .img for raw) name that
// neither the spec nor the folder uses.
func nextDiskFile(spec *Spec, dir, format string) string {
	ext := ".qcow2"
	if format == "raw" {
		ext = ".img"
	}
	used := map[string]bool{}
	for _, d := range spec.Disks {
		used[filepath.Base(d.File)] = true
	}
	for i := 0; ; i++ {
		f := fmt.Sprintf("disk%d%s", i, ext)
		if used[f] {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, f)); errors.Is(err, fs.ErrNotExist) {
			return f
		}
	}
}

// DiskOptions describe a new empty disk.
type DiskOptions struct {
	Size   Size
	Format string // "qcow2" (default; needed for snapshots) or "raw"
	Bus    string // "" = the arch default
}

// DiskAdd creates a new empty disk for stopped VM name and appends it to
// its definition. It returns the new disk's entry.
func (s *Store) DiskAdd(ctx context.Context, name string, opts DiskOptions) (DiskSpec, error) {
	if err := ValidateName(name); err != nil {
		return DiskSpec{}, fmt.Errorf("add disk: %w", err)
	}
	if opts.Format == "" {
		opts.Format = "qcow2"
	}
	if opts.Format != "qcow2" && opts.Format != "raw" {
		return DiskSpec{}, fmt.Errorf("add disk to vm %q: format %q unknown: use qcow2 or raw", name, opts.Format)
	}
	if opts.Size <= 0 || opts.Size > MaxDisk {
		return DiskSpec{}, fmt.Errorf("add disk to vm %q: size %s out of range: use up to %s, e.g. 20G", name, opts.Size, MaxDisk)
	}
	p := s.Paths(name)
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("add disk to vm %q: %w", name, err)
	}
	defer l.unlock()
	spec, err := s.stoppedForDisks(ctx, name, "add disk")
	if err != nil {
		return DiskSpec{}, err
	}
	qimg, err := s.qemuImg(ctx)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("add disk to vm %q: %w", name, err)
	}
	d := DiskSpec{File: nextDiskFile(spec, p.Dir, opts.Format), Size: opts.Size, Format: opts.Format, Bus: opts.Bus}
	path := p.DiskPath(d.File)
	if err := CreateDisk(ctx, qimg, path, d.Format, d.Size); err != nil {
		return DiskSpec{}, fmt.Errorf("add disk to vm %q: %w", name, err)
	}
	spec.Disks = append(spec.Disks, d)
	if err := s.saveSpecLocked(spec); err != nil {
		os.Remove(path)
		return DiskSpec{}, fmt.Errorf("add disk to vm %q: %w", name, err)
	}
	return d, nil
}

// findDisk resolves how a user names a disk: its index ("1"), its node
// name ("hd1") or its file name ("disk1.qcow2", or the path).
func findDisk(spec *Spec, p Paths, ref string) (int, error) {
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < len(spec.Disks) {
		return i, nil
	}
	if strings.HasPrefix(ref, "hd") {
		if i, err := strconv.Atoi(ref[2:]); err == nil && i >= 0 && i < len(spec.Disks) {
			return i, nil
		}
	}
	for i, d := range spec.Disks {
		if ref == d.File || ref == filepath.Base(d.File) || filepath.Clean(ref) == filepath.Clean(p.DiskPath(d.File)) {
			return i, nil
		}
	}
	// A path typed by the user is relative to where they are.
	if abs, err := filepath.Abs(ref); err == nil && strings.ContainsRune(ref, filepath.Separator) {
		for i, d := range spec.Disks {
			if abs == filepath.Clean(p.DiskPath(d.File)) {
				return i, nil
			}
		}
	}
	var names []string
	for i, d := range spec.Disks {
		names = append(names, fmt.Sprintf("%d (%s)", i, d.File))
	}
	if len(names) == 0 {
		return -1, fmt.Errorf("vm %q has no disks: add one with `vlab disk add %s SIZE`", spec.Name, spec.Name)
	}
	return -1, fmt.Errorf("vm %q has no disk %q: use an index or file name: %s", spec.Name, ref, strings.Join(names, ", "))
}

// DiskRemove detaches disk ref (index, hdN or file name) from stopped VM
// name. With deleteFile it also deletes the image when it lives in the VM
// folder; an image attached from elsewhere is never deleted. The caller must
// have asked the user before deleting. It returns the removed entry.
func (s *Store) DiskRemove(ctx context.Context, name, ref string, deleteFile bool) (DiskSpec, error) {
	if err := ValidateName(name); err != nil {
		return DiskSpec{}, fmt.Errorf("remove disk: %w", err)
	}
	p := s.Paths(name)
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("remove disk of vm %q: %w", name, err)
	}
	defer l.unlock()
	spec, err := s.stoppedForDisks(ctx, name, "remove disk")
	if err != nil {
		return DiskSpec{}, err
	}
	i, err := findDisk(spec, p, ref)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("remove disk: %w", err)
	}
	d := spec.Disks[i]
	spec.Disks = append(spec.Disks[:i:i], spec.Disks[i+1:]...)
	if err := s.saveSpecLocked(spec); err != nil {
		return DiskSpec{}, fmt.Errorf("remove disk of vm %q: %w", name, err)
	}
	if deleteFile {
		path := p.DiskPath(d.File)
		if rel, err := filepath.Rel(p.Dir, path); err != nil || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
			return d, fmt.Errorf("remove disk of vm %q: %s is outside the vm folder: detached but not deleted", name, path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return d, fmt.Errorf("remove disk of vm %q: detached, but deleting %s failed: %w", name, path, err)
		}
	}
	return d, nil
}

// DiskResize grows disk ref of stopped VM name to size. Shrinking is
// refused: it would cut off the guest's data.
func (s *Store) DiskResize(ctx context.Context, name, ref string, size Size) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("resize disk: %w", err)
	}
	if size <= 0 || size > MaxDisk {
		return fmt.Errorf("resize disk of vm %q: size %s out of range: use up to %s, e.g. 40G", name, size, MaxDisk)
	}
	p := s.Paths(name)
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return fmt.Errorf("resize disk of vm %q: %w", name, err)
	}
	defer l.unlock()
	spec, err := s.stoppedForDisks(ctx, name, "resize disk")
	if err != nil {
		return err
	}
	i, err := findDisk(spec, p, ref)
	if err != nil {
		return fmt.Errorf("resize disk: %w", err)
	}
	qimg, err := s.qemuImg(ctx)
	if err != nil {
		return fmt.Errorf("resize disk of vm %q: %w", name, err)
	}
	d := &spec.Disks[i]
	format := diskFormat(*d)
	path := p.DiskPath(d.File)
	info, err := readImageInfo(ctx, qimg, path, format, false)
	if err != nil {
		return fmt.Errorf("resize disk of vm %q: %w", name, err)
	}
	switch {
	case int64(size) < info.VirtualSize:
		return fmt.Errorf("resize disk %s of vm %q: %s is smaller than its size %s: disks only grow (shrinking would cut off data)", d.File, name, size, Size(info.VirtualSize))
	case int64(size) == info.VirtualSize:
		return fmt.Errorf("resize disk %s of vm %q: it is already %s", d.File, name, size)
	}
	if err := qimg.Resize(ctx, path, format, int64(size)); err != nil {
		return fmt.Errorf("resize disk %s of vm %q: %w", d.File, name, err)
	}
	d.Size = size
	if err := s.saveSpecLocked(spec); err != nil {
		return fmt.Errorf("resize disk of vm %q: %w", name, err)
	}
	return nil
}

func diskFormat(d DiskSpec) string {
	if d.Format == "" {
		return "qcow2"
	}
	return d.Format
}

// ImportOptions tune DiskImport.
type ImportOptions struct {
	Format   string // the image's format; "" = detect (raw is never guessed)
	Bus      string // "" = the arch default
	Progress ProgressFunc
}

// DiskImport converts an existing image (raw, qcow2, vmdk, vdi, vhdx, vpc)
// into a new qcow2 disk of stopped VM name and appends it to the VM's
// definition. The source image is only read.
func (s *Store) DiskImport(ctx context.Context, name, image string, opts ImportOptions) (_ DiskSpec, err error) {
	if err := ValidateName(name); err != nil {
		return DiskSpec{}, fmt.Errorf("import disk: %w", err)
	}
	p := s.Paths(name)
	var need int64
	defer func() { err = noSpace(fmt.Sprintf("import disk into vm %q", name), err, p.Dir, need) }()
	src, err := filepath.Abs(image)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	defer l.unlock()
	spec, err := s.stoppedForDisks(ctx, name, "import disk")
	if err != nil {
		return DiskSpec{}, err
	}
	qimg, err := s.qemuImg(ctx)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	info, err := inspectImage(ctx, qimg, src, opts.Format) // plain data only (image.go)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	need = info.ActualSize
	d := DiskSpec{File: nextDiskFile(spec, p.Dir, "qcow2"), Size: Size(info.VirtualSize), Format: "qcow2", Bus: opts.Bus}
	dst := p.DiskPath(d.File)
	tmp := filepath.Join(p.Dir, "."+d.File+".import")
	if err := s.beginIntent(&intent{Op: intentImport, VM: name, NewDisk: d.File, Temps: []string{tmp}}); err != nil {
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	defer s.endIntent(name)
	faultPoint("import:intent")
	os.Remove(tmp)
	img := Image{Path: src, Format: info.Format, VirtualSize: info.VirtualSize}
	if err := ConvertInspected(ctx, qimg, img, tmp, "qcow2", nil, opts.Progress); err != nil {
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	faultPoint("import:copied")
	if err := renameDurable(tmp, dst); err != nil {
		os.Remove(tmp)
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	faultPoint("import:renamed")
	spec.Disks = append(spec.Disks, d)
	if err := s.saveSpecLocked(spec); err != nil {
		os.Remove(dst)
		return DiskSpec{}, fmt.Errorf("import disk into vm %q: %w", name, err)
	}
	faultPoint("import:saved")
	return d, nil
}

// DiskConvert turns raw disk ref of stopped VM name into qcow2 (so the VM
// can take snapshots). The new image replaces the raw one in the VM's
// definition; the raw file is kept unless it is a plain file directly in the
// VM folder, where it is deleted after the switch, once the new image and
// the folder are on disk. A raw image from elsewhere (named by an absolute
// path or a relative one leading out of the folder) is left untouched and
// the qcow2 copy goes into the VM folder.
func (s *Store) DiskConvert(ctx context.Context, name, ref string, progress ProgressFunc) (_ DiskSpec, err error) {
	if err := ValidateName(name); err != nil {
		return DiskSpec{}, fmt.Errorf("convert disk: %w", err)
	}
	p := s.Paths(name)
	defer func() { err = noSpace(fmt.Sprintf("convert disk of vm %q", name), err, p.Dir, 0) }()
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("convert disk of vm %q: %w", name, err)
	}
	defer l.unlock()
	spec, err := s.stoppedForDisks(ctx, name, "convert disk")
	if err != nil {
		return DiskSpec{}, err
	}
	i, err := findDisk(spec, p, ref)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("convert disk: %w", err)
	}
	old := spec.Disks[i]
	if diskFormat(old) == "qcow2" {
		return DiskSpec{}, fmt.Errorf("convert disk %s of vm %q: it is qcow2 already", old.File, name)
	}
	qimg, err := s.qemuImg(ctx)
	if err != nil {
		return DiskSpec{}, fmt.Errorf("convert disk of vm %q: %w", name, err)
	}
	d := old
	d.File, d.Format = nextDiskFile(spec, p.Dir, "qcow2"), "qcow2"
	oldPath, dst := p.DiskPath(old.File), p.DiskPath(d.File)
	img, err := InspectImage(ctx, qimg, oldPath, diskFormat(old))
	if err != nil {
		return DiskSpec{}, fmt.Errorf("convert disk %s of vm %q: %w", old.File, name, err)
	}
	tmp := filepath.Join(p.Dir, "."+d.File+".convert")
	in := &intent{Op: intentConvert, VM: name, NewDisk: d.File, Temps: []string{tmp}}
	if ownDiskFile(p.Dir, old.File) {
		in.OldDisk = old.File
	}
	if err := s.beginIntent(in); err != nil {
		return DiskSpec{}, fmt.Errorf("convert disk %s of vm %q: %w", old.File, name, err)
	}
	defer s.endIntent(name)
	faultPoint("convert:intent")
	os.Remove(tmp)
	// convertImage fsyncs the copy before it returns.
	if err := ConvertInspected(ctx, qimg, img, tmp, "qcow2", nil, progress); err != nil {
		return DiskSpec{}, fmt.Errorf("convert disk %s of vm %q: %w", old.File, name, err)
	}
	faultPoint("convert:synced")
	if err := renameDurable(tmp, dst); err != nil {
		os.Remove(tmp)
		return DiskSpec{}, fmt.Errorf("convert disk %s of vm %q: %w", old.File, name, err)
	}
	faultPoint("convert:renamed")
	spec.Disks[i] = d
	if err := s.saveSpecLocked(spec); err != nil {
		os.Remove(dst)
		return DiskSpec{}, fmt.Errorf("convert disk %s of vm %q: %w", old.File, name, err)
	}
	faultPoint("convert:saved")
	if ownDiskFile(p.Dir, old.File) {
		os.Remove(oldPath)
		_ = syncDir(p.Dir)
	}
	faultPoint("convert:removed")
	return d, nil
}

// ownDiskFile reports whether disk file (as machine.toml names it) is a
// plain file directly in VM folder dir, which vlab made and may delete.
func ownDiskFile(dir, file string) bool {
	if filepath.IsAbs(file) || !filepath.IsLocal(file) || strings.ContainsRune(file, filepath.Separator) {
		return false
	}
	fi, err := os.Lstat(filepath.Join(dir, file))
	return err == nil && fi.Mode().IsRegular()
}
