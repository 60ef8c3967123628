package portable

import (
	"encoding/xml"
	"fmt"
	"strings"

	"vlab/emulator"
	"vlab/machine"
)

// libvirtFiles are the absolute paths an exported domain refers to: copies
// in the export folder, except the CD image, which stays where it is.
type libvirtFiles struct {
	Disks     []string // per Config.Disks: the qcow2 copy
	Kernel    string
	Initrd    string
	DTB       string
	NVRAM     string // raw copy of the UEFI variable store
	SerialLog string // file the serial console is logged to
}

// libvirtArch is libvirt's name of each guest arch (<os><type arch>).
var libvirtArch = map[emulator.Arch]string{
	emulator.ArchX86_64:  "x86_64",
	emulator.ArchI386:    "i686",
	emulator.ArchAArch64: "aarch64",
	emulator.ArchARM:     "armv7l",
	emulator.ArchPPC64:   "ppc64le",
	emulator.ArchPPC:     "ppc",
}

// libvirtVideo maps vlab's display adapters to <video><model type>.
var libvirtVideo = map[string]string{
	"std": "vga", "cirrus": "cirrus", "virtio": "virtio", "qxl": "qxl", "ramfb": "ramfb", "bochs": "bochs", "vmware": "vmvga",
}

// libvirtSound maps vlab's sound cards to <sound model>.
var libvirtSound = map[string]string{
	"sb16": "sb16", "ac97": "ac97", "es1370": "es1370", "hda": "ich6", "ich9": "ich9", "pcspk": "pcspk",
}

// libvirtUSB maps the board's USB host controller to <controller model>.
var libvirtUSB = map[string]string{
	"qemu-xhci": "qemu-xhci", "piix3-usb-uhci": "piix3-uhci", "pci-ohci": "pci-ohci",
}

// libvirtDomain describes the guest that cfg (resolved as r) runs as a
// libvirt domain using files. It returns what the domain cannot express,
// each as a short phrase.
func libvirtDomain(spec *machine.Spec, cfg emulator.Config, r emulator.Resolved, files libvirtFiles) (*Domain, []string) {
	b := &domainBuild{spec: spec, cfg: cfg, r: r, files: files, d: &Domain{
		Type:       "qemu",
		Name:       cfg.Name,
		Memory:     DomainMemory{Unit: "MiB", Value: cfg.MemoryMiB},
		VCPU:       cfg.CPUs,
		Clock:      DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
	}}
	b.machine()
	b.storage()
	b.network()
	b.console()
	b.display()
	return b.d, b.notes
}

// domainBuild is one run of libvirtDomain: the domain so far and what it
// cannot carry.
type domainBuild struct {
	spec  *machine.Spec
	cfg   emulator.Config
	r     emulator.Resolved
	files libvirtFiles
	d     *Domain
	notes []string
}

func (b *domainBuild) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// machine fills the domain's header: accelerator, clock, machine type,
// firmware, direct kernel boot, boot order, features and CPU.
func (b *domainBuild) machine() {
	d, cfg, r := b.d, b.cfg, b.r
	if b.spec.Notes != "" {
		d.Title = strings.SplitN(b.spec.Notes, "\n", 2)[0]
	}
	if r.Accel.Accel == emulator.AccelKVM {
		d.Type = "kvm"
	}
	if cfg.RTCLocalTime {
		d.Clock.Offset = "localtime"
	}
	d.OS.Type = DomainOSType{Arch: libvirtArch[cfg.Arch], Machine: r.Machine, Value: "hvm"}
	if len(cfg.MachineOpts) > 0 {
		b.note("machine options %s", strings.Join(cfg.MachineOpts, ","))
	}
	if r.UEFI {
		d.OS.Loader = &DomainLoader{ReadOnly: "yes", Type: "pflash", Path: r.UEFICode}
		d.OS.NVRAM = b.files.NVRAM
	}
	d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline, d.OS.DTB = b.files.Kernel, b.files.Initrd, cfg.Append, b.files.DTB
	order := cfg.BootOrder
	if order == "" {
		order = "cd"
	}
	for _, c := range order {
		if dev, ok := libvirtBootDev[c]; ok {
			d.OS.Boot = append(d.OS.Boot, DomainBoot{Dev: dev})
		}
	}
	switch cfg.Arch {
	case emulator.ArchX86_64, emulator.ArchI386:
		d.Features = &DomainFeature{ACPI: &struct{}{}, APIC: &struct{}{}}
	case emulator.ArchAArch64, emulator.ArchARM:
		if r.UEFI { // libvirt allows ACPI on Arm only with UEFI, as QEMU's virt turns it on
			d.Features = &DomainFeature{ACPI: &struct{}{}}
		}
	}
	if r.Accel.Accel == emulator.AccelTCG && r.Accel.TBSizeMiB > 0 {
		if d.Features == nil {
			d.Features = &DomainFeature{}
		}
		d.Features.TCG = &DomainTCG{TBCache: DomainMemory{Unit: "MiB", Value: r.Accel.TBSizeMiB}}
	}
	var cpuNotes []string
	d.CPU, cpuNotes = libvirtCPU(cfg.Arch, r.CPU)
	b.notes = append(b.notes, cpuNotes...)
	if cfg.GDB {
		b.note("the gdb stub")
	}
}

// libvirtBootDev maps QEMU's boot order letters to <boot dev>.
var libvirtBootDev = map[rune]string{'c': "hd", 'd': "cdrom", 'n': "network", 'a': "fd"}

// storage adds the disks (the qcow2 copies) and CD drives on their buses.
func (b *domainBuild) storage() {
	dev, r := &b.d.Devices, b.r
	names := map[string]int{} // next index per target prefix
	scsi := false
	for i, disk := range b.cfg.Disks {
		bus := libvirtBus(r.DiskBuses[i], r.SATAIsIDE)
		if bus == "nvme" {
			b.note("disk %d on nvme (libvirt 9 has no nvme disk bus: attach it again as an nvme controller)", i+1)
			bus = "sata"
			if !r.SATAIsIDE {
				bus = "scsi"
			}
		}
		scsi = scsi || bus == "scsi"
		dd := DomainDisk{
			Type: "file", Device: "disk",
			Driver: DomainDiskDriver{Name: "qemu", Type: "qcow2"},
			Source: &DomainDiskSource{File: b.files.Disks[i]},
			Target: DomainDiskTarget{Dev: targetDev(bus, names, 0), Bus: bus},
		}
		if disk.ReadOnly {
			dd.ReadOnly = &struct{}{}
		}
		dev.Disks = append(dev.Disks, dd)
	}
	for i, cd := range b.cfg.CDROMs {
		bus := libvirtBus(r.CDBuses[i], r.SATAIsIDE)
		scsi = scsi || bus == "scsi"
		first := 0
		if bus == "ide" {
			first = 2 // the secondary master, where vlab puts a PATA CD
		}
		dd := DomainDisk{
			Type: "file", Device: "cdrom",
			Driver:   DomainDiskDriver{Name: "qemu", Type: "raw"},
			Target:   DomainDiskTarget{Dev: targetDev(bus, names, first), Bus: bus},
			ReadOnly: &struct{}{},
		}
		if cd.Path != "" {
			dd.Source = &DomainDiskSource{File: cd.Path}
		}
		dev.Disks = append(dev.Disks, dd)
	}
	if scsi {
		dev.Controllers = append(dev.Controllers, DomainController{Type: "scsi", Index: 0, Model: "virtio-scsi"})
	}
}

// network adds the NICs. A user NIC with forwards or restrict=on keeps
// vlab's own -netdev (passthrough): libvirt creates the device, pointed
// at that netdev instead of its own.
func (b *domainBuild) network() {
	d := b.d
	for i, n := range b.cfg.NICs {
		iface, ok := libvirtNIC(b.spec, i, n, b.r.NICModels[i], b.note)
		if !ok {
			continue
		}
		if passthrough(n) {
			w := b.r.NICWires[i]
			iface.Alias = &DomainAlias{Name: "ua-vlab-" + w.NetdevID}
			if d.Commandline == nil {
				d.Commandline, d.Override = &DomainCommandline{}, &DomainOverride{}
			}
			d.Commandline.Args = append(d.Commandline.Args, DomainArg{Value: "-netdev"}, DomainArg{Value: w.Netdev})
			d.Override.Devices = append(d.Override.Devices, DomainOverrideDevice{
				Alias:      iface.Alias.Name,
				Properties: []DomainProperty{{Name: "netdev", Type: "string", Value: w.NetdevID}},
			})
		}
		d.Devices.Interfaces = append(d.Devices.Interfaces, iface)
	}
}

// console adds the serial console (a pty logged to the export folder) and
// the input devices, with the USB controller a USB tablet needs.
func (b *domainBuild) console() {
	dev, r := &b.d.Devices, b.r
	if b.cfg.Paths.Serial != "" {
		dev.Serials = []DomainSerial{{Type: "pty", Log: &DomainLog{File: b.files.SerialLog, Append: "off"}, Target: &DomainSerialTarget{Port: 0}}}
		dev.Consoles = []DomainSerial{{Type: "pty", Target: &DomainSerialTarget{Type: "serial", Port: 0}}}
	}
	usb := ""
	switch r.Input {
	case emulator.InputUSBTablet:
		dev.Inputs = append(dev.Inputs, DomainInput{Type: "tablet", Bus: "usb"}, DomainInput{Type: "keyboard", Bus: "usb"})
		usb = libvirtUSB[r.USB]
		if usb == "" {
			b.note("usb controller %s", r.USB)
		}
	case emulator.InputVirtioTablet:
		dev.Inputs = append(dev.Inputs, DomainInput{Type: "tablet", Bus: "virtio"})
		if !r.PS2 {
			dev.Inputs = append(dev.Inputs, DomainInput{Type: "keyboard", Bus: "virtio"})
		}
	case emulator.InputPS2:
		if r.PS2 {
			dev.Inputs = append(dev.Inputs, DomainInput{Type: "mouse", Bus: "ps2"}, DomainInput{Type: "keyboard", Bus: "ps2"})
		} else {
			b.note("input %s", r.Input)
		}
	}
	if usb == "" {
		usb = "none" // vlab adds USB only for USB input
	}
	dev.Controllers = append(dev.Controllers, DomainController{Type: "usb", Index: 0, Model: usb})
}

// display adds the VNC display on loopback, the display adapter, the sound
// card and no balloon.
func (b *domainBuild) display() {
	dev, cfg, r := &b.d.Devices, b.cfg, b.r
	if cfg.Display == emulator.DisplayVNC {
		dev.Graphics = []DomainGraphics{{Type: "vnc", Port: -1, AutoPort: "yes", Listen: "127.0.0.1",
			Listens: []DomainListen{{Type: "address", Address: "127.0.0.1"}}}}
	}
	if r.VGA != "" {
		if m, ok := libvirtVideo[r.VGA]; ok {
			dev.Videos = []DomainVideo{{Model: DomainModel{Type: m}}}
		} else {
			b.note("display adapter %s", r.VGA)
		}
	} else {
		dev.Videos = []DomainVideo{{Model: DomainModel{Type: "none"}}}
	}
	if cfg.Sound != "" && cfg.Sound != "none" {
		if m, ok := libvirtSound[cfg.Sound]; ok {
			dev.Sounds = []DomainSound{{Model: m}}
		} else {
			b.note("sound card %s", cfg.Sound)
		}
	}
	dev.MemBalloon = &DomainMemBalloon{Model: "none"}
}

// libvirtBus maps a vlab bus to libvirt's: on q35 the built-in "IDE" is
// AHCI, which libvirt calls sata.
func libvirtBus(bus string, sataIsIDE bool) string {
	if bus == "ide" && sataIsIDE {
		return "sata"
	}
	return bus
}

// targetDev names the next guest device on bus: vda, hda, sda... (sata and
// scsi share the sd names), starting at index first or later.
func targetDev(bus string, next map[string]int, first int) string {
	prefix := "sd"
	switch bus {
	case "virtio":
		prefix = "vd"
	case "ide":
		prefix = "hd"
	}
	i := max(next[prefix], first)
	next[prefix] = i + 1
	name := ""
	for i++; i > 0; i = (i - 1) / 26 {
		name = string(rune('a'+(i-1)%26)) + name
	}
	return prefix + name
}

// libvirtCPU maps a -cpu value: host → host-passthrough, max → maximum, a
// model name → custom; on x86, +feat/-feat and feat=on/off become features.
func libvirtCPU(arch emulator.Arch, cpu string) (*DomainCPU, []string) {
	parts := strings.Split(cpu, ",")
	var c *DomainCPU
	switch parts[0] {
	case "host":
		c = &DomainCPU{Mode: "host-passthrough"}
	case "max":
		c = &DomainCPU{Mode: "maximum", Match: "exact"}
	default:
		c = &DomainCPU{Mode: "custom", Match: "exact", Model: &DomainCPUModel{Fallback: "forbid", Name: parts[0]}}
	}
	x86 := arch == emulator.ArchX86_64 || arch == emulator.ArchI386
	var notes []string
	for _, p := range parts[1:] {
		k, v, hasV := strings.Cut(p, "=")
		policy := ""
		switch {
		case strings.HasPrefix(p, "+"):
			k, policy = p[1:], "require"
		case strings.HasPrefix(p, "-"):
			k, policy = p[1:], "disable"
		case hasV && (v == "on" || v == "true"):
			policy = "require"
		case hasV && (v == "off" || v == "false"):
			policy = "disable"
		}
		if policy == "" || !x86 {
			notes = append(notes, "cpu property "+p)
			continue
		}
		c.Features = append(c.Features, DomainCPUFeature{Policy: policy, Name: k})
	}
	return c, notes
}

// passthrough tells whether NIC n needs vlab's own -netdev under libvirt
// (Domain.Commandline): a user-mode NIC with port forwards or restrict=on.
// libvirt marks such a domain "custom-argv" tainted and runs it.
func passthrough(n emulator.NIC) bool {
	return (n.Mode == emulator.NetUser || n.Mode == "") && (len(n.Forwards) > 0 || n.Restrict)
}

// libvirtNIC maps NIC i: user → type user, bridge → type bridge, tap →
// type ethernet on that tap; a lab or sandbox NIC has no libvirt form.
func libvirtNIC(spec *machine.Spec, i int, n emulator.NIC, model string, note func(string, ...any)) (DomainInterface, bool) {
	mode := n.Mode
	if i < len(spec.NICs) && spec.NICs[i].Mode == machine.NetLab {
		note("nic %d on lab %s (a vlab lab network: attach it to a libvirt network instead)", i+1, spec.NICs[i].Lab)
		return DomainInterface{}, false
	}
	iface := DomainInterface{MAC: &DomainMAC{Address: strings.ToLower(n.MAC)}, Model: DomainModel{Type: libvirtNICModel(model)}}
	if n.MAC == "" {
		iface.MAC = nil
	}
	switch mode {
	case emulator.NetUser, "":
		iface.Type = "user"
	case emulator.NetBridge:
		iface.Type = "bridge"
		iface.Source = &DomainInterfaceSource{Bridge: n.Bridge}
	case emulator.NetTap:
		iface.Type = "ethernet"
		iface.Target = &DomainInterfaceTarget{Dev: n.Tap, Managed: "no"}
	case emulator.NetNone:
		return DomainInterface{}, false
	default:
		note("nic %d in %s mode", i+1, mode)
		return DomainInterface{}, false
	}
	return iface, true
}

// libvirtNICModel maps a QEMU NIC device to libvirt's model name.
func libvirtNICModel(m string) string {
	if m == "virtio-net-pci" || m == "virtio-net-device" {
		return "virtio"
	}
	return m
}

// marshalDomain renders d as an indented XML document.
func marshalDomain(d *Domain) ([]byte, error) {
	out, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("libvirt domain %q: %w", d.Name, err)
	}
	return append(out, '\n'), nil
}
