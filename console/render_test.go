package console

import (
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// screen is a tiny terminal for tests: it understands exactly what a
// renderer may emit (CUP, CUF, SGR with 24-bit colours, "▀" and blanks)
// and fails the test on anything else.
type screen struct {
	t          *testing.T
	cols, rows int
	cells      []scell
	row, col   int
	fg, bg     uint32
	writes     int // characters written by the last apply
}

type scell struct {
	ch     rune
	fg, bg uint32
}

func newScreen(t *testing.T, cols, rows int) *screen {
	return &screen{t: t, cols: cols, rows: rows, cells: make([]scell, cols*rows), fg: unset, bg: unset}
}

func (s *screen) apply(out []byte) {
	s.t.Helper()
	s.writes = 0
	b := string(out)
	for len(b) > 0 {
		if strings.HasPrefix(b, "\x1b[") {
			end := strings.IndexAny(b[2:], "HCm")
			if end < 0 {
				s.t.Fatalf("unterminated escape %q", b)
			}
			params, final := b[2:2+end], b[2+end]
			b = b[3+end:]
			switch final {
			case 'H':
				p := strings.Split(params, ";")
				r, _ := strconv.Atoi(p[0])
				c, _ := strconv.Atoi(p[1])
				s.row, s.col = r-1, c-1
			case 'C':
				n := 1
				if params != "" {
					n, _ = strconv.Atoi(params)
				}
				s.col += n
			case 'm':
				s.sgr(params)
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(b)
		b = b[n:]
		if r != '▀' && r != ' ' {
			s.t.Fatalf("renderer wrote %q", r)
		}
		if s.row < 0 || s.row >= s.rows || s.col < 0 || s.col >= s.cols {
			s.t.Fatalf("write outside the terminal at %d,%d", s.row, s.col)
		}
		s.cells[s.row*s.cols+s.col] = scell{r, s.fg, s.bg}
		s.col++
		s.writes++
	}
}

func (s *screen) sgr(params string) {
	p := strings.Split(params, ";")
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case "0", "":
			s.fg, s.bg = unset, unset
		case "38", "48":
			if i+4 >= len(p) || p[i+1] != "2" {
				s.t.Fatalf("bad colour SGR %q", params)
			}
			var c uint32
			for k := 2; k <= 4; k++ {
				v, err := strconv.Atoi(p[i+k])
				if err != nil || v < 0 || v > 255 {
					s.t.Fatalf("bad colour SGR %q", params)
				}
				c = c<<8 | uint32(v)
			}
			if p[i] == "38" {
				s.fg = c
			} else {
				s.bg = c
			}
			i += 4
		default:
			s.t.Fatalf("unexpected SGR %q", params)
		}
	}
}

// pixels returns the two colours a cell shows.
func (s *screen) pixels(col, row int) (top, bot uint32) {
	c := s.cells[row*s.cols+col]
	if c.ch == ' ' {
		return c.bg, c.bg
	}
	return c.fg, c.bg
}

func randomFrame(w, h int, seed int64) *Frame {
	rng := rand.New(rand.NewSource(seed))
	f := &Frame{W: w, H: h, Pix: make([]uint32, w*h)}
	for i := range f.Pix {
		f.Pix[i] = rng.Uint32() & 0xffffff
	}
	return f
}

func TestRendererOnePixelPerHalfCell(t *testing.T) {
	// 40×20 pixels in 40×10 cells: each half cell is exactly one pixel.
	f := randomFrame(40, 20, 1)
	for i := 0; i < 40; i++ {
		f.Pix[i] = f.Pix[40+i] // a row of cells whose halves match: blanks
	}
	r := NewRenderer(0, 0, 40, 10)
	s := newScreen(t, 40, 10)
	s.apply(r.Render(f))
	for row := 0; row < 10; row++ {
		for col := 0; col < 40; col++ {
			top, bot := s.pixels(col, row)
			if top != f.At(col, 2*row) || bot != f.At(col, 2*row+1) {
				t.Fatalf("cell %d,%d shows %06x/%06x, want %06x/%06x", col, row, top, bot, f.At(col, 2*row), f.At(col, 2*row+1))
			}
		}
	}
	if c, rw, w, h := r.Picture(); c != 0 || rw != 0 || w != 40 || h != 10 {
		t.Errorf("picture at %d,%d size %dx%d", c, rw, w, h)
	}
}

func TestRendererAveragesWhenScalingDown(t *testing.T) {
	// 80×40 pixels in 40×10 cells: each half cell averages a 2×2 block.
	f := &Frame{W: 80, H: 40, Pix: make([]uint32, 80*40)}
	for y := 0; y < 40; y++ {
		for x := 0; x < 80; x++ {
			if (x+y)%2 == 0 {
				f.Pix[y*80+x] = 0xffffff
			}
		}
	}
	f.Pix[0], f.Pix[1], f.Pix[80], f.Pix[81] = 0x102030, 0x102030, 0x304050, 0x304050
	r := NewRenderer(0, 0, 40, 10)
	s := newScreen(t, 40, 10)
	s.apply(r.Render(f))
	if top, _ := s.pixels(0, 0); top != 0x203040 {
		t.Errorf("top-left half cell = %06x, want the 2x2 mean 203040", top)
	}
	if top, bot := s.pixels(5, 5); top != 0x808080 || bot != 0x808080 {
		t.Errorf("checkerboard cell = %06x/%06x, want mid grey 808080", top, bot)
	}
}

func TestRendererKeepsAspectAndLetterboxes(t *testing.T) {
	r := NewRenderer(0, 0, 160, 48)
	s := newScreen(t, 160, 48)
	f := randomFrame(1024, 768, 2)
	s.apply(r.Render(f))
	col, row, w, h := r.Picture()
	// 1024×768 is 4:3; 160×48 cells are 160×96 square pixels: height-bound.
	if w != 128 || h != 48 || col != 16 || row != 0 {
		t.Fatalf("picture at %d,%d size %dx%d, want 128x48 at 16,0", col, row, w, h)
	}
	for _, c := range []int{0, 15, 144, 159} {
		if top, bot := s.pixels(c, 10); top != 0 || bot != 0 {
			t.Errorf("letterbox column %d is %06x/%06x, want black", c, top, bot)
		}
	}
	r.Resize(0, 0, 160, 48)
	f2 := randomFrame(720, 400, 3)
	s.apply(r.Render(f2))
	if col, row, w, h := r.Picture(); w != 160 || h != 44 || col != 0 || row != 2 {
		t.Errorf("720x400 picture at %d,%d size %dx%d, want 160x44 at 0,2", col, row, w, h)
	}
}

func TestRendererRedrawsOnlyChangedCells(t *testing.T) {
	r := NewRenderer(2, 1, 64, 32)
	s := newScreen(t, 70, 34)
	f := randomFrame(64, 64, 4)
	s.apply(r.Render(f))
	if s.writes != 64*32 {
		t.Fatalf("first frame wrote %d cells, want all %d", s.writes, 64*32)
	}
	if out := r.Render(f); len(out) != 0 {
		t.Fatalf("an unchanged frame produced %d bytes: %q", len(out), out)
	}
	// Change three cells' worth of pixels (one pixel each).
	g := &Frame{W: f.W, H: f.H, Pix: append([]uint32(nil), f.Pix...)}
	g.Pix[0] ^= 0xff
	g.Pix[10*64+33] ^= 0xff00
	g.Pix[63*64+63] ^= 0xff0000
	s.apply(r.Render(g))
	if s.writes != 3 {
		t.Fatalf("changing 3 cells wrote %d", s.writes)
	}
	// The incrementally updated screen equals a fresh render of the frame.
	fresh := newScreen(t, 70, 34)
	fresh.apply(NewRenderer(2, 1, 64, 32).Render(g))
	for i := range s.cells {
		a, b := s.cells[i], fresh.cells[i]
		if a.ch == 0 && b.ch == 0 {
			continue
		}
		at, ab := s.pixels(i%70, i/70)
		bt, bb := fresh.pixels(i%70, i/70)
		if at != bt || ab != bb {
			t.Fatalf("cell %d,%d differs from a fresh render", i%70, i/70)
		}
	}
	// Invalidate (the terminal was cleared) redraws everything.
	r.Invalidate()
	s.apply(r.Render(g))
	if s.writes < 64*32 {
		t.Errorf("after Invalidate only %d cells were drawn", s.writes)
	}
}

func TestRendererPixelAtReachesEdgesAndCorners(t *testing.T) {
	r := NewRenderer(0, 0, 160, 48)
	if _, _, ok := r.PixelAt(1, 1); ok {
		t.Error("PixelAt before the first frame reported ok")
	}
	r.Render(&Frame{W: 1024, H: 768, Pix: make([]uint32, 1024*768)})
	// Picture: columns 16..143, rows 0..47.
	cases := []struct{ col, row, x, y int }{
		{16, 0, 0, 0},
		{143, 47, 1023, 767},
		{143, 0, 1023, 0},
		{16, 47, 0, 767},
		{0, 0, 0, 0},            // letterbox: clamps to the edge
		{159, 60, 1023, 767},    // below and right of everything
		{16 + 64, 24, 516, 392}, // 64·1023/127 rounded
	}
	for _, c := range cases {
		x, y, ok := r.PixelAt(c.col, c.row)
		if !ok || x != c.x || y != c.y {
			t.Errorf("PixelAt(%d,%d) = %d,%d, want %d,%d", c.col, c.row, x, y, c.x, c.y)
		}
	}
}

func TestRendererScalesUp(t *testing.T) {
	r := NewRenderer(0, 0, 80, 24)
	s := newScreen(t, 80, 24)
	f := &Frame{W: 4, H: 2, Pix: []uint32{1, 2, 3, 4, 5, 6, 7, 8}}
	s.apply(r.Render(f))
	col, row, w, h := r.Picture()
	if w != 80 || h != 20 {
		t.Fatalf("4x2 picture in 80x24 cells is %dx%d, want 80x20", w, h)
	}
	if top, bot := s.pixels(col, row); top != 1 || bot != 1 {
		t.Errorf("first cell %06x/%06x", top, bot)
	}
	if top, bot := s.pixels(col+w-1, row+h-1); top != 8 || bot != 8 {
		t.Errorf("last cell %06x/%06x", top, bot)
	}
}
