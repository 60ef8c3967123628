package machine

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"vlab/emulator"
	"vlab/internal/lazyre"
)

// SchemaVersion is the machine.toml schema this vlab writes. Older files are
// migrated on load; newer ones are refused with a message to upgrade vlab.
const SchemaVersion = 1

// Spec is one VM's definition, stored as machine.toml in its library folder.
// Every field is what a user chose (or a profile default); nothing here is
// runtime state.
type Spec struct {
	Schema  int    `toml:"schema"`
	Name    string `toml:"name"`
	Profile string `toml:"profile,omitempty"` // OS profile the defaults came from
	Notes   string `toml:"notes,omitempty"`
	// LinkedTo names the VM whose disks this VM's disks are overlays on (a
	// linked clone). That VM cannot be deleted while this one exists.
	LinkedTo string `toml:"linked_to,omitempty"`

	Arch        emulator.Arch     `toml:"arch"`
	Machine     string            `toml:"machine,omitempty"`      // "" = the arch default
	MachineOpts []string          `toml:"machine_opts,omitempty"` // e.g. "via=pmu"
	CPU         string            `toml:"cpu,omitempty"`          // "" = default for the accel
	CPUs        int               `toml:"cpus"`
	Memory      Size              `toml:"memory"`
	Accel       emulator.Accel    `toml:"accel"`
	Firmware    emulator.Firmware `toml:"firmware,omitempty"`
	Display     emulator.Display  `toml:"display"`
	Input       emulator.Input    `toml:"input,omitempty"`
	VGA         string            `toml:"vga,omitempty"`
	Sound       string            `toml:"sound,omitempty"`
	RTCLocal    bool              `toml:"rtc_localtime,omitempty"`
	GDB         bool              `toml:"gdb,omitempty"`     // gdb stub on the private unix socket Paths.GDB
	GDBPort     int               `toml:"gdb_port,omitzero"` // old files only: loading makes gdb_port = N gdb = true
	// Agent gives the guest a virtio-serial channel for qemu-guest-agent
	// (exec, cp, filesystem freeze for snapshots, shutdown). Linux profiles
	// and cloud images turn it on at create.
	Agent bool `toml:"agent,omitempty"`

	Boot   Boot       `toml:"boot"`
	Disks  []DiskSpec `toml:"disk"`
	NICs   []NICSpec  `toml:"nic"`
	Shares []Share    `toml:"share,omitempty"` // shared host folders (share.go)
}

// clone returns a copy of s that shares no slice with it (TestSpecClone
// fills every field to check that).
func (s *Spec) clone() *Spec {
	c := *s
	c.MachineOpts = slices.Clone(s.MachineOpts)
	c.Disks = slices.Clone(s.Disks)
	c.Shares = slices.Clone(s.Shares)
	c.NICs = slices.Clone(s.NICs)
	for i := range c.NICs {
		c.NICs[i].Forwards = slices.Clone(c.NICs[i].Forwards)
	}
	return &c
}

// Boot is the install or boot source.
type Boot struct {
	ISO    string `toml:"iso,omitempty"`    // installer or live ISO in the CD drive
	Kernel string `toml:"kernel,omitempty"` // direct kernel boot
	Initrd string `toml:"initrd,omitempty"`
	Append string `toml:"append,omitempty"`
	DTB    string `toml:"dtb,omitempty"`
	Order  string `toml:"order,omitempty"` // "cd" = CD first; "" = disk first, then CD
}

// DiskSpec is one disk image. File is relative to the VM folder unless absolute.
type DiskSpec struct {
	File   string `toml:"file"`
	Size   Size   `toml:"size"`
	Format string `toml:"format,omitempty"` // qcow2 (default) or raw
	Bus    string `toml:"bus,omitempty"`
	// ReadOnly attaches the image read-only (the cloud-init seed ISO). It is
	// never written, so disposable runs and snapshots leave it alone.
	ReadOnly bool `toml:"readonly,omitempty"`
}

// NICSpec is one network card.
type NICSpec struct {
	Mode     emulator.NetMode `toml:"mode"`
	Model    string           `toml:"model,omitempty"`
	MAC      string           `toml:"mac,omitempty"`
	Restrict bool             `toml:"restrict,omitempty"`
	Forwards []Forward        `toml:"forwards,omitempty"`
	Bridge   string           `toml:"bridge,omitempty"`
	Tap      string           `toml:"tap,omitempty"`
	Lab      string           `toml:"lab,omitempty"` // mode lab: the lab network's name (network.go)
}

// Forward is a user-mode port forward written as "tcp:8080:80" or
// "udp:127.0.0.1:5353:53" (proto:[hostaddr:]hostport:guestport). A host port
// "auto" (HostPort 0) is picked free at each start (see network.go).
type Forward struct {
	Proto     string
	HostAddr  string
	HostPort  int
	GuestPort int
}

// ParseForward parses proto:[hostaddr:]hostport:guestport.
func ParseForward(s string) (Forward, error) {
	bad := func(why string) (Forward, error) {
		return Forward{}, fmt.Errorf("forward %q %s: write tcp:HOSTPORT:GUESTPORT, e.g. tcp:2222:22", s, why)
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 && len(parts) != 4 {
		return bad("is malformed")
	}
	f := Forward{Proto: strings.ToLower(parts[0]), HostAddr: "127.0.0.1"}
	if f.Proto != "tcp" && f.Proto != "udp" {
		return bad("has protocol " + strconv.Quote(parts[0]) + " (use tcp or udp)")
	}
	if len(parts) == 4 {
		if net.ParseIP(parts[1]) == nil {
			return bad("has a host address that is not an IP")
		}
		f.HostAddr = parts[1]
		parts = append(parts[:1], parts[2:]...)
	}
	var err error
	if strings.EqualFold(parts[1], AutoPort) {
		f.HostPort = 0
	} else if f.HostPort, err = parsePort(parts[1]); err != nil {
		return bad("has a bad host port (use 1-65535 or auto)")
	}
	if f.GuestPort, err = parsePort(parts[2]); err != nil {
		return bad("has a bad guest port")
	}
	return f, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q out of range 1-65535", s)
	}
	return p, nil
}

// String formats the forward in the form ParseForward reads.
func (f Forward) String() string {
	host := AutoPort
	if f.HostPort != 0 {
		host = strconv.Itoa(f.HostPort)
	}
	return fmt.Sprintf("%s:%s:%s:%d", f.Proto, f.HostAddr, host, f.GuestPort)
}

// MarshalText implements encoding.TextMarshaler.
func (f Forward) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *Forward) UnmarshalText(b []byte) error {
	v, err := ParseForward(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// nameRE is the shape of every name vlab makes a file or folder of (VM
// names, snapshot tags, lab names): a letter or digit, then letters,
// digits, '.', '_' and '-'.
var nameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// MaxNameLen bounds VM names so every derived path and socket stays usable.
const MaxNameLen = 64

// ValidateName checks that name is an identifier usable as one folder name:
// letters, digits, '.', '_' and '-', starting with a letter or digit.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("vm name is empty: use letters, digits, '.', '_' or '-', e.g. debian-12")
	case len(name) > MaxNameLen:
		return fmt.Errorf("vm name is %d bytes long: use at most %d", len(name), MaxNameLen)
	case !nameRE().MatchString(name):
		return fmt.Errorf("vm name %q is invalid: use letters, digits, '.', '_' or '-' and start with a letter or digit, e.g. debian-12", printable(name))
	}
	return nil
}

// printable escapes control characters so an error about a name stays one line.
func printable(s string) string {
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// Limits on what a Spec may ask for.
const (
	MaxCPUs   = 256
	MinMemory = 16 * MiB
	MaxMemory = 4 * TiB
	MaxDisk   = 64 * TiB
)

// Validate checks every field and joins all problems into one error.
func (s *Spec) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := ValidateName(s.Name); err != nil {
		errs = append(errs, err)
	}
	if s.Schema > SchemaVersion {
		add("machine.toml schema %d is newer than this vlab understands (%d): upgrade vlab", s.Schema, SchemaVersion)
	}
	if s.Arch == emulator.ArchUnknown {
		add("arch is missing: set one of %s", strings.Join(emulator.ArchNames(), ", "))
	}
	if s.CPUs < 1 || s.CPUs > MaxCPUs {
		add("cpus %d out of range: use 1-%d", s.CPUs, MaxCPUs)
	}
	if s.Memory < MinMemory || s.Memory > MaxMemory {
		add("memory %s out of range: use %s to %s, e.g. 512M", s.Memory, MinMemory, MaxMemory)
	}
	switch s.Display {
	case emulator.DisplayVNC, emulator.DisplayNone:
	default:
		add("display %q unknown: use vnc or none", s.Display)
	}
	switch s.Firmware {
	case emulator.FirmwareDefault, emulator.FirmwareBIOS, emulator.FirmwareUEFI:
	default:
		add("firmware %q unknown: use bios or uefi", s.Firmware)
	}
	if s.GDBPort < 0 || s.GDBPort > 65535 {
		add("gdb port %d out of range: use 1-65535", s.GDBPort)
	}
	if s.Boot.Kernel == "" && (s.Boot.Initrd != "" || s.Boot.Append != "" || s.Boot.DTB != "") {
		add("initrd, append and dtb need a kernel: add --kernel PATH")
	}
	errs = append(errs, s.validateDisks()...)
	errs = append(errs, s.validateNICs()...)
	if err := checkShareList(s.Shares); err != nil { // share.go
		errs = append(errs, err)
	}
	errs = append(errs, s.validateValues()...) // validate.go
	return errors.Join(errs...)
}

// validateDisks checks the disk list: files named once, sizes, formats.
func (s *Spec) validateDisks() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	seen := map[string]bool{}
	for i, d := range s.Disks {
		if d.File == "" {
			add("disk %d has no file", i)
		}
		if seen[d.File] {
			add("disk %d repeats file %q", i, d.File)
		}
		seen[d.File] = true
		if d.Size <= 0 || d.Size > MaxDisk {
			add("disk %d size %s out of range: use up to %s, e.g. 20G", i, d.Size, MaxDisk)
		}
		if d.Format != "" && d.Format != "qcow2" && d.Format != "raw" {
			add("disk %d format %q unknown: use qcow2 or raw", i, d.Format)
		}
	}
	return errs
}

// validateNICs checks the NICs: modes, MACs, forwards (each host port
// once) and the bridge or tap a mode needs.
func (s *Spec) validateNICs() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	hostPorts := map[string]bool{}
	for i, n := range s.NICs {
		switch n.Mode {
		case emulator.NetUser, emulator.NetBridge, emulator.NetTap, emulator.NetSocket, emulator.NetSandbox:
		case NetLab:
			if err := ValidateLabName(n.Lab); err != nil {
				add("nic %d: %v", i, err)
			}
		default:
			add("nic %d mode %q unknown: use user, sandbox, bridge, tap or lab", i, n.Mode)
		}
		if n.MAC != "" {
			if _, err := net.ParseMAC(n.MAC); err != nil {
				add("nic %d mac %q invalid: use the form 52:54:00:12:34:56", i, n.MAC)
			}
		}
		if len(n.Forwards) > 0 && !hasForwards(n.Mode) {
			add("nic %d has forwards but mode %s: forwards need mode user or sandbox", i, n.Mode)
		}
		for _, f := range n.Forwards {
			k := fmt.Sprintf("%s/%s/%d", f.Proto, f.HostAddr, f.HostPort)
			if f.HostPort == 0 {
				// Auto ports are told apart by their guest port.
				k = fmt.Sprintf("%s/%s/auto/%d", f.Proto, f.HostAddr, f.GuestPort)
			}
			if hostPorts[k] && f.HostPort == 0 {
				add("forward %s repeats an auto forward to guest port %d", f, f.GuestPort)
			} else if hostPorts[k] {
				add("forward %s repeats host port %d", f, f.HostPort)
			}
			hostPorts[k] = true
		}
		if n.Mode == emulator.NetBridge && n.Bridge == "" {
			add("nic %d is bridged but names no bridge: add bridge = \"br0\"", i)
		}
		if n.Mode == emulator.NetTap && n.Tap == "" {
			add("nic %d is tap but names no interface: add tap = \"tap0\"", i)
		}
	}
	return errs
}

// NewSpec returns a Spec with sensible defaults for arch: 1 CPU, 1G memory,
// VNC display, one user-mode NIC.
func NewSpec(name string, arch emulator.Arch) *Spec {
	return &Spec{
		Schema:  SchemaVersion,
		Name:    name,
		Arch:    arch,
		Machine: emulator.DefaultMachine(arch),
		CPUs:    1,
		Memory:  GiB,
		Display: emulator.DisplayVNC,
		NICs:    []NICSpec{{Mode: emulator.NetUser}},
	}
}
