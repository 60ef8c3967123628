package emulator

import (
	"fmt"
	"strconv"
	"strings"
)

// Ids shared by the argv builder, QMP calls and tests. Block node names of
// disks come from Disk.NodeName (default "hd<i>"); CD-ROM device ids from
// CDROM.ID (default "cd<i>"); netdev ids from NIC.ID (default "net<i>").
const (
	// SerialChardevID is the chardev of the guest's first serial port.
	SerialChardevID = "serial0"
	// GDBChardevID is the chardev of the gdb stub's unix socket.
	GDBChardevID = "gdb0"
	// QMPChardevPrefix + index is the chardev of each QMP socket ("qmp0"...).
	QMPChardevPrefix = "qmp"
	// VNCDisplayID is the id of the VNC display (for QMP set_password,
	// query-vnc-servers and friends).
	VNCDisplayID = "default"
	// USBBusID is the id of the USB host controller vlab adds; its bus is
	// USBBusID + ".0".
	USBBusID = "usb"
	// SCSIControllerID is the id of the SCSI controller vlab adds for
	// scsi disks and CD-ROMs; its bus is SCSIControllerID + ".0".
	SCSIControllerID = "scsi0"
	// AHCIControllerID is the id of the AHCI controller vlab adds for sata
	// disks on boards without a built-in one.
	AHCIControllerID = "ahci0"
	// AudiodevID is the audio backend sound cards are wired to.
	AudiodevID = "snd0"
	// EFICodeNode and EFIVarsNode are the block node names of the UEFI code
	// (read-only raw) and variable store (qcow2) pflash images: snapshot jobs
	// must list EFIVarsNode among their devices.
	EFICodeNode = "efi-code"
	EFIVarsNode = "efi-vars"
	// fileNodeSuffix names the protocol (file) node under a format node.
	fileNodeSuffix = "-file"
	// mediumNodeSuffix names a CD-ROM's format node: "<cdrom id>-medium".
	mediumNodeSuffix = "-medium"
)

// QMPChardevID is the chardev id of the i-th QMP socket.
func QMPChardevID(i int) string { return QMPChardevPrefix + strconv.Itoa(i) }

// CDROMMediumNode is the block node name of the medium vlab inserts at start
// in the CD-ROM with device id id (media inserted later through QMP get
// names from QEMU).
func CDROMMediumNode(id string) string { return id + mediumNodeSuffix }

// opt is one QEMU option string under construction: a head ("virtio-blk-pci",
// "socket", "q35"...) followed by key=value properties.
type opt struct{ parts []string }

func newOpt(head string) *opt { return &opt{parts: []string{head}} }

// set adds key=value, escaping commas in value.
func (o *opt) set(key, value string) *opt {
	o.parts = append(o.parts, key+"="+optValue(value))
	return o
}

// setInt adds key=n.
func (o *opt) setInt(key string, n int) *opt { return o.set(key, strconv.Itoa(n)) }

// raw adds a property that is already in QEMU syntax (user-supplied options).
func (o *opt) raw(kv string) *opt {
	o.parts = append(o.parts, kv)
	return o
}

func (o *opt) String() string { return strings.Join(o.parts, ",") }

// blockNode is one -blockdev node.
type blockNode struct {
	name     string // node-name
	driver   string // file, raw, qcow2...
	filename string // driver=file only
	child    string // format drivers: the node-name of their file
	readOnly bool
}

func (b blockNode) args() []string {
	o := newOpt("driver="+b.driver).set("node-name", b.name)
	if b.filename != "" {
		o.set("filename", b.filename)
	}
	if b.child != "" {
		o.set("file", b.child)
	}
	if b.readOnly {
		o.raw("read-only=on")
	}
	return []string{"-blockdev", o.String()}
}

// imageNodes returns the protocol and format nodes of one image file; the
// format node is called name.
func imageNodes(name, path, format string, readOnly bool) []blockNode {
	file := name + fileNodeSuffix
	return []blockNode{
		{name: file, driver: "file", filename: path, readOnly: readOnly},
		{name: name, driver: format, child: file, readOnly: readOnly},
	}
}

// device is one -device.
type device struct {
	driver string
	props  [][2]string // in order; values are escaped
}

func newDevice(driver string, kv ...string) device {
	d := device{driver: driver}
	for i := 0; i+1 < len(kv); i += 2 {
		d.props = append(d.props, [2]string{kv[i], kv[i+1]})
	}
	return d
}

func (d device) with(key, value string) device {
	d.props = append(append([][2]string(nil), d.props...), [2]string{key, value})
	return d
}

func (d device) args() []string {
	o := newOpt(d.driver)
	for _, p := range d.props {
		o.set(p[0], p[1])
	}
	return []string{"-device", o.String()}
}

// socketChardev is a unix-socket server chardev that does not wait for a
// client, optionally logging everything it carries.
type socketChardev struct {
	id, path, logfile string
}

func (c socketChardev) args() []string {
	o := newOpt("socket").set("id", c.id).set("path", c.path).raw("server=on").raw("wait=off")
	if c.logfile != "" {
		o.set("logfile", c.logfile).raw("logappend=on")
	}
	return []string{"-chardev", o.String()}
}

// vgaDevices maps Config.VGA names to the device for a board: the first
// entry is for boards with a legacy VGA/ISA slot (x86), the second for
// PCI-only boards, the third for boards without PCI (isapc).
var vgaDevices = map[string][3]string{
	"std":    {"VGA", "VGA", "isa-vga"},
	"cirrus": {"cirrus-vga", "cirrus-vga", "isa-cirrus-vga"},
	"virtio": {"virtio-vga", "virtio-gpu-pci", ""},
	"qxl":    {"qxl-vga", "", ""},
	"vmware": {"vmware-svga", "vmware-svga", ""},
	"bochs":  {"bochs-display", "bochs-display", ""},
	"ramfb":  {"ramfb", "ramfb", ""},
}

// vgaNames lists the accepted Config.VGA values for messages.
const vgaNames = "std, cirrus, virtio, qxl, vmware, bochs, ramfb or none"

// vgaDevice returns the display device for name on b.
func vgaDevice(name string, b board) (string, error) {
	devs, ok := vgaDevices[name]
	if !ok {
		return "", fmt.Errorf("unknown vga %q: use %s", name, vgaNames)
	}
	var dev string
	switch {
	case !b.pci:
		dev = devs[2]
	case b.isa:
		dev = devs[0]
	default:
		dev = devs[1]
	}
	if dev == "" {
		return "", fmt.Errorf("vga %q is not available on the %s machine: use %s", name, b.name, vgaNames)
	}
	return dev, nil
}

// soundCard is one Config.Sound choice: its devices (the last one takes the
// audiodev) and the bus it needs.
type soundCard struct {
	devices []device
	isa     bool // needs an ISA bus, otherwise PCI
}

var soundCards = map[string]soundCard{
	"sb16":    {devices: []device{newDevice("sb16")}, isa: true},
	"adlib":   {devices: []device{newDevice("adlib")}, isa: true},
	"gus":     {devices: []device{newDevice("gus")}, isa: true},
	"cs4231a": {devices: []device{newDevice("cs4231a")}, isa: true},
	"ac97":    {devices: []device{newDevice("AC97")}},
	"es1370":  {devices: []device{newDevice("ES1370")}},
	"hda":     {devices: []device{newDevice("intel-hda", "id", "hda"), newDevice("hda-duplex", "bus", "hda.0")}},
}

const soundNames = "sb16, adlib, gus, cs4231a, ac97, es1370, hda or none"

// pciNICs are NIC models on the PCI bus: their option ROM can be dropped
// (romfile=) when the guest does not boot from the network, which spares
// firmware the PXE attempt and QEMU the iPXE image.
var pciNICs = map[string]bool{
	"virtio-net-pci": true, "e1000": true, "e1000e": true, "rtl8139": true, "pcnet": true,
	"ne2k_pci": true, "vmxnet3": true, "i82550": true, "i82551": true, "i82557a": true,
	"i82557b": true, "i82557c": true, "i82558a": true, "i82558b": true, "i82559a": true,
	"i82559b": true, "i82559c": true, "i82559er": true, "i82562": true, "i82801": true,
	"tulip": true, "sungem": true,
}

// isaNICs are NIC models on the ISA bus.
var isaNICs = map[string]bool{"ne2k_isa": true}
