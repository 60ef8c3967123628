package e2e

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"testing"

	"vlab/console"
)

// XWD (X Window Dump, file version 7) as `xwd` writes it: a header of 25
// big-endian CARD32 fields, the window name (NUL-terminated, the rest of
// header_size), ncolors colormap entries of 12 bytes, then the pixels,
// bytes_per_line apart.
const (
	xwdHeaderSize = 100
	xwdVersion    = 7
	xwdZPixmap    = 2
	xwdColorSize  = 12
)

// The header's fields, by index.
const (
	xwdFHeaderSize = iota
	xwdFVersion
	xwdFFormat
	xwdFDepth
	xwdFWidth
	xwdFHeight
	xwdFXOffset
	xwdFByteOrder // 0 LSBFirst, 1 MSBFirst: of the pixels
	xwdFBitmapUnit
	xwdFBitOrder
	xwdFBitmapPad
	xwdFBitsPerPixel
	xwdFBytesPerLine
	xwdFVisualClass
	xwdFRedMask
	xwdFGreenMask
	xwdFBlueMask
	xwdFBitsPerRGB
	xwdFColormapEntries
	xwdFNColors
)

// decodeXWD reads a ZPixmap xwd dump of 32 bits per pixel with channel
// masks (the TrueColor root of a 24-bit Xvfb, `xwd -root`) into a frame of
// 0x00RRGGBB pixels.
func decodeXWD(b []byte) (*console.Frame, error) {
	if len(b) < xwdHeaderSize {
		return nil, fmt.Errorf("xwd: %d bytes, shorter than the %d-byte header", len(b), xwdHeaderSize)
	}
	h := func(i int) uint32 { return binary.BigEndian.Uint32(b[4*i:]) }
	if v := h(xwdFVersion); v != xwdVersion {
		return nil, fmt.Errorf("xwd: file version %d, want %d", v, xwdVersion)
	}
	if f := h(xwdFFormat); f != xwdZPixmap {
		return nil, fmt.Errorf("xwd: pixmap format %d, want ZPixmap (%d)", f, xwdZPixmap)
	}
	if bpp := h(xwdFBitsPerPixel); bpp != 32 {
		return nil, fmt.Errorf("xwd: %d bits per pixel, want 32", bpp)
	}
	hdr, ncolors := uint64(h(xwdFHeaderSize)), uint64(h(xwdFNColors))
	w, ht, bpl := uint64(h(xwdFWidth)), uint64(h(xwdFHeight)), uint64(h(xwdFBytesPerLine))
	// X caps a drawable at 32767 pixels a side, which also keeps the sizes
	// below from overflowing.
	if hdr < xwdHeaderSize || w == 0 || ht == 0 || w > 32767 || ht > 32767 || bpl < 4*w || bpl > 4*32768 {
		return nil, fmt.Errorf("xwd: header of %d bytes, %dx%d pixels, %d bytes per line", hdr, w, ht, bpl)
	}
	off := hdr + xwdColorSize*ncolors
	if need := off + bpl*ht; uint64(len(b)) < need {
		return nil, fmt.Errorf("xwd: %d bytes, %dx%d pixels need %d: truncated", len(b), w, ht, need)
	}
	var ch [3]struct {
		mask  uint32
		shift uint
		max   uint32
	}
	for i, f := range []int{xwdFRedMask, xwdFGreenMask, xwdFBlueMask} {
		m := h(f)
		if m == 0 {
			return nil, fmt.Errorf("xwd: colour mask %d is empty (not a TrueColor dump)", i)
		}
		s := uint(bits.TrailingZeros32(m))
		ch[i].mask, ch[i].shift, ch[i].max = m, s, m>>s
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if h(xwdFByteOrder) != 0 {
		order = binary.BigEndian
	}
	f := &console.Frame{W: int(w), H: int(ht), Pix: make([]uint32, w*ht)}
	for y := 0; y < f.H; y++ {
		row := b[off+uint64(y)*bpl:]
		for x := 0; x < f.W; x++ {
			p := order.Uint32(row[4*x:])
			var c uint32
			for _, k := range ch {
				c = c<<8 | ((p&k.mask)>>k.shift)*255/k.max
			}
			f.Pix[y*f.W+x] = c
		}
	}
	return f, nil
}

// xwdFile builds an xwd dump of pix (w wide, 0x00RRGGBB) as Xvfb's 24-bit
// root writes it: masks ff0000/00ff00/0000ff, pixels in byteOrder, each
// line padded to bpl bytes, with a window name and ncolors colormap
// entries between header and pixels.
func xwdFile(w int, pix []uint32, bpl int, byteOrder uint32, name string, ncolors int) []byte {
	ht := len(pix) / w
	nameBytes := append([]byte(name), 0)
	hdr := make([]byte, xwdHeaderSize)
	put := func(i int, v uint32) { binary.BigEndian.PutUint32(hdr[4*i:], v) }
	put(xwdFHeaderSize, uint32(xwdHeaderSize+len(nameBytes)))
	put(xwdFVersion, xwdVersion)
	put(xwdFFormat, xwdZPixmap)
	put(xwdFDepth, 24)
	put(xwdFWidth, uint32(w))
	put(xwdFHeight, uint32(ht))
	put(xwdFByteOrder, byteOrder)
	put(xwdFBitmapUnit, 32)
	put(xwdFBitOrder, byteOrder)
	put(xwdFBitmapPad, 32)
	put(xwdFBitsPerPixel, 32)
	put(xwdFBytesPerLine, uint32(bpl))
	put(xwdFVisualClass, 4) // TrueColor
	put(xwdFRedMask, 0xff0000)
	put(xwdFGreenMask, 0x00ff00)
	put(xwdFBlueMask, 0x0000ff)
	put(xwdFBitsPerRGB, 8)
	put(xwdFColormapEntries, 256)
	put(xwdFNColors, uint32(ncolors))
	b := append(hdr, nameBytes...)
	for i := 0; i < ncolors; i++ {
		c := make([]byte, xwdColorSize)
		binary.BigEndian.PutUint32(c, uint32(i))
		c[4], c[6], c[8], c[10] = byte(i), 0x12, 0x34, 7 // r, g, b (16 bits each), flags
		b = append(b, c...)
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if byteOrder != 0 {
		order = binary.BigEndian
	}
	for y := 0; y < ht; y++ {
		line := make([]byte, bpl)
		for x := 0; x < w; x++ {
			// The unused top byte is set: the masks must drop it.
			order.PutUint32(line[4*x:], 0xee000000|pix[y*w+x])
		}
		for i := 4 * w; i < bpl; i++ {
			line[i] = 0xaa // padding the decoder must skip
		}
		b = append(b, line...)
	}
	return b
}

// TestXWDDecode: the decoder reads a synthetic dump (padded lines, a
// window name and colormap entries before the pixels, either pixel byte
// order) back to its pixels, and refuses a truncated one.
func TestXWDDecode(t *testing.T) {
	pix := []uint32{
		0xff0000, 0x00ff00, 0x0000ff,
		0x000000, 0xffffff, 0x123456,
	}
	for _, order := range []uint32{0, 1} {
		b := xwdFile(3, pix, 16, order, "xwdump", 4)
		f, err := decodeXWD(b)
		if err != nil {
			t.Fatalf("byte order %d: %v", order, err)
		}
		if f.W != 3 || f.H != 2 {
			t.Fatalf("byte order %d: %dx%d, want 3x2", order, f.W, f.H)
		}
		for i, p := range pix {
			if f.Pix[i] != p {
				t.Errorf("byte order %d: pixel %d is %06x, want %06x", order, i, f.Pix[i], p)
			}
		}
	}

	b := xwdFile(3, pix, 16, 0, "xwdump", 4)
	for _, n := range []int{len(b) - 1, len(b) - 16, 60} {
		if _, err := decodeXWD(b[:n]); err == nil {
			t.Errorf("a dump truncated to %d of %d bytes decoded", n, len(b))
		} else if !strings.Contains(err.Error(), "xwd: ") {
			t.Errorf("truncated to %d: error %q does not name xwd", n, err)
		}
	}
	bad := append([]byte(nil), b...)
	binary.BigEndian.PutUint32(bad[4*xwdFBitsPerPixel:], 24)
	if _, err := decodeXWD(bad); err == nil {
		t.Error("a 24 bits per pixel dump decoded as 32")
	}
}
