package machine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"vlab/emulator"
	"vlab/internal/lazyre"
)

// Image is a disk image from outside vlab (an import, a disk attached from
// elsewhere, an OVA's disk) that InspectImage found to be plain data: no
// backing file, no external data file, no extent outside its own folder.
type Image struct {
	Path        string // absolute
	Format      string // one of ImportFormats
	VirtualSize int64
}

// InspectImage checks that the image at path is data and nothing else, and
// returns its format and size. format "" detects it from the file's magic
// bytes (raw is never guessed). QEMU reads the image opened as a plain
// file of the given format (--image-opts with file.driver=file), so a
// `json:` or protocol name is never parsed, no backing file is opened and
// a qcow2 external data file is replaced by a null device. The image is
// refused when it names a backing file, an external data file, a `json:`
// or protocol filename, or a VMDK extent outside its own folder: any of
// these would make vlab copy a host file (a private key, another VM's disk)
// into a guest.
func InspectImage(ctx context.Context, qimg emulator.QemuImg, path, format string) (Image, error) {
	info, err := inspectImage(ctx, qimg, path, format)
	if err != nil {
		return Image{}, err
	}
	abs, _ := filepath.Abs(path)
	return Image{Path: abs, Format: info.Format, VirtualSize: info.VirtualSize}, nil
}

// inspectImage is InspectImage returning all that qemu-img said.
func inspectImage(ctx context.Context, qimg emulator.QemuImg, path, format string) (imageInfo, error) {
	if qimg == "" {
		return imageInfo{}, fmt.Errorf("inspect image: %w", emulator.ErrNoQemuImg)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return imageInfo{}, fmt.Errorf("image %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return imageInfo{}, fmt.Errorf("image %s does not exist: check the path", path)
		}
		return imageInfo{}, fmt.Errorf("image %s cannot be read: %v", path, err)
	}
	if !fi.Mode().IsRegular() {
		return imageInfo{}, fmt.Errorf("image %s is not a regular file: give the disk image file", path)
	}
	if format != "" && !slices.Contains(ImportFormats, format) {
		return imageInfo{}, fmt.Errorf("image format %q unknown: use one of %s", format, strings.Join(ImportFormats, ", "))
	}
	if format == "" {
		format, err = detectFormat(abs)
		if err != nil {
			return imageInfo{}, err
		}
		if format == "raw" {
			return imageInfo{}, fmt.Errorf("image %s has no format header: if it is a raw disk image, say so with --format raw", path)
		}
	}
	if format == "vmdk" {
		if err := checkVMDKDescriptor(abs); err != nil {
			return imageInfo{}, err
		}
	}
	opts := emulator.FileImageOpts(format, abs)
	if format == "qcow2" {
		opts += emulator.NoDataFile // never open an external data file, even to describe it
	}
	out, err := qimg.Info(ctx, emulator.ImgSource{Opts: opts}, false)
	if err != nil {
		return imageInfo{}, fmt.Errorf("image %s cannot be read as %s: %w", path, format, err)
	}
	info, err := parseImageInfo(out)
	if err != nil {
		return imageInfo{}, fmt.Errorf("inspect image %s: %w", path, err)
	}
	if err := checkImageRefs(abs, info); err != nil {
		return imageInfo{}, err
	}
	return info, nil
}

// checkImageRefs refuses an image (at abs, described by info) that points
// anywhere but into itself.
func checkImageRefs(abs string, info imageInfo) error {
	const fix = "import a self-contained copy (qemu-img convert it into a new image first)"
	if b := info.BackingFilename; b != "" {
		what := "a backing file"
		if strings.HasPrefix(b, "json:") {
			what = "a json: backing file"
		}
		return fmt.Errorf("image %s names %s %s: refusing to read it; %s", abs, what, printable(b), fix)
	}
	if f := info.FormatSpecific.Data.DataFile; f != "" {
		return fmt.Errorf("image %s keeps its data in an external data file %s: refusing to read it; %s", abs, printable(f), fix)
	}
	dir := filepath.Dir(abs)
	for _, e := range info.FormatSpecific.Data.Extents {
		if err := checkExtent(abs, dir, e.Filename); err != nil {
			return err
		}
	}
	return nil
}

// protocolRE matches a QEMU protocol prefix ("json:", "nbd:", "http:").
var protocolRE = lazyre.New(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// checkExtent refuses a VMDK extent of image abs that is a protocol name or
// lies outside the image's folder dir.
func checkExtent(abs, dir, name string) error {
	if protocolRE().MatchString(name) {
		return fmt.Errorf("image %s names extent %s, a protocol filename: refusing to read it; import a self-contained image", abs, printable(name))
	}
	f := name
	if !filepath.IsAbs(f) {
		f = filepath.Join(dir, f)
	}
	if filepath.Dir(filepath.Clean(f)) != filepath.Clean(dir) {
		return fmt.Errorf("image %s keeps data in %s, outside its folder: refusing to read it; put the extent files next to the descriptor", abs, printable(name))
	}
	return nil
}

// extentRE matches an extent line of a VMDK descriptor: access, size in
// sectors, type and a quoted file name.
var extentRE = lazyre.New(`(?m)^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]*)"`)

// checkVMDKDescriptor reads a text VMDK descriptor at abs (a binary sparse
// VMDK carries its descriptor inside and needs no extent files) and refuses
// extents outside its folder before QEMU opens any of them.
func checkVMDKDescriptor(abs string) error {
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("image %s cannot be read: %v", abs, err)
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("image %s cannot be read: %v", abs, err)
	}
	head = head[:n]
	if bytes.HasPrefix(head, []byte("KDMV")) {
		return nil
	}
	dir := filepath.Dir(abs)
	for _, m := range extentRE().FindAllSubmatch(head, -1) {
		if err := checkExtent(abs, dir, string(m[1])); err != nil {
			return err
		}
	}
	return nil
}

// detectFormat names the format of the image at path from its magic bytes,
// "raw" when it has none vlab imports.
func detectFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("image %s cannot be read: %v", path, err)
	}
	defer f.Close()
	var head [512]byte
	n, _ := io.ReadFull(f, head[:])
	h := head[:n]
	switch {
	case bytes.HasPrefix(h, []byte("QFI\xfb")):
		return "qcow2", nil
	case bytes.HasPrefix(h, []byte("KDMV")), bytes.HasPrefix(h, []byte("# Disk DescriptorFile")):
		return "vmdk", nil
	case bytes.HasPrefix(h, []byte("vhdxfile")):
		return "vhdx", nil
	case bytes.HasPrefix(h, []byte("conectix")):
		return "vpc", nil
	case len(h) >= 0x44 && binary.LittleEndian.Uint32(h[0x40:]) == 0xbeda107f:
		return "vdi", nil
	}
	// A fixed VHD keeps its footer only at the end.
	if fi, err := f.Stat(); err == nil && fi.Size() >= 512 {
		var foot [8]byte
		if _, err := f.ReadAt(foot[:], fi.Size()-512); err == nil && string(foot[:]) == "conectix" {
			return "vpc", nil
		}
	}
	return "raw", nil
}

// ConvertInspected copies img (checked by InspectImage) into a new image of
// dstFormat at dst, opening it as InspectImage did, with progress in bytes.
// On failure dst is removed.
func ConvertInspected(ctx context.Context, qimg emulator.QemuImg, img Image, dst, dstFormat string, extra []string, progress ProgressFunc) error {
	src := emulator.ImgSource{Opts: emulator.FileImageOpts(img.Format, img.Path)}
	return convertImage(ctx, qimg, img.Path, src, float64(img.VirtualSize), dst, dstFormat, extra, progress)
}
