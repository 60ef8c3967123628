// Package portable moves VMs between vlab and other tools: it reads and
// writes OVF descriptors and OVA packages (as VMware and VirtualBox write
// them, DMTF DSP0243 1.x and 2.x) and describes a VM as a libvirt domain.
//
// Packages are data from elsewhere: an OVA's members are read by name only
// (no links, no paths out of the package), its manifest is verified before
// anything is created, and its disks are checked by machine.InspectSource
// and converted by the machine package, which builds the VM atomically.
package portable
