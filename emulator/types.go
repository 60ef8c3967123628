package emulator

import (
	"fmt"
	"runtime"
	"strings"
)

// Arch is a guest (or host) CPU architecture vlab knows how to emulate.
type Arch int

// The architectures vlab supports. The zero value is not a valid arch, so a
// forgotten field shows up in validation rather than as a silent x86 guest.
const (
	ArchUnknown Arch = iota
	ArchX86_64
	ArchI386
	ArchAArch64
	ArchARM
	ArchPPC64
	ArchPPC
)

// Arches lists every supported arch in display order.
var Arches = []Arch{ArchX86_64, ArchI386, ArchAArch64, ArchARM, ArchPPC64, ArchPPC}

var archNames = map[Arch]string{
	ArchX86_64:  "x86_64",
	ArchI386:    "i386",
	ArchAArch64: "aarch64",
	ArchARM:     "arm",
	ArchPPC64:   "ppc64",
	ArchPPC:     "ppc",
}

// archAliases maps the spellings people type (Debian, Go, uname) to an Arch.
var archAliases = map[string]Arch{
	"x86_64": ArchX86_64, "amd64": ArchX86_64, "x64": ArchX86_64,
	"i386": ArchI386, "i486": ArchI386, "i586": ArchI386, "i686": ArchI386, "x86": ArchI386, "386": ArchI386,
	"aarch64": ArchAArch64, "arm64": ArchAArch64,
	"arm": ArchARM, "armv7": ArchARM, "armhf": ArchARM, "armv7l": ArchARM,
	"ppc64": ArchPPC64, "ppc64le": ArchPPC64, "ppc64el": ArchPPC64, "powerpc64": ArchPPC64, "powerpc64le": ArchPPC64,
	"ppc": ArchPPC, "powerpc": ArchPPC, "ppc32": ArchPPC,
}

// String returns the canonical name, as used in machine.toml and on the CLI.
func (a Arch) String() string {
	if n, ok := archNames[a]; ok {
		return n
	}
	return "unknown"
}

// ParseArch accepts the canonical names and common aliases (amd64, arm64,
// ppc64el, powerpc...).
func ParseArch(s string) (Arch, error) {
	if a, ok := archAliases[strings.ToLower(strings.TrimSpace(s))]; ok {
		return a, nil
	}
	return ArchUnknown, fmt.Errorf("unknown arch %q: use one of %s", s, strings.Join(ArchNames(), ", "))
}

// ArchNames returns the canonical names of all supported arches.
func ArchNames() []string {
	out := make([]string, 0, len(Arches))
	for _, a := range Arches {
		out = append(out, a.String())
	}
	return out
}

// MarshalText implements encoding.TextMarshaler (TOML and JSON use it).
func (a Arch) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Arch) UnmarshalText(b []byte) error {
	v, err := ParseArch(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// HostArch is the arch of the machine vlab runs on.
func HostArch() Arch {
	if a, ok := archAliases[runtime.GOARCH]; ok {
		return a
	}
	return ArchUnknown
}

// Accel is the accelerator QEMU runs a guest with.
type Accel int

// Accelerators. AccelAuto lets ChooseAccel decide.
const (
	AccelAuto Accel = iota
	AccelKVM
	AccelTCG
)

// String returns "auto", "kvm" or "tcg".
func (a Accel) String() string {
	switch a {
	case AccelKVM:
		return "kvm"
	case AccelTCG:
		return "tcg"
	default:
		return "auto"
	}
}

// ParseAccel parses "auto", "kvm" or "tcg" (empty means auto).
func ParseAccel(s string) (Accel, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return AccelAuto, nil
	case "kvm":
		return AccelKVM, nil
	case "tcg":
		return AccelTCG, nil
	}
	return AccelAuto, fmt.Errorf("unknown accel %q: use auto, kvm or tcg", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Accel) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Accel) UnmarshalText(b []byte) error {
	v, err := ParseAccel(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// AccelChoice is the accelerator picked for one guest and why.
type AccelChoice struct {
	Accel       Accel  // AccelKVM or AccelTCG, never AccelAuto
	Reason      string // one sentence a person can read, e.g. "TCG: /dev/kvm opens but the CPU has no vmx/svm"
	MultiThread bool   // TCG only: thread=multi
	TBSizeMiB   int    // TCG only: translation cache size; 0 leaves QEMU's default
}

// Firmware selects the guest firmware family.
type Firmware string

// Firmware kinds. FirmwareDefault is the arch's own (SeaBIOS, SLOF,
// OpenBIOS; for aarch64/arm virt it means UEFI when no kernel is given).
const (
	FirmwareDefault Firmware = ""
	FirmwareBIOS    Firmware = "bios"
	FirmwareUEFI    Firmware = "uefi"
)

// Display selects the graphical console.
type Display string

// Displays. A VNC display always comes with an absolute pointer device.
const (
	DisplayVNC  Display = "vnc"
	DisplayNone Display = "none"
)

// Input selects the pointer device for a graphical console.
type Input string

// Pointer devices. InputAuto is a USB tablet where the machine has USB and a
// virtio tablet or PS/2 otherwise.
const (
	InputAuto         Input = ""
	InputUSBTablet    Input = "usb-tablet"
	InputVirtioTablet Input = "virtio-tablet"
	InputPS2          Input = "ps2"
)

// Disk is one writable (or read-only) block device.
type Disk struct {
	Path     string // image file; may contain spaces and commas
	Format   string // "qcow2" (default) or "raw"
	Bus      string // "virtio", "ide", "sata", "scsi", "nvme"; "" = the arch default
	NodeName string // block node name, e.g. "hd0"; used by snapshot jobs
	ReadOnly bool
}

// CDROM is a removable optical drive; Path may be empty (an empty tray).
type CDROM struct {
	ID   string // drive id for blockdev-change-medium, e.g. "cd0"
	Path string
	Bus  string // "" = the arch default
}

// NetMode is how a NIC reaches the world.
type NetMode string

// NIC modes.
const (
	NetUser   NetMode = "user"   // QEMU user-mode NAT (slirp)
	NetNone   NetMode = "none"   // no NIC at all
	NetBridge NetMode = "bridge" // qemu-bridge-helper
	NetTap    NetMode = "tap"    // a pre-created tap interface
	NetSocket NetMode = "socket" // a lab network (QEMU stream/dgram netdev)
	// NetSandbox is internet without the host: a stream netdev to the
	// unix socket of passt (through vlab's filtering relay), both started
	// by the machine package.
	NetSandbox NetMode = "sandbox"
)

// Forward is one user-mode port forward from the host into the guest.
type Forward struct {
	Proto     string // "tcp" or "udp"
	HostAddr  string // default 127.0.0.1
	HostPort  int    // 0: the kernel picks a free port when QEMU binds it (see HMP info usernet)
	GuestPort int
}

// NIC is one network card.
type NIC struct {
	ID       string // netdev id, e.g. "net0"
	Mode     NetMode
	Model    string // "virtio-net-pci", "e1000", "rtl8139", ...; "" = the arch default
	MAC      string
	Forwards []Forward
	Restrict bool     // user mode: restrict=on (guest reaches nothing outside)
	Bridge   string   // bridge mode: bridge name
	Helper   string   // bridge mode: path of qemu-bridge-helper ("" = QEMU's default)
	Tap      string   // tap mode: interface name
	Socket   []string // socket mode: extra -netdev options (e.g. "dgram", "remote.type=inet", ...)
	Passt    string   // sandbox mode: the unix socket QEMU connects to (vlab's relay to passt)
}

// Paths are the files and sockets a running guest uses. The machine package
// decides where they live; the argv builder only puts them on the command line.
type Paths struct {
	QMP       []string // QMP monitor sockets (one QMP client per socket at a time)
	VNC       string   // VNC unix socket
	Serial    string   // serial console unix socket
	SerialLog string   // file the serial output is logged to
	Pidfile   string
	EFIVars   string // per-VM UEFI variable store (qcow2), when Firmware is UEFI
	GDB       string // gdb stub unix socket, when Config.GDB
	Agent     string // guest agent channel unix socket, when Config.Agent
}

// Config is everything Cmdline needs to know about one guest. It is derived
// from a machine.Spec; all paths are absolute.
type Config struct {
	Name         string
	Arch         Arch
	Machine      string   // "" = the arch default (q35, virt, pseries, mac99...)
	MachineOpts  []string // extra machine properties, e.g. "via=pmu"
	CPU          string   // "" = "host" with KVM, the arch default with TCG
	CPUs         int
	MemoryMiB    int
	Accel        AccelChoice
	Firmware     Firmware
	Disks        []Disk
	CDROMs       []CDROM
	Kernel       string
	Initrd       string
	Append       string
	DTB          string
	BootOrder    string // QEMU letters: c = disk, d = cdrom, n = network; "cd" = disk then cdrom; "" = the same
	NICs         []NIC
	Display      Display
	VGA          string // display device: "std", "cirrus", "virtio", "ramfb"...; "" = the arch default
	Input        Input
	Sound        string // "" = none; "sb16", "ac97", "hda", "screamer"...
	RTCLocalTime bool
	GDB          bool       // a gdb stub on the unix socket Paths.GDB (never TCP)
	StartPaused  bool       // -S
	Shares       []Share    // shared host folders (share.go)
	Agent        bool       // a virtio-serial channel for qemu-guest-agent on the unix socket Paths.Agent (agentdev.go)
	Instrument   Instrument // -d log items, log file, record/replay (trace.go, replay.go)
	Paths        Paths
}

// Host is what Probe found on this machine. Cmdline and ChooseAccel take it
// as a value so they stay pure: tests build one by hand.
type Host struct {
	Arch        Arch
	Binaries    map[Arch]Binary // only the qemu-system-* binaries that exist
	KVM         KVMStatus
	Firmware    FirmwareFiles
	MemTotalMiB int
	QemuImg     QemuImg // path of qemu-img, "" when missing; runs it (qemuimg.go)

	// partial: a query of some binary failed or timed out, so its lists
	// may be incomplete; such a probe is used once, never cached.
	partial bool
}

// Binary describes one qemu-system-* executable.
type Binary struct {
	Path     string
	Version  string   // "7.2.19"
	Accels   []string // from -accel help: "kvm", "tcg"
	Machines []string // from -machine help: "pc", "q35", "pc-q35-7.2", ...
	NICs     []string // from -device help, its network devices: "e1000", "sungem", ...
}

// KVMStatus records why KVM can or cannot be used on this host.
type KVMStatus struct {
	DevExists bool   // /dev/kvm exists
	DevRW     bool   // /dev/kvm opens read-write
	DevErr    string // why it did not open, when it did not
	CPUVirt   bool   // /proc/cpuinfo lists vmx or svm (x86 hosts); true on non-x86 hosts with /dev/kvm
}

// FirmwareFiles are the firmware images found on the host ("" = missing).
type FirmwareFiles struct {
	OVMFCode  string // x86_64 UEFI code
	OVMFVars  string // x86_64 UEFI vars template
	AAVMFCode string // aarch64 UEFI code
	AAVMFVars string // aarch64 UEFI vars template
	ArmCode   string // 32-bit arm UEFI code (edk2-arm-code.fd), optional
	ArmVars   string
	SLOF      string // ppc64 pseries firmware
	OpenBIOS  string // ppc mac99 firmware
	SeaBIOS   string // x86 BIOS
}
