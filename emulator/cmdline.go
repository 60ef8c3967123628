package emulator

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Cmdline returns the exact qemu argv for cfg (argv[0] is the binary path
// from h). It is pure: everything it knows about the host comes from h.
//
// What it always adds: -nodefaults -no-user-config, -name, -pidfile,
// -display none, the accelerator, machine, CPU, SMP and memory, one QMP
// monitor per socket in cfg.Paths.QMP, and the serial console on a unix
// socket logged to cfg.Paths.SerialLog.
//
// Defaults for empty fields come from the per-arch and per-board tables in
// arch.go. An AccelAuto in cfg.Accel is resolved with ChooseAccel. Boot order
// uses QEMU's letters: "c" the disks, "d" the CD-ROMs, "n" the network, so
// "dc" boots the CD first; "" means "cd" (disks first, then CD-ROMs). It is
// applied through bootindex (and -boot order on mac99, whose OpenBIOS reads
// that instead). Display "" means DisplayNone.
//
// Errors: a missing binary wraps ErrNoQEMU, missing UEFI firmware wraps
// ErrNoFirmware, KVM for a guest the host cannot run wraps
// ErrKVMUnavailable; each names the Debian package or the fix.
func Cmdline(cfg Config, h *Host) ([]string, error) {
	b := &builder{cfg: cfg, h: h}
	if err := b.build(); err != nil {
		if cfg.Name != "" {
			return nil, fmt.Errorf("qemu command line for %q: %w", cfg.Name, err)
		}
		return nil, fmt.Errorf("qemu command line: %w", err)
	}
	return b.argv, nil
}

// builder accumulates one argv.
type builder struct {
	cfg     Config
	h       *Host
	arch    archInfo
	board   board
	machine string
	accel   AccelChoice
	order   string // effective boot order (QEMU letters)
	argv    []string

	usbAdded    bool // USB controller already on the command line
	scsiAdded   bool
	ahciAdded   bool
	ideUsed     []bool
	ahciUsed    int
	nodeNames   map[string]bool
	deviceIDs   map[string]bool
	noNetROM    bool
	bootClasses map[byte]bool
	nicWires    map[int]NICWire // NIC index → its -netdev
}

func (b *builder) add(args ...string) { b.argv = append(b.argv, args...) }

func (b *builder) build() error {
	bin, err := b.check()
	if err != nil {
		return err
	}
	return b.emit(bin)
}

// check validates the configuration against the arch, the board and the
// host, and resolves the machine type, accelerator and boot order. It
// returns the QEMU binary to run.
func (b *builder) check() (Binary, error) {
	cfg, h := b.cfg, b.h
	if h == nil {
		return Binary{}, errors.New("no host facts (probe the host first)")
	}
	info, ok := archTable[cfg.Arch]
	if !ok {
		return Binary{}, fmt.Errorf("unknown arch %q: use one of %s", cfg.Arch, strings.Join(ArchNames(), ", "))
	}
	b.arch = info
	bin, ok := h.Binaries[cfg.Arch]
	if !ok || bin.Path == "" {
		return Binary{}, fmt.Errorf("%w: %s runs %s guests (install it: apt-get install %s)", ErrNoQEMU, info.binary, cfg.Arch, info.aptPackage)
	}
	if err := checkName(cfg.Name); err != nil {
		return Binary{}, err
	}
	b.machine = cfg.Machine
	if b.machine == "" {
		b.machine = info.machines[0]
	}
	b.board, ok = boardFor(cfg.Arch, b.machine)
	if !ok {
		return Binary{}, fmt.Errorf("machine %q is not supported for %s guests: use one of %s", b.machine, cfg.Arch, strings.Join(info.machines, ", "))
	}
	if len(bin.Machines) > 0 && !slices.Contains(bin.Machines, b.machine) {
		return Binary{}, fmt.Errorf("%s has no machine %q (see %s -machine help)", bin.Path, b.machine, bin.Path)
	}
	if err := b.resolveAccel(bin); err != nil {
		return Binary{}, err
	}
	if err := CheckCPU(cfg.CPU); err != nil { // valid.go: -cpu is an option string
		return Binary{}, err
	}
	if cfg.CPUs < 1 {
		return Binary{}, fmt.Errorf("cpus must be at least 1, not %d", cfg.CPUs)
	}
	if cfg.MemoryMiB < 1 {
		return Binary{}, fmt.Errorf("memory must be at least 1 MiB, not %d", cfg.MemoryMiB)
	}
	if err := b.resolveBootOrder(); err != nil {
		return Binary{}, err
	}
	if err := checkPaths(cfg); err != nil {
		return Binary{}, err
	}
	return bin, b.checkShares() // share.go
}

// emit writes the argv for the checked configuration: the binary and its
// global options, machine, memory, firmware, monitors, serial, then each
// device. It is one straight sequence on purpose: its order is the argv's,
// which the golden tests pin.
func (b *builder) emit(bin Binary) error {
	cfg := b.cfg
	b.nodeNames = map[string]bool{}
	b.deviceIDs = map[string]bool{}
	b.add(bin.Path,
		"-name", newOpt("guest="+optValue(cfg.Name)).set("process", "vlab-"+cfg.Name).String(),
		"-nodefaults", "-no-user-config",
		"-pidfile", cfg.Paths.Pidfile,
		"-display", "none",
		"-accel", b.accelArg(),
	)
	fw, err := b.firmware()
	if err != nil {
		return err
	}
	mopts, err := b.machineArg(fw)
	if err != nil {
		return err
	}
	if b.sharedRAM() {
		b.add("-object", newOpt("memory-backend-memfd").set("id", SharedRAMID).set("size", strconv.Itoa(cfg.MemoryMiB)+"M").raw("share=on").String())
	}
	b.add("-machine", mopts, "-cpu", b.cpu(), "-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMiB)+"M")
	b.addFirmwareNodes(fw)
	for i, p := range cfg.Paths.QMP {
		id := QMPChardevID(i)
		b.add(socketChardev{id: id, path: p}.args()...)
		b.add("-mon", newOpt("chardev="+id).raw("mode=control").String())
	}
	switch {
	case cfg.Instrument.Replay.Mode != ReplayOff && cfg.Paths.SerialLog != "":
		// Recorded and replayed runs write the console to the log only. A
		// socket console nobody is attached to refuses the UART's writes,
		// the UART retries on a host timer the recording does not hold,
		// and the replay then stalls at the first byte (seen with QEMU
		// 7.2: an empty console, the replay ending at once).
		b.add("-chardev", newOpt("file").set("id", SerialChardevID).set("path", cfg.Paths.SerialLog).raw("append=on").String())
		b.add("-serial", "chardev:"+SerialChardevID)
	case cfg.Paths.Serial != "":
		b.add(socketChardev{id: SerialChardevID, path: cfg.Paths.Serial, logfile: cfg.Paths.SerialLog}.args()...)
		b.add("-serial", "chardev:"+SerialChardevID)
	}
	for i, d := range cfg.Disks {
		if err := b.addDisk(i, d); err != nil {
			return err
		}
	}
	for i, c := range cfg.CDROMs {
		if err := b.addCDROM(i, c); err != nil {
			return err
		}
	}
	for i, n := range cfg.NICs {
		if err := b.addNIC(i, n); err != nil {
			return err
		}
	}
	if err := b.addDisplay(); err != nil {
		return err
	}
	if err := b.addSound(); err != nil {
		return err
	}
	b.addShares() // share.go
	if err := b.addKernel(); err != nil {
		return err
	}
	if b.board.bootOrderArg {
		b.add("-boot", "order="+b.order)
	}
	if cfg.RTCLocalTime {
		b.add("-rtc", "base=localtime")
	}
	if cfg.GDB {
		// A unix socket in the private runtime dir, never TCP: the stub
		// passes gdb's `monitor` to the human monitor, which can run host
		// commands (migrate "exec:..."), so only the VM's owner may reach it.
		b.add(socketChardev{id: GDBChardevID, path: cfg.Paths.GDB}.args()...)
		b.add("-gdb", "chardev:"+GDBChardevID)
	}
	if err := b.addAgent(); err != nil { // agentdev.go
		return err
	}
	if cfg.StartPaused {
		b.add("-S")
	}
	b.add(cfg.Instrument.args()...) // trace.go
	return nil
}

// checkName accepts any printable name (it is escaped on the command line).
func checkName(name string) error {
	if name == "" {
		return errors.New("the vm has no name")
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("vm name %q contains control characters", name)
	}
	return nil
}

// checkPaths validates the runtime paths QEMU needs.
func checkPaths(cfg Config) error {
	p := cfg.Paths
	if len(p.QMP) == 0 {
		return errors.New("no qmp socket path (Paths.QMP): vlab cannot drive a qemu without one")
	}
	if p.Pidfile == "" {
		return errors.New("no pidfile path (Paths.Pidfile)")
	}
	sockets := append([]string(nil), p.QMP...)
	if p.Serial != "" {
		sockets = append(sockets, p.Serial)
	}
	if cfg.GDB {
		if p.GDB == "" {
			return errors.New("a gdb stub needs a socket path (Paths.GDB)")
		}
		sockets = append(sockets, p.GDB)
	}
	if cfg.Display == DisplayVNC {
		if p.VNC == "" {
			return errors.New("display vnc needs a socket path (Paths.VNC)")
		}
		sockets = append(sockets, p.VNC, ExternalVNCSocket(p.VNC))
	}
	for _, s := range sockets {
		if s == "" {
			return errors.New("empty socket path")
		}
		if len(s) > maxSocketPath {
			return fmt.Errorf("unix socket path is %d bytes, over the %d-byte limit: %s", len(s), maxSocketPath, s)
		}
	}
	if p.SerialLog != "" && p.Serial == "" {
		return errors.New("a serial log (Paths.SerialLog) needs a serial socket (Paths.Serial)")
	}
	return nil
}

// resolveAccel settles cfg.Accel (choosing when it is auto) and refuses KVM
// where it cannot run.
func (b *builder) resolveAccel(bin Binary) error {
	a := b.cfg.Accel
	switch a.Accel {
	case AccelAuto:
		c, err := ChooseAccel(b.cfg.Arch, AccelAuto, b.h)
		if err != nil {
			return err
		}
		a = c
	case AccelKVM:
		if !kvmCanRun(b.h.Arch, b.cfg.Arch) {
			return fmt.Errorf("%w for %s guests: KVM on this %s host cannot run %s guests: use --accel tcg", ErrKVMUnavailable, b.cfg.Arch, b.h.Arch, b.cfg.Arch)
		}
		if len(bin.Accels) > 0 && !slices.Contains(bin.Accels, "kvm") {
			return fmt.Errorf("%w for %s guests: %s was built without KVM support: use --accel tcg", ErrKVMUnavailable, b.cfg.Arch, bin.Path)
		}
	case AccelTCG:
		if a.TBSizeMiB < 0 {
			return fmt.Errorf("tcg tb-size %d MiB is negative", a.TBSizeMiB)
		}
	default:
		return fmt.Errorf("unknown accel %d", a.Accel)
	}
	if a.Accel == AccelTCG && a.MultiThread && !b.arch.mttcg {
		a.MultiThread = false // QEMU refuses thread=multi for this target
	}
	b.accel = a
	return nil
}

func (b *builder) accelArg() string {
	if b.accel.Accel == AccelKVM {
		return "kvm"
	}
	o := newOpt("tcg")
	if b.accel.MultiThread {
		o.raw("thread=multi")
	} else {
		o.raw("thread=single")
	}
	if b.accel.TBSizeMiB > 0 {
		o.setInt("tb-size", b.accel.TBSizeMiB)
	}
	return o.String()
}

func (b *builder) cpu() string {
	switch {
	case b.cfg.CPU != "":
		return b.cfg.CPU
	case b.accel.Accel == AccelKVM:
		return b.arch.kvmCPU
	}
	return b.arch.tcgCPU
}

// resolveBootOrder validates cfg.BootOrder and decides which device classes
// get a bootindex.
func (b *builder) resolveBootOrder() error {
	order := b.cfg.BootOrder
	if order == "" {
		order = "cd"
	}
	seen := map[byte]bool{}
	for i := 0; i < len(order); i++ {
		c := order[i]
		if !strings.ContainsRune("cdn", rune(c)) {
			return fmt.Errorf("boot order %q: %q is not c (disk), d (cd-rom) or n (network)", b.cfg.BootOrder, c)
		}
		if seen[c] {
			return fmt.Errorf("boot order %q names %q twice", b.cfg.BootOrder, c)
		}
		seen[c] = true
	}
	b.order = order
	b.bootClasses = seen
	b.noNetROM = !seen['n']
	return nil
}

// bootIndexes returns the bootindex of every device of each class, in boot
// order: class letter -> first index. Devices of one class number
// consecutively from it.
func (b *builder) bootIndexes() map[byte]int {
	counts := map[byte]int{'c': len(b.cfg.Disks), 'd': len(b.cfg.CDROMs), 'n': 0}
	for _, n := range b.cfg.NICs {
		if n.Mode != NetNone {
			counts['n']++
		}
	}
	out := map[byte]int{}
	next := 1
	for i := 0; i < len(b.order); i++ {
		c := b.order[i]
		out[c] = next
		next += counts[c]
	}
	return out
}

// bootIndex returns the bootindex for the i-th device of class, or "" when
// it gets none.
func (b *builder) bootIndex(class byte, i int) string {
	if b.board.bootOrderArg || !b.bootClasses[class] {
		return ""
	}
	return strconv.Itoa(b.bootIndexes()[class] + i)
}

// withBoot adds bootindex to d when it has one.
func withBoot(d device, index string) device {
	if index == "" {
		return d
	}
	return d.with("bootindex", index)
}

// firmwareChoice is the resolved firmware of one guest.
type firmwareChoice struct {
	uefi       bool
	code, vars string
}

func (b *builder) firmware() (firmwareChoice, error) {
	fw := b.cfg.Firmware
	if fw == FirmwareDefault {
		fw = b.arch.firmware
		if fw == FirmwareUEFI && b.cfg.Kernel != "" {
			return firmwareChoice{}, nil // direct kernel boot needs no firmware
		}
	}
	switch fw {
	case FirmwareDefault:
		return firmwareChoice{}, nil
	case FirmwareBIOS:
		if b.arch.firmware != FirmwareBIOS {
			if b.cfg.Kernel != "" {
				return firmwareChoice{}, nil
			}
			return firmwareChoice{}, fmt.Errorf("%s guests have no BIOS firmware: use uefi, the default firmware or a kernel", b.cfg.Arch)
		}
		return firmwareChoice{}, nil
	case FirmwareUEFI:
	default:
		return firmwareChoice{}, fmt.Errorf("unknown firmware %q: use bios or uefi", fw)
	}
	if b.arch.uefi == uefiNone || !b.board.pflash {
		return firmwareChoice{}, fmt.Errorf("uefi is not available for %s guests on the %s machine: use the default firmware", b.cfg.Arch, b.board.name)
	}
	code, vars := uefiFiles(b.arch.uefi, b.h.Firmware)
	if code == "" || vars == "" {
		return firmwareChoice{}, fmt.Errorf("%w: uefi for %s guests (install it: apt-get install %s)", ErrNoFirmware, b.cfg.Arch, uefiPackages[b.arch.uefi])
	}
	if b.cfg.Paths.EFIVars == "" {
		return firmwareChoice{}, errors.New("uefi needs a variable store (Paths.EFIVars, a qcow2 copy of the vars template)")
	}
	return firmwareChoice{uefi: true, code: code, vars: b.cfg.Paths.EFIVars}, nil
}

func uefiFiles(k uefiKind, f FirmwareFiles) (code, vars string) {
	switch k {
	case uefiOVMF:
		return f.OVMFCode, f.OVMFVars
	case uefiAAVMF:
		return f.AAVMFCode, f.AAVMFVars
	case uefiArm:
		return f.ArmCode, f.ArmVars
	}
	return "", ""
}

// UEFIFirmware returns the UEFI code image and the vars template a guest of
// arch boots with on h. The caller copies the template into the guest's own
// qcow2 variable store (Paths.EFIVars): `qemu-img convert -f raw -O qcow2`.
// Errors wrap ErrNoFirmware and name the Debian package.
func UEFIFirmware(arch Arch, h *Host) (code, varsTemplate string, err error) {
	info, ok := archTable[arch]
	if !ok || info.uefi == uefiNone {
		return "", "", fmt.Errorf("uefi is not available for %s guests", arch)
	}
	code, vars := uefiFiles(info.uefi, h.Firmware)
	if code == "" || vars == "" {
		return "", "", fmt.Errorf("%w: uefi for %s guests (install it: apt-get install %s)", ErrNoFirmware, arch, uefiPackages[info.uefi])
	}
	return code, vars, nil
}

// isMachineOpt reports whether m is one -machine property: key=value, the
// key of letters, digits, '-', '.', '_', the value without commas.
func isMachineOpt(m string) bool {
	k, v, ok := strings.Cut(m, "=")
	return ok && k != "" && strings.IndexFunc(k, func(r rune) bool { return !isIDChar(r) }) < 0 && !strings.Contains(v, ",")
}

func (b *builder) machineArg(fw firmwareChoice) (string, error) {
	o := newOpt(b.machine)
	set := map[string]bool{}
	for _, m := range b.cfg.MachineOpts {
		if !isMachineOpt(m) {
			return "", fmt.Errorf("machine option %q is not key=value (without commas)", m)
		}
		if err := CheckMachineOpt(m); err != nil { // valid.go
			return "", err
		}
		k, _, _ := strings.Cut(m, "=")
		set[k] = true
	}
	if b.accel.Accel == AccelTCG {
		for _, m := range b.board.tcgOpts {
			if k, _, _ := strings.Cut(m, "="); !set[k] {
				o.raw(m)
			}
		}
	}
	for _, m := range b.board.defaultOpts {
		if k, _, _ := strings.Cut(m, "="); !set[k] {
			o.raw(m)
		}
	}
	for _, m := range b.cfg.MachineOpts {
		o.raw(m)
	}
	if fw.uefi {
		if set["pflash0"] || set["pflash1"] {
			return "", errors.New("machine options pflash0/pflash1 conflict with uefi firmware")
		}
		o.raw("pflash0=" + EFICodeNode).raw("pflash1=" + EFIVarsNode)
	}
	if b.sharedRAM() {
		if set["memory-backend"] {
			return "", errors.New("machine option memory-backend conflicts with a virtiofs share (vlab backs RAM with a shared memfd)")
		}
		o.set("memory-backend", SharedRAMID)
	}
	return o.String(), nil
}

func (b *builder) addFirmwareNodes(fw firmwareChoice) {
	if !fw.uefi {
		return
	}
	for _, n := range imageNodes(EFICodeNode, fw.code, "raw", true) {
		b.add(n.args()...)
	}
	for _, n := range imageNodes(EFIVarsNode, fw.vars, "qcow2", false) {
		b.add(n.args()...)
	}
	b.nodeNames[EFICodeNode], b.nodeNames[EFIVarsNode] = true, true
}

// isNodeName reports whether s follows QEMU's rule for node names (and
// ids): a letter, then letters, digits, '-', '.', '_'; at most 31 characters.
// (Hand-written rather than a regexp: every vlab command would pay for
// compiling one at start-up.)
func isNodeName(s string) bool {
	return s != "" && len(s) <= 31 && isLetter(rune(s[0])) &&
		strings.IndexFunc(s, func(r rune) bool { return !isIDChar(r) }) < 0
}

func isLetter(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' }

// isIDChar: a letter, a digit, '-', '.' or '_'.
func isIDChar(r rune) bool {
	return isLetter(r) || '0' <= r && r <= '9' || r == '-' || r == '.' || r == '_'
}

var diskFormats = []string{"qcow2", "raw", "vmdk", "vdi", "vpc", "vhdx", "qed"}

func (b *builder) addDisk(i int, d Disk) error {
	node := d.NodeName
	if node == "" {
		node = "hd" + strconv.Itoa(i)
	}
	if !isNodeName(node) || len(node)+len(fileNodeSuffix) > 31 {
		return fmt.Errorf("disk %d: node name %q must be a letter then letters, digits, '-', '.', '_' (at most 26)", i, node)
	}
	if b.nodeNames[node] {
		return fmt.Errorf("disk %d: node name %q is used twice", i, node)
	}
	b.nodeNames[node] = true
	if d.Path == "" {
		return fmt.Errorf("disk %s: no image path", node)
	}
	format := d.Format
	if format == "" {
		format = "qcow2"
	}
	if !slices.Contains(diskFormats, format) {
		return fmt.Errorf("disk %s: unknown format %q: use %s", node, format, strings.Join(diskFormats, ", "))
	}
	bus := d.Bus
	if bus == "" {
		bus = b.board.diskBus
	}
	var dev device
	switch bus {
	case "virtio":
		if !b.board.pci {
			return fmt.Errorf("disk %s: virtio needs PCI, which the %s machine lacks: use ide", node, b.board.name)
		}
		dev = newDevice("virtio-blk-pci", "drive", node)
	case "ide", "sata":
		if d.ReadOnly {
			return fmt.Errorf("disk %s: qemu cannot attach a read-only disk to %s: use virtio or scsi", node, bus)
		}
		var err error
		if dev, err = b.ideDevice("ide-hd", bus, false); err != nil {
			return fmt.Errorf("disk %s: %w", node, err)
		}
		dev = dev.with("drive", node)
	case "scsi":
		if err := b.addSCSI(); err != nil {
			return fmt.Errorf("disk %s: %w", node, err)
		}
		dev = newDevice("scsi-hd", "bus", SCSIControllerID+".0", "drive", node)
	case "nvme":
		if d.ReadOnly {
			return fmt.Errorf("disk %s: qemu cannot attach a read-only disk to nvme: use virtio or scsi", node)
		}
		if !b.board.pci {
			return fmt.Errorf("disk %s: nvme needs PCI, which the %s machine lacks: use ide", node, b.board.name)
		}
		dev = newDevice("nvme", "serial", node, "drive", node)
	default:
		return fmt.Errorf("disk %s: unknown bus %q: use virtio, ide, sata, scsi or nvme", node, bus)
	}
	for _, n := range imageNodes(node, d.Path, format, d.ReadOnly) {
		b.add(n.args()...)
	}
	dev = b.blkreplay(node, dev) // replay.go
	b.add(withBoot(dev, b.bootIndex('c', i)).args()...)
	return nil
}

func (b *builder) addCDROM(i int, c CDROM) error {
	id := c.ID
	if id == "" {
		id = "cd" + strconv.Itoa(i)
	}
	if !isNodeName(id) || len(id)+len(mediumNodeSuffix) > 31 {
		return fmt.Errorf("cd-rom %d: id %q must be a letter then letters, digits, '-', '.', '_' (at most 24)", i, id)
	}
	if b.deviceIDs[id] {
		return fmt.Errorf("cd-rom %d: id %q is used twice", i, id)
	}
	b.deviceIDs[id] = true
	bus := c.Bus
	if bus == "" {
		bus = b.board.cdBus
	}
	var dev device
	switch bus {
	case "ide", "sata":
		var err error
		if dev, err = b.ideDevice("ide-cd", bus, true); err != nil {
			return fmt.Errorf("cd-rom %s: %w", id, err)
		}
	case "scsi":
		if err := b.addSCSI(); err != nil {
			return fmt.Errorf("cd-rom %s: %w", id, err)
		}
		dev = newDevice("scsi-cd", "bus", SCSIControllerID+".0")
	default:
		return fmt.Errorf("cd-rom %s: unknown bus %q: use ide, sata or scsi", id, bus)
	}
	dev = newDevice(dev.driver, append([]string{"id", id}, flatten(dev.props)...)...)
	if c.Path != "" {
		medium := CDROMMediumNode(id)
		if b.nodeNames[medium] {
			return fmt.Errorf("cd-rom %s: node name %q is used twice", id, medium)
		}
		b.nodeNames[medium] = true
		for _, n := range imageNodes(medium, c.Path, "raw", true) {
			b.add(n.args()...)
		}
		dev = dev.with("drive", medium)
	}
	b.add(withBoot(dev, b.bootIndex('d', i)).args()...)
	return nil
}

func flatten(props [][2]string) []string {
	out := make([]string, 0, 2*len(props))
	for _, p := range props {
		out = append(out, p[0], p[1])
	}
	return out
}

// ideDevice returns driver placed on the next free IDE/AHCI slot for bus.
// Disks fill the board's slots from the first; CD-ROMs start at the board's
// CD slot (the secondary master on PATA boards), as PCs were cabled.
func (b *builder) ideDevice(driver, bus string, cd bool) (device, error) {
	if bus == "sata" && !b.board.sataIsIDE {
		if !b.board.pci {
			return device{}, fmt.Errorf("sata needs PCI, which the %s machine lacks: use ide", b.board.name)
		}
		if !b.ahciAdded {
			b.add(newDevice("ahci", "id", AHCIControllerID).args()...)
			b.ahciAdded = true
		}
		const ports = 6
		if b.ahciUsed >= ports {
			return device{}, fmt.Errorf("all %d sata ports are taken", ports)
		}
		d := newDevice(driver, "bus", AHCIControllerID+"."+strconv.Itoa(b.ahciUsed))
		b.ahciUsed++
		return d, nil
	}
	slots := b.board.ide
	if len(slots) == 0 {
		return device{}, fmt.Errorf("the %s machine has no %s bus: use %s", b.board.name, bus, b.board.diskBus)
	}
	if b.ideUsed == nil {
		b.ideUsed = make([]bool, len(slots))
	}
	start := 0
	if cd {
		start = b.board.cdIDEFirst
	}
	for k := range slots {
		j := (start + k) % len(slots)
		if b.ideUsed[j] {
			continue
		}
		b.ideUsed[j] = true
		d := newDevice(driver, "bus", slots[j].bus)
		if slots[j].unit >= 0 {
			d = d.with("unit", strconv.Itoa(slots[j].unit))
		}
		return d, nil
	}
	return device{}, fmt.Errorf("all %d %s slots of the %s machine are taken", len(slots), bus, b.board.name)
}

func (b *builder) addSCSI() error {
	if b.scsiAdded {
		return nil
	}
	if b.board.scsi == "" {
		return fmt.Errorf("the %s machine has no scsi controller: use %s", b.board.name, b.board.diskBus)
	}
	b.add(newDevice(b.board.scsi, "id", SCSIControllerID).args()...)
	b.scsiAdded = true
	return nil
}

// isMAC reports whether s is six hex pairs joined by colons.
func isMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		hex := '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
		if i%3 == 2 && c != ':' || i%3 != 2 && !hex {
			return false
		}
	}
	return true
}

func (b *builder) addNIC(i int, n NIC) error {
	id := n.ID
	if id == "" {
		id = "net" + strconv.Itoa(i)
	}
	mode := n.Mode
	if mode == "" {
		mode = NetUser
	}
	if mode == NetNone {
		return nil
	}
	if !isNodeName(id) {
		return fmt.Errorf("nic %d: id %q must be a letter then letters, digits, '-', '.', '_'", i, id)
	}
	if b.deviceIDs["netdev:"+id] {
		return fmt.Errorf("nic %d: id %q is used twice", i, id)
	}
	b.deviceIDs["netdev:"+id] = true
	if len(n.Forwards) > 0 && mode != NetUser {
		return fmt.Errorf("nic %s: port forwards need user mode, not %s", id, mode)
	}
	nd, err := netdevOpt(id, mode, n)
	if err != nil {
		return err
	}
	model := n.Model
	if model == "" {
		model = b.board.nic
	}
	switch {
	case pciNICs[model] && !b.board.pci:
		return fmt.Errorf("nic %s: %s needs PCI, which the %s machine lacks: use ne2k_isa", id, model, b.board.name)
	case isaNICs[model] && !b.board.isa:
		return fmt.Errorf("nic %s: %s needs an ISA bus, which the %s machine lacks: use %s", id, model, b.board.name, b.board.nic)
	}
	if err := CheckNICModel(b.cfg.Arch, b.machine, model); err != nil { // valid.go: the head of -device
		return fmt.Errorf("nic %s: %w", id, err)
	}
	dev := newDevice(model, "netdev", id)
	if n.MAC != "" {
		if !isMAC(n.MAC) {
			return fmt.Errorf("nic %s: mac %q is not six hex pairs like 52:54:00:12:34:56", id, n.MAC)
		}
		dev = dev.with("mac", strings.ToLower(n.MAC))
	}
	if b.noNetROM && pciNICs[model] {
		dev = dev.with("romfile", "")
	}
	if b.nicWires == nil {
		b.nicWires = map[int]NICWire{}
	}
	netdev := nd.String()
	b.nicWires[i] = NICWire{NetdevID: id, Netdev: netdev}
	b.add("-netdev", netdev)
	b.add(withBoot(dev, b.bootIndex('n', b.nicIndex(i))).args()...)
	return nil
}

// netdevOpt is the -netdev of NIC id in mode (not none).
func netdevOpt(id string, mode NetMode, n NIC) (*opt, error) {
	var nd *opt
	switch mode {
	case NetUser:
		nd = newOpt("user").set("id", id)
		for _, f := range n.Forwards {
			rule, err := forwardRule(f)
			if err != nil {
				return nil, fmt.Errorf("nic %s: %w", id, err)
			}
			nd.set("hostfwd", rule)
		}
		if n.Restrict {
			nd.raw("restrict=on")
		}
	case NetBridge:
		if n.Bridge == "" {
			return nil, fmt.Errorf("nic %s: bridge mode needs a bridge name", id)
		}
		nd = newOpt("bridge").set("id", id).set("br", n.Bridge)
		if n.Helper != "" {
			nd.set("helper", n.Helper)
		}
	case NetTap:
		if n.Tap == "" {
			return nil, fmt.Errorf("nic %s: tap mode needs an interface name", id)
		}
		nd = newOpt("tap").set("id", id).set("ifname", n.Tap).raw("script=no").raw("downscript=no")
	case NetSandbox:
		if n.Passt == "" {
			return nil, fmt.Errorf("nic %s: sandbox mode needs passt's socket path", id)
		}
		nd = newOpt("stream").set("id", id).raw("server=off").raw("addr.type=unix").set("addr.path", n.Passt)
	case NetSocket:
		if len(n.Socket) == 0 || n.Socket[0] == "" || strings.ContainsAny(n.Socket[0], "=,") {
			return nil, fmt.Errorf("nic %s: socket mode needs the netdev type first (stream, dgram or socket), then its options", id)
		}
		nd = newOpt(n.Socket[0]).set("id", id)
		for _, s := range n.Socket[1:] {
			if s == "" {
				return nil, fmt.Errorf("nic %s: empty socket option", id)
			}
			nd.raw(s)
		}
	default:
		return nil, fmt.Errorf("nic %s: unknown mode %q: use user, sandbox, bridge, tap, socket or none", id, mode)
	}
	return nd, nil
}

// nicIndex counts the NICs before i that get a device (mode not none).
func (b *builder) nicIndex(i int) int {
	k := 0
	for _, n := range b.cfg.NICs[:i] {
		if n.Mode != NetNone {
			k++
		}
	}
	return k
}

// forwardRule renders a Forward as QEMU's hostfwd value
// (tcp:127.0.0.1:2222-:22).
func forwardRule(f Forward) (string, error) {
	proto := f.Proto
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return "", fmt.Errorf("forward protocol %q: use tcp or udp", f.Proto)
	}
	// Host port 0 lets the kernel pick a free port when QEMU binds it (read
	// it back with HMP info usernet): concurrent starts never collide.
	if f.HostPort < 0 || f.HostPort > 65535 || f.GuestPort < 1 || f.GuestPort > 65535 {
		return "", fmt.Errorf("forward %s %d -> %d: ports must be 1-65535 (host port 0: any free port)", proto, f.HostPort, f.GuestPort)
	}
	addr := f.HostAddr
	if addr == "" {
		addr = "127.0.0.1"
	}
	if strings.ContainsAny(addr, ":,- ") {
		return "", fmt.Errorf("forward host address %q must be an IPv4 address", addr)
	}
	return fmt.Sprintf("%s:%s:%d-:%d", proto, addr, f.HostPort, f.GuestPort), nil
}

// VNCExternalID is the id of the password-protected VNC display behind
// `vlab vnc --external`'s loopback endpoint: QMP set_password with display
// VNCExternalID sets its one-time password.
const VNCExternalID = "ext"

// ExternalVNCSocket returns the unix socket of the password-protected VNC
// display of a VM whose VNC socket is vncSock: "vnc-ext.sock" beside it.
func ExternalVNCSocket(vncSock string) string {
	return vncSock[:strings.LastIndexByte(vncSock, '/')+1] + "vnc-ext.sock"
}

// addDisplay adds the VNC server, the display adapter and the input devices.
func (b *builder) addDisplay() error {
	cfg := b.cfg
	switch cfg.Display {
	case DisplayNone, "":
		// Headless: a display adapter only when one was asked for by name
		// (QMP screendump still works), no pointer devices.
		if cfg.VGA != "" && cfg.VGA != "none" {
			return b.addVGA(cfg.VGA)
		}
		return nil
	case DisplayVNC:
	default:
		return fmt.Errorf("unknown display %q: use vnc or none", cfg.Display)
	}
	// share=force-shared: every viewer (vlab's own and an external one)
	// keeps its session, whatever it asks for.
	b.add("-vnc", newOpt("unix:"+optValue(cfg.Paths.VNC)).raw("share=force-shared").String())
	// A second display with password=on, for viewers that need TCP: `vlab vnc
	// --external` relays a loopback port to its socket and sets a one-time
	// password through QMP (set_password, display VNCExternalID). The main
	// socket needs no password: the private runtime dir protects it.
	b.add("-vnc", newOpt("unix:"+optValue(ExternalVNCSocket(cfg.Paths.VNC))).raw("share=force-shared").raw("password=on").raw("id="+VNCExternalID).String())
	vga := cfg.VGA
	if vga == "" {
		vga = b.board.vga
	}
	if vga != "none" {
		if err := b.addVGA(vga); err != nil {
			return err
		}
	}
	return b.addInput()
}

func (b *builder) addVGA(name string) error {
	dev, err := vgaDevice(name, b.board)
	if err != nil {
		return err
	}
	b.add("-device", dev)
	return nil
}

// addInput adds the pointer (and keyboard) for a VNC display. An absolute
// pointer (a tablet) lets the guest cursor follow the viewer's exactly; PS/2
// is for guests without USB HID drivers and needs a pointer grab.
func (b *builder) addInput() error {
	input := b.cfg.Input
	if input == InputAuto {
		input = b.board.input
	}
	adb := b.macADB()
	switch input {
	case InputPS2:
		switch {
		case b.board.ps2:
			return nil // the i8042 keyboard and mouse are built in
		case b.board.name == "mac99" && adb:
			return nil // ADB keyboard and mouse
		case b.board.name == "mac99":
			return b.addUSB("usb-kbd", "usb-mouse") // relative USB devices, as a real G4
		}
		return fmt.Errorf("ps2 input needs a pc, q35 or isapc machine (or mac99): use usb-tablet on %s", b.board.name)
	case InputUSBTablet:
		return b.addUSB("usb-tablet", "usb-kbd")
	case InputVirtioTablet:
		if !b.board.pci {
			return fmt.Errorf("virtio-tablet needs PCI, which the %s machine lacks: use ps2", b.board.name)
		}
		b.add(newDevice("virtio-tablet-pci").args()...)
		switch {
		case b.board.ps2, b.board.name == "mac99" && adb:
			return nil // the board's own keyboard
		case b.board.name == "mac99":
			return b.addUSB("usb-kbd") // Mac OS has no virtio keyboard driver
		}
		b.add(newDevice("virtio-keyboard-pci").args()...)
		return nil
	}
	return fmt.Errorf("unknown input %q: use usb-tablet, virtio-tablet or ps2", input)
}

// macADB reports whether a mac99 guest's VIA has ADB (via=cuda or pmu-adb),
// which brings an ADB keyboard and mouse.
func (b *builder) macADB() bool {
	via := ""
	for _, m := range append(append([]string(nil), b.board.defaultOpts...), b.cfg.MachineOpts...) {
		if v, ok := strings.CutPrefix(m, "via="); ok {
			via = v
		}
	}
	return via == "cuda" || via == "pmu-adb"
}

// addUSB adds the board's USB controller (once) and devs on its bus.
func (b *builder) addUSB(devs ...string) error {
	if b.board.usb == "" {
		return fmt.Errorf("the %s machine has no USB: use ps2 input", b.board.name)
	}
	if !b.usbAdded {
		b.add(newDevice(b.board.usb, "id", USBBusID).args()...)
		b.usbAdded = true
	}
	for _, d := range devs {
		b.add(newDevice(d, "bus", USBBusID+".0").args()...)
	}
	return nil
}

func (b *builder) addSound() error {
	name := b.cfg.Sound
	if name == "" || name == "none" {
		return nil
	}
	card, ok := soundCards[name]
	if !ok {
		return fmt.Errorf("unknown sound card %q: use %s", name, soundNames)
	}
	if card.isa && !b.board.isa {
		return fmt.Errorf("sound card %s needs an ISA bus, which the %s machine lacks: use ac97, es1370 or hda", name, b.board.name)
	}
	if !card.isa && !b.board.pci {
		return fmt.Errorf("sound card %s needs PCI, which the %s machine lacks: use sb16", name, b.board.name)
	}
	// The guest gets the hardware it expects; the sound goes nowhere (vlab's
	// consoles are VNC and serial, neither carries audio).
	b.add("-audiodev", "none,id="+AudiodevID)
	for k, d := range card.devices {
		if k == len(card.devices)-1 {
			d = d.with("audiodev", AudiodevID)
		}
		b.add(d.args()...)
	}
	return nil
}

// addKernel adds direct kernel boot. These options are taken verbatim by
// QEMU (no comma escaping).
func (b *builder) addKernel() error {
	cfg := b.cfg
	if cfg.Kernel == "" {
		if cfg.Initrd != "" || cfg.Append != "" || cfg.DTB != "" {
			return errors.New("initrd, append and dtb need a kernel")
		}
		return nil
	}
	b.add("-kernel", cfg.Kernel)
	if cfg.Initrd != "" {
		b.add("-initrd", cfg.Initrd)
	}
	if cfg.Append != "" {
		b.add("-append", cfg.Append)
	}
	if cfg.DTB != "" {
		b.add("-dtb", cfg.DTB)
	}
	return nil
}
