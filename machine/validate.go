package machine

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"vlab/emulator"
)

// One validator for every path a machine definition takes: `vlab create`,
// `vlab edit`, `vlab profile apply`, loading machine.toml (start, cmdline,
// list, show), import, clone and the TUI forms all end in Spec.Validate (the
// checks that need no host) and, where QEMU is about to be asked, in
// Spec.ValidateFor (the same plus what the installed QEMU knows). The
// allow-lists themselves live in package emulator, next to the command line
// they protect.

// validateValues checks the values that end up inside QEMU options: machine
// type and properties, CPU, display and sound devices, NIC models, interface
// names, MACs, the boot order and the memory size. Spec.Validate calls it.
func (s *Spec) validateValues() []error {
	var errs []error
	add := func(err error, format string, args ...any) {
		if err != nil {
			errs = append(errs, fmt.Errorf(format, append(args, err)...))
		}
	}
	add(checkBootOrder(s.Boot.Order), "%w")
	machineOK := true
	if s.Arch != emulator.ArchUnknown {
		if err := emulator.CheckMachine(s.Arch, s.Machine); err != nil {
			machineOK = false
			errs = append(errs, err)
		}
	}
	for _, m := range s.MachineOpts {
		add(emulator.CheckMachineOpt(m), "%w")
	}
	add(emulator.CheckCPU(s.CPU), "%w")
	add(emulator.CheckVGA(s.VGA), "%w")
	add(emulator.CheckSound(s.Sound), "%w")
	add(emulator.CheckInput(s.Input), "%w")
	if s.Memory%MiB != 0 {
		errs = append(errs, fmt.Errorf("memory %s (%d bytes) is not a whole number of MiB (QEMU takes -m in MiB): use e.g. %dM",
			s.Memory, int64(s.Memory), max(int64(s.Memory/MiB), 16)))
	} else if s.Arch != emulator.ArchUnknown && machineOK {
		if most, why := emulator.MaxMemoryMiB(s.Arch, s.Machine, s.CPU); most > 0 && int64(s.Memory/MiB) > int64(most) {
			errs = append(errs, fmt.Errorf("memory %s is too much: %s: use at most %s", s.Memory, why, Size(most)*MiB))
		}
	}
	for i, n := range s.NICs {
		if s.Arch != emulator.ArchUnknown && machineOK {
			add(emulator.CheckNICModel(s.Arch, s.Machine, n.Model), "nic %d: %w", i)
		} else if n.Model != "" && strings.ContainsAny(n.Model, ",= ") {
			errs = append(errs, fmt.Errorf("nic %d: model %q is not a device name: use e.g. e1000", i, n.Model))
		}
		if _, err := net.ParseMAC(n.MAC); n.MAC != "" && err == nil {
			// (A MAC that does not parse at all is reported by Validate.)
			add(emulator.CheckMAC(n.MAC), "nic %d: %w", i)
		}
		if n.Bridge != "" {
			add(emulator.CheckIfName("bridge", n.Bridge), "nic %d: %w", i)
		}
		if n.Tap != "" {
			add(emulator.CheckIfName("tap", n.Tap), "nic %d: %w", i)
		}
	}
	for i, d := range s.Disks {
		add(emulator.CheckDiskBus(d.Bus), "disk %d: %w", i)
	}
	if s.LinkedTo != "" {
		add(ValidateName(s.LinkedTo), "linked_to: %w")
	}
	if s.Agent && s.Arch != emulator.ArchUnknown && !emulator.AgentSupported(s.Arch, s.Machine) {
		errs = append(errs, fmt.Errorf("agent: machine %s has no PCI bus for the guest agent channel: set agent = false (--agent off)", s.Machine))
	}
	return errs
}

// checkBootOrder accepts QEMU's boot letters c (disk), d (cdrom) and n
// (network), each at most once; "" is the default (disk, then cdrom).
func checkBootOrder(order string) error {
	seen := map[rune]bool{}
	for _, c := range order {
		if !strings.ContainsRune("cdn", c) {
			return fmt.Errorf("boot order %q is unknown: use letters c (disk), d (cdrom), n (network), e.g. dc", order)
		}
		if seen[c] {
			return fmt.Errorf("boot order %q names %q more than once: use each of c, d, n at most once, e.g. dc", order, string(c))
		}
		seen[c] = true
	}
	return nil
}

// ValidateFor checks spec as Validate does and against what the installed
// QEMU knows (from the cached probe in h): a qemu binary for the arch, the
// machine type in its -machine help and the NIC models in its -device help. Create, edit and start call it.
func (s *Spec) ValidateFor(h *emulator.Host) error {
	if err := s.Validate(); err != nil {
		return err
	}
	errs := []error{emulator.CheckHostMachine(h, s.Arch, s.Machine)}
	for i, n := range s.NICs {
		if err := emulator.CheckHostNIC(h, s.Arch, s.Machine, n.Model); err != nil {
			errs = append(errs, fmt.Errorf("nic %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
