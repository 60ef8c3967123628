package console

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/muesli/cancelreader"
)

// Viewer is the built-in VNC viewer: it shows a session's framebuffer in
// the terminal (see Renderer), with a status line at the bottom, and sends
// the terminal's keys and mouse to the guest. LeaveKey (Ctrl-]) leaves it;
// Ctrl-Alt-End (and Ctrl-Alt-Delete, where the terminal passes it on) sends
// Ctrl-Alt-Del. Terminal mouse reports become absolute pointer positions:
// the cell under the mouse maps to the pixel it shows.
//
// A Viewer is a tea.ExecCommand: the TUI can hand it the terminal with
// tea.Exec and get it back when the user leaves.
type Viewer struct {
	// VNC is the session to show; the viewer does not close it.
	VNC *VNC
	// Title names what is shown (the VM), on the status line.
	Title string
	// Size returns the terminal size in cells; nil asks the terminal
	// Stdout is (80×24 when it is not one).
	Size func() (cols, rows int)
	// Graphics is how the screen is drawn: GraphicsAuto asks the terminal
	// (kitty graphics, then sixel, then half blocks; see graphics.go).
	Graphics Graphics

	stdin  io.Reader
	stdout io.Writer
}

// SetStdin sets where keys and mouse reports come from (default os.Stdin).
func (vw *Viewer) SetStdin(r io.Reader) { vw.stdin = r }

// SetStdout sets the terminal drawn on (default os.Stdout).
func (vw *Viewer) SetStdout(w io.Writer) { vw.stdout = w }

// SetStderr is part of tea.ExecCommand; the viewer writes nothing there.
func (vw *Viewer) SetStderr(io.Writer) {}

// ErrSessionEnded is returned (wrapped) by Viewer.Run when the VNC session
// ended while the viewer showed it (the VM stopped, QEMU went away).
var ErrSessionEnded = errors.New("vnc session ended")

// escTimeout is how long a lone ESC waits for the rest of a sequence
// before it counts as the Escape key.
const escTimeout = 40 * time.Millisecond

// Run shows the session until the user leaves (nil) or the session ends
// (ErrSessionEnded). When stdin is a terminal it is put in raw mode and
// restored; the alternate screen and mouse reporting are switched on and
// off around the viewer.
func (vw *Viewer) Run() error {
	if vw.VNC == nil {
		return errors.New("vnc viewer: no session")
	}
	in, out, size := vw.streams()
	if f, ok := in.(*os.File); ok && term.IsTerminal(f.Fd()) {
		st, err := term.MakeRaw(f.Fd())
		if err != nil {
			return fmt.Errorf("vnc viewer: raw terminal: %w", err)
		}
		defer term.Restore(f.Fd(), st)
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)

	// Alternate screen, no cursor, any-motion mouse tracking in SGR form.
	io.WriteString(out, "\x1b[?1049h\x1b[?25l\x1b[2J\x1b[?1003h\x1b[?1006h")
	defer io.WriteString(out, "\x1b[?1006l\x1b[?1003l\x1b[0m\x1b[?25h\x1b[?1049l")

	input, err := startInput(in)
	if err != nil {
		return fmt.Errorf("vnc viewer: %w", err)
	}
	defer input.stop()

	st := &viewState{vw: vw, out: out}
	pending := st.chooseGraphics(input.chunks)
	defer st.closeGraphics()
	cols, rows := size()
	st.resize(cols, rows)
	st.draw()

	var escTimer <-chan time.Time
	if len(pending) > 0 { // keys typed while the terminal was asked
		escTimer = time.After(escTimeout)
	}
	for {
		select {
		case <-vw.VNC.Done():
			return fmt.Errorf("%w: %v", ErrSessionEnded, vw.VNC.Err())
		case <-vw.VNC.Updates():
			st.draw()
		case <-winch:
			cols, rows := size()
			st.resize(cols, rows)
			st.draw()
		case <-input.done:
			return nil // input ended: nothing more to send
		case b := <-input.chunks:
			evs, rest := parseInput(append(pending, b...), false)
			pending = rest
			escTimer = nil
			if len(pending) > 0 {
				escTimer = time.After(escTimeout)
			}
			if leave, err := st.handle(evs); leave || err != nil {
				return err
			}
		case <-escTimer:
			evs, _ := parseInput(pending, true)
			pending, escTimer = nil, nil
			if leave, err := st.handle(evs); leave || err != nil {
				return err
			}
		}
	}
}

// streams returns the viewer's input, output and terminal size (80×24
// when the output is not a terminal).
func (vw *Viewer) streams() (io.Reader, io.Writer, func() (int, int)) {
	in, out := vw.stdin, vw.stdout
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	size := vw.Size
	if size == nil {
		size = func() (int, int) {
			if f, ok := out.(*os.File); ok {
				if c, r, err := term.GetSize(f.Fd()); err == nil && c > 0 && r > 0 {
					return c, r
				}
			}
			return 80, 24
		}
	}
	return in, out, size
}

// inputReader reads the terminal in a goroutine of its own, in chunks,
// until stopped or the input ends (done is closed).
type inputReader struct {
	cr     cancelreader.CancelReader
	chunks chan []byte
	done   chan struct{}
	quit   chan struct{}
	wg     sync.WaitGroup
}

func startInput(in io.Reader) (*inputReader, error) {
	cr, err := cancelreader.NewReader(in)
	if err != nil {
		return nil, err
	}
	r := &inputReader{cr: cr, chunks: make(chan []byte), done: make(chan struct{}), quit: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.done)
		buf := make([]byte, 4096)
		for {
			n, err := cr.Read(buf)
			if n > 0 {
				b := append([]byte(nil), buf[:n]...)
				select {
				case r.chunks <- b:
				case <-r.quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return r, nil
}

// stop ends the reading goroutine. A reader that cannot be cancelled (not
// a file) is left to end with its input.
func (r *inputReader) stop() {
	close(r.quit)
	if r.cr.Cancel() {
		r.wg.Wait()
	}
	r.cr.Close()
}

// viewState is the viewer's screen and pointer while it runs.
type viewState struct {
	vw         *Viewer
	out        io.Writer
	r          screenRenderer
	graphics   Graphics // the mode chosen (never GraphicsAuto)
	termPxW    int      // the terminal's answer to CSI 14 t, if any
	termPxH    int
	frame      *Frame
	cols, rows int
	status     string
	buttons    Buttons
	px, py     int
}

func (s *viewState) resize(cols, rows int) {
	s.cols, s.rows = max(cols, 1), max(rows, 2)
	s.newRenderer()
	s.status = ""
	io.WriteString(s.out, "\x1b[0m\x1b[2J")
}

// draw renders the changed cells and the status line.
func (s *viewState) draw() {
	s.frame = s.vw.VNC.Snapshot(s.frame)
	out := s.r.Render(s.frame)
	line := s.statusLine()
	if line != s.status {
		s.status = line
		out = append(out, fmt.Sprintf("\x1b[%d;1H\x1b[0;7m%s\x1b[0m", s.rows, line)...)
	}
	if len(out) > 0 {
		s.out.Write(out)
	}
}

// statusLine is the bottom line: what is shown and how to get out.
func (s *viewState) statusLine() string {
	w, h := s.frame.W, s.frame.H
	ptr := s.vw.VNC.PointerMode()
	var note string
	if ptr == PointerRelative {
		note = " (no tablet: the guest pointer follows movements only)"
	}
	text := fmt.Sprintf(" %s │ %d×%d │ pointer %s%s │ %s ", s.vw.Title, w, h, ptr, note, ViewerHelp)
	runes := []rune(text)
	if len(runes) > s.cols {
		runes = runes[:s.cols]
	}
	return string(runes) + strings.Repeat(" ", s.cols-len(runes))
}

// handle sends input events to the guest; leave is true on the leave key.
func (s *viewState) handle(evs []inputEvent) (leave bool, err error) {
	v := s.vw.VNC
	for _, ev := range evs {
		switch ev.kind {
		case evLeave:
			return true, nil
		case evCAD:
			err = v.CtrlAltDel()
		case evKey:
			err = pressKey(v, ev.sym, ev.mods)
		case evMouse:
			err = s.mouse(ev)
		}
		if err != nil {
			return false, fmt.Errorf("%w: %v", ErrSessionEnded, err)
		}
	}
	return false, nil
}

// mouse turns a terminal mouse report into a pointer event at the
// framebuffer pixel under the mouse.
func (s *viewState) mouse(ev inputEvent) error {
	x, y, ok := s.r.PixelAt(ev.col, ev.row)
	if !ok {
		return nil
	}
	s.px, s.py = x, y
	v := s.vw.VNC
	if ev.button >= 64 {
		wheel := ButtonWheelUp
		switch ev.button {
		case 65:
			wheel = ButtonWheelDown
		case 66, 67:
			return v.Pointer(x, y, s.buttons) // horizontal wheel: just move
		}
		if err := v.Pointer(x, y, s.buttons|wheel); err != nil {
			return err
		}
		return v.Pointer(x, y, s.buttons)
	}
	if !ev.motion && ev.button < 3 {
		bit := Buttons(1) << ev.button
		if ev.release {
			s.buttons &^= bit
		} else {
			s.buttons |= bit
		}
	}
	return v.Pointer(x, y, s.buttons)
}
