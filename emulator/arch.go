package emulator

import "strings"

// This file is the one place that knows how the supported arches and boards
// differ. archTable holds what depends on the guest arch (binary, Debian
// package, default machine and CPU, kernel console, MTTCG, UEFI firmware);
// boardTable holds what depends on the machine type within an arch (USB and
// IDE layout, the buses and models a device defaults to, the display adapter).
// Cmdline reads both and contains no per-arch switch of its own.

// archInfo is what vlab knows about one guest arch.
type archInfo struct {
	binary     string   // qemu-system-* executable name
	aptPackage string   // Debian package that ships binary
	machines   []string // machine types vlab supports for this arch; [0] is the default
	tcgCPU     string   // -cpu under TCG when Config.CPU is empty
	kvmCPU     string   // -cpu under KVM when Config.CPU is empty
	console    string   // the kernel's serial console device for Config.Serial
	mttcg      bool     // QEMU supports multi-threaded TCG for this target
	firmware   Firmware // what FirmwareDefault means without a kernel
	uefi       uefiKind // which firmware files UEFI boot uses; uefiNone = no UEFI
}

// uefiKind selects the UEFI code/vars pair in FirmwareFiles.
type uefiKind int

const (
	uefiNone uefiKind = iota
	uefiOVMF
	uefiAAVMF
	uefiArm
)

// uefiPackages names the Debian package of each UEFI firmware kind.
var uefiPackages = map[uefiKind]string{
	uefiOVMF:  "ovmf",
	uefiAAVMF: "qemu-efi-aarch64",
	uefiArm:   "qemu-efi-arm",
}

// archTable is keyed by guest arch. CPU choices under TCG:
//   - x86_64 "max": every feature TCG implements (QEMU 7.2 has AVX2), so
//     modern distributions run their optimised code paths.
//   - i386 "qemu32": QEMU's own default, the safe choice for old systems;
//     profiles pick period CPUs (pentium, pentium2...).
//   - aarch64 "max,pauth-impdef=on": ARMv8.x+ with QEMU's cheap pointer
//     authentication algorithm; the architected QARMA one costs a large
//     share of TCG time.
//   - arm "cortex-a15": the virt board's usual 32-bit CPU (LPAE, virt ext).
//   - ppc64 "power9": pseries-7.2's default CPU; Debian ppc64el kernels boot on it.
//   - ppc "G4": the 7400 that a Power Mac G4 (mac99) shipped with.
var archTable = map[Arch]archInfo{
	ArchX86_64: {
		binary: "qemu-system-x86_64", aptPackage: "qemu-system-x86",
		machines: []string{"q35", "pc", "isapc"},
		tcgCPU:   "max", kvmCPU: "host", console: "ttyS0", mttcg: true,
		firmware: FirmwareBIOS, uefi: uefiOVMF,
	},
	ArchI386: {
		binary: "qemu-system-i386", aptPackage: "qemu-system-x86",
		machines: []string{"pc", "q35", "isapc"},
		tcgCPU:   "qemu32", kvmCPU: "host", console: "ttyS0", mttcg: true,
		// Debian's OVMF is x86_64 code, which qemu-system-i386 cannot run
		// (no long mode); 32-bit UEFI guests are rare enough to go without.
		firmware: FirmwareBIOS, uefi: uefiNone,
	},
	ArchAArch64: {
		binary: "qemu-system-aarch64", aptPackage: "qemu-system-arm",
		machines: []string{"virt"},
		tcgCPU:   "max,pauth-impdef=on", kvmCPU: "host", console: "ttyAMA0", mttcg: true,
		firmware: FirmwareUEFI, uefi: uefiAAVMF,
	},
	ArchARM: {
		binary: "qemu-system-arm", aptPackage: "qemu-system-arm",
		machines: []string{"virt"},
		tcgCPU:   "cortex-a15", kvmCPU: "host", console: "ttyAMA0", mttcg: true,
		firmware: FirmwareUEFI, uefi: uefiArm,
	},
	ArchPPC64: {
		binary: "qemu-system-ppc64", aptPackage: "qemu-system-ppc",
		machines: []string{"pseries"},
		tcgCPU:   "power9", kvmCPU: "host", console: "hvc0", mttcg: true,
		firmware: FirmwareDefault, // SLOF, QEMU's built-in default
	},
	ArchPPC: {
		binary: "qemu-system-ppc", aptPackage: "qemu-system-ppc",
		machines: []string{"mac99"},
		tcgCPU:   "G4", kvmCPU: "host", console: "ttyPZ0", mttcg: false,
		firmware: FirmwareDefault, // OpenBIOS, QEMU's built-in default
	},
}

// board is one machine-type family: everything Cmdline needs to know about
// the virtual motherboard. Bus names are those QEMU 7.2 gives the board's
// built-in controllers.
type board struct {
	name         string    // family name: q35, pc, isapc, virt, pseries, mac99
	pci          bool      // has a PCI bus (PCI devices can be added)
	isa          bool      // has an ISA bus (sb16, adlib, ne2k_isa...)
	ps2          bool      // has a built-in i8042 PS/2 keyboard and mouse
	usb          string    // USB host controller to add for USB input ("" = none)
	ide          []ideSlot // built-in IDE/AHCI attachment points in preference order
	cdIDEFirst   int       // index in ide where CD-ROMs start looking (hd0 master, cd secondary master)
	sataIsIDE    bool      // the built-in IDE controller is AHCI (bus "sata" = "ide")
	scsi         string    // SCSI controller model for bus "scsi"
	diskBus      string    // default Disk.Bus
	cdBus        string    // default CDROM.Bus
	nic          string    // default NIC.Model
	vga          string    // default Config.VGA for a VNC display
	input        Input     // what InputAuto means with a VNC display
	pflash       bool      // machine has pflash0/pflash1 properties (UEFI)
	bootOrderArg bool      // firmware picks the boot device from -boot order, not bootindex (OpenBIOS)
	tcgOpts      []string  // machine properties added under TCG
	defaultOpts  []string  // machine properties added unless MachineOpts sets the same key
}

// ideSlot is one place an IDE device can be plugged: a bus and, for PATA
// buses with master/slave, a unit (-1 = the bus has a single unit).
type ideSlot struct {
	bus  string
	unit int
}

var pataSlots = []ideSlot{{"ide.0", 0}, {"ide.0", 1}, {"ide.1", 0}, {"ide.1", 1}}

// boardTable is keyed by family name; boardFor maps machine names to it.
var boardTable = map[string]board{
	"q35": {
		name: "q35", pci: true, isa: true, ps2: true, usb: "qemu-xhci",
		ide: []ideSlot{{"ide.0", -1}, {"ide.1", -1}, {"ide.2", -1}, {"ide.3", -1}, {"ide.4", -1}, {"ide.5", -1}},
		// AHCI: the first CD takes the port after the disks, like a SATA DVD drive.
		cdIDEFirst: 0, sataIsIDE: true, scsi: "virtio-scsi-pci",
		diskBus: "virtio", cdBus: "ide", nic: "virtio-net-pci", vga: "std", input: InputUSBTablet,
		pflash: true,
	},
	"pc": {
		name: "pc", pci: true, isa: true, ps2: true, usb: "piix3-usb-uhci",
		ide: pataSlots, cdIDEFirst: 2, scsi: "virtio-scsi-pci",
		diskBus: "ide", cdBus: "ide", nic: "e1000", vga: "std", input: InputUSBTablet,
		pflash: true,
	},
	"isapc": {
		name: "isapc", isa: true, ps2: true,
		ide: pataSlots, cdIDEFirst: 2,
		diskBus: "ide", cdBus: "ide", nic: "ne2k_isa", vga: "std", input: InputPS2,
	},
	"virt": {
		name: "virt", pci: true, usb: "qemu-xhci", scsi: "virtio-scsi-pci",
		diskBus: "virtio", cdBus: "scsi", nic: "virtio-net-pci", vga: "virtio", input: InputUSBTablet,
		pflash: true,
	},
	"pseries": {
		name: "pseries", pci: true, usb: "qemu-xhci", scsi: "spapr-vscsi",
		diskBus: "virtio", cdBus: "scsi", nic: "virtio-net-pci", vga: "std", input: InputUSBTablet,
		// Under TCG the spectre-mitigation capabilities pseries asks for by
		// default cannot be provided; saying so up front avoids four warnings.
		tcgOpts: []string{"cap-cfpc=broken", "cap-sbbc=broken", "cap-ibs=broken", "cap-ccf-assist=off"},
	},
	"mac99": {
		name: "mac99", pci: true, usb: "pci-ohci",
		ide: pataSlots, cdIDEFirst: 2, scsi: "virtio-scsi-pci",
		diskBus: "ide", cdBus: "ide", nic: "sungem", vga: "std", input: InputVirtioTablet,
		bootOrderArg: true,
		// via=pmu: PMU with USB keyboard and mouse (Mac OS 9.1+, OS X 10.3+);
		// profiles pick via=pmu-adb or via=cuda for older systems.
		defaultOpts: []string{"via=pmu"},
	},
}

// boardFor returns the board of machine (a name or a versioned name such as
// pc-q35-7.2 or pseries-7.1) if arch supports it.
func boardFor(arch Arch, machine string) (board, bool) {
	info, ok := archTable[arch]
	if !ok {
		return board{}, false
	}
	family := machineFamily(machine)
	for _, m := range info.machines {
		if m == family {
			b, ok := boardTable[family]
			return b, ok
		}
	}
	return board{}, false
}

// machineFamily maps versioned machine names to their family.
func machineFamily(machine string) string {
	switch {
	case machine == "q35" || strings.HasPrefix(machine, "pc-q35-"):
		return "q35"
	case machine == "pc" || strings.HasPrefix(machine, "pc-i440fx-"):
		return "pc"
	case strings.HasPrefix(machine, "virt-"):
		return "virt"
	case strings.HasPrefix(machine, "pseries-"):
		return "pseries"
	}
	return machine
}

// AptPackage names the Debian package that provides arch's qemu binary
// (qemu-system-x86, qemu-system-arm or qemu-system-ppc); "" for an unknown arch.
func AptPackage(a Arch) string { return archTable[a].aptPackage }

// DefaultMachine is the machine type Cmdline uses for arch when
// Config.Machine is empty.
func DefaultMachine(a Arch) string {
	if m := archTable[a].machines; len(m) > 0 {
		return m[0]
	}
	return ""
}

// Console is the guest kernel's serial console device on arch's default
// machine (ttyS0, ttyAMA0, hvc0, ttyPZ0): what `console=` must name for the
// kernel to talk on vlab's serial socket.
func Console(a Arch) string { return archTable[a].console }
