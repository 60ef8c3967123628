package profiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// ErrNotISO is returned by ReadMedia for data without an ISO 9660 primary
// volume descriptor.
var ErrNotISO = errors.New("not an ISO 9660 image")

// Boot platforms an El Torito catalog can name.
const (
	PlatformBIOS = "bios" // 80x86 (platform id 0x00)
	PlatformPPC  = "ppc"  // PowerPC (0x01)
	PlatformMac  = "mac"  // Mac (0x02)
	PlatformEFI  = "efi"  // UEFI (0xEF)
)

// Media is what an ISO 9660 image says about itself.
type Media struct {
	VolumeID      string   `json:"volume_id"`
	SystemID      string   `json:"system_id"`
	PublisherID   string   `json:"publisher_id"`
	ApplicationID string   `json:"application_id"`
	Bootable      bool     `json:"bootable"`            // has an El Torito boot catalog
	Platforms     []string `json:"platforms,omitempty"` // boot entries' platforms: bios, efi, ppc, mac
}

// HasPlatform reports whether the boot catalog has an entry for platform.
func (m Media) HasPlatform(platform string) bool { return contains(m.Platforms, platform) }

const (
	sectorSize     = 2048
	firstVDSector  = 16
	maxDescriptors = 64 // a real image has a handful; stop on garbage
	elToritoID     = "EL TORITO SPECIFICATION"
)

// ReadMediaFile reads the volume descriptors of the ISO image at path.
func ReadMediaFile(path string) (Media, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Media{}, fmt.Errorf("read iso %s: file does not exist", path)
		}
		return Media{}, fmt.Errorf("read iso %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return Media{}, fmt.Errorf("read iso %s: is a directory", path)
	}
	m, err := ReadMedia(f)
	if err != nil {
		return Media{}, fmt.Errorf("read iso %s: %w", path, err)
	}
	return m, nil
}

// ReadMedia reads the ISO 9660 volume descriptors of an image: the primary
// volume descriptor's identifiers and, when there is a boot record, the El
// Torito boot catalog's platforms.
func ReadMedia(r io.ReaderAt) (Media, error) {
	var m Media
	var catalog uint32
	havePVD := false
	buf := make([]byte, sectorSize)
	for i := 0; i < maxDescriptors; i++ {
		n, err := r.ReadAt(buf, int64(firstVDSector+i)*sectorSize)
		if n < sectorSize {
			if err == nil || errors.Is(err, io.EOF) {
				break
			}
			return Media{}, err
		}
		if string(buf[1:6]) != "CD001" {
			break
		}
		switch buf[0] {
		case 0: // boot record
			if strings.TrimRight(string(buf[7:39]), "\x00 ") == elToritoID {
				catalog = binary.LittleEndian.Uint32(buf[71:75])
			}
		case 1: // primary volume descriptor
			if !havePVD {
				havePVD = true
				m.SystemID = field(buf[8:40])
				m.VolumeID = field(buf[40:72])
				m.PublisherID = field(buf[318:446])
				m.ApplicationID = field(buf[574:702])
			}
		}
		if buf[0] == 255 { // set terminator
			break
		}
	}
	if !havePVD {
		return Media{}, ErrNotISO
	}
	if catalog != 0 {
		m.Platforms = readCatalog(r, catalog)
		m.Bootable = len(m.Platforms) > 0
	}
	return m, nil
}

// field trims an a-/d-character field: padding is spaces, some writers use NULs.
func field(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// readCatalog returns the platforms of the boot entries in the El Torito
// catalog at sector lba (the validation entry's, then each section's), or
// nil when the catalog is not valid.
func readCatalog(r io.ReaderAt, lba uint32) []string {
	buf := make([]byte, sectorSize)
	if n, _ := r.ReadAt(buf, int64(lba)*sectorSize); n < 64 {
		return nil
	}
	// Validation entry: header id 1, key bytes 0x55 0xAA.
	if buf[0] != 1 || buf[30] != 0x55 || buf[31] != 0xAA {
		return nil
	}
	var out []string
	addPlatform := func(id byte) {
		var p string
		switch id {
		case 0x00:
			p = PlatformBIOS
		case 0x01:
			p = PlatformPPC
		case 0x02:
			p = PlatformMac
		case 0xEF:
			p = PlatformEFI
		default:
			return
		}
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	// The initial/default entry follows; it belongs to the validation
	// entry's platform when it is bootable (0x88).
	if buf[32] == 0x88 {
		addPlatform(buf[1])
	}
	for off := 64; off+32 <= len(buf); {
		hdr := buf[off]
		if hdr != 0x90 && hdr != 0x91 {
			break
		}
		platform := buf[off+1]
		count := int(binary.LittleEndian.Uint16(buf[off+2 : off+4]))
		off += 32
		for j := 0; j < count && off+32 <= len(buf); off += 32 {
			if buf[off] == 0x44 { // extension entry: not counted
				continue
			}
			if buf[off] == 0x88 {
				addPlatform(platform)
			}
			j++
		}
		if hdr == 0x91 { // final section header
			break
		}
	}
	return out
}
