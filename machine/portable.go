package machine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"vlab/emulator"
)

// DiskSource is a disk image from a package (an OVA member or a file beside
// an OVF descriptor) that CreateImported converts into a new VM's qcow2 disk.
// A member of an archive is Length bytes at Offset of the file at Path;
// Length 0 means the whole file.
type DiskSource struct {
	Path   string
	Offset int64
	Length int64
	Format string // "" = detect from the magic bytes (raw is never guessed)
}

// member reports whether src is a part of a larger file.
func (src DiskSource) member() bool { return src.Offset != 0 || src.Length != 0 }

// label names src in errors.
func (src DiskSource) label() string {
	if src.member() {
		return fmt.Sprintf("%s@%d", src.Path, src.Offset)
	}
	return src.Path
}

// InspectSource checks src as InspectImage checks a file (plain data only:
// no backing file, no external data file, no extent elsewhere) and returns
// its format and virtual size. A member of an archive must be a
// self-contained image: a text VMDK descriptor naming extent files is
// refused there.
func InspectSource(ctx context.Context, qimg emulator.QemuImg, src DiskSource) (Image, error) {
	info, _, err := inspectSource(ctx, qimg, src)
	if err != nil {
		return Image{}, err
	}
	return Image{Path: src.Path, Format: info.Format, VirtualSize: info.VirtualSize}, nil
}

// inspectSource is InspectSource returning what qemu-img said and the
// --image-opts string that opens src safely.
func inspectSource(ctx context.Context, qimg emulator.QemuImg, src DiskSource) (imageInfo, string, error) {
	if !src.member() {
		info, err := inspectImage(ctx, qimg, src.Path, src.Format)
		if err != nil {
			return imageInfo{}, "", err
		}
		abs, _ := filepath.Abs(src.Path)
		return info, emulator.FileImageOpts(info.Format, abs), nil
	}
	if qimg == "" {
		return imageInfo{}, "", fmt.Errorf("inspect image: %w", emulator.ErrNoQemuImg)
	}
	head, err := readAt(src.Path, src.Offset, min(src.Length, 512))
	if err != nil {
		return imageInfo{}, "", fmt.Errorf("image %s cannot be read: %v", src.label(), err)
	}
	if bytes.HasPrefix(head, []byte("# Disk DescriptorFile")) {
		return imageInfo{}, "", fmt.Errorf("image %s is a VMDK descriptor naming separate extent files: refusing to read it; package a self-contained (streamOptimized or monolithicSparse) VMDK", src.label())
	}
	format := src.Format
	if format == "" {
		format = magicFormat(head)
		if format == "raw" {
			return imageInfo{}, "", fmt.Errorf("image %s has no format header: say it is raw in the descriptor", src.label())
		}
	}
	abs, err := filepath.Abs(src.Path)
	if err != nil {
		return imageInfo{}, "", err
	}
	opts := emulator.SliceImageOpts(format, abs, src.Offset, src.Length)
	if format == "qcow2" {
		opts += emulator.NoDataFile
	}
	out, err := qimg.Info(ctx, emulator.ImgSource{Opts: opts}, false)
	if err != nil {
		return imageInfo{}, "", fmt.Errorf("image %s cannot be read as %s: %w", src.label(), format, err)
	}
	info, err := parseImageInfo(out)
	if err != nil {
		return imageInfo{}, "", fmt.Errorf("inspect image %s: %w", src.label(), err)
	}
	// A binary sparse VMDK is its own single extent; its other references
	// (a parent, a data file) are refused as for any image.
	info.FormatSpecific.Data.Extents = nil
	if err := checkImageRefs(src.label(), info); err != nil {
		return imageInfo{}, "", err
	}
	return info, opts, nil
}

// readAt reads up to n bytes at off of the file at path.
func readAt(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:k], nil
}

// magicFormat names the image format of the bytes head starts with, "raw"
// when they carry none vlab imports.
func magicFormat(h []byte) string {
	switch {
	case bytes.HasPrefix(h, []byte("QFI\xfb")):
		return "qcow2"
	case bytes.HasPrefix(h, []byte("KDMV")):
		return "vmdk"
	case bytes.HasPrefix(h, []byte("vhdxfile")):
		return "vhdx"
	case bytes.HasPrefix(h, []byte("conectix")):
		return "vpc"
	case len(h) >= 0x44 && binary.LittleEndian.Uint32(h[0x40:]) == 0xbeda107f:
		return "vdi"
	}
	return "raw"
}

// CreateImported makes a new VM from spec whose first len(srcs) disks are
// copies of srcs (converted to qcow2; spec.Disks[i].File names each, its
// Size is set from the image), the rest created empty as Create does. Each
// source is checked (InspectSource) before anything is written. Like
// Create, the VM folder is built under a temporary name, recorded by an
// intent, and renamed into place at the end: a failure, a full disk or a
// SIGKILL at any step leaves no VM and no file behind. check, when given,
// runs once the disks are written and before the VM is put in place: its
// error (a package's manifest not matching) undoes everything.
func (s *Store) CreateImported(ctx context.Context, spec *Spec, srcs []DiskSource, progress ProgressFunc, check func() error) (err error) {
	var need int64
	defer func() {
		err = noSpace(fmt.Sprintf("import vm %q", spec.Name), err, filepath.Join(s.dirs.Data, "machines"), need)
	}()
	if len(srcs) > len(spec.Disks) {
		return fmt.Errorf("import vm %q: %d disk images for %d disks", spec.Name, len(srcs), len(spec.Disks))
	}
	completeNewSpec(spec)
	host, err := s.Host(ctx)
	if err != nil {
		return err
	}
	opts := make([]string, len(srcs))
	var total float64
	for i, src := range srcs {
		info, o, err := inspectSource(ctx, host.QemuImg, src)
		if err != nil {
			return fmt.Errorf("import vm %q: %w", spec.Name, err)
		}
		opts[i] = o
		spec.Disks[i].Size, spec.Disks[i].Format = Size(info.VirtualSize), "qcow2"
		total += float64(info.VirtualSize)
		need += info.ActualSize
	}
	if err := s.checkNewSpec(spec, newByImport); err != nil {
		return err
	}
	if err := checkNewSpecFor(spec, host, newByImport); err != nil {
		return err
	}
	return s.buildVM(ctx, spec, host, newByImport, func(ctx context.Context, tp Paths) error {
		var done float64
		for i, src := range srcs {
			step := func(cur, _ float64) {
				if progress != nil {
					progress(done+cur, total)
				}
			}
			dst := tp.DiskPath(spec.Disks[i].File)
			if err := convertImage(ctx, host.QemuImg, src.label(), emulator.ImgSource{Opts: opts[i]}, float64(spec.Disks[i].Size), dst, "qcow2", nil, step); err != nil {
				return err
			}
			done += float64(spec.Disks[i].Size)
			faultPoint("import-vm:disk-" + strconv.Itoa(i))
		}
		for _, d := range spec.Disks[len(srcs):] {
			if err := CreateDisk(ctx, host.QemuImg, tp.DiskPath(d.File), d.Format, d.Size); err != nil {
				return err
			}
		}
		if check != nil {
			return check()
		}
		return nil
	})
}
