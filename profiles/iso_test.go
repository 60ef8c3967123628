package profiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// image builds a minimal ISO 9660 image in memory: a primary volume
// descriptor with the given ids, optionally an El Torito boot record whose
// catalog lists the given section platforms, and a terminator.
type image struct {
	volume, system, publisher, application string
	defaultPlatform                        byte   // validation entry platform
	sections                               []byte // platforms of extra sections
	noTerminator                           bool
}

func pad(b []byte, s string) { copy(b, s+strings.Repeat(" ", len(b)-len(s))) }

func (im image) bytes() []byte {
	buf := make([]byte, 24*sectorSize)
	vd := func(sector int, typ byte) []byte {
		b := buf[sector*sectorSize : (sector+1)*sectorSize]
		b[0] = typ
		copy(b[1:6], "CD001")
		b[6] = 1
		return b
	}
	sector := 16
	pvd := vd(sector, 1)
	pad(pvd[8:40], im.system)
	pad(pvd[40:72], im.volume)
	pad(pvd[318:446], im.publisher)
	pad(pvd[574:702], im.application)
	sector++
	if im.sections != nil || im.defaultPlatform != 0xFF {
		br := vd(sector, 0)
		copy(br[7:], elToritoID)
		const catLBA = 20
		binary.LittleEndian.PutUint32(br[71:75], catLBA)
		cat := buf[catLBA*sectorSize:]
		cat[0], cat[1] = 1, im.defaultPlatform
		cat[30], cat[31] = 0x55, 0xAA
		cat[32] = 0x88
		off := 64
		for i, p := range im.sections {
			cat[off] = 0x90
			if i == len(im.sections)-1 {
				cat[off] = 0x91
			}
			cat[off+1] = p
			binary.LittleEndian.PutUint16(cat[off+2:], 2)
			off += 32
			cat[off] = 0x00 // a non-bootable entry
			off += 32
			cat[off] = 0x44 // an extension entry, not counted
			off += 32
			cat[off] = 0x88
			off += 32
		}
		sector++
	}
	if !im.noTerminator {
		vd(sector, 255)
	}
	return buf
}

func TestReadMedia(t *testing.T) {
	im := image{
		volume: "Debian 12.7.0 amd64 n", system: "LINUX", publisher: "Debian Project",
		application: "XORRISO", defaultPlatform: 0x00, sections: []byte{0xEF},
	}
	m, err := ReadMedia(bytes.NewReader(im.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := Media{VolumeID: "Debian 12.7.0 amd64 n", SystemID: "LINUX", PublisherID: "Debian Project", ApplicationID: "XORRISO",
		Bootable: true, Platforms: []string{PlatformBIOS, PlatformEFI}}
	if !mediaEqual(m, want) {
		t.Errorf("ReadMedia = %+v\nwant %+v", m, want)
	}
	if !m.HasPlatform(PlatformEFI) || m.HasPlatform(PlatformPPC) {
		t.Errorf("HasPlatform wrong for %v", m.Platforms)
	}
}

func TestReadMediaNoBootRecord(t *testing.T) {
	m, err := ReadMedia(bytes.NewReader(image{volume: "cidata", defaultPlatform: 0xFF}.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if m.VolumeID != "cidata" || m.Bootable || len(m.Platforms) != 0 {
		t.Errorf("ReadMedia = %+v, want cidata, not bootable", m)
	}
}

func TestReadMediaNULPadding(t *testing.T) {
	raw := image{volume: "X", defaultPlatform: 0xFF, noTerminator: true}.bytes()
	pvd := raw[16*sectorSize:]
	for i := 40; i < 72; i++ {
		pvd[i] = 0
	}
	copy(pvd[40:], "NUL PADDED")
	m, err := ReadMedia(bytes.NewReader(raw[:17*sectorSize])) // ends right after the PVD
	if err != nil {
		t.Fatal(err)
	}
	if m.VolumeID != "NUL PADDED" {
		t.Errorf("volume id %q", m.VolumeID)
	}
}

func TestReadMediaBadCatalog(t *testing.T) {
	raw := image{volume: "V", defaultPlatform: 0x00}.bytes()
	raw[20*sectorSize+31] = 0 // break the validation entry's key
	m, err := ReadMedia(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Bootable || m.Platforms != nil {
		t.Errorf("invalid catalog read as bootable: %+v", m)
	}
}

func TestReadMediaNotISO(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":   nil,
		"short":   make([]byte, 16*sectorSize+100),
		"zeros":   make([]byte, 40*sectorSize),
		"mbrdisk": append([]byte{0xEB, 0x3C, 0x90}, make([]byte, 40*sectorSize)...),
	} {
		if _, err := ReadMedia(bytes.NewReader(data)); !errors.Is(err, ErrNotISO) {
			t.Errorf("%s: err = %v, want ErrNotISO", name, err)
		}
	}
}

func TestReadMediaFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadMediaFile(filepath.Join(dir, "missing.iso")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadMediaFile(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	txt := filepath.Join(dir, "notes.txt")
	os.WriteFile(txt, []byte("hello"), 0o644)
	if _, err := ReadMediaFile(txt); !errors.Is(err, ErrNotISO) || !strings.Contains(err.Error(), txt) {
		t.Errorf("text file: %v", err)
	}
}

func mediaEqual(a, b Media) bool {
	return a.VolumeID == b.VolumeID && a.SystemID == b.SystemID && a.PublisherID == b.PublisherID &&
		a.ApplicationID == b.ApplicationID && a.Bootable == b.Bootable && slices.Equal(a.Platforms, b.Platforms)
}
