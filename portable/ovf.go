package portable

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// Envelope is an OVF descriptor. Elements are matched by local name, so
// OVF 1.x and 2.x (and the vendors' prefixes) read the same way.
type Envelope struct {
	XMLName    xml.Name        `xml:"Envelope"`
	Version    string          `xml:"version,attr"`
	References []FileRef       `xml:"References>File"`
	Disks      []VirtualDisk   `xml:"DiskSection>Disk"`
	Networks   []Network       `xml:"NetworkSection>Network"`
	Systems    []VirtualSystem `xml:"VirtualSystem"`
	Collection *Collection     `xml:"VirtualSystemCollection"`
}

// FileRef is one file of the package (References/File).
type FileRef struct {
	ID          string `xml:"id,attr"`
	Href        string `xml:"href,attr"`
	Size        int64  `xml:"size,attr"`
	Compression string `xml:"compression,attr"`
	ChunkSize   int64  `xml:"chunkSize,attr"`
}

// VirtualDisk is one disk of DiskSection.
type VirtualDisk struct {
	DiskID        string `xml:"diskId,attr"`
	FileRef       string `xml:"fileRef,attr"`
	Capacity      string `xml:"capacity,attr"`
	CapacityUnits string `xml:"capacityAllocationUnits,attr"`
	Format        string `xml:"format,attr"`
	PopulatedSize int64  `xml:"populatedSize,attr"`
}

// Network is one network of NetworkSection.
type Network struct {
	Name        string `xml:"name,attr"`
	Description string `xml:"Description"`
}

// Collection is a VirtualSystemCollection (a vApp): systems and nested
// collections.
type Collection struct {
	ID          string          `xml:"id,attr"`
	Systems     []VirtualSystem `xml:"VirtualSystem"`
	Collections []Collection    `xml:"VirtualSystemCollection"`
}

// VirtualSystem is one VM of the package.
type VirtualSystem struct {
	ID       string           `xml:"id,attr"`
	Name     string           `xml:"Name"`
	Info     string           `xml:"Info"`
	OS       *OSSection       `xml:"OperatingSystemSection"`
	Hardware []HardwareSect   `xml:"VirtualHardwareSection"`
	VBox     *VBoxMachine     `xml:"Machine"`
	Vlab     *VlabSection     `xml:"VlabSection"`
	Other    []UnknownSection `xml:",any"`
}

// UnknownSection is a section vlab does not read: it is listed as dropped.
type UnknownSection struct {
	XMLName xml.Name
}

// OSSection is the OperatingSystemSection: a CIM OS id plus the vendors'
// own names (vmw:osType, vbox:OSType).
type OSSection struct {
	ID          int    `xml:"id,attr"`
	OSType      string `xml:"osType,attr"`
	Description string `xml:"Description"`
	VBoxOSType  string `xml:"OSType"`
}

// HardwareSect is a VirtualHardwareSection.
type HardwareSect struct {
	System       *System  `xml:"System"`
	Items        []Item   `xml:"Item"`
	StorageItems []Item   `xml:"StorageItem"`
	EthItems     []Item   `xml:"EthernetPortItem"`
	Config       []Config `xml:"Config"`
	ExtraConfig  []Config `xml:"ExtraConfig"`
}

// System is the VirtualSystemSettingData of a hardware section.
type System struct {
	Name string `xml:"ElementName"`
	ID   string `xml:"VirtualSystemIdentifier"`
	Type string `xml:"VirtualSystemType"`
}

// Item is one CIM resource allocation (rasd/sasd/epasd terms).
type Item struct {
	Address         string   `xml:"Address"`
	AddressOnParent string   `xml:"AddressOnParent"`
	Units           string   `xml:"AllocationUnits"`
	AutoAllocate    string   `xml:"AutomaticAllocation"`
	Caption         string   `xml:"Caption"`
	Connection      []string `xml:"Connection"`
	Description     string   `xml:"Description"`
	ElementName     string   `xml:"ElementName"`
	HostResource    []string `xml:"HostResource"`
	InstanceID      string   `xml:"InstanceID"`
	Parent          string   `xml:"Parent"`
	ResourceSubType string   `xml:"ResourceSubType"`
	ResourceType    int      `xml:"ResourceType"`
	VirtualQuantity int64    `xml:"VirtualQuantity"`
	Required        string   `xml:"required,attr"`
	Config          []Config `xml:"Config"`
}

// Config is a VMware Config or ExtraConfig key/value.
type Config struct {
	Key   string `xml:"key,attr"`
	Value string `xml:"value,attr"`
}

// VBoxMachine is the part of VirtualBox's vbox:Machine section vlab reads.
type VBoxMachine struct {
	Name     string `xml:"name,attr"`
	Hardware struct {
		Firmware struct {
			Type string `xml:"type,attr"`
		} `xml:"Firmware"`
		Adapters []VBoxAdapter `xml:"Network>Adapter"`
	} `xml:"Hardware"`
}

// VBoxAdapter is one VirtualBox network adapter.
type VBoxAdapter struct {
	Slot    int    `xml:"slot,attr"`
	Enabled bool   `xml:"enabled,attr"`
	MAC     string `xml:"MACAddress,attr"`
	Type    string `xml:"type,attr"`
}

// VlabSection carries what OVF cannot say about a vlab VM (arch, machine
// type, CPU model, profile, NIC modes and forwards, disk buses), so that an
// export of vlab's own imports back exactly: Spec is the VM's machine.toml
// without host paths. It is marked ovf:required="false": other tools skip
// it.
type VlabSection struct {
	Required string `xml:"required,attr,omitempty"`
	Info     string `xml:"Info"`
	Arch     string `xml:"Arch"`
	Profile  string `xml:"Profile,omitempty"`
	Spec     string `xml:"Spec"`
}

// Resource types (CIM_ResourceAllocationSettingData.ResourceType).
const (
	rtOther    = 1
	rtCPU      = 3
	rtMemory   = 4
	rtIDE      = 5
	rtSCSI     = 6
	rtNIC      = 10
	rtFloppy   = 14
	rtCDDrive  = 15
	rtDVDDrive = 16
	rtDisk     = 17
	rtUSB      = 23
	rtSerial   = 21
	rtSound    = 35
	rtSATA     = 20
	rtNVMe     = 0x8000 // not in CIM: what some writers use; NVMe also shows as ResourceSubType
)

// ParseEnvelope reads an OVF descriptor.
func ParseEnvelope(data []byte) (*Envelope, error) {
	var env Envelope
	if err := xml.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("descriptor is not OVF XML (%s): the package is damaged or not an OVF package", oneLine(err.Error()))
	}
	if len(env.AllSystems()) == 0 {
		return nil, fmt.Errorf("descriptor has no VirtualSystem: nothing to import")
	}
	return &env, nil
}

// AllSystems lists the package's virtual systems, those of a vApp
// (VirtualSystemCollection) included, in document order.
func (e *Envelope) AllSystems() []VirtualSystem {
	out := append([]VirtualSystem(nil), e.Systems...)
	var walk func(c *Collection)
	walk = func(c *Collection) {
		out = append(out, c.Systems...)
		for i := range c.Collections {
			walk(&c.Collections[i])
		}
	}
	if e.Collection != nil {
		walk(e.Collection)
	}
	return out
}

// Title names the system: its Name, else its id.
func (v VirtualSystem) Title() string {
	if v.Name != "" {
		return v.Name
	}
	return v.ID
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
