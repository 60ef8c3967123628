package portable

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"vlab/machine"
)

// ExportOptions tune Export.
type ExportOptions struct {
	Format   string // "ova" (default) or "ovf" (a folder)
	Progress machine.ProgressFunc
}

// ExportResult is what Export wrote.
type ExportResult struct {
	Path  string
	Disks []ExportDisk
	Notes []string // what the package does not carry
}

// Export writes stopped VM name as an OVF package at out: an OVA (the
// descriptor first, then a SHA256 manifest, then streamOptimized VMDKs) or,
// for Format "ovf", a new folder holding the same files. The package
// appears whole or not at all: it is built under a temporary name beside
// out and renamed into place.
func Export(ctx context.Context, s *machine.Store, name, out string, opts ExportOptions) (*ExportResult, error) {
	spec, err := stoppedSpec(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(out); err == nil {
		return nil, fmt.Errorf("export %q: %s exists: give a new file name or remove it first", name, out)
	}
	host, err := s.Host(ctx)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".vlab-export-")
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	defer os.RemoveAll(work)
	res := &ExportResult{Path: out, Notes: exportNotes(spec)}
	p := s.Paths(name)
	var total, done float64
	for _, d := range spec.Disks {
		if !d.ReadOnly {
			total += float64(d.Size)
		}
	}
	for i, d := range spec.Disks {
		if d.ReadOnly {
			continue
		}
		file := fmt.Sprintf("%s-disk%d.vmdk", name, len(res.Disks)+1)
		step := func(cur, _ float64) {
			if opts.Progress != nil {
				opts.Progress(done+cur, total)
			}
		}
		dst := filepath.Join(work, file)
		format := d.Format
		if format == "" {
			format = "qcow2"
		}
		if err := machine.ConvertImage(ctx, host.QemuImg, p.DiskPath(d.File), format, dst, "vmdk", []string{"-o", "subformat=streamOptimized"}, step); err != nil {
			return nil, fmt.Errorf("export %q: disk %d: %w", name, i, err)
		}
		done += float64(d.Size)
		fi, err := os.Stat(dst)
		if err != nil {
			return nil, err
		}
		res.Disks = append(res.Disks, ExportDisk{File: file, Size: fi.Size(), Capacity: int64(d.Size), Bus: d.Bus})
	}
	desc, err := Descriptor(spec, res.Disks)
	if err != nil {
		return nil, err
	}
	if err := writePackage(work, name, desc, res.Disks, out, opts.Format == "ovf"); err != nil {
		return nil, fmt.Errorf("export %q: %w", name, noSpace(err, filepath.Dir(out)))
	}
	return res, nil
}

// stoppedSpec loads VM name and checks that no QEMU runs it: its disks
// must be still while they are copied.
func stoppedSpec(ctx context.Context, s *machine.Store, name string) (*machine.Spec, error) {
	if err := machine.ValidateName(name); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	spec, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return nil, err
	}
	if st.State != machine.StateStopped && st.State != machine.StateCrashed {
		return nil, fmt.Errorf("export %q: it is %s: stop it first (`vlab stop %s`)", name, st.State, name)
	}
	return spec, nil
}

// exportNotes lists what an export of spec leaves out.
func exportNotes(spec *machine.Spec) []string {
	var notes []string
	if spec.Boot.ISO != "" {
		notes = append(notes, "the CD image (a host file) is not packed")
	}
	if spec.Boot.Kernel != "" {
		notes = append(notes, "the direct kernel boot (host files) is not packed")
	}
	for _, d := range spec.Disks {
		if d.ReadOnly {
			notes = append(notes, "read-only disk "+d.File+" is not packed")
		}
	}
	return notes
}

// writePackage writes the descriptor, its SHA256 manifest and the disks
// (files in work) as an OVA at out, or as a folder out, via a temporary
// name in work's folder.
func writePackage(work, name string, desc []byte, disks []ExportDisk, out string, folder bool) error {
	ovfName, mfName := name+".ovf", name+".mf"
	sums := map[string]string{}
	var ms []packMember
	for _, d := range disks {
		path := filepath.Join(work, d.File)
		sum, err := sha256File(path)
		if err != nil {
			return err
		}
		sums[d.File] = sum
		ms = append(ms, packMember{name: d.File, path: path, size: d.Size})
	}
	if !folder {
		_, err := packOVA(out, ovfName, mfName, desc, ms, sums) // ovapack.go
		return err
	}
	var mf strings.Builder
	fmt.Fprintf(&mf, "SHA256(%s)= %s\n", ovfName, sha256Bytes(desc))
	for _, d := range disks {
		fmt.Fprintf(&mf, "SHA256(%s)= %s\n", d.File, sums[d.File])
	}
	for n, data := range map[string][]byte{ovfName: desc, mfName: []byte(mf.String())} {
		if err := os.WriteFile(filepath.Join(work, n), data, 0o600); err != nil {
			return err
		}
	}
	order := []string{ovfName, mfName}
	for _, d := range disks {
		order = append(order, d.File)
	}
	if err := os.Chmod(work, 0o700); err != nil {
		return err
	}
	if err := syncAll(work, order); err != nil {
		return err
	}
	return os.Rename(work, out)
}

func syncAll(dir string, files []string) error {
	for _, n := range files {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// noSpace names a full disk and its fix.
func noSpace(err error, dir string) error {
	var pe *fs.PathError
	if errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		return err
	}
	if strings.Contains(err.Error(), "no space left") {
		return fmt.Errorf("%s is full (%v): free some space or export elsewhere", dir, err)
	}
	return err
}
