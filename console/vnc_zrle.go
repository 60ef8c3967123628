package console

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// zrleDecoder decodes ZRLE rectangles (RFC 6143 §7.7.6): one zlib stream
// for the whole connection, each rectangle's share ending in a sync flush;
// inside, 64×64 tiles left to right, top to bottom, each raw, solid,
// packed-palette, plain RLE or palette RLE, with 3-byte "CPIXELs" for vlab's
// 32-bit pixel format.
//
// Go's inflater keeps an input error forever, and it reads ahead to the next
// block header once a rectangle's data is used up. So each rectangle is
// inflated on its own: the inflater is reset onto that rectangle's bytes with
// the last 32 KiB of the stream's output as its dictionary (exactly the
// state zlib's sync flush leaves), and read until its input runs out.
type zrleDecoder struct {
	started bool
	in      []byte
	rd      bytes.Reader
	fl      io.ReadCloser
	out     []byte
	window  []byte // last 32 KiB of decompressed output
}

const (
	zrleTile     = 64
	deflateWin   = 32 << 10
	zrleMaxInput = 64 << 20
)

// zrleMaxTiles is the most decompressed bytes the tiles of a w×h rectangle
// can take: per pixel at most 4 (plain RLE runs of one: a CPIXEL and a
// length byte), per tile a subencoding byte and a 127-colour palette.
func zrleMaxTiles(w, h int) int {
	tiles := ((w + zrleTile - 1) / zrleTile) * ((h + zrleTile - 1) / zrleTile)
	return 4*w*h + tiles*(1+3*127)
}

// inflate returns the decompressed bytes of one rectangle's zlib data,
// refusing more than limit bytes (a zlib bomb stops there).
func (d *zrleDecoder) inflate(data []byte, limit int) ([]byte, error) {
	if !d.started {
		if len(data) < 2 {
			return nil, errors.New("zrle: zlib header missing")
		}
		cmf, flg := data[0], data[1]
		if cmf&0x0f != 8 || (uint16(cmf)<<8|uint16(flg))%31 != 0 || flg&0x20 != 0 {
			return nil, fmt.Errorf("zrle: bad zlib header %#02x %#02x", cmf, flg)
		}
		data = data[2:]
		d.started = true
	}
	d.rd.Reset(data)
	if d.fl == nil {
		d.fl = flate.NewReaderDict(&d.rd, d.window)
	} else if err := d.fl.(flate.Resetter).Reset(&d.rd, d.window); err != nil {
		return nil, fmt.Errorf("zrle: %w", err)
	}
	d.out = d.out[:0]
	for {
		if len(d.out) == cap(d.out) {
			d.out = append(d.out, 0)[:len(d.out)]
		}
		n, err := d.fl.Read(d.out[len(d.out):min(cap(d.out), limit+1)])
		d.out = d.out[:len(d.out)+n]
		if len(d.out) > limit {
			return nil, fmt.Errorf("zrle: rectangle inflates past the %d bytes its tiles can take", limit)
		}
		if err == nil {
			continue
		}
		// The rectangle's data ends after a sync flush, inside the stream:
		// the inflater reports an unexpected end once it is all consumed.
		if errors.Is(err, io.ErrUnexpectedEOF) && d.rd.Len() == 0 {
			break
		}
		if err == io.EOF {
			return nil, errors.New("zrle: zlib stream ended")
		}
		return nil, fmt.Errorf("zrle: inflate: %w", err)
	}
	// Keep the window for the next rectangle.
	if len(d.out) >= deflateWin {
		d.window = append(d.window[:0], d.out[len(d.out)-deflateWin:]...)
	} else {
		keep := min(len(d.window), deflateWin-len(d.out))
		d.window = append(d.window[:0], d.window[len(d.window)-keep:]...)
		d.window = append(d.window, d.out...)
	}
	return d.out, nil
}

// decode reads one ZRLE rectangle from r into v's framebuffer.
func (d *zrleDecoder) decode(r io.Reader, v *VNC, x, y, w, h int) error {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(lb[:]))
	limit := zrleMaxTiles(w, h)
	// Deflate's worst case (stored blocks) adds a little to the input:
	// zlib's deflateBound allows n/8 + n/64 + a few bytes.
	if n > min(zrleMaxInput, limit+limit/8+limit/64+64) {
		return fmt.Errorf("zrle: %dx%d rectangle of %d compressed bytes", w, h, n)
	}
	if cap(d.in) < n {
		d.in = make([]byte, n)
	}
	d.in = d.in[:n]
	if _, err := io.ReadFull(r, d.in); err != nil {
		return err
	}
	data, err := d.inflate(d.in, limit)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return zrleTiles(data, &v.fb, x, y, w, h)
}

// zrleTiles paints the decompressed tiles of a w×h rectangle at x, y.
func zrleTiles(p []byte, fb *Frame, x, y, w, h int) error {
	r := &zrleReader{p: p}
	for ty := 0; ty < h; ty += zrleTile {
		th := min(zrleTile, h-ty)
		for tx := 0; tx < w; tx += zrleTile {
			tw := min(zrleTile, w-tx)
			if r.i >= len(p) {
				return errZRLEShort
			}
			sub := int(p[r.i])
			r.i++
			t := zrleTileAt{fb: fb, base: (y+ty)*fb.W + x + tx, w: tw, h: th}
			var err error
			switch {
			case sub == 0:
				err = r.raw(t)
			case sub == 1:
				err = r.solid(t)
			case sub >= 2 && sub <= 16:
				err = r.packed(t, sub)
			case sub == 128 || sub >= 130:
				err = r.rle(t, sub)
			default:
				err = fmt.Errorf("zrle: unknown tile subencoding %d", sub)
			}
			if err != nil {
				return err
			}
		}
	}
	if r.i != len(p) {
		return fmt.Errorf("zrle: %d bytes left after the rectangle's tiles", len(p)-r.i)
	}
	return nil
}

var errZRLEShort = errors.New("zrle: tile data ends early")

// zrleReader reads a rectangle's decompressed tile data: every read is
// bounded by the data, so a hostile server's stream ends in an error.
type zrleReader struct {
	p       []byte
	i       int
	palette [128]uint32
}

// zrleTileAt is where a tile goes in the frame: base is its top-left
// pixel's index in fb.Pix.
type zrleTileAt struct {
	fb         *Frame
	base, w, h int
}

// cpixel reads one compressed pixel (3 bytes, little-endian RGB).
func (r *zrleReader) cpixel() (uint32, bool) {
	if r.i+3 > len(r.p) {
		return 0, false
	}
	p := r.p[r.i:]
	r.i += 3
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16, true
}

// runLen reads a run length: bytes of 255 and a last byte below, plus one.
func (r *zrleReader) runLen() (int, bool) {
	n := 1
	for {
		if r.i >= len(r.p) {
			return 0, false
		}
		b := r.p[r.i]
		r.i++
		n += int(b)
		if b != 255 {
			return n, true
		}
	}
}

// readPalette reads n palette entries.
func (r *zrleReader) readPalette(n int) error {
	for k := 0; k < n; k++ {
		c, ok := r.cpixel()
		if !ok {
			return errZRLEShort
		}
		r.palette[k] = c
	}
	return nil
}

// raw is subencoding 0: every pixel as a CPIXEL.
func (r *zrleReader) raw(t zrleTileAt) error {
	if r.i+3*t.w*t.h > len(r.p) {
		return errZRLEShort
	}
	for row := 0; row < t.h; row++ {
		dst := t.fb.Pix[t.base+row*t.fb.W:][:t.w]
		for k := range dst {
			dst[k] = uint32(r.p[r.i]) | uint32(r.p[r.i+1])<<8 | uint32(r.p[r.i+2])<<16
			r.i += 3
		}
	}
	return nil
}

// solid is subencoding 1: one colour for the whole tile.
func (r *zrleReader) solid(t zrleTileAt) error {
	c, ok := r.cpixel()
	if !ok {
		return errZRLEShort
	}
	for row := 0; row < t.h; row++ {
		dst := t.fb.Pix[t.base+row*t.fb.W:][:t.w]
		for k := range dst {
			dst[k] = c
		}
	}
	return nil
}

// packed is subencodings 2-16: a palette of sub colours, then 1, 2 or 4
// bit indices, each row padded to a byte.
func (r *zrleReader) packed(t zrleTileAt, sub int) error {
	if err := r.readPalette(sub); err != nil {
		return err
	}
	bits := 4
	switch {
	case sub == 2:
		bits = 1
	case sub <= 4:
		bits = 2
	}
	stride := (t.w*bits + 7) / 8
	if r.i+stride*t.h > len(r.p) {
		return errZRLEShort
	}
	mask := byte(1<<bits - 1)
	for row := 0; row < t.h; row++ {
		src := r.p[r.i+row*stride:]
		dst := t.fb.Pix[t.base+row*t.fb.W:][:t.w]
		for k := range dst {
			bit := k * bits
			idx := (src[bit/8] >> (8 - bits - bit%8)) & mask
			dst[k] = r.palette[idx]
		}
	}
	r.i += stride * t.h
	return nil
}

// rle is subencoding 128 (plain RLE: CPIXEL and run length) and 130-255
// (palette RLE: sub-128 colours, then indices, a run length after those
// with the top bit set).
func (r *zrleReader) rle(t zrleTileAt, sub int) error {
	psize := 0
	if sub >= 130 {
		psize = sub - 128
		if err := r.readPalette(psize); err != nil {
			return err
		}
	}
	total := t.w * t.h
	for pos := 0; pos < total; {
		var c uint32
		n := 1
		var ok bool
		if psize == 0 {
			if c, ok = r.cpixel(); !ok {
				return errZRLEShort
			}
			if n, ok = r.runLen(); !ok {
				return errZRLEShort
			}
		} else {
			if r.i >= len(r.p) {
				return errZRLEShort
			}
			idx := int(r.p[r.i])
			r.i++
			if idx&128 != 0 {
				if n, ok = r.runLen(); !ok {
					return errZRLEShort
				}
			}
			idx &= 127
			if idx >= psize {
				return fmt.Errorf("zrle: palette index %d of %d", idx, psize)
			}
			c = r.palette[idx]
		}
		if pos+n > total {
			return fmt.Errorf("zrle: run of %d passes the tile end", n)
		}
		for ; n > 0; n-- {
			t.fb.Pix[t.base+(pos/t.w)*t.fb.W+pos%t.w] = c
			pos++
		}
	}
	return nil
}
