package portable

import (
	"fmt"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
	"vlab/internal/lazyre"
	"vlab/machine"
	"vlab/profiles"
)

// Mapped is a virtual system of a package as a vlab VM: its Spec, the
// package files its first len(Sources) disks are copied from, and what
// could not be mapped.
type Mapped struct {
	Spec    *machine.Spec
	Sources []machine.DiskSource
	Dropped []string
}

// hw is a virtual system's hardware as the mapping collects it.
type hw struct {
	buses    map[string]string // controller InstanceID → vlab bus
	disks    []machine.DiskSpec
	srcs     []machine.DiskSource
	blank    []machine.DiskSpec // disks without a file: created empty
	nics     []machine.NICSpec
	efi      bool
	cpus     int
	memory   machine.Size
	dropped  []string
	diskByID map[string]VirtualDisk
	fileByID map[string]FileRef
}

// Map turns virtual system sys of package p into a VM spec named name.
func Map(p *Package, sys VirtualSystem, name string) (*Mapped, error) {
	if len(sys.Hardware) == 0 {
		return nil, fmt.Errorf("system %q has no VirtualHardwareSection: nothing to import", printable(sys.Title()))
	}
	h := &hw{buses: map[string]string{}, diskByID: map[string]VirtualDisk{}, fileByID: map[string]FileRef{}}
	for _, d := range p.Env.Disks {
		h.diskByID[d.DiskID] = d
	}
	for _, f := range p.Env.References {
		h.fileByID[f.ID] = f
	}
	sect := sys.Hardware[0]
	for _, extra := range sys.Hardware[1:] {
		h.dropped = append(h.dropped, "another hardware section ("+extra.typeName()+")")
	}
	items := append(append(append([]Item(nil), sect.Items...), sect.StorageItems...), sect.EthItems...)
	for _, it := range items { // controllers first: disks name them as Parent
		h.controller(it)
	}
	for _, it := range items {
		if err := h.item(p, it); err != nil {
			return nil, fmt.Errorf("system %q: %w", printable(sys.Title()), err)
		}
	}
	for _, c := range append(append([]Config(nil), sect.Config...), sect.ExtraConfig...) {
		if strings.EqualFold(c.Key, "firmware") && strings.EqualFold(c.Value, "efi") {
			h.efi = true
		}
	}
	if vb := sys.VBox; vb != nil {
		if strings.HasPrefix(strings.ToUpper(vb.Hardware.Firmware.Type), "EFI") {
			h.efi = true
		}
		h.vboxNICs(vb.Hardware.Adapters)
	}
	for _, o := range sys.Other {
		h.dropped = append(h.dropped, o.XMLName.Local)
	}
	return h.spec(sys, name)
}

// typeName names a hardware section by its VirtualSystemType.
func (s HardwareSect) typeName() string {
	if s.System != nil && s.System.Type != "" {
		return s.System.Type
	}
	return "untyped"
}

// controller records the vlab bus of a storage controller item.
func (h *hw) controller(it Item) {
	sub := strings.ToLower(it.ResourceSubType)
	bus := ""
	switch {
	case strings.Contains(sub, "nvme"):
		bus = "nvme"
	case it.ResourceType == rtIDE:
		bus = "ide"
	case it.ResourceType == rtSCSI:
		bus = "scsi" // lsilogic, lsilogicsas, buslogic, VirtualSCSI (pvscsi), virtio-scsi
	case it.ResourceType == rtSATA:
		bus = "sata" // AHCI, vmware.sata.ahci
	}
	if bus != "" {
		h.buses[it.InstanceID] = bus
	}
}

// item maps one resource allocation.
func (h *hw) item(p *Package, it Item) error {
	what := it.ElementName
	if what == "" {
		what = fmt.Sprintf("resource type %d", it.ResourceType)
	}
	switch it.ResourceType {
	case rtCPU:
		h.cpus = int(it.VirtualQuantity)
	case rtMemory:
		unit, err := ParseUnits(it.Units, 1<<20)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		h.memory = machine.Size(it.VirtualQuantity * unit)
	case rtIDE, rtSCSI, rtSATA:
	case rtDisk:
		return h.disk(p, it)
	case rtNIC:
		h.nics = append(h.nics, machine.NICSpec{Mode: emulator.NetUser, Model: nicModel(it.ResourceSubType)})
		if nicModel(it.ResourceSubType) == "" && it.ResourceSubType != "" {
			h.dropped = append(h.dropped, "NIC type "+printable(it.ResourceSubType)+" (the profile's NIC instead)")
		}
	case rtCDDrive, rtDVDDrive:
		if len(it.HostResource) > 0 && it.HostResource[0] != "" {
			h.dropped = append(h.dropped, "CD image "+printable(it.HostResource[0]))
		}
	default:
		if _, ctl := h.buses[it.InstanceID]; !ctl {
			h.dropped = append(h.dropped, printable(what))
		}
	}
	return nil
}

// hostDiskRE matches a disk HostResource: ovf:/disk/ID or /disk/ID.
var hostDiskRE = lazyre.New(`^(?:ovf:)?/disk/(.+)$`)

// disk maps a disk item to a disk of the spec and its source file.
func (h *hw) disk(p *Package, it Item) error {
	if len(it.HostResource) == 0 {
		return fmt.Errorf("disk %q names no HostResource", printable(it.ElementName))
	}
	m := hostDiskRE().FindStringSubmatch(it.HostResource[0])
	if m == nil {
		return fmt.Errorf("disk %q: HostResource %q is not ovf:/disk/ID", printable(it.ElementName), printable(it.HostResource[0]))
	}
	vd, ok := h.diskByID[m[1]]
	if !ok {
		return fmt.Errorf("disk %q: DiskSection has no disk %q", printable(it.ElementName), printable(m[1]))
	}
	d := machine.DiskSpec{Bus: h.buses[it.Parent], Format: "qcow2"}
	if vd.FileRef == "" {
		unit, err := ParseUnits(vd.CapacityUnits, 1)
		if err != nil {
			return fmt.Errorf("disk %q: %w", printable(vd.DiskID), err)
		}
		var capacity int64
		if _, err := fmt.Sscan(vd.Capacity, &capacity); err != nil || capacity <= 0 {
			return fmt.Errorf("disk %q: capacity %q is not a number", printable(vd.DiskID), printable(vd.Capacity))
		}
		d.Size = machine.Size(capacity * unit)
		h.blank = append(h.blank, d)
		return nil
	}
	f, ok := h.fileByID[vd.FileRef]
	if !ok {
		return fmt.Errorf("disk %q: References has no file %q", printable(vd.DiskID), printable(vd.FileRef))
	}
	mem := p.members[f.Href]
	// QEMU's raw layer wants a size in whole sectors; a tar member's
	// data is padded with zeros to whole 512-byte blocks, all its own.
	src := machine.DiskSource{Path: mem.path, Offset: mem.offset, Length: (mem.size + 511) &^ 511, Format: diskFormat(vd.Format)}
	if !p.OVA {
		src.Offset, src.Length = 0, 0
	}
	h.disks = append(h.disks, d)
	h.srcs = append(h.srcs, src)
	return nil
}

// diskFormat maps a DiskSection format URI to a qemu-img format ("" =
// detect from the image's header).
func diskFormat(uri string) string {
	u := strings.ToLower(uri)
	switch {
	case strings.Contains(u, "vmdk"):
		return "vmdk"
	case strings.Contains(u, "vdi"):
		return "vdi"
	case strings.Contains(u, "vhdx"):
		return "vhdx"
	case strings.Contains(u, "vhd"):
		return "vpc"
	case strings.Contains(u, "qcow"):
		return "qcow2"
	}
	return ""
}

// nicModel maps a NIC ResourceSubType (VMware's names and VirtualBox's
// chip names) to the nearest QEMU device ("" = unknown).
func nicModel(sub string) string {
	switch strings.ToLower(strings.TrimSpace(sub)) {
	case "e1000", "82540em", "82543gc", "82545em":
		return "e1000"
	case "e1000e":
		return "e1000e"
	case "pcnet32", "pcnet", "am79c970a", "am79c973", "am79c960", "vlance":
		return "pcnet"
	case "vmxnet", "vmxnet2", "vmxnet3":
		return "vmxnet3"
	case "virtio", "virtio-net", "virtio-net-pci":
		return "virtio-net-pci"
	case "rtl8139":
		return "rtl8139"
	}
	return ""
}

// vboxNICs applies VirtualBox's adapter list (MACs and chip types, in slot
// order of the enabled adapters) to the NICs.
func (h *hw) vboxNICs(ads []VBoxAdapter) {
	ads = slices.DeleteFunc(slices.Clone(ads), func(a VBoxAdapter) bool { return !a.Enabled })
	slices.SortFunc(ads, func(a, b VBoxAdapter) int { return a.Slot - b.Slot })
	for i := range min(len(ads), len(h.nics)) {
		if m := nicModel(ads[i].Type); m != "" {
			h.nics[i].Model = m
		}
		if mac := vboxMAC(ads[i].MAC); mac != "" {
			h.nics[i].MAC = mac
		}
	}
}

// vboxMAC formats VirtualBox's 12 hex digits as aa:bb:cc:dd:ee:ff.
func vboxMAC(s string) string {
	if len(s) != 12 || strings.Trim(strings.ToLower(s), "0123456789abcdef") != "" {
		return ""
	}
	var parts []string
	for i := 0; i < 12; i += 2 {
		parts = append(parts, strings.ToLower(s[i:i+2]))
	}
	return strings.Join(parts, ":")
}

// spec builds the VM spec: OS → profile, then the package's hardware, then
// (for vlab's own packages) the vlab section, which says exactly.
func (h *hw) spec(sys VirtualSystem, name string) (*Mapped, error) {
	prof := profileFor(sys.OS, h.efi)
	arch := emulator.ArchX86_64
	if p, err := profiles.Get(prof); err == nil {
		arch = p.Arch
	}
	if v := sys.Vlab; v != nil && v.Arch != "" {
		if err := arch.UnmarshalText([]byte(v.Arch)); err != nil {
			return nil, fmt.Errorf("vlab section: %w", err)
		}
	}
	spec := machine.NewSpec(name, arch)
	spec.Machine, spec.NICs = "", h.nics
	spec.CPUs, spec.Memory = h.cpus, h.memory
	spec.Disks = append(append([]machine.DiskSpec(nil), h.disks...), h.blank...)
	for i := range spec.Disks {
		spec.Disks[i].File = fmt.Sprintf("disk%d.qcow2", i)
	}
	if h.efi {
		spec.Firmware = emulator.FirmwareUEFI
	}
	if v := sys.Vlab; v != nil {
		if err := applyVlab(spec, v); err != nil {
			return nil, err
		}
		prof = v.Profile
	}
	if p, err := profiles.Get(prof); err == nil {
		if len(spec.NICs) > 0 && p.Net != "" && sys.Vlab == nil {
			for i := range spec.NICs {
				spec.NICs[i].Mode = p.Net
			}
		}
		machine.ApplyProfile(spec, p)
	}
	if spec.Machine == "" {
		spec.Machine = emulator.DefaultMachine(spec.Arch)
	}
	if spec.CPUs == 0 {
		spec.CPUs = 1
	}
	if spec.Memory == 0 {
		spec.Memory = machine.GiB
	}
	return &Mapped{Spec: spec, Sources: h.srcs, Dropped: h.dropped}, nil
}

// applyVlab applies the vlab section of vlab's own export: the VM's
// definition as it was, except its disk files and sizes (from the package)
// and anything naming a host file (ISO, kernel, initrd, dtb, shared
// folders), which is never taken from a package.
func applyVlab(spec *machine.Spec, v *VlabSection) error {
	var src machine.Spec
	if _, err := toml.Decode(v.Spec, &src); err != nil {
		return fmt.Errorf("vlab section is not a vlab definition (%s)", oneLine(err.Error()))
	}
	disks, name := spec.Disks, spec.Name
	*spec = src
	spec.Name, spec.Schema, spec.LinkedTo = name, machine.SchemaVersion, ""
	spec.Boot = machine.Boot{Order: src.Boot.Order}
	spec.GDBPort = 0
	spec.Shares = nil // host folders of the machine it came from
	for i := range disks {
		if i < len(src.Disks) {
			disks[i].Bus, disks[i].ReadOnly = src.Disks[i].Bus, src.Disks[i].ReadOnly
		}
	}
	spec.Disks = disks
	return nil
}
