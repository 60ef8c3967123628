package emulator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// This file holds the allow-lists a machine definition is checked against
// before anything reaches a QEMU command line: machine types, machine
// properties, CPU models, NIC models, display and sound devices, interface
// names and memory limits. machine.Spec.Validate and Cmdline both use them,
// so a value refused here is refused at create, edit, load and start alike.
// Every error names the field, the bad value and what to use instead.

// CheckMachine reports whether machine is a machine type vlab supports for
// arch guests: a family name (q35, pc, isapc, virt, pseries, mac99) or a
// versioned name of one (pc-q35-7.2, pc-i440fx-7.2, virt-7.2, pseries-7.2).
// "" means the arch default.
func CheckMachine(arch Arch, machine string) error {
	info, ok := archTable[arch]
	if !ok {
		return fmt.Errorf("arch %q unknown: use one of %s", arch, strings.Join(ArchNames(), ", "))
	}
	if machine == "" {
		return nil
	}
	if !isPlainWord(machine) {
		return fmt.Errorf("machine %q is not a machine type name: use one of %s", machine, strings.Join(info.machines, ", "))
	}
	if _, ok := boardFor(arch, machine); !ok {
		return fmt.Errorf("machine %q is not supported for %s guests: use one of %s", machine, arch, strings.Join(info.machines, ", "))
	}
	return nil
}

// CheckHostMachine reports whether the qemu binary for arch on h lists
// machine in its -machine help (probed and cached). When the probe has no
// machine list, only the family names (q35, pc, virt...) pass; a versioned
// name is refused with a message saying the list is missing.
func CheckHostMachine(h *Host, arch Arch, machine string) error {
	info := archTable[arch]
	if h == nil {
		return nil
	}
	bin, ok := h.Binaries[arch]
	if !ok || bin.Path == "" {
		return fmt.Errorf("%w: %s runs %s guests (install it: apt-get install %s)", ErrNoQEMU, info.binary, arch, info.aptPackage)
	}
	if machine == "" {
		machine = DefaultMachine(arch)
	}
	if len(bin.Machines) == 0 {
		// (A probe under heavy load can miss the list.) Every build of
		// the binary has the families CheckMachine allows; a versioned
		// name cannot be confirmed without the list, so it is not guessed.
		if slices.Contains(info.machines, machine) {
			return nil
		}
		return fmt.Errorf("machine %q cannot be checked: %s listed no machine types when probed: use one of %s, or see `%s -machine help`", machine, bin.Path, strings.Join(info.machines, ", "), bin.Path)
	}
	if slices.Contains(bin.Machines, machine) {
		return nil
	}
	var have []string
	for _, m := range info.machines {
		if slices.Contains(bin.Machines, m) {
			have = append(have, m)
		}
	}
	return fmt.Errorf("machine %q is not known to the installed %s: use one of %s (see `%s -machine help`)", machine, bin.Path, strings.Join(have, ", "), bin.Path)
}

// machineOptKeys are the -machine properties a machine definition may set.
// Properties that name host files (kernel, initrd, dtb, dumpdtb, firmware,
// pflash0/1, memory-backend...) are left out on purpose: a downloaded
// machine.toml is data, never a pointer into the host. Keys starting with
// "cap-" are pseries capabilities.
var machineOptKeys = []string{
	"acpi", "dump-guest-core", "gic-version", "graphics", "highmem", "hpet", "i8042",
	"ic-mode", "iommu", "its", "kernel-irqchip", "max-cpu-compat", "mem-merge", "mte",
	"pic", "pit", "ras", "resize-hpt", "sata", "secure", "smbus", "smm", "usb", "via",
	"virtualization", "vmport", "vsmt", "x-vof",
}

// CheckMachineOpt reports whether opt is one -machine property vlab lets a
// definition set: key=value with a key from the allow-list and a value of
// letters, digits, '.', '_', '+' and '-' only.
func CheckMachineOpt(opt string) error {
	k, v, ok := strings.Cut(opt, "=")
	if !ok || k == "" || v == "" {
		return fmt.Errorf("machine option %q is not key=value: write e.g. via=pmu", opt)
	}
	if !slices.Contains(machineOptKeys, k) && !(strings.HasPrefix(k, "cap-") && isPlainWord(k)) {
		return fmt.Errorf("machine option %q is not allowed: use one of %s or a pseries cap-*", k, strings.Join(machineOptKeys, ", "))
	}
	if !isOptWord(v) {
		return fmt.Errorf("machine option %s value %q is invalid: use letters, digits, '.', '_', '+' or '-', e.g. via=pmu", k, v)
	}
	return nil
}

// CheckCPU reports whether cpu is a CPU model, optionally followed by
// comma-separated features: +feat, -feat or key=value, each made of
// letters, digits, '.', '_' and '-' (e.g. "max,pauth-impdef=on",
// "pentium3,-sse").
func CheckCPU(cpu string) error {
	if cpu == "" {
		return nil
	}
	parts := strings.Split(cpu, ",")
	bad := func(part string) error {
		return fmt.Errorf("cpu %q is invalid at %q: give a model like max or pentium3, then features as +feat, -feat or key=value", cpu, part)
	}
	if !isPlainWord(parts[0]) {
		return bad(parts[0])
	}
	for _, p := range parts[1:] {
		f := strings.TrimLeft(p, "+-")
		if len(p)-len(f) > 1 {
			return bad(p)
		}
		k, v, hasV := strings.Cut(f, "=")
		if !isPlainWord(k) || hasV && (len(p) != len(f) || !isPlainWord(v)) {
			return bad(p)
		}
	}
	return nil
}

// pciNICModels are the PCI NICs every qemu-system-* 7.2 binary vlab drives
// builds in (`qemu-system-X -device help`, "Network devices").
var pciNICModels = []string{
	"virtio-net-pci", "e1000", "e1000e", "rtl8139", "pcnet", "ne2k_pci", "vmxnet3", "tulip",
	"i82550", "i82551", "i82557a", "i82557b", "i82557c", "i82558a", "i82558b",
	"i82559a", "i82559b", "i82559c", "i82559er", "i82562", "i82801",
}

// NICModels returns the NIC models vlab accepts for arch guests on machine
// ("" = the arch default), the board's default first.
func NICModels(arch Arch, machine string) []string {
	if machine == "" {
		machine = DefaultMachine(arch)
	}
	b, ok := boardFor(arch, machine)
	if !ok {
		return nil
	}
	out := []string{b.nic}
	add := func(ms ...string) {
		for _, m := range ms {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	if b.pci {
		add(pciNICModels...)
	}
	if b.isa {
		add("ne2k_isa")
	}
	switch b.name {
	case "mac99":
		add("sungem")
	case "pseries":
		add("spapr-vlan")
	case "virt":
		add("virtio-net-device")
	}
	return out
}

// CheckNICModel reports whether model ("" = the board's default) is a NIC
// model for arch guests on machine.
func CheckNICModel(arch Arch, machine, model string) error {
	if model == "" {
		return nil
	}
	ms := NICModels(arch, machine)
	if ms == nil {
		return nil // the machine itself is reported
	}
	if !slices.Contains(ms, model) {
		if machine == "" {
			machine = DefaultMachine(arch)
		}
		return fmt.Errorf("nic model %q is unknown for the %s machine: use one of %s", model, machine, strings.Join(ms, ", "))
	}
	return nil
}

// CheckHostNIC reports whether the qemu binary for arch on h builds in the
// NIC model ("" = the board's default) according to the probe's -device
// help. A probe without the device list leaves the decision to
// CheckNICModel's allow-list.
func CheckHostNIC(h *Host, arch Arch, machine, model string) error {
	if h == nil {
		return nil
	}
	bin := h.Binaries[arch]
	if len(bin.NICs) == 0 {
		return nil
	}
	if model == "" {
		if b, ok := boardFor(arch, cmp.Or(machine, DefaultMachine(arch))); ok {
			model = b.nic
		}
	}
	if model == "" || slices.Contains(bin.NICs, model) {
		return nil
	}
	var have []string
	for _, m := range NICModels(arch, machine) {
		if slices.Contains(bin.NICs, m) {
			have = append(have, m)
		}
	}
	return fmt.Errorf("nic model %q is not built into the installed %s: use one of %s (see `%s -device help`)", model, bin.Path, strings.Join(have, ", "), bin.Path)
}

// ParseNetDeviceHelp returns the device names of the "Network devices"
// section of `qemu-system-* -device help` (lines `name "e1000", bus PCI...`).
func ParseNetDeviceHelp(out string) []string {
	var names []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasSuffix(line, "devices:"):
			in = line == "Network devices:"
		case in && strings.HasPrefix(line, `name "`):
			rest := strings.TrimPrefix(line, `name "`)
			if i := strings.IndexByte(rest, '"'); i > 0 {
				names = append(names, rest[:i])
			}
		}
	}
	return names
}

// CheckVGA reports whether name is a display adapter choice.
func CheckVGA(name string) error {
	if _, ok := vgaDevices[name]; ok || name == "" || name == "none" {
		return nil
	}
	return fmt.Errorf("vga %q is unknown: use %s", name, vgaNames)
}

// CheckSound reports whether name is a sound card choice.
func CheckSound(name string) error {
	if _, ok := soundCards[name]; ok || name == "" || name == "none" {
		return nil
	}
	return fmt.Errorf("sound %q is unknown: use %s", name, soundNames)
}

// CheckInput reports whether in is a pointer device choice.
func CheckInput(in Input) error {
	switch in {
	case InputAuto, InputUSBTablet, InputVirtioTablet, InputPS2:
		return nil
	}
	return fmt.Errorf("input %q is unknown: use usb-tablet, virtio-tablet or ps2", string(in))
}

// DiskBuses are the disk bus choices ("" = the board's default).
var DiskBuses = []string{"virtio", "ide", "sata", "scsi", "nvme"}

// CheckDiskBus reports whether bus is a disk bus choice.
func CheckDiskBus(bus string) error {
	if bus == "" || slices.Contains(DiskBuses, bus) {
		return nil
	}
	return fmt.Errorf("disk bus %q is unknown: use %s", bus, strings.Join(DiskBuses, ", "))
}

// CheckIfName reports whether name is a Linux network interface name
// (bridge or tap): 1-15 bytes (IFNAMESIZ 16 with the NUL), not "." or "..",
// without '/', ':' or white space (the kernel's dev_valid_name), and, for
// vlab, printable ASCII without ',' or '=' so it stays one option value.
func CheckIfName(what, name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%s %q %s: use up to 15 letters, digits, '-', '_' or '.', e.g. br0", what, name, why)
	}
	switch {
	case name == "":
		return bad("is empty")
	case len(name) > 15:
		return bad("is longer than 15 bytes")
	case name == "." || name == "..":
		return bad("is not an interface name")
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("/:,=", r) {
			return bad("has a character Linux or QEMU does not take")
		}
	}
	return nil
}

// CheckMAC reports whether mac is a unicast MAC written as six hex pairs
// joined by colons.
func CheckMAC(mac string) error {
	if !isMAC(mac) {
		return fmt.Errorf("mac %q is invalid: use six hex pairs like 52:54:00:12:34:56", mac)
	}
	if mac == "00:00:00:00:00:00" {
		return fmt.Errorf("mac %q is all zeros: use e.g. 52:54:00:12:34:56", mac)
	}
	if hexNibble(mac[1])&1 != 0 {
		return fmt.Errorf("mac %q is a multicast address (odd first byte): use a unicast one like 52:54:00:12:34:56", mac)
	}
	return nil
}

func hexNibble(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// memLimit is the most memory one kind of guest can be given, and why.
type memLimit struct {
	arch    Arch   // ArchUnknown = any
	family  string // "" = any machine of arch
	cpus    []string
	maxMiB  int
	because string
}

// memLimits are checked in order; the first match wins. Sources:
//   - mac99: QEMU 7.2 hw/ppc/mac_newworld.c refuses more than 2 GiB ("RAM
//     size more than 2 GiB is not supported"; measured: -m 2048 starts,
//     -m 2049 exits).
//   - isapc, and the 486 and Pentium (P5) CPUs, have no PAE: a 32-bit
//     address space whose top 512 MiB QEMU's PC boards keep for devices
//     (lowmem ends at 0xe0000000, hw/i386/pc_piix.c); QEMU places more RAM
//     above 4 GiB, where these guests cannot reach it.
//   - i386: PAE's 36 physical address bits (64 GiB).
//   - x86_64: TCG CPUs have 40 physical address bits (1 TiB,
//     TCG_PHYS_ADDR_BITS in target/i386/cpu.h).
//   - virt (arm, aarch64): RAM lives in one region of 255 GiB
//     (LEGACY_RAMLIMIT_GB in hw/arm/virt.c: "cannot model more than 255GB RAM").
var memLimits = []memLimit{
	{family: "mac99", maxMiB: 2048, because: "the mac99 machine takes at most 2 GiB"},
	{family: "isapc", maxMiB: 3584, because: "the isapc machine has no PAE: at most 3.5 GiB below the 4 GiB device hole"},
	{cpus: []string{"486", "pentium"}, maxMiB: 3584, because: "this CPU has no PAE: at most 3.5 GiB below the 4 GiB device hole"},
	{arch: ArchI386, maxMiB: 64 << 10, because: "32-bit PAE guests address at most 64 GiB"},
	{arch: ArchX86_64, maxMiB: 1 << 20, because: "TCG x86 CPUs address at most 1 TiB (40 physical address bits)"},
	{family: "virt", maxMiB: 255 << 10, because: "the virt machine models at most 255 GiB of RAM"},
}

// MaxMemoryMiB returns the most memory (MiB) QEMU gives an arch guest on
// machine with cpu, and the reason, or 0 when vlab knows no limit below its
// own.
func MaxMemoryMiB(arch Arch, machine, cpu string) (int, string) {
	if machine == "" {
		machine = DefaultMachine(arch)
	}
	family := machineFamily(machine)
	model, _, _ := strings.Cut(cpu, ",")
	for _, l := range memLimits {
		if l.arch != ArchUnknown && l.arch != arch || l.family != "" && l.family != family ||
			l.cpus != nil && !slices.Contains(l.cpus, model) {
			continue
		}
		return l.maxMiB, l.because
	}
	return 0, ""
}

// isPlainWord: letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func isPlainWord(s string) bool {
	return s != "" && (isLetter(rune(s[0])) || '0' <= s[0] && s[0] <= '9') &&
		strings.IndexFunc(s, func(r rune) bool { return !isIDChar(r) }) < 0
}

// isOptWord: letters, digits, '.', '_', '+' and '-'.
func isOptWord(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return !isIDChar(r) && r != '+' }) < 0
}
