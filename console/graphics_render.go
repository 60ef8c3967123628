package console

import (
	"strconv"
)

// screenRenderer is what the viewer draws with: half blocks (Renderer) or
// pixels (PixelRenderer).
type screenRenderer interface {
	Render(f *Frame) []byte
	Resize(left, top, cols, rows int)
	PixelAt(col, row int) (x, y int, ok bool)
	Invalidate()
}

// PixelRenderer draws frames at full resolution into a rectangle of
// terminal cells as sixel images or with the kitty graphics protocol. The
// picture is the framebuffer scaled (nearest pixel, aspect kept) to the
// largest size that fits the area's pixels, its top left corner on a cell
// corner so that it can be addressed by cursor position, centred.
//
// Each Render sends only the changed regions: the picture is compared with
// the last one sent in bands one cell row tall, and each run of changed
// bands is sent as one image covering its changed cell columns. Diffing the
// scaled picture finds the same regions as the VNC update rectangles would,
// but also drops rectangles QEMU resends unchanged (it does when the guest
// rewrites the same pixels), and it needs nothing from the VNC session.
type PixelRenderer struct {
	mode         Graphics
	left, top    int // the area's first cell in the terminal, 0-based
	cols, rows   int
	cellW, cellH int // pixels of one cell

	fbW, fbH       int
	imgW, imgH     int // the picture's size in pixels
	offCol, offRow int // where it starts inside the area, in cells
	xmap, ymap     []int
	cur, prev      []uint32
	full           bool

	out  []byte
	six  sixelEncoder
	kit  kittyEncoder
	sent bool // a kitty image is on the screen
}

// NewPixelRenderer returns a renderer drawing with mode (GraphicsSixel or
// GraphicsKitty) into cols×rows cells at (left, top), each cell cellW×cellH
// pixels.
func NewPixelRenderer(mode Graphics, left, top, cols, rows, cellW, cellH int) *PixelRenderer {
	r := &PixelRenderer{mode: mode, cellW: max(cellW, 1), cellH: max(cellH, 1)}
	r.Resize(left, top, cols, rows)
	return r
}

// Resize moves or resizes the area; the next Render redraws all of it.
func (r *PixelRenderer) Resize(left, top, cols, rows int) {
	r.left, r.top, r.cols, r.rows = left, top, max(cols, 1), max(rows, 1)
	r.fbW, r.fbH = 0, 0
	r.full = true
}

// SetCellSize changes the pixel size of a cell (after the window changed).
func (r *PixelRenderer) SetCellSize(w, h int) {
	r.cellW, r.cellH = max(w, 1), max(h, 1)
	r.fbW, r.fbH = 0, 0
	r.full = true
}

// Invalidate makes the next Render redraw everything.
func (r *PixelRenderer) Invalidate() { r.full = true }

// PictureSize returns the picture's size in pixels (0×0 before a frame).
func (r *PixelRenderer) PictureSize() (w, h int) { return r.imgW, r.imgH }

func (r *PixelRenderer) layout(w, h int) {
	r.fbW, r.fbH = w, h
	aw, ah := r.cols*r.cellW, r.rows*r.cellH
	// Largest scale that fits: aw/w or ah/h, whichever is smaller.
	if aw*h <= ah*w {
		r.imgW, r.imgH = aw, max(1, h*aw/w)
	} else {
		r.imgW, r.imgH = max(1, w*ah/h), ah
	}
	r.offCol = (aw - r.imgW) / 2 / r.cellW
	r.offRow = (ah - r.imgH) / 2 / r.cellH
	r.xmap = scaleMap(r.xmap, w, r.imgW)
	r.ymap = scaleMap(r.ymap, h, r.imgH)
	n := r.imgW * r.imgH
	if cap(r.cur) < n {
		r.cur, r.prev = make([]uint32, n), make([]uint32, n)
	}
	r.cur, r.prev = r.cur[:n], r.prev[:n]
	r.full = true
}

// scaleMap maps each of k destination pixels to its nearest source pixel
// of n: the centre of destination pixel i falls on source (i+½)·n/k.
func scaleMap(m []int, n, k int) []int {
	m = m[:0]
	for i := 0; i < k; i++ {
		m = append(m, min(n-1, (2*i+1)*n/(2*k)))
	}
	return m
}

// Render returns the terminal output that brings the area from the last
// rendered frame to f. The slice is reused by the next call.
func (r *PixelRenderer) Render(f *Frame) []byte {
	r.out = r.out[:0]
	if f.W <= 0 || f.H <= 0 {
		return r.out
	}
	if f.W != r.fbW || f.H != r.fbH {
		r.layout(f.W, f.H)
	}
	for y, sy := range r.ymap {
		row := r.cur[y*r.imgW : (y+1)*r.imgW]
		src := f.Pix[sy*f.W : (sy+1)*f.W]
		for x, sx := range r.xmap {
			row[x] = src[sx]
		}
	}
	if r.full {
		r.emit(0, 0, r.imgW, r.imgH, true)
	} else {
		r.emitChanged()
	}
	r.cur, r.prev = r.prev, r.cur // the next frame is sampled over all of cur
	r.full = false
	return r.out
}

// emitChanged sends each run of changed cell-row bands, over the cell
// columns that changed in it.
func (r *PixelRenderer) emitChanged() {
	runY, runX0, runX1 := -1, 0, 0
	for y0 := 0; y0 < r.imgH; y0 += r.cellH {
		y1 := min(r.imgH, y0+r.cellH)
		x0, x1 := r.imgW, 0
		for y := y0; y < y1; y++ {
			a, b := r.cur[y*r.imgW:(y+1)*r.imgW], r.prev[y*r.imgW:(y+1)*r.imgW]
			for x := 0; x < x0; x++ {
				if a[x] != b[x] {
					x0 = x
					break
				}
			}
			for x := r.imgW - 1; x >= x1 && x >= x0; x-- {
				if a[x] != b[x] {
					x1 = x + 1
					break
				}
			}
		}
		if x0 >= x1 { // band unchanged: the run ends
			if runY >= 0 {
				r.emitCells(runX0, runY, runX1, y0)
				runY = -1
			}
			continue
		}
		if runY < 0 {
			runY, runX0, runX1 = y0, x0, x1
		} else {
			runX0, runX1 = min(runX0, x0), max(runX1, x1)
		}
	}
	if runY >= 0 {
		r.emitCells(runX0, runY, runX1, r.imgH)
	}
}

// emitCells widens [x0,x1) to whole cells and sends that region.
func (r *PixelRenderer) emitCells(x0, y0, x1, y1 int) {
	x0 = x0 / r.cellW * r.cellW
	x1 = min(r.imgW, (x1+r.cellW-1)/r.cellW*r.cellW)
	r.emit(x0, y0, x1-x0, y1-y0, false)
}

// emit sends the picture's w×h region at x, y (x, y on a cell corner).
func (r *PixelRenderer) emit(x, y, w, h int, full bool) {
	pix := r.cur[y*r.imgW+x:]
	switch r.mode {
	case GraphicsKitty:
		if full || !r.sent {
			r.out = r.moveTo(r.out, r.top+r.offRow, r.left+r.offCol)
			r.out = r.kit.image(r.out, pix, r.imgW, w, h)
			r.sent = true
			return
		}
		r.out = r.kit.edit(r.out, pix, r.imgW, x, y, w, h)
	default:
		r.out = r.moveTo(r.out, r.top+r.offRow+y/r.cellH, r.left+r.offCol+x/r.cellW)
		r.out = r.six.encode(r.out, pix, r.imgW, w, h)
	}
}

func (r *PixelRenderer) moveTo(b []byte, row, col int) []byte {
	b = append(b, "\x1b["...)
	b = strconv.AppendInt(b, int64(row+1), 10)
	b = append(b, ';')
	b = strconv.AppendInt(b, int64(col+1), 10)
	return append(b, 'H')
}

// Close returns what removes the renderer's images from the terminal
// (kitty keeps images until told; sixel pixels go with the text).
func (r *PixelRenderer) Close() []byte {
	if r.mode == GraphicsKitty && r.sent {
		r.sent = false
		return []byte(kittyDelete)
	}
	return nil
}

// PixelAt maps a terminal cell to the framebuffer pixel under its centre;
// the picture's first and last cells map to the framebuffer's edges, so
// every edge can be reached, and cells outside clamp to the edge. ok is
// false before the first frame.
func (r *PixelRenderer) PixelAt(col, row int) (x, y int, ok bool) {
	if r.fbW == 0 || r.fbH == 0 {
		return 0, 0, false
	}
	cols := max(1, (r.imgW+r.cellW-1)/r.cellW)
	rows := max(1, (r.imgH+r.cellH-1)/r.cellH)
	c := max(0, min(col-r.left-r.offCol, cols-1))
	w := max(0, min(row-r.top-r.offRow, rows-1))
	x = r.xmap[min(r.imgW-1, c*r.cellW+r.cellW/2)]
	y = r.ymap[min(r.imgH-1, w*r.cellH+r.cellH/2)]
	if c == 0 {
		x = 0
	} else if c == cols-1 {
		x = r.fbW - 1
	}
	if w == 0 {
		y = 0
	} else if w == rows-1 {
		y = r.fbH - 1
	}
	return x, y, true
}
