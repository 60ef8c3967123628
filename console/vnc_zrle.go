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
	var palette [128]uint32
	i := 0
	cpixel := func() (uint32, bool) {
		if i+3 > len(p) {
			return 0, false
		}
		c := uint32(p[i]) | uint32(p[i+1])<<8 | uint32(p[i+2])<<16
		i += 3
		return c, true
	}
	runLen := func() (int, bool) {
		n := 1
		for {
			if i >= len(p) {
				return 0, false
			}
			b := p[i]
			i++
			n += int(b)
			if b != 255 {
				return n, true
			}
		}
	}
	short := errors.New("zrle: tile data ends early")
	for ty := 0; ty < h; ty += zrleTile {
		th := min(zrleTile, h-ty)
		for tx := 0; tx < w; tx += zrleTile {
			tw := min(zrleTile, w-tx)
			if i >= len(p) {
				return short
			}
			sub := int(p[i])
			i++
			base := (y+ty)*fb.W + x + tx
			switch {
			case sub == 0: // raw CPIXELs
				if i+3*tw*th > len(p) {
					return short
				}
				for row := 0; row < th; row++ {
					dst := fb.Pix[base+row*fb.W:][:tw]
					for k := range dst {
						dst[k] = uint32(p[i]) | uint32(p[i+1])<<8 | uint32(p[i+2])<<16
						i += 3
					}
				}
			case sub == 1: // solid
				c, ok := cpixel()
				if !ok {
					return short
				}
				for row := 0; row < th; row++ {
					dst := fb.Pix[base+row*fb.W:][:tw]
					for k := range dst {
						dst[k] = c
					}
				}
			case sub >= 2 && sub <= 16: // packed palette
				for k := 0; k < sub; k++ {
					c, ok := cpixel()
					if !ok {
						return short
					}
					palette[k] = c
				}
				bits := 4
				switch {
				case sub == 2:
					bits = 1
				case sub <= 4:
					bits = 2
				}
				stride := (tw*bits + 7) / 8
				if i+stride*th > len(p) {
					return short
				}
				mask := byte(1<<bits - 1)
				for row := 0; row < th; row++ {
					src := p[i+row*stride:]
					dst := fb.Pix[base+row*fb.W:][:tw]
					for k := range dst {
						bit := k * bits
						idx := (src[bit/8] >> (8 - bits - bit%8)) & mask
						dst[k] = palette[idx]
					}
				}
				i += stride * th
			case sub == 128 || sub >= 130: // plain RLE, palette RLE
				psize := 0
				if sub >= 130 {
					psize = sub - 128
					for k := 0; k < psize; k++ {
						c, ok := cpixel()
						if !ok {
							return short
						}
						palette[k] = c
					}
				}
				total := tw * th
				for pos := 0; pos < total; {
					var c uint32
					n := 1
					if psize == 0 {
						var ok bool
						if c, ok = cpixel(); !ok {
							return short
						}
						if n, ok = runLen(); !ok {
							return short
						}
					} else {
						if i >= len(p) {
							return short
						}
						idx := int(p[i])
						i++
						if idx&128 != 0 {
							var ok bool
							if n, ok = runLen(); !ok {
								return short
							}
						}
						idx &= 127
						if idx >= psize {
							return fmt.Errorf("zrle: palette index %d of %d", idx, psize)
						}
						c = palette[idx]
					}
					if pos+n > total {
						return fmt.Errorf("zrle: run of %d passes the tile end", n)
					}
					for ; n > 0; n-- {
						fb.Pix[base+(pos/tw)*fb.W+pos%tw] = c
						pos++
					}
				}
			default:
				return fmt.Errorf("zrle: unknown tile subencoding %d", sub)
			}
		}
	}
	if i != len(p) {
		return fmt.Errorf("zrle: %d bytes left after the rectangle's tiles", len(p)-i)
	}
	return nil
}
