package console

import "strconv"

// The sixel encoder is written here rather than taken from a library: no
// sixel library is among the approved Go modules (go-sixel is not), and the
// viewer needs two things general encoders do not give: a fixed palette, so
// that a region sent alone has the same colours as the frame around it
// (a per-image median cut would give a partial update colours that differ
// from its neighbours'), and regions encoded straight from the framebuffer
// without an image.Image copy per update.
//
// The palette is the 6×6×6 colour cube (levels 0, 51, ..., 255, exact in
// sixel's percent colour units) plus 24 greys (8, 18, ..., 238, as xterm's
// 256-colour greys). A pixel takes the nearest cube colour, or the nearest
// grey when that is closer: the error is at most 25 per channel (half the
// cube's step of 51), less for greys. VGA's 16 colours (levels 0, 85, 170,
// 255) land within 17 of their own. Quantising is a few integer operations
// per pixel and needs no pass over the frame to build a palette.

// sixelGreys is the first grey's level and the step between greys.
const sixelGrey0, sixelGreyStep, sixelGreys = 8, 10, 24

// sixelIndex returns the palette register for 0x00RRGGBB.
func sixelIndex(p uint32) uint8 {
	r, g, b := int(p>>16&0xff), int(p>>8&0xff), int(p&0xff)
	qr, qg, qb := (r*5+127)/255, (g*5+127)/255, (b*5+127)/255
	cube := uint8(qr*36 + qg*6 + qb)
	// Only near-greys can be closer to a grey than to the cube.
	if max(r, g, b)-min(r, g, b) > 2*sixelGreyStep {
		return cube
	}
	avg := (r + g + b) / 3
	gi := max(0, min(sixelGreys-1, (avg-sixelGrey0+sixelGreyStep/2)/sixelGreyStep))
	gv := sixelGrey0 + gi*sixelGreyStep
	ce := absInt(r-qr*51) + absInt(g-qg*51) + absInt(b-qb*51)
	ge := absInt(r-gv) + absInt(g-gv) + absInt(b-gv)
	if ge < ce {
		return uint8(216 + gi)
	}
	return cube
}

// sixelColor returns register i's colour as 0x00RRGGBB.
func sixelColor(i uint8) uint32 {
	if i >= 216 {
		v := uint32(sixelGrey0 + int(i-216)*sixelGreyStep)
		return v<<16 | v<<8 | v
	}
	r, g, b := uint32(i/36)*51, uint32(i/6%6)*51, uint32(i%6)*51
	return r<<16 | g<<8 | b
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// sixelEncoder encodes regions as sixel images, reusing its buffers.
type sixelEncoder struct {
	idx []uint8
}

// encode appends a sixel image of the w×h pixels at pix (rows stride
// apart), drawn at the cursor. Background pixels stay transparent (P2=1)
// so that the last band's rows below h leave the screen as it is.
func (e *sixelEncoder) encode(b []byte, pix []uint32, stride, w, h int) []byte {
	if w <= 0 || h <= 0 {
		return b
	}
	if cap(e.idx) < w*h {
		e.idx = make([]uint8, w*h)
	}
	idx := e.idx[:w*h]
	var used [256]bool
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+w]
		out := idx[y*w : (y+1)*w]
		last, li := ^uint32(0), uint8(0)
		for x, p := range row {
			if p != last {
				last, li = p, sixelIndex(p)
				used[li] = true
			}
			out[x] = li
		}
	}
	b = append(b, "\x1bP0;1;0q\"1;1;"...)
	b = strconv.AppendInt(b, int64(w), 10)
	b = append(b, ';')
	b = strconv.AppendInt(b, int64(h), 10)
	for i, u := range used {
		if !u {
			continue
		}
		c := sixelColor(uint8(i))
		b = append(b, '#')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ";2;"...)
		b = strconv.AppendInt(b, int64((c>>16&0xff)*100/255), 10)
		b = append(b, ';')
		b = strconv.AppendInt(b, int64((c>>8&0xff)*100/255), 10)
		b = append(b, ';')
		b = strconv.AppendInt(b, int64((c&0xff)*100/255), 10)
	}
	for y0 := 0; y0 < h; y0 += 6 {
		b = e.band(b, idx, w, y0, min(h, y0+6))
		if y0+6 < h {
			b = append(b, '-')
		}
	}
	return append(b, "\x1b\\"...)
}

// band appends the six rows [y0,y1) of idx: for each colour in them, its
// sixels over the columns where it appears, run-length encoded.
func (e *sixelEncoder) band(b []byte, idx []uint8, w, y0, y1 int) []byte {
	var lo, hi [256]int
	var present [256]bool
	var order []uint8
	for y := y0; y < y1; y++ {
		for x, c := range idx[y*w : (y+1)*w] {
			if !present[c] {
				present[c] = true
				lo[c], hi[c] = x, x
				order = append(order, c)
				continue
			}
			lo[c] = min(lo[c], x)
			hi[c] = max(hi[c], x)
		}
	}
	for n, c := range order {
		if n > 0 {
			b = append(b, '$')
		}
		b = append(b, '#')
		b = strconv.AppendInt(b, int64(c), 10)
		if lo[c] > 0 {
			b = appendSixelRun(b, '?', lo[c])
		}
		run, count := byte(0), 0
		for x := lo[c]; x <= hi[c]; x++ {
			var bits byte
			for y := y0; y < y1; y++ {
				if idx[y*w+x] == c {
					bits |= 1 << (y - y0)
				}
			}
			ch := 63 + bits
			if ch == run {
				count++
				continue
			}
			b = appendSixelRun(b, run, count)
			run, count = ch, 1
		}
		b = appendSixelRun(b, run, count)
	}
	return b
}

// appendSixelRun appends count sixels ch, as "!count ch" when shorter.
func appendSixelRun(b []byte, ch byte, count int) []byte {
	switch {
	case count <= 0:
	case count <= 3:
		for i := 0; i < count; i++ {
			b = append(b, ch)
		}
	default:
		b = append(b, '!')
		b = strconv.AppendInt(b, int64(count), 10)
		b = append(b, ch)
	}
	return b
}
