package profiles

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
)

//go:embed data/*.toml
var dataFS embed.FS

// ErrUnknown is returned by Get for a profile name that does not exist.
var ErrUnknown = errors.New("unknown profile")

// Firmware names a profile may use. OpenBIOS (ppc mac99) and SLOF (ppc64
// pseries) are those machines' own firmware: they map to
// emulator.FirmwareDefault.
const (
	FirmwareBIOS     = "bios"
	FirmwareUEFI     = "uefi"
	FirmwareOpenBIOS = "openbios"
	FirmwareSLOF     = "slof"
)

// Families group profiles in listings.
var familyOrder = []string{"linux", "bsd", "windows", "dos", "macos", "other"}

// Profile is one OS preset: the virtual hardware that OS wants. A zero
// string field means "the arch's default".
type Profile struct {
	Name         string         `toml:"-" json:"name"` // the data file's name, e.g. "win98"
	Title        string         `toml:"title" json:"title"`
	Family       string         `toml:"family" json:"family"` // linux, bsd, windows, dos, macos, other
	Arch         emulator.Arch  `toml:"arch" json:"arch"`
	Machine      string         `toml:"machine" json:"machine"`
	MachineOpts  []string       `toml:"machine_opts" json:"machine_opts,omitempty"` // e.g. "via=pmu"
	CPU          string         `toml:"cpu" json:"cpu,omitempty"`
	CPUs         int            `toml:"cpus" json:"cpus"`
	MemoryMiB    int            `toml:"memory_mib" json:"memory_mib"`
	DiskMiB      int            `toml:"disk_mib" json:"disk_mib"`
	Firmware     string         `toml:"firmware" json:"firmware"` // bios, uefi, openbios, slof
	DiskBus      string         `toml:"disk_bus" json:"disk_bus"` // virtio, ide, sata, scsi, nvme
	NICModel     string         `toml:"nic_model" json:"nic_model"`
	VGA          string         `toml:"vga" json:"vga"`
	Input        emulator.Input `toml:"input" json:"input"` // usb-tablet, virtio-tablet, ps2
	Sound        string         `toml:"sound" json:"sound,omitempty"`
	RTCLocalTime bool           `toml:"rtc_localtime" json:"rtc_localtime"`
	BootOrder    string         `toml:"boot_order" json:"boot_order,omitempty"` // QEMU letters; "" = disk, then CD
	Accel        emulator.Accel `toml:"accel" json:"accel"`                     // auto unless the OS misbehaves under KVM
	Console      string         `toml:"console" json:"console,omitempty"`       // serial console for --append (ttyS0, ttyAMA0, hvc0)
	OSInfo       []string       `toml:"osinfo" json:"osinfo,omitempty"`         // osinfo-db short-id globs this profile serves
	Notes        []string       `toml:"notes" json:"notes,omitempty"`

	// Net is the NIC mode a new VM gets: "" (user) or "sandbox" (internet
	// but not the host: the default of old, untrusted systems).
	Net emulator.NetMode `toml:"net" json:"net,omitempty"`
}

// EmulatorFirmware maps the profile's firmware to the emulator's choice.
func (p Profile) EmulatorFirmware() emulator.Firmware {
	switch p.Firmware {
	case FirmwareBIOS:
		return emulator.FirmwareBIOS
	case FirmwareUEFI:
		return emulator.FirmwareUEFI
	}
	return emulator.FirmwareDefault
}

// DiskBytes is the suggested disk size in bytes.
func (p Profile) DiskBytes() int64 { return int64(p.DiskMiB) << 20 }

// MemoryBytes is the suggested memory size in bytes.
func (p Profile) MemoryBytes() int64 { return int64(p.MemoryMiB) << 20 }

// validArches lists which firmware each arch can boot.
var archFirmware = map[emulator.Arch][]string{
	emulator.ArchX86_64:  {FirmwareBIOS, FirmwareUEFI},
	emulator.ArchI386:    {FirmwareBIOS, FirmwareUEFI},
	emulator.ArchAArch64: {FirmwareUEFI},
	emulator.ArchARM:     {FirmwareUEFI},
	emulator.ArchPPC64:   {FirmwareSLOF},
	emulator.ArchPPC:     {FirmwareOpenBIOS},
}

// Validate checks one profile's data and joins every problem found.
func (p Profile) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("profile %q: "+format, append([]any{p.Name}, args...)...))
	}
	if p.Title == "" {
		add("title is missing")
	}
	if !contains(familyOrder, p.Family) {
		add("family %q unknown: use one of %s", p.Family, strings.Join(familyOrder, ", "))
	}
	if p.Arch == emulator.ArchUnknown {
		add("arch is missing")
	}
	if p.Machine == "" {
		add("machine is missing")
	}
	if p.CPUs < 1 || p.CPUs > 64 {
		add("cpus %d out of range 1-64", p.CPUs)
	}
	if p.MemoryMiB < 16 {
		add("memory_mib %d is below 16", p.MemoryMiB)
	}
	if p.DiskMiB < 1 {
		add("disk_mib %d is below 1", p.DiskMiB)
	}
	if fw, ok := archFirmware[p.Arch]; ok && !contains(fw, p.Firmware) {
		add("firmware %q does not boot %s: use one of %s", p.Firmware, p.Arch, strings.Join(fw, ", "))
	}
	switch p.DiskBus {
	case "virtio", "ide", "sata", "scsi", "nvme":
	default:
		add("disk_bus %q unknown: use virtio, ide, sata, scsi or nvme", p.DiskBus)
	}
	if p.NICModel == "" {
		add("nic_model is missing")
	}
	if p.Net != "" && p.Net != emulator.NetUser && p.Net != emulator.NetSandbox {
		add("net %q unknown: use user or sandbox", p.Net)
	}
	if p.VGA == "" {
		add("vga is missing")
	}
	switch p.Input {
	case emulator.InputUSBTablet, emulator.InputVirtioTablet, emulator.InputPS2:
	default:
		add("input %q unknown: use usb-tablet, virtio-tablet or ps2", p.Input)
	}
	if strings.Trim(p.BootOrder, "cdn") != "" {
		add("boot_order %q: use the letters c, d, n", p.BootOrder)
	}
	for _, g := range p.OSInfo {
		if _, err := path.Match(g, ""); err != nil {
			add("osinfo glob %q: %v", g, err)
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// load reads every embedded profile once.
var load = sync.OnceValues(func() ([]Profile, error) { return loadFS(dataFS, "data") })

// loadFS reads the profiles in dir of fsys (every *.toml but rules.toml).
func loadFS(fsys fs.FS, dir string) ([]Profile, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read profiles: %w", err)
	}
	var out []Profile
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".toml")
		if !ok || e.IsDir() || e.Name() == rulesFile {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("read profile %q: %w", name, err))
			continue
		}
		var p Profile
		md, err := toml.Decode(string(data), &p)
		if err != nil {
			errs = append(errs, fmt.Errorf("profile %q: %w", name, err))
			continue
		}
		if und := md.Undecoded(); len(und) > 0 {
			errs = append(errs, fmt.Errorf("profile %q: unknown key %q", name, und[0].String()))
			continue
		}
		p.Name = name
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sortProfiles(out)
	return out, nil
}

// sortProfiles orders by family (familyOrder), then by name.
func sortProfiles(ps []Profile) {
	rank := func(f string) int {
		for i, v := range familyOrder {
			if v == f {
				return i
			}
		}
		return len(familyOrder)
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ri, rj := rank(ps[i].Family), rank(ps[j].Family); ri != rj {
			return ri < rj
		}
		return ps[i].Name < ps[j].Name
	})
}

// all returns the embedded profiles. The data is part of the binary and a
// test checks it, so a failure here is a build defect: it panics like
// regexp.MustCompile.
func all() []Profile {
	ps, err := load()
	if err != nil {
		panic("vlab: embedded profile data is invalid: " + err.Error())
	}
	return ps
}

// List returns every profile, grouped by family and sorted by name. The
// slice is a copy the caller may keep.
func List() []Profile {
	ps := all()
	out := make([]Profile, len(ps))
	for i, p := range ps {
		out[i] = p.clone()
	}
	return out
}

// Names returns every profile name, in List order.
func Names() []string {
	ps := all()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// Get returns the profile called name.
func Get(name string) (Profile, error) {
	for _, p := range all() {
		if p.Name == name {
			return p.clone(), nil
		}
	}
	return Profile{}, fmt.Errorf("profile %q: %w: see `vlab profiles` for the list", name, ErrUnknown)
}

// clone copies the slices so callers cannot change the shared data.
func (p Profile) clone() Profile {
	p.MachineOpts = append([]string(nil), p.MachineOpts...)
	p.OSInfo = append([]string(nil), p.OSInfo...)
	p.Notes = append([]string(nil), p.Notes...)
	return p
}
