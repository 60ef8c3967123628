package portable

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
	"vlab/machine"
)

// ExportDisk is a disk as the descriptor names it.
type ExportDisk struct {
	File     string // the file name in the package
	Size     int64  // the file's size in bytes
	Capacity int64  // the virtual size in bytes
	Bus      string
}

// cimIDs maps vlab profiles to the CIM OS id an OVF descriptor gives
// (the reverse of cimOS); other profiles are "Other 64-bit" (102) or
// "Other" (1).
var cimIDs = map[string]int{
	"debian": 96, "ubuntu": 94, "fedora": 80, "archlinux": 101, "alpine": 101, "linux-bios": 101, "linux-uefi": 101,
	"freebsd": 78, "openbsd": 65, "win95": 16, "win98": 17, "win2000": 58, "winxp": 67, "win10": 102, "win11": 102,
	"msdos622": 14, "freedos": 14,
}

// nicSubTypes maps QEMU NIC models to the ResourceSubType other tools read.
var nicSubTypes = map[string]string{
	"e1000": "E1000", "e1000e": "E1000e", "pcnet": "PCNet32", "vmxnet3": "VmxNet3", "virtio-net-pci": "virtio",
}

// controllers maps vlab disk buses to a CIM controller: ResourceType and
// ResourceSubType. virtio has no CIM name: other tools see SCSI (the vlab
// section keeps virtio).
var controllers = map[string]struct {
	rt  int
	sub string
}{
	"ide": {rtIDE, "PIIX4"}, "scsi": {rtSCSI, "lsilogic"}, "virtio": {rtSCSI, "lsilogic"},
	"sata": {rtSATA, "AHCI"}, "nvme": {rtSATA, "vmware.nvme.controller"},
}

// Descriptor writes spec as an OVF 1.0 descriptor VMware and VirtualBox
// read, with disks, plus the vlab section that makes vlab's own import
// exact.
func Descriptor(spec *machine.Spec, disks []ExportDisk) ([]byte, error) {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>`)
	p(`<Envelope ovf:version="1.0" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vlab="urn:vlab:ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`)
	p(`  <References>`)
	for i, d := range disks {
		p(`    <File ovf:href="%s" ovf:id="file%d" ovf:size="%d"/>`, esc(d.File), i+1, d.Size)
	}
	p(`  </References>`)
	p(`  <DiskSection>`)
	p(`    <Info>Virtual disk information</Info>`)
	for i, d := range disks {
		p(`    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk%d" ovf:fileRef="file%d" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`, d.Capacity, i+1, i+1)
	}
	p(`  </DiskSection>`)
	p(`  <NetworkSection>`)
	p(`    <Info>The list of logical networks</Info>`)
	p(`    <Network ovf:name="NAT">`)
	p(`      <Description>The user-mode (NAT) network</Description>`)
	p(`    </Network>`)
	p(`  </NetworkSection>`)
	p(`  <VirtualSystem ovf:id="%s">`, esc(spec.Name))
	p(`    <Info>A virtual machine exported by vlab</Info>`)
	p(`    <Name>%s</Name>`, esc(spec.Name))
	osID, ok := cimIDs[spec.Profile]
	if !ok {
		osID = 1
	}
	p(`    <OperatingSystemSection ovf:id="%d">`, osID)
	p(`      <Info>The kind of installed guest operating system</Info>`)
	p(`      <Description>%s</Description>`, esc(orDefault(spec.Profile, "other")))
	p(`    </OperatingSystemSection>`)
	hardware(p, spec, disks)
	if err := vlabSection(p, spec); err != nil {
		return nil, err
	}
	p(`  </VirtualSystem>`)
	p(`</Envelope>`)
	return b.Bytes(), nil
}

// hardware writes the VirtualHardwareSection.
func hardware(p func(string, ...any), spec *machine.Spec, disks []ExportDisk) {
	p(`    <VirtualHardwareSection>`)
	p(`      <Info>Virtual hardware requirements</Info>`)
	p(`      <System>`)
	p(`        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>`)
	p(`        <vssd:InstanceID>0</vssd:InstanceID>`)
	p(`        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>`, esc(spec.Name))
	p(`        <vssd:VirtualSystemType>vmx-10 virtualbox-2.2</vssd:VirtualSystemType>`)
	p(`      </System>`)
	id := 1
	next := func() int { id++; return id - 1 }
	item(p, next(), rtCPU, "", fmt.Sprintf("%d virtual CPU(s)", spec.CPUs), "", "", "", fmt.Sprint(spec.CPUs))
	item(p, next(), rtMemory, "", fmt.Sprintf("%dMB of memory", int64(spec.Memory)>>20), "byte * 2^20", "", "", fmt.Sprint(int64(spec.Memory)>>20))
	ctl := map[string]int{}
	for _, d := range disks {
		bus := orDefault(d.Bus, "virtio")
		if _, done := ctl[bus]; done {
			continue
		}
		c := controllers[bus]
		ctl[bus] = next()
		item(p, ctl[bus], c.rt, c.sub, bus+" controller", "", "", "", "")
	}
	for i, d := range disks {
		item(p, next(), rtDisk, "", fmt.Sprintf("disk%d", i), "", fmt.Sprint(ctl[orDefault(d.Bus, "virtio")]), fmt.Sprintf("ovf:/disk/vmdisk%d", i+1), "")
	}
	ide, ok := ctl["ide"]
	if !ok {
		ide = next()
		item(p, ide, rtIDE, "PIIX4", "ide controller", "", "", "", "")
	}
	item(p, next(), rtCDDrive, "", "cdrom", "", fmt.Sprint(ide), "", "")
	for i, n := range spec.NICs {
		sub := nicSubTypes[n.Model]
		if sub == "" {
			sub = "E1000"
		}
		item(p, next(), rtNIC, sub, fmt.Sprintf("Network adapter %d", i+1), "", "", "", "")
	}
	if spec.Firmware == emulator.FirmwareUEFI {
		p(`      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>`)
	}
	p(`    </VirtualHardwareSection>`)
}

// item writes one rasd Item.
func item(p func(string, ...any), id, rt int, sub, name, units, parent, host, qty string) {
	p(`      <Item>`)
	if units != "" {
		p(`        <rasd:AllocationUnits>%s</rasd:AllocationUnits>`, units)
	}
	if rt == rtNIC {
		p(`        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>`)
		p(`        <rasd:Connection>NAT</rasd:Connection>`)
	}
	p(`        <rasd:ElementName>%s</rasd:ElementName>`, esc(name))
	if host != "" {
		p(`        <rasd:HostResource>%s</rasd:HostResource>`, host)
	}
	p(`        <rasd:InstanceID>%d</rasd:InstanceID>`, id)
	if parent != "" {
		p(`        <rasd:Parent>%s</rasd:Parent>`, parent)
	}
	if sub != "" {
		p(`        <rasd:ResourceSubType>%s</rasd:ResourceSubType>`, esc(sub))
	}
	p(`        <rasd:ResourceType>%d</rasd:ResourceType>`, rt)
	if qty != "" {
		p(`        <rasd:VirtualQuantity>%s</rasd:VirtualQuantity>`, qty)
	}
	p(`      </Item>`)
}

// vlabSection writes the vlab section: the definition without host paths.
func vlabSection(p func(string, ...any), spec *machine.Spec) error {
	c := *spec
	c.Boot = machine.Boot{Order: spec.Boot.Order}
	c.Disks = nil
	for _, d := range spec.Disks {
		if !d.ReadOnly {
			c.Disks = append(c.Disks, machine.DiskSpec{File: "-", Size: d.Size, Bus: d.Bus})
		}
	}
	var t bytes.Buffer
	if err := toml.NewEncoder(&t).Encode(c); err != nil {
		return fmt.Errorf("export %q: %w", spec.Name, err)
	}
	p(`    <vlab:VlabSection ovf:required="false">`)
	p(`      <Info>vlab's definition of this VM (arch, machine type, profile, network)</Info>`)
	p(`      <vlab:Arch>%s</vlab:Arch>`, esc(spec.Arch.String()))
	p(`      <vlab:Profile>%s</vlab:Profile>`, esc(spec.Profile))
	p(`      <vlab:Spec>%s</vlab:Spec>`, esc(t.String()))
	p(`    </vlab:VlabSection>`)
	return nil
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
