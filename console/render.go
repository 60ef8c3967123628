package console

import (
	"strconv"
)

// Renderer draws frames into a rectangle of terminal cells with half-block
// characters in 24-bit colour: each cell shows two pixels, the upper as
// the foreground of "▀", the lower as its background. The picture keeps the
// framebuffer's aspect ratio (assuming cells twice as tall as wide),
// centred, and each call emits only the cells that changed since the last.
type Renderer struct {
	left, top  int // the area's first cell in the terminal, 0-based
	cols, rows int // the area's size in cells

	fbW, fbH         int
	imgCols, imgRows int // cells the picture covers
	offX, offY       int // where it starts inside the area

	xs, ys []span // pixels of each column and half-row
	prev   []cell
	next   []cell
	full   bool // the next Render redraws everything, letterbox included

	out          []byte
	curRow       int
	curCol       int
	curFG, curBG uint32
}

// cell is the two pixels of one terminal cell, 0x00RRGGBB each.
type cell struct{ top, bot uint32 }

// unset is a colour no pixel has: it marks "unknown" terminal state.
const unset = 1 << 31

// NewRenderer returns a renderer for an area of cols×rows cells whose top
// left cell is (left, top), 0-based.
func NewRenderer(left, top, cols, rows int) *Renderer {
	r := &Renderer{}
	r.Resize(left, top, cols, rows)
	return r
}

// Resize moves or resizes the area; the next Render redraws all of it.
func (r *Renderer) Resize(left, top, cols, rows int) {
	r.left, r.top, r.cols, r.rows = left, top, max(cols, 1), max(rows, 1)
	r.fbW, r.fbH = 0, 0
	r.full = true
}

// Invalidate makes the next Render redraw everything (after the terminal
// was cleared or drawn over).
func (r *Renderer) Invalidate() { r.full = true }

// Picture returns the cells the picture covers inside the terminal:
// its first column and row (0-based) and its size in cells.
func (r *Renderer) Picture() (col, row, cols, rows int) {
	return r.left + r.offX, r.top + r.offY, r.imgCols, r.imgRows
}

// layout fits a w×h framebuffer into the area.
func (r *Renderer) layout(w, h int) {
	r.fbW, r.fbH = w, h
	// A cell is one pixel wide and two tall: the area is cols × 2·rows
	// square pixels.
	if w*2*r.rows > h*r.cols { // wider than the area: full width
		r.imgCols = r.cols
		r.imgRows = (h*r.cols + w) / (2 * w)
	} else {
		r.imgRows = r.rows
		r.imgCols = (w*2*r.rows + h/2) / h
	}
	r.imgCols = max(1, min(r.imgCols, r.cols))
	r.imgRows = max(1, min(r.imgRows, r.rows))
	r.offX = (r.cols - r.imgCols) / 2
	r.offY = (r.rows - r.imgRows) / 2
	r.xs = bounds(r.xs, w, r.imgCols)
	r.ys = bounds(r.ys, h, 2*r.imgRows)
	n := r.imgCols * r.imgRows
	r.prev = resizeCells(r.prev, n)
	r.next = resizeCells(r.next, n)
	r.full = true
}

// span is the pixels [a, b) of one column or half-row.
type span struct{ a, b int }

// bounds splits n pixels into k spans, never empty: when k > n (the
// picture is larger than the framebuffer) neighbouring spans share pixels.
func bounds(s []span, n, k int) []span {
	s = s[:0]
	for i := 0; i < k; i++ {
		a, b := i*n/k, (i+1)*n/k
		if b <= a {
			b = a + 1
		}
		s = append(s, span{a, b})
	}
	return s
}

func resizeCells(c []cell, n int) []cell {
	if cap(c) < n {
		return make([]cell, n)
	}
	return c[:n]
}

// Render returns the terminal output that brings the area from the last
// rendered frame to f: cursor moves, colours and "▀" for changed cells only.
// The slice is reused by the next call.
func (r *Renderer) Render(f *Frame) []byte {
	r.out = r.out[:0]
	if f.W <= 0 || f.H <= 0 {
		return r.out
	}
	if f.W != r.fbW || f.H != r.fbH {
		r.layout(f.W, f.H)
	}
	r.sample(f)
	r.curRow, r.curCol = -1, -1
	r.curFG, r.curBG = unset, unset
	if r.full {
		r.clearArea()
	}
	for row := 0; row < r.imgRows; row++ {
		base := row * r.imgCols
		for col := 0; col < r.imgCols; col++ {
			c := r.next[base+col]
			if !r.full && c == r.prev[base+col] {
				continue
			}
			r.drawCell(r.top+r.offY+row, r.left+r.offX+col, c)
		}
	}
	if len(r.out) > 0 {
		r.out = append(r.out, "\x1b[0m"...)
	}
	r.prev, r.next = r.next, r.prev
	r.full = false
	return r.out
}

// sample averages each half cell's pixels into r.next.
func (r *Renderer) sample(f *Frame) {
	for row := 0; row < r.imgRows; row++ {
		for col := 0; col < r.imgCols; col++ {
			x := r.xs[col]
			r.next[row*r.imgCols+col] = cell{
				top: average(f, x.a, x.b, r.ys[2*row].a, r.ys[2*row].b),
				bot: average(f, x.a, x.b, r.ys[2*row+1].a, r.ys[2*row+1].b),
			}
		}
	}
}

// average returns the mean colour of the pixels [x0,x1)×[y0,y1).
func average(f *Frame, x0, x1, y0, y1 int) uint32 {
	if x1-x0 == 1 && y1-y0 == 1 {
		return f.Pix[y0*f.W+x0]
	}
	var rs, gs, bs uint32
	for y := y0; y < y1; y++ {
		for _, p := range f.Pix[y*f.W+x0 : y*f.W+x1] {
			rs += p >> 16 & 0xff
			gs += p >> 8 & 0xff
			bs += p & 0xff
		}
	}
	n := uint32((x1 - x0) * (y1 - y0))
	return (rs+n/2)/n<<16 | (gs+n/2)/n<<8 | (bs+n/2)/n
}

// clearArea paints the area around the picture black, so the letterbox
// is clean after a resize; the picture's own cells are all drawn anyway.
func (r *Renderer) clearArea() {
	r.out = append(r.out, "\x1b[0;48;2;0;0;0m"...)
	r.curBG, r.curFG = 0, unset
	for row := 0; row < r.rows; row++ {
		inPic := row >= r.offY && row < r.offY+r.imgRows
		for col := 0; col < r.cols; col++ {
			if inPic && col >= r.offX && col < r.offX+r.imgCols {
				continue
			}
			r.moveTo(r.top+row, r.left+col)
			r.out = append(r.out, ' ')
			r.curCol++
		}
	}
}

// moveTo puts the cursor at row, col (0-based), as cheaply as it knows.
func (r *Renderer) moveTo(row, col int) {
	if row == r.curRow && col == r.curCol {
		return
	}
	if row == r.curRow && col > r.curCol && r.curCol >= 0 {
		n := col - r.curCol
		r.out = append(r.out, "\x1b["...)
		if n > 1 {
			r.out = strconv.AppendInt(r.out, int64(n), 10)
		}
		r.out = append(r.out, 'C')
	} else {
		r.out = append(r.out, "\x1b["...)
		r.out = strconv.AppendInt(r.out, int64(row+1), 10)
		r.out = append(r.out, ';')
		r.out = strconv.AppendInt(r.out, int64(col+1), 10)
		r.out = append(r.out, 'H')
	}
	r.curRow, r.curCol = row, col
}

func (r *Renderer) drawCell(row, col int, c cell) {
	r.moveTo(row, col)
	if c.top == c.bot {
		// A blank in the background colour shows one colour; it needs no
		// foreground change.
		if r.curBG != c.bot {
			r.out = append(r.out, "\x1b[48;2"...)
			r.out = appendRGB(r.out, c.bot)
			r.out = append(r.out, 'm')
			r.curBG = c.bot
		}
		r.out = append(r.out, ' ')
	} else {
		switch {
		case r.curFG != c.top && r.curBG != c.bot:
			r.out = append(r.out, "\x1b[38;2"...)
			r.out = appendRGB(r.out, c.top)
			r.out = append(r.out, ";48;2"...)
			r.out = appendRGB(r.out, c.bot)
			r.out = append(r.out, 'm')
		case r.curFG != c.top:
			r.out = append(r.out, "\x1b[38;2"...)
			r.out = appendRGB(r.out, c.top)
			r.out = append(r.out, 'm')
		case r.curBG != c.bot:
			r.out = append(r.out, "\x1b[48;2"...)
			r.out = appendRGB(r.out, c.bot)
			r.out = append(r.out, 'm')
		}
		r.curFG, r.curBG = c.top, c.bot
		r.out = append(r.out, "▀"...)
	}
	r.curCol++
}

func appendRGB(b []byte, p uint32) []byte {
	b = append(b, ';')
	b = strconv.AppendUint(b, uint64(p>>16&0xff), 10)
	b = append(b, ';')
	b = strconv.AppendUint(b, uint64(p>>8&0xff), 10)
	b = append(b, ';')
	return strconv.AppendUint(b, uint64(p&0xff), 10)
}

// PixelAt maps a terminal cell (0-based column and row) to the framebuffer
// pixel it shows. The picture's first and last columns map to the
// framebuffer's edges exactly, so every edge and corner can be reached;
// cells outside the picture clamp to its edge. ok is false before the
// first frame.
func (r *Renderer) PixelAt(col, row int) (x, y int, ok bool) {
	if r.fbW == 0 || r.fbH == 0 {
		return 0, 0, false
	}
	c := max(0, min(col-r.left-r.offX, r.imgCols-1))
	w := max(0, min(row-r.top-r.offY, r.imgRows-1))
	if r.imgCols > 1 {
		x = (c*(r.fbW-1) + (r.imgCols-1)/2) / (r.imgCols - 1)
	}
	if r.imgRows > 1 {
		y = (w*(r.fbH-1) + (r.imgRows-1)/2) / (r.imgRows - 1)
	}
	return x, y, true
}
