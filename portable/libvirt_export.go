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
	cfg, host, err := s.ConfigFor(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	r, err := emulator.Resolve(cfg, host)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	work, err := os.MkdirTemp(filepath.Dir(dir), ".vlab-export-")
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	defer os.RemoveAll(work)
	files := libvirtFiles{SerialLog: filepath.Join(dir, name+"-serial.log")}
	res := &ExportResult{Path: filepath.Join(dir, name+".xml")}
	var total, done float64
	for _, d := range spec.Disks {
		total += float64(d.Size)
	}
	for i, d := range cfg.Disks {
		file := fmt.Sprintf("%s-disk%d.qcow2", name, i+1)
		step := func(cur, _ float64) {
			if opts.Progress != nil {
				opts.Progress(done+cur, total)
			}
		}
		if err := machine.ConvertImage(ctx, host.QemuImg, d.Path, d.Format, filepath.Join(work, file), "qcow2", nil, step); err != nil {
			return nil, fmt.Errorf("export %q: disk %d: %w", name, i+1, err)
		}
		done += float64(spec.Disks[i].Size)
		fi, err := os.Stat(filepath.Join(work, file))
		if err != nil {
			return nil, err
		}
		files.Disks = append(files.Disks, filepath.Join(dir, file))
		res.Disks = append(res.Disks, ExportDisk{File: file, Size: fi.Size(), Capacity: int64(spec.Disks[i].Size), Bus: r.DiskBuses[i]})
	}
	for _, c := range []struct {
		src  string
		dst  *string
		kind string
	}{{cfg.Kernel, &files.Kernel, "kernel"}, {cfg.Initrd, &files.Initrd, "initrd"}, {cfg.DTB, &files.DTB, "dtb"}} {
		if c.src == "" {
			continue
		}
		file := name + "-" + c.kind
		if err := copyFile(c.src, filepath.Join(work, file)); err != nil {
			return nil, fmt.Errorf("export %q: copy the %s: %w", name, c.kind, err)
		}
		*c.dst = filepath.Join(dir, file)
	}
	if r.UEFI {
		// libvirt 9 reads NVRAM only as raw: convert vlab's qcow2 store.
		file := name + "-VARS.fd"
		if err := machine.ConvertImage(ctx, host.QemuImg, r.UEFIVars, "qcow2", filepath.Join(work, file), "raw", nil, nil); err != nil {
			return nil, fmt.Errorf("export %q: uefi variables: %w", name, err)
		}
		files.NVRAM = filepath.Join(dir, file)
	}
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
