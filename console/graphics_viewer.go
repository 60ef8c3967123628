package console

import (
	"os"

	"github.com/charmbracelet/x/term"
	"golang.org/x/sys/unix"
)

// defaultCellW and defaultCellH are the cell size assumed when the terminal
// tells neither through TIOCGWINSZ nor CSI 14 t: the VGA text font's 8×16.
const defaultCellW, defaultCellH = 8, 16

// chooseGraphics settles how the viewer draws: the Viewer's Graphics, else
// VLAB_GRAPHICS, else what the terminal answers (only a terminal is asked).
// It returns the input that arrived meanwhile and was no answer.
func (s *viewState) chooseGraphics(in <-chan []byte) []byte {
	g := s.vw.Graphics
	if g == GraphicsAuto {
		g, _ = GraphicsFromEnv() // a bad value was refused by the command
	}
	f, isFile := s.out.(*os.File)
	tty := isFile && term.IsTerminal(f.Fd())
	var rest []byte
	if tty && (g == GraphicsAuto || (g != GraphicsBlocks && !s.winPixels())) {
		var caps termCaps
		caps, rest = detectGraphics(s.out, in, detectTimeout)
		s.termPxW, s.termPxH = caps.pxW, caps.pxH
		if g == GraphicsAuto {
			g = caps.choose()
		}
	}
	if g == GraphicsAuto {
		g = GraphicsBlocks
	}
	s.graphics = g
	return rest
}

// winPixels reports whether the kernel knows the window's size in pixels.
func (s *viewState) winPixels() bool {
	f, ok := s.out.(*os.File)
	if !ok {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Xpixel > 0 && ws.Ypixel > 0
}

// cellSize returns one cell's size in pixels: from TIOCGWINSZ, else from the
// terminal's CSI 14 t answer, else the VGA font's.
func (s *viewState) cellSize() (w, h int) {
	if f, ok := s.out.(*os.File); ok {
		ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
		if err == nil && ws.Xpixel > 0 && ws.Ypixel > 0 && ws.Col > 0 && ws.Row > 0 {
			return int(ws.Xpixel) / int(ws.Col), int(ws.Ypixel) / int(ws.Row)
		}
	}
	if s.termPxW > 0 && s.termPxH > 0 {
		return max(1, s.termPxW/s.cols), max(1, s.termPxH/s.rows)
	}
	return defaultCellW, defaultCellH
}

// newRenderer makes (or resizes) the renderer for the chosen mode over
// every row but the status line.
func (s *viewState) newRenderer() {
	if s.graphics == GraphicsSixel || s.graphics == GraphicsKitty {
		cw, ch := s.cellSize()
		if pr, ok := s.r.(*PixelRenderer); ok {
			pr.SetCellSize(cw, ch)
			pr.Resize(0, 0, s.cols, s.rows-1)
			return
		}
		s.r = NewPixelRenderer(s.graphics, 0, 0, s.cols, s.rows-1, cw, ch)
		return
	}
	if s.r == nil {
		s.r = NewRenderer(0, 0, s.cols, s.rows-1)
	} else {
		s.r.Resize(0, 0, s.cols, s.rows-1)
	}
}

// closeGraphics removes images the terminal keeps after the viewer.
func (s *viewState) closeGraphics() {
	if pr, ok := s.r.(*PixelRenderer); ok {
		if b := pr.Close(); len(b) > 0 {
			s.out.Write(b)
		}
	}
}
