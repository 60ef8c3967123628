package machine

import (
	"strings"

	"vlab/emulator"
	"vlab/profiles"
)

// ApplyProfile fills the fields of spec the user left at their zero value
// with profile p's defaults, and records p's name in spec.Profile. Fields the
// user set are kept. Hardware that depends on the arch (machine, CPU model,
// firmware, buses, devices) is applied only when spec has no arch yet or an
// arch p runs on (p's own, or x86_64 for an i386 profile); sizes always are.
// Disks with Size 0 get p's disk size; disks and NICs without a bus or model
// get p's.
func ApplyProfile(spec *Spec, p profiles.Profile) {
	spec.Profile = p.Name
	if spec.Arch == emulator.ArchUnknown {
		spec.Arch = p.Arch
	}
	if spec.CPUs == 0 {
		spec.CPUs = p.CPUs
	}
	if spec.Memory == 0 {
		spec.Memory = Size(p.MemoryMiB) * MiB
	}
	for i := range spec.Disks {
		if spec.Disks[i].Size == 0 {
			spec.Disks[i].Size = Size(p.DiskMiB) * MiB
		}
	}
	if spec.Notes == "" && len(p.Notes) > 0 {
		spec.Notes = strings.Join(p.Notes, "\n")
	}
	if !ProfileFits(spec.Arch, p) {
		return
	}
	if spec.Machine == "" {
		spec.Machine = p.Machine
		if len(spec.MachineOpts) == 0 {
			spec.MachineOpts = append([]string(nil), p.MachineOpts...)
		}
	}
	if spec.CPU == "" {
		spec.CPU = p.CPU
	}
	if spec.Accel == emulator.AccelAuto {
		spec.Accel = p.Accel
	}
	if spec.Firmware == emulator.FirmwareDefault {
		spec.Firmware = p.EmulatorFirmware()
	}
	if spec.Input == emulator.InputAuto {
		spec.Input = p.Input
	}
	if spec.VGA == "" {
		spec.VGA = p.VGA
	}
	if spec.Sound == "" {
		spec.Sound = p.Sound
	}
	if p.RTCLocalTime {
		spec.RTCLocal = true
	}
	if spec.Boot.Order == "" {
		spec.Boot.Order = p.BootOrder
	}
	for i := range spec.Disks {
		if spec.Disks[i].Bus == "" {
			spec.Disks[i].Bus = p.DiskBus
		}
	}
	for i := range spec.NICs {
		if spec.NICs[i].Model == "" {
			spec.NICs[i].Model = p.NICModel
		}
	}
}

// ProfileFits reports whether a VM of arch can use profile p's hardware:
// the same arch, or an x86_64 VM with an i386 profile.
func ProfileFits(arch emulator.Arch, p profiles.Profile) bool {
	return arch == p.Arch || (arch == emulator.ArchX86_64 && p.Arch == emulator.ArchI386)
}

// ConsoleFor returns the kernel console device a direct kernel boot of spec
// should name in its command line (console=...): the profile's when spec
// has one, else the arch's serial console (emulator.Console).
func ConsoleFor(spec *Spec) string {
	if spec.Profile != "" {
		if p, err := profiles.Get(spec.Profile); err == nil && p.Console != "" && ProfileFits(spec.Arch, p) {
			return p.Console
		}
	}
	return emulator.Console(spec.Arch)
}
