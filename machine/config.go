package machine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"vlab/emulator"
)

// Config derives the emulator configuration of a VM: the Spec with every
// path resolved, the accelerator chosen against host, and the runtime
// sockets laid out.
func (s *Store) Config(ctx context.Context, name string, accel emulator.Accel) (emulator.Config, *emulator.Host, error) {
	spec, err := s.Load(name)
	if err != nil {
		return emulator.Config{}, nil, err
	}
	host, err := s.Host(ctx)
	if err != nil {
		return emulator.Config{}, nil, err
	}
	if accel == emulator.AccelAuto {
		accel = spec.Accel
	}
	cfg, err := s.config(spec, host, accel)
	return cfg, host, err
}

// Cmdline returns the exact qemu argv `vlab start` would run for name.
func (s *Store) Cmdline(ctx context.Context, name string) ([]string, error) {
	cfg, host, err := s.Config(ctx, name, emulator.AccelAuto)
	if err != nil {
		return nil, err
	}
	return emulator.Cmdline(cfg, host)
}

// ConfigFor derives the emulator configuration of a spec that may not be
// saved yet (the TUI wizard previews its command line with it).
func (s *Store) ConfigFor(ctx context.Context, spec *Spec) (emulator.Config, *emulator.Host, error) {
	host, err := s.Host(ctx)
	if err != nil {
		return emulator.Config{}, nil, err
	}
	if err := spec.ValidateFor(host); err != nil {
		return emulator.Config{}, nil, fmt.Errorf("vm %q: %s", spec.Name, oneLine(err.Error()))
	}
	cfg, err := s.config(spec, host, spec.Accel)
	return cfg, host, err
}

func (s *Store) config(spec *Spec, host *emulator.Host, accel emulator.Accel) (emulator.Config, error) {
	p := s.Paths(spec.Name)
	// The one validator (validate.go), with what the installed QEMU knows:
	// start and cmdline refuse what create and edit would have refused.
	if err := spec.ValidateFor(host); err != nil {
		return emulator.Config{}, fmt.Errorf("vm %q: %s is invalid: %s", spec.Name, p.Spec, oneLine(err.Error()))
	}
	choice, err := emulator.ChooseAccel(spec.Arch, accel, host)
	if err != nil {
		return emulator.Config{}, err
	}
	cfg := emulator.Config{
		Name:         spec.Name,
		Arch:         spec.Arch,
		Machine:      spec.Machine,
		MachineOpts:  spec.MachineOpts,
		CPU:          spec.CPU,
		CPUs:         spec.CPUs,
		MemoryMiB:    int(spec.Memory / MiB),
		Accel:        choice,
		Firmware:     spec.Firmware,
		Kernel:       abs(spec.Boot.Kernel),
		Initrd:       abs(spec.Boot.Initrd),
		Append:       spec.Boot.Append,
		DTB:          abs(spec.Boot.DTB),
		BootOrder:    bootOrder(spec.Boot),
		Display:      spec.Display,
		VGA:          spec.VGA,
		Input:        spec.Input,
		Sound:        spec.Sound,
		RTCLocalTime: spec.RTCLocal,
		GDB:          spec.GDB,
		Paths: emulator.Paths{
			QMP:       p.QMP,
			VNC:       p.VNC,
			Serial:    p.Serial,
			SerialLog: p.SerialLog,
			Pidfile:   p.Pidfile,
		},
	}
	if spec.GDB {
		cfg.Paths.GDB = p.GDB
	}
	if spec.Agent {
		cfg.Agent, cfg.Paths.Agent = true, p.Agent
	}
	if needsEFIVars(spec) {
		cfg.Firmware = emulator.FirmwareUEFI
		cfg.Paths.EFIVars = p.EFIVars
	}
	for i, d := range spec.Disks {
		format := d.Format
		if format == "" {
			format = "qcow2"
		}
		cfg.Disks = append(cfg.Disks, emulator.Disk{
			Path:     p.DiskPath(d.File),
			Format:   format,
			Bus:      d.Bus,
			NodeName: fmt.Sprintf("hd%d", i),
			ReadOnly: d.ReadOnly,
		})
	}
	if cfg.Shares, err = s.resolveShares(spec); err != nil { // virtiofsd.go
		return emulator.Config{}, err
	}
	// Every VM with a CD-capable boot gets one drive, so an ISO can be
	// inserted into a running VM later.
	cfg.CDROMs = []emulator.CDROM{{ID: cdromID, Path: abs(spec.Boot.ISO)}}
	for i := range spec.NICs {
		nic, err := s.nicConfig(spec, i) // network.go
		if err != nil {
			return emulator.Config{}, err
		}
		cfg.NICs = append(cfg.NICs, nic)
	}
	return cfg, nil
}

// bootOrder returns the spec's order in QEMU's letters (c disk, d CD, n
// network). The default is disk first, CD second: a blank disk falls through
// to the installer ISO, and once the installer has written a bootable disk
// the next start boots it without anyone editing the boot order.
func bootOrder(b Boot) string {
	if b.Order != "" {
		return b.Order
	}
	return "cd"
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// disposableDisks puts a throwaway qcow2 overlay over every writable disk;
// the overlays are deleted when the run ends, so the real disks never change.
func (s *Store) disposableDisks(ctx context.Context, name string, host *emulator.Host, disks []emulator.Disk) ([]emulator.Disk, error) {
	dir := filepath.Join(s.Paths(name).Dir, "disposable")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out := make([]emulator.Disk, len(disks))
	for i, d := range disks {
		out[i] = d
		if d.ReadOnly {
			continue
		}
		overlay := filepath.Join(dir, fmt.Sprintf("hd%d.qcow2", i))
		if err := createOverlay(ctx, host.QemuImg, d.Path, d.Format, overlay); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		out[i].Path, out[i].Format = overlay, "qcow2"
	}
	return out, nil
}

// discardOverlays removes a disposable run's overlays.
func (s *Store) discardOverlays(name string) {
	os.RemoveAll(filepath.Join(s.Paths(name).Dir, "disposable"))
}

func createOverlay(ctx context.Context, qimg emulator.QemuImg, backing, format, overlay string) error {
	if err := qimg.Create(ctx, emulator.ImgCreate{Path: overlay, Backing: backing, BackingFormat: format}); err != nil {
		return fmt.Errorf("create overlay on %s: %w", backing, err)
	}
	return privateFile(overlay)
}
