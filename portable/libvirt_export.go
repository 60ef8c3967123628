package portable

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"vlab/emulator"
	"vlab/machine"
)

// FormatLibvirt is ExportOptions.Format for a libvirt domain.
const FormatLibvirt = "libvirt"

// Formats lists what ExportOptions.Format accepts.
var Formats = []string{"ova", "ovf", FormatLibvirt}

// ExportLibvirt writes stopped VM name as a libvirt domain in the new (or
// empty) folder dir: NAME.xml, qcow2 copies of its disks, copies of its
// direct-boot kernel, initrd and dtb, and a raw copy of its UEFI
// variables, all referred to by absolute path, so `virsh define
// DIR/NAME.xml && virsh start NAME` runs the same guest. The serial console
// is a pty that libvirt also logs to DIR/NAME-serial.log. The folder is
// built under a temporary name beside dir and renamed into place whole.
// Notes list what the domain cannot express.
func ExportLibvirt(ctx context.Context, s *machine.Store, name, dir string, opts ExportOptions) (*ExportResult, error) {
	spec, err := stoppedSpec(ctx, s, name)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	if err := checkExportDir(dir); err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	work, err := os.MkdirTemp(filepath.Dir(dir), ".vlab-export-")
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	defer os.RemoveAll(work)
	st, err := stageLibvirt(ctx, s, spec, work, opts.Progress)
	if err != nil {
		return nil, err
	}
	cfg, r := st.cfg, st.r
	files := st.files.rebase(func(f string) string { return filepath.Join(dir, f) })
	files.SerialLog = filepath.Join(dir, name+"-serial.log")
	res := &ExportResult{Path: filepath.Join(dir, name+".xml"), Disks: st.disks}
	d, notes := libvirtDomain(spec, cfg, r, files)
	res.Notes = notes
	data, err := marshalDomain(d)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(work, name+".xml"), data, 0o600); err != nil {
		return nil, fmt.Errorf("export %q: %w", name, noSpace(err, filepath.Dir(dir)))
	}
	if err := os.Chmod(work, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(work)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if err := syncAll(work, names); err != nil {
		return nil, fmt.Errorf("export %q: %w", name, noSpace(err, filepath.Dir(dir)))
	}
	// rename(2) replaces an empty dir and refuses one that filled
	// meanwhile (os.Rename refuses every existing folder).
	if err := syscall.Rename(work, dir); err != nil {
		return nil, fmt.Errorf("export %q: %s: %w", name, dir, err)
	}
	return res, nil
}

// stagedLibvirt is a VM's files written for libvirt into a work folder:
// files holds their bare names there.
type stagedLibvirt struct {
	cfg   emulator.Config
	r     emulator.Resolved
	files libvirtFiles
	disks []ExportDisk
}

// rebase maps every file name of f through to.
func (f libvirtFiles) rebase(to func(string) string) libvirtFiles {
	m := func(s string) string {
		if s == "" {
			return ""
		}
		return to(s)
	}
	out := libvirtFiles{Kernel: m(f.Kernel), Initrd: m(f.Initrd), DTB: m(f.DTB), NVRAM: m(f.NVRAM), SerialLog: m(f.SerialLog)}
	for _, d := range f.Disks {
		out.Disks = append(out.Disks, m(d))
	}
	return out
}

// stageLibvirt writes into work what a libvirt domain of spec refers to:
// qcow2 copies of the disks (NAME-diskN.qcow2), the direct-boot kernel,
// initrd and dtb (NAME-kernel...), and the UEFI variables as raw
// (NAME-VARS.fd: libvirt 9 reads NVRAM only as raw).
func stageLibvirt(ctx context.Context, s *machine.Store, spec *machine.Spec, work string, progress machine.ProgressFunc) (*stagedLibvirt, error) {
	name := spec.Name
	cfg, host, err := s.ConfigFor(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	r, err := emulator.Resolve(cfg, host)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	st := &stagedLibvirt{cfg: cfg, r: r}
	var total, done float64
	for _, d := range spec.Disks {
		total += float64(d.Size)
	}
	for i, d := range cfg.Disks {
		file := fmt.Sprintf("%s-disk%d.qcow2", name, i+1)
		step := func(cur, _ float64) {
			if progress != nil {
				progress(done+cur, total)
			}
		}
		if err := machine.ConvertImage(ctx, host.QemuImg, d.Path, d.Format, filepath.Join(work, file), "qcow2", nil, step); err != nil {
			return nil, fmt.Errorf("export %q: disk %d: %w", name, i+1, noSpace(err, work))
		}
		done += float64(spec.Disks[i].Size)
		fi, err := os.Stat(filepath.Join(work, file))
		if err != nil {
			return nil, err
		}
		st.files.Disks = append(st.files.Disks, file)
		st.disks = append(st.disks, ExportDisk{File: file, Size: fi.Size(), Capacity: int64(spec.Disks[i].Size), Bus: r.DiskBuses[i]})
	}
	for _, c := range []struct {
		src  string
		dst  *string
		kind string
	}{{cfg.Kernel, &st.files.Kernel, "kernel"}, {cfg.Initrd, &st.files.Initrd, "initrd"}, {cfg.DTB, &st.files.DTB, "dtb"}} {
		if c.src == "" {
			continue
		}
		file := name + "-" + c.kind
		if err := copyFile(c.src, filepath.Join(work, file)); err != nil {
			return nil, fmt.Errorf("export %q: copy the %s: %w", name, c.kind, noSpace(err, work))
		}
		*c.dst = file
	}
	if r.UEFI {
		file := name + "-VARS.fd"
		if err := machine.ConvertImage(ctx, host.QemuImg, r.UEFIVars, "qcow2", filepath.Join(work, file), "raw", nil, nil); err != nil {
			return nil, fmt.Errorf("export %q: uefi variables: %w", name, err)
		}
		st.files.NVRAM = file
	}
	return st, nil
}

// checkExportDir accepts a folder that does not exist yet (its parent
// does) or an empty one.
func checkExportDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if pi, err := os.Stat(filepath.Dir(dir)); err != nil || !pi.IsDir() {
			return fmt.Errorf("%s: no such folder: create it first", filepath.Dir(dir))
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a folder: give a new folder name", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s is not empty: give a new or empty folder", dir)
	}
	return nil
}

// copyFile copies the regular file src to the new file dst (0600).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
