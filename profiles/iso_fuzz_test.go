package profiles

import (
	"bytes"
	"testing"

	"vlab/internal/fuzzseed"
)

// FuzzReadMedia reads an ISO whose bytes from sector 16 on (the volume
// descriptors, then whatever a boot record's catalog points at) come from
// the fuzzer: a downloaded ISO is data, never a reason to crash or hang.
func FuzzReadMedia(f *testing.F) {
	// From the first volume descriptor to the end of the boot catalog's
	// first entries (sector 20): smaller inputs fuzz faster.
	seed := func(im image) []any { return []any{im.bytes()[firstVDSector*sectorSize : 20*sectorSize+256]} }
	fuzzseed.Add(f,
		seed(image{volume: "Debian 12.7.0 amd64 n", system: "LINUX", defaultPlatform: 0x00, sections: []byte{0xEF}}),
		seed(image{volume: "Mac OS 9", defaultPlatform: 0x02, sections: []byte{0x01}}),
		seed(image{volume: "NOBOOT", defaultPlatform: 0xFF}),
		seed(image{volume: "X", defaultPlatform: 0x00, noTerminator: true}),
	)
	d := NewDetector(f.TempDir())
	f.Fuzz(func(t *testing.T, data []byte) {
		img := append(make([]byte, firstVDSector*sectorSize), data...)
		m, err := ReadMedia(bytes.NewReader(img))
		if err != nil {
			return
		}
		if m.Bootable != (len(m.Platforms) > 0) {
			t.Fatalf("bootable %v with platforms %v", m.Bootable, m.Platforms)
		}
		for _, p := range m.Platforms {
			switch p {
			case PlatformBIOS, PlatformEFI, PlatformPPC, PlatformMac:
			default:
				t.Fatalf("unknown platform %q", p)
			}
		}
		_ = d.Identify(m)
	})
}
