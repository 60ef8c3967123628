package portable

import "encoding/xml"

// The types below are the part of libvirt's domain XML (formatdomain.html,
// checked by `virt-xml-validate FILE domain`) that a vlab guest needs.

// Domain is a libvirt <domain>.
type Domain struct {
	XMLName    xml.Name       `xml:"domain"`
	Type       string         `xml:"type,attr"` // kvm or qemu (TCG)
	Name       string         `xml:"name"`
	Title      string         `xml:"title,omitempty"`
	Memory     DomainMemory   `xml:"memory"`
	VCPU       int            `xml:"vcpu"`
	OS         DomainOS       `xml:"os"`
	Features   *DomainFeature `xml:"features,omitempty"`
	CPU        *DomainCPU     `xml:"cpu,omitempty"`
	Clock      DomainClock    `xml:"clock"`
	OnPoweroff string         `xml:"on_poweroff"`
	OnReboot   string         `xml:"on_reboot"`
	OnCrash    string         `xml:"on_crash"`
	Devices    DomainDevices  `xml:"devices"`
	// Commandline and Override carry what libvirt 9 cannot say itself: a
	// user-mode NIC's port forwards and restrict=on (its <interface
	// type='user'> has neither; <portForward> needs the passt backend,
	// which libvirt 9.0 refuses). The NIC's -netdev goes on QEMU's command
	// line as vlab writes it, and its <interface> is pointed at it.
	Commandline *DomainCommandline `xml:"http://libvirt.org/schemas/domain/qemu/1.0 commandline,omitempty"`
	Override    *DomainOverride    `xml:"http://libvirt.org/schemas/domain/qemu/1.0 override,omitempty"`
}

// DomainCommandline is <qemu:commandline> (formatdomain.html, "QEMU
// command-line passthrough"): arguments added to QEMU's own.
type DomainCommandline struct {
	Args []DomainArg `xml:"http://libvirt.org/schemas/domain/qemu/1.0 arg"`
}

// DomainArg is one <qemu:arg value>.
type DomainArg struct {
	Value string `xml:"value,attr"`
}

// DomainOverride is <qemu:override> (libvirt 8.2+): properties of the
// devices libvirt creates, changed before QEMU gets them.
type DomainOverride struct {
	Devices []DomainOverrideDevice `xml:"http://libvirt.org/schemas/domain/qemu/1.0 device"`
}

// DomainOverrideDevice is one <qemu:device alias> and its frontend's
// properties.
type DomainOverrideDevice struct {
	Alias      string           `xml:"alias,attr"`
	Properties []DomainProperty `xml:"http://libvirt.org/schemas/domain/qemu/1.0 frontend>property"`
}

// DomainProperty is one <qemu:property name type value>.
type DomainProperty struct {
	Name  string `xml:"name,attr"`
	Type  string `xml:"type,attr"`
	Value string `xml:"value,attr"`
}

// DomainMemory is an amount with its unit.
type DomainMemory struct {
	Unit  string `xml:"unit,attr"`
	Value int    `xml:",chardata"`
}

// DomainOS is <os>: machine, firmware, direct kernel boot, boot order.
type DomainOS struct {
	Type    DomainOSType  `xml:"type"`
	Loader  *DomainLoader `xml:"loader,omitempty"`
	NVRAM   string        `xml:"nvram,omitempty"`
	Kernel  string        `xml:"kernel,omitempty"`
	Initrd  string        `xml:"initrd,omitempty"`
	Cmdline string        `xml:"cmdline,omitempty"`
	DTB     string        `xml:"dtb,omitempty"`
	Boot    []DomainBoot  `xml:"boot"`
}

// DomainOSType is <os><type arch machine>hvm</type>.
type DomainOSType struct {
	Arch    string `xml:"arch,attr"`
	Machine string `xml:"machine,attr"`
	Value   string `xml:",chardata"`
}

// DomainLoader is the UEFI code image in pflash.
type DomainLoader struct {
	ReadOnly string `xml:"readonly,attr"`
	Type     string `xml:"type,attr"`
	Path     string `xml:",chardata"`
}

// DomainBoot is one <boot dev>.
type DomainBoot struct {
	Dev string `xml:"dev,attr"`
}

// DomainFeature is <features>.
type DomainFeature struct {
	ACPI *struct{}  `xml:"acpi,omitempty"`
	APIC *struct{}  `xml:"apic,omitempty"`
	TCG  *DomainTCG `xml:"tcg,omitempty"`
}

// DomainTCG tunes TCG: the translation cache size (libvirt 8.0+).
type DomainTCG struct {
	TBCache DomainMemory `xml:"tb-cache"`
}

// DomainCPU is <cpu>: host-passthrough, maximum or a named model.
type DomainCPU struct {
	Mode     string             `xml:"mode,attr"`
	Match    string             `xml:"match,attr,omitempty"`
	Model    *DomainCPUModel    `xml:"model,omitempty"`
	Features []DomainCPUFeature `xml:"feature"`
}

// DomainCPUModel names a CPU model.
type DomainCPUModel struct {
	Fallback string `xml:"fallback,attr,omitempty"`
	Name     string `xml:",chardata"`
}

// DomainCPUFeature turns one CPU feature on (require) or off (disable).
type DomainCPUFeature struct {
	Policy string `xml:"policy,attr"`
	Name   string `xml:"name,attr"`
}

// DomainClock is <clock offset>.
type DomainClock struct {
	Offset string `xml:"offset,attr"`
}

// DomainDevices is <devices>.
type DomainDevices struct {
	Disks       []DomainDisk       `xml:"disk"`
	Controllers []DomainController `xml:"controller"`
	Interfaces  []DomainInterface  `xml:"interface"`
	Serials     []DomainSerial     `xml:"serial"`
	Consoles    []DomainSerial     `xml:"console"`
	Inputs      []DomainInput      `xml:"input"`
	Graphics    []DomainGraphics   `xml:"graphics"`
	Sounds      []DomainSound      `xml:"sound"`
	Videos      []DomainVideo      `xml:"video"`
	MemBalloon  *DomainMemBalloon  `xml:"memballoon,omitempty"`
}

// DomainDisk is a disk or CD-ROM drive.
type DomainDisk struct {
	Type     string            `xml:"type,attr"`
	Device   string            `xml:"device,attr"`
	Driver   DomainDiskDriver  `xml:"driver"`
	Source   *DomainDiskSource `xml:"source,omitempty"`
	Target   DomainDiskTarget  `xml:"target"`
	ReadOnly *struct{}         `xml:"readonly,omitempty"`
}

// DomainDiskDriver is the image format.
type DomainDiskDriver struct {
	Name string `xml:"name,attr"`
	Type string `xml:"type,attr"`
}

// DomainDiskSource is the image file (absolute).
type DomainDiskSource struct {
	File string `xml:"file,attr"`
}

// DomainDiskTarget is the guest-visible name and bus.
type DomainDiskTarget struct {
	Dev string `xml:"dev,attr"`
	Bus string `xml:"bus,attr"`
}

// DomainController is a <controller> (SCSI HBA, USB host controller).
type DomainController struct {
	Type  string `xml:"type,attr"`
	Index int    `xml:"index,attr"`
	Model string `xml:"model,attr,omitempty"`
}

// DomainInterface is a NIC.
type DomainInterface struct {
	Type   string                 `xml:"type,attr"`
	MAC    *DomainMAC             `xml:"mac,omitempty"`
	Source *DomainInterfaceSource `xml:"source,omitempty"`
	Target *DomainInterfaceTarget `xml:"target,omitempty"`
	Model  DomainModel            `xml:"model"`
	Alias  *DomainAlias           `xml:"alias,omitempty"`
}

// DomainAlias names a device; a name the user gives starts with "ua-".
type DomainAlias struct {
	Name string `xml:"name,attr"`
}

// DomainMAC is a NIC's MAC address.
type DomainMAC struct {
	Address string `xml:"address,attr"`
}

// DomainInterfaceSource names the bridge of a bridged NIC.
type DomainInterfaceSource struct {
	Bridge string `xml:"bridge,attr,omitempty"`
}

// DomainInterfaceTarget names an existing tap device.
type DomainInterfaceTarget struct {
	Dev     string `xml:"dev,attr"`
	Managed string `xml:"managed,attr,omitempty"`
}

// DomainModel is a device model by name.
type DomainModel struct {
	Type string `xml:"type,attr"`
}

// DomainSerial is a <serial> or <console>: a pty whose output is also
// logged to a file.
type DomainSerial struct {
	Type   string              `xml:"type,attr"`
	Log    *DomainLog          `xml:"log,omitempty"`
	Target *DomainSerialTarget `xml:"target,omitempty"`
}

// DomainLog copies a character device's output to a file.
type DomainLog struct {
	File   string `xml:"file,attr"`
	Append string `xml:"append,attr,omitempty"`
}

// DomainSerialTarget is the guest port.
type DomainSerialTarget struct {
	Type string `xml:"type,attr,omitempty"`
	Port int    `xml:"port,attr"`
}

// DomainInput is a tablet, keyboard or mouse.
type DomainInput struct {
	Type string `xml:"type,attr"`
	Bus  string `xml:"bus,attr"`
}

// DomainGraphics is the VNC server, on loopback only.
type DomainGraphics struct {
	Type     string         `xml:"type,attr"`
	Port     int            `xml:"port,attr"`
	AutoPort string         `xml:"autoport,attr"`
	Listen   string         `xml:"listen,attr"`
	Listens  []DomainListen `xml:"listen"`
}

// DomainListen is where the VNC server listens.
type DomainListen struct {
	Type    string `xml:"type,attr"`
	Address string `xml:"address,attr"`
}

// DomainSound is a sound card.
type DomainSound struct {
	Model string `xml:"model,attr"`
}

// DomainVideo is the display adapter.
type DomainVideo struct {
	Model DomainModel `xml:"model"`
}

// DomainMemBalloon is <memballoon model='none'/>: vlab adds no balloon.
type DomainMemBalloon struct {
	Model string `xml:"model,attr"`
}
