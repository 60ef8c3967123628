package ovafixture

import (
	"fmt"
	"strings"
)

// VMware returns vm's descriptor as VMware's ovftool writes an OVF 1.0
// package: DiskSection capacities in "byte * 2^30" units, an LSI Logic SCSI
// controller holding the disks, an IDE controller with an empty CD drive,
// NICs with their ResourceSubType (PCNet32, E1000, VmxNet3), vmw:osType,
// and the firmware as a vmw:Config key.
func VMware(vm *VM) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>`)
	p(`<Envelope vmw:buildId="build-19063461" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`)
	p(`  <References>`)
	for i, f := range vm.DiskFiles {
		p(`    <File ovf:href="%s" ovf:id="file%d"/>`, f, i+1)
	}
	p(`  </References>`)
	p(`  <DiskSection>`)
	p(`    <Info>Virtual disk information</Info>`)
	for i, d := range vm.Disks {
		p(`    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk%d" ovf:fileRef="file%d" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="65536"/>`, d.Size>>20, i+1, i+1)
	}
	p(`  </DiskSection>`)
	p(`  <NetworkSection>`)
	p(`    <Info>The list of logical networks</Info>`)
	p(`    <Network ovf:name="VM Network">`)
	p(`      <Description>The VM Network network</Description>`)
	p(`    </Network>`)
	p(`  </NetworkSection>`)
	p(`  <VirtualSystem ovf:id="%s">`, vm.Name)
	p(`    <Info>A virtual machine</Info>`)
	p(`    <Name>%s</Name>`, vm.Name)
	p(`    <OperatingSystemSection ovf:id="%d" vmw:osType="%s">`, vm.OSID, vm.OSType)
	p(`      <Info>The kind of installed guest operating system</Info>`)
	p(`    </OperatingSystemSection>`)
	p(`    <VirtualHardwareSection>`)
	p(`      <Info>Virtual hardware requirements</Info>`)
	p(`      <System>`)
	p(`        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>`)
	p(`        <vssd:InstanceID>0</vssd:InstanceID>`)
	p(`        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>`, vm.Name)
	p(`        <vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType>`)
	p(`      </System>`)
	item(p, "", "hertz * 10^6", fmt.Sprintf("%d virtual CPU(s)", vm.CPUs), "1", "", "", "3", fmt.Sprint(vm.CPUs), "Number of Virtual CPUs")
	item(p, "", vm.Units, vm.Memory+" of memory", "2", "", "", "4", vm.Memory, "Memory Size")
	item(p, "", "", "SCSI Controller 0", "3", "", "lsilogic", "6", "", "SCSI Controller")
	item(p, "", "", "IDE 1", "4", "", "", "5", "", "IDE Controller")
	p(`      <Item ovf:required="false">`)
	p(`        <rasd:AddressOnParent>0</rasd:AddressOnParent>`)
	p(`        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>`)
	p(`        <rasd:ElementName>CD-ROM 1</rasd:ElementName>`)
	p(`        <rasd:InstanceID>5</rasd:InstanceID>`)
	p(`        <rasd:Parent>4</rasd:Parent>`)
	p(`        <rasd:ResourceSubType>vmware.cdrom.atapi</rasd:ResourceSubType>`)
	p(`        <rasd:ResourceType>15</rasd:ResourceType>`)
	p(`      </Item>`)
	for i := range vm.Disks {
		p(`      <Item>`)
		p(`        <rasd:AddressOnParent>%d</rasd:AddressOnParent>`, i)
		p(`        <rasd:ElementName>Hard Disk %d</rasd:ElementName>`, i+1)
		p(`        <rasd:HostResource>ovf:/disk/vmdisk%d</rasd:HostResource>`, i+1)
		p(`        <rasd:InstanceID>%d</rasd:InstanceID>`, 10+i)
		p(`        <rasd:Parent>3</rasd:Parent>`)
		p(`        <rasd:ResourceType>17</rasd:ResourceType>`)
		p(`      </Item>`)
	}
	for i, sub := range vm.NICs {
		p(`      <Item>`)
		p(`        <rasd:AddressOnParent>%d</rasd:AddressOnParent>`, 7+i)
		p(`        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>`)
		p(`        <rasd:Connection>VM Network</rasd:Connection>`)
		p(`        <rasd:Description>%s ethernet adapter on &quot;VM Network&quot;</rasd:Description>`, sub)
		p(`        <rasd:ElementName>Network adapter %d</rasd:ElementName>`, i+1)
		p(`        <rasd:InstanceID>%d</rasd:InstanceID>`, 20+i)
		p(`        <rasd:ResourceSubType>%s</rasd:ResourceSubType>`, sub)
		p(`        <rasd:ResourceType>10</rasd:ResourceType>`)
		p(`        <vmw:Config ovf:required="false" vmw:key="wakeOnLanEnabled" vmw:value="false"/>`)
		p(`      </Item>`)
	}
	p(`      <Item ovf:required="false">`)
	p(`        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>`)
	p(`        <rasd:ElementName>Video card</rasd:ElementName>`)
	p(`        <rasd:InstanceID>30</rasd:InstanceID>`)
	p(`        <rasd:ResourceType>24</rasd:ResourceType>`)
	p(`      </Item>`)
	p(`      <vmw:Config ovf:required="false" vmw:key="cpuHotAddEnabled" vmw:value="false"/>`)
	if vm.EFI {
		p(`      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>`)
	}
	p(`      <vmw:ExtraConfig ovf:required="false" vmw:key="nvram" vmw:value="%s.nvram"/>`, vm.Name)
	p(`    </VirtualHardwareSection>`)
	p(`    <AnnotationSection ovf:required="false">`)
	p(`      <Info>A human-readable annotation</Info>`)
	p(`      <Annotation>Test appliance</Annotation>`)
	p(`    </AnnotationSection>`)
	p(`  </VirtualSystem>`)
	p(`</Envelope>`)
	return b.String()
}

// item writes one rasd Item; empty fields are left out.
func item(p func(string, ...any), addr, units, name, id, parent, sub, rt, qty, desc string) {
	p(`      <Item>`)
	if addr != "" {
		p(`        <rasd:Address>%s</rasd:Address>`, addr)
	}
	if units != "" {
		p(`        <rasd:AllocationUnits>%s</rasd:AllocationUnits>`, units)
	}
	if desc != "" {
		p(`        <rasd:Description>%s</rasd:Description>`, desc)
	}
	p(`        <rasd:ElementName>%s</rasd:ElementName>`, name)
	p(`        <rasd:InstanceID>%s</rasd:InstanceID>`, id)
	if parent != "" {
		p(`        <rasd:Parent>%s</rasd:Parent>`, parent)
	}
	if sub != "" {
		p(`        <rasd:ResourceSubType>%s</rasd:ResourceSubType>`, sub)
	}
	p(`        <rasd:ResourceType>%s</rasd:ResourceType>`, rt)
	if qty != "" {
		p(`        <rasd:VirtualQuantity>%s</rasd:VirtualQuantity>`, qty)
	}
	p(`      </Item>`)
}

// VBox returns vm's descriptor as VirtualBox exports OVF 1.0: capacities in
// bytes, a SATA (AHCI) controller holding the disks, an IDE controller with
// the CD drive, E1000-family NICs, the OS as vbox:OSType, USB and sound
// items, and the vbox:Machine section with the adapters' MACs and the
// firmware.
func VBox(vm *VM) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<?xml version="1.0"?>`)
	p(`<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">`)
	p(`  <References>`)
	for i, f := range vm.DiskFiles {
		p(`    <File ovf:id="file%d" ovf:href="%s"/>`, i+1, f)
	}
	p(`  </References>`)
	p(`  <DiskSection>`)
	p(`    <Info>List of the virtual disks used in the package</Info>`)
	for i, d := range vm.Disks {
		p(`    <Disk ovf:capacity="%d" ovf:diskId="vmdisk%d" ovf:fileRef="file%d" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="6a1d2a3b-0000-4000-8000-00000000000%d"/>`, d.Size, i+1, i+1, i)
	}
	p(`  </DiskSection>`)
	p(`  <NetworkSection>`)
	p(`    <Info>Logical networks used in the package</Info>`)
	p(`    <Network ovf:name="NAT">`)
	p(`      <Description>Logical network used by this appliance.</Description>`)
	p(`    </Network>`)
	p(`  </NetworkSection>`)
	p(`  <VirtualSystem ovf:id="%s">`, vm.Name)
	p(`    <Info>A virtual machine</Info>`)
	p(`    <OperatingSystemSection ovf:id="%d">`, vm.OSID)
	p(`      <Info>The kind of installed guest operating system</Info>`)
	p(`      <Description>%s</Description>`, vm.OSType)
	p(`      <vbox:OSType ovf:required="false">%s</vbox:OSType>`, vm.OSType)
	p(`    </OperatingSystemSection>`)
	p(`    <VirtualHardwareSection>`)
	p(`      <Info>Virtual hardware requirements for a virtual machine</Info>`)
	p(`      <System>`)
	p(`        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>`)
	p(`        <vssd:InstanceID>0</vssd:InstanceID>`)
	p(`        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>`, vm.Name)
	p(`        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>`)
	p(`      </System>`)
	item(p, "", "", fmt.Sprintf("%d virtual CPU", vm.CPUs), "1", "", "", "3", fmt.Sprint(vm.CPUs), "Number of virtual CPUs")
	item(p, "", vm.Units, vm.Memory+" of memory", "2", "", "", "4", vm.Memory, "Memory Size")
	item(p, "0", "", "ideController0", "3", "", "PIIX4", "5", "", "IDE Controller")
	item(p, "0", "", "sataController0", "5", "", "AHCI", "20", "", "SATA Controller")
	item(p, "0", "", "usb", "6", "", "", "23", "", "USB Controller")
	item(p, "3", "", "sound", "7", "", "ensoniq1371", "35", "", "Sound Card")
	for i, sub := range vm.NICs {
		p(`      <Item>`)
		p(`        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>`)
		p(`        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>`)
		p(`        <rasd:Connection>NAT</rasd:Connection>`)
		p(`        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>`)
		p(`        <rasd:InstanceID>%d</rasd:InstanceID>`, 8+i)
		p(`        <rasd:ResourceSubType>%s</rasd:ResourceSubType>`, sub)
		p(`        <rasd:ResourceType>10</rasd:ResourceType>`)
		p(`      </Item>`)
	}
	for i := range vm.Disks {
		p(`      <Item>`)
		p(`        <rasd:AddressOnParent>%d</rasd:AddressOnParent>`, i)
		p(`        <rasd:Caption>disk%d</rasd:Caption>`, i+1)
		p(`        <rasd:Description>Disk Image</rasd:Description>`)
		p(`        <rasd:ElementName>disk%d</rasd:ElementName>`, i+1)
		p(`        <rasd:HostResource>/disk/vmdisk%d</rasd:HostResource>`, i+1)
		p(`        <rasd:InstanceID>%d</rasd:InstanceID>`, 20+i)
		p(`        <rasd:Parent>5</rasd:Parent>`)
		p(`        <rasd:ResourceType>17</rasd:ResourceType>`)
		p(`      </Item>`)
	}
	p(`      <Item>`)
	p(`        <rasd:AddressOnParent>0</rasd:AddressOnParent>`)
	p(`        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>`)
	p(`        <rasd:Caption>cdrom1</rasd:Caption>`)
	p(`        <rasd:Description>CD-ROM Drive</rasd:Description>`)
	p(`        <rasd:ElementName>cdrom1</rasd:ElementName>`)
	p(`        <rasd:InstanceID>30</rasd:InstanceID>`)
	p(`        <rasd:Parent>3</rasd:Parent>`)
	p(`        <rasd:ResourceType>15</rasd:ResourceType>`)
	p(`      </Item>`)
	p(`    </VirtualHardwareSection>`)
	p(`    <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{0b3c5d9e-1f2a-4b6c-8d7e-9f0a1b2c3d4e}" name="%s" OSType="%s">`, vm.Name, vm.OSType)
	p(`      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>`)
	p(`      <Hardware>`)
	p(`        <CPU count="%d"/>`, vm.CPUs)
	if vm.EFI {
		p(`        <Firmware type="EFI"/>`)
	}
	p(`        <Network>`)
	for i, mac := range vm.VBoxMACs {
		p(`          <Adapter slot="%d" enabled="true" MACAddress="%s" type="82540EM">`, i, mac)
		p(`            <NAT/>`)
		p(`          </Adapter>`)
	}
	p(`        </Network>`)
	p(`      </Hardware>`)
	p(`    </vbox:Machine>`)
	p(`  </VirtualSystem>`)
	p(`</Envelope>`)
	return b.String()
}
