package emulator

import "fmt"

// Resolved is what Cmdline settles for one guest beyond its Config: the
// defaults the arch and board tables fill in. Exporters (a libvirt domain
// XML) read it so they describe the guest vlab would run, not a second guess.
type Resolved struct {
	Binary    string      // qemu-system-* path
	Machine   string      // machine type as given to -machine (e.g. q35, virt)
	CPU       string      // -cpu value (e.g. max, host, max,pauth-impdef=on)
	Accel     AccelChoice // never AccelAuto
	UEFI      bool        // UEFI firmware in pflash
	UEFICode  string      // read-only code image, when UEFI
	UEFIVars  string      // the guest's own variable store (Paths.EFIVars), when UEFI
	DiskBuses []string    // per Config.Disks: virtio, ide, sata, scsi or nvme
	CDBuses   []string    // per Config.CDROMs: ide, sata or scsi
	NICModels []string    // per Config.NICs: the -device model ("" for mode none)
	NICWires  []NICWire   // per Config.NICs: its -netdev (zero for mode none)
	VGA       string      // display adapter name for a VNC display ("" = none)
	Input     Input       // pointer device for a VNC display ("" = none)
	Console   string      // the kernel's serial console device (ttyS0, ttyAMA0...)
	SATAIsIDE bool        // the board's built-in IDE controller is AHCI (q35)
	USB       string      // the board's USB host controller model ("" = none)
	PS2       bool        // the board has a built-in PS/2 keyboard and mouse
}

// NICWire is a NIC's backend as QEMU gets it, for a host that creates the
// NIC's device its own way (the libvirt export).
type NICWire struct {
	NetdevID string // the -netdev id, which the device's netdev= names
	Netdev   string // the -netdev value (user,id=net0,hostfwd=...)
}

// Resolve builds cfg's command line (so every check Cmdline makes applies)
// and returns the defaults it settled on.
func Resolve(cfg Config, h *Host) (Resolved, error) {
	b := &builder{cfg: cfg, h: h}
	if err := b.build(); err != nil {
		return Resolved{}, fmt.Errorf("resolve %q: %w", cfg.Name, err)
	}
	fw, err := b.firmware()
	if err != nil {
		return Resolved{}, err
	}
	r := Resolved{
		Binary:    h.Binaries[cfg.Arch].Path,
		Machine:   b.machine,
		CPU:       b.cpu(),
		Accel:     b.accel,
		UEFI:      fw.uefi,
		UEFICode:  fw.code,
		UEFIVars:  fw.vars,
		Console:   b.arch.console,
		SATAIsIDE: b.board.sataIsIDE,
		USB:       b.board.usb,
		PS2:       b.board.ps2,
	}
	for _, d := range cfg.Disks {
		bus := d.Bus
		if bus == "" {
			bus = b.board.diskBus
		}
		r.DiskBuses = append(r.DiskBuses, bus)
	}
	for _, c := range cfg.CDROMs {
		bus := c.Bus
		if bus == "" {
			bus = b.board.cdBus
		}
		r.CDBuses = append(r.CDBuses, bus)
	}
	for i, n := range cfg.NICs {
		r.NICWires = append(r.NICWires, b.nicWires[i])
		model := n.Model
		if model == "" {
			model = b.board.nic
		}
		if n.Mode == NetNone {
			model = ""
		}
		r.NICModels = append(r.NICModels, model)
	}
	if cfg.Display == DisplayVNC {
		r.VGA = cfg.VGA
		if r.VGA == "" {
			r.VGA = b.board.vga
		}
		if r.VGA == "none" {
			r.VGA = ""
		}
		r.Input = cfg.Input
		if r.Input == InputAuto {
			r.Input = b.board.input
		}
	} else if cfg.VGA != "" && cfg.VGA != "none" {
		r.VGA = cfg.VGA
	}
	return r, nil
}
