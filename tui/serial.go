package tui

import (
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
)

// maxSerialLines bounds the serial console's scrollback.
const maxSerialLines = 5000

// serialView is a machine's serial console inside the TUI: the guest's
// output (after the serial.log scrollback) in a scrollable viewport, every
// key typed sent to the guest, ctrl+] to detach (the machine keeps
// running), pgup/pgdown to scroll.
type serialView struct {
	m      *Model
	name   string
	conn   io.ReadWriteCloser
	out    chan []byte // keys for the guest, written in order by one goroutine
	term   lineTerm
	vp     viewport.Model
	err    error
	closed bool
	ready  bool
}

type (
	serialAttachedMsg struct {
		v   *serialView
		s   *Serial
		out chan []byte
		err error
	}
	serialDataMsg struct {
		v *serialView
		b []byte
	}
	serialEOFMsg struct {
		v   *serialView
		err error
	}
)

func newSerialView(m *Model, name string) *serialView {
	v := &serialView{m: m, name: name, vp: viewport.New()}
	v.vp.SoftWrap = true
	v.vp.MouseWheelEnabled = true
	v.vp.KeyMap = viewport.KeyMap{
		PageDown:     key.NewBinding(key.WithKeys("pgdown")),
		PageUp:       key.NewBinding(key.WithKeys("pgup")),
		HalfPageUp:   key.NewBinding(key.WithKeys("shift+up")),
		HalfPageDown: key.NewBinding(key.WithKeys("shift+down")),
	}
	return v
}

// Title implements the title bar.
func (v *serialView) Title() string { return "serial console of " + v.name }

func (v *serialView) Init() tea.Cmd {
	ctx, svc, name := v.m.ctx, v.m.svc, v.name
	return func() tea.Msg {
		s, err := svc.SerialAttach(ctx, name)
		if err != nil {
			return serialAttachedMsg{v: v, err: err}
		}
		out := make(chan []byte, 1024)
		go func() { // one writer, so keys reach the guest in the order typed
			for b := range out {
				if _, err := s.Conn.Write(b); err != nil {
					for range out { // drain until detach closes it
					}
					return
				}
			}
		}()
		return serialAttachedMsg{v: v, s: s, out: out}
	}
}

func (v *serialView) SetSize(w, h int) {
	v.vp.SetWidth(w)
	v.vp.SetHeight(max(1, h))
	v.refresh(false)
}

func (v *serialView) Help() help.KeyMap {
	return bindings{short: []key.Binding{
		v.m.keys.Detach,
		key.NewBinding(key.WithHelp("pgup/pgdn", "scroll")),
		key.NewBinding(key.WithHelp("other keys", "go to the guest")),
	}}
}

func readSerial(v *serialView, r io.Reader) tea.Cmd {
	return func() tea.Msg {
		buf := make([]byte, 4096)
		n, err := r.Read(buf)
		if n > 0 {
			return serialDataMsg{v: v, b: buf[:n]}
		}
		if err == nil {
			err = io.EOF
		}
		return serialEOFMsg{v: v, err: err}
	}
}

func (v *serialView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case serialAttachedMsg:
		if msg.v != v {
			return nil
		}
		v.ready = true
		if msg.err != nil {
			v.err = msg.err
			return nil
		}
		if v.closed { // detached before the attach finished
			c := msg.s.Conn
			close(msg.out)
			return func() tea.Msg { _ = c.Close(); return nil }
		}
		v.conn, v.out = msg.s.Conn, msg.out
		v.term.Write(msg.s.Scrollback)
		v.refresh(true)
		return readSerial(v, v.conn)
	case serialDataMsg:
		if msg.v != v || v.closed {
			return nil
		}
		atBottom := v.vp.AtBottom()
		v.term.Write(msg.b)
		v.refresh(atBottom)
		return readSerial(v, v.conn)
	case serialEOFMsg:
		if msg.v != v || v.closed {
			return nil
		}
		if errors.Is(msg.err, io.EOF) {
			msg.err = errors.New("the serial console closed (the machine stopped?)")
		}
		v.err = msg.err
		return nil
	case tea.PasteMsg:
		return v.send([]byte(msg.Content))
	case tea.KeyPressMsg:
		if key.Matches(msg, v.m.keys.Detach) {
			return v.detach()
		}
		if v.conn == nil { // not attached (yet): esc and q leave
			if s := msg.String(); s == "esc" || s == "q" {
				return v.detach()
			}
			return nil
		}
		switch msg.String() {
		case "pgup", "pgdown", "shift+up", "shift+down":
			var cmd tea.Cmd
			v.vp, cmd = v.vp.Update(msg)
			return cmd
		}
		if b := keyBytes(msg); b != nil {
			v.vp.GotoBottom()
			return v.send(b)
		}
		return nil
	case tea.MouseWheelMsg:
		var cmd tea.Cmd
		v.vp, cmd = v.vp.Update(msg)
		return cmd
	}
	return nil
}

// send queues bytes for the guest without blocking the UI.
func (v *serialView) send(b []byte) tea.Cmd {
	if v.out == nil || len(b) == 0 {
		return nil
	}
	select {
	case v.out <- b:
	default:
		v.err = errors.New("the guest is not reading its serial input: keys dropped")
	}
	return nil
}

// detach closes the console (not the machine) and returns to the list.
func (v *serialView) detach() tea.Cmd {
	v.closed = true
	c := v.conn
	v.conn = nil
	if v.out != nil {
		close(v.out)
		v.out = nil
	}
	return func() tea.Msg {
		if c != nil {
			_ = c.Close()
		}
		return closeViewMsg{}
	}
}

func (v *serialView) refresh(follow bool) {
	v.vp.SetContentLines(v.term.Lines())
	if follow {
		v.vp.GotoBottom()
	}
}

func (v *serialView) View() string {
	st := &v.m.styles
	var status string
	switch {
	case v.err != nil:
		status = st.StatusErr.Render("✗ "+v.err.Error()) + st.Muted.Render("  ctrl+] returns to the list")
	case !v.ready:
		status = st.Muted.Render("attaching…")
	}
	if status == "" {
		return v.vp.View()
	}
	h := v.vp.Height()
	v.vp.SetHeight(max(1, h-1))
	out := v.vp.View() + "\n" + status
	v.vp.SetHeight(h)
	return out
}

// keyBytes translates a key press into what a serial terminal sends.
func keyBytes(k tea.KeyPressMsg) []byte {
	key := k.Key()
	if key.Mod&tea.ModCtrl != 0 && key.Code >= 'a' && key.Code <= 'z' {
		return []byte{byte(key.Code - 'a' + 1)}
	}
	switch key.Code {
	case tea.KeyEnter:
		return []byte{'\r'}
	case tea.KeyBackspace:
		return []byte{0x7f}
	case tea.KeyTab:
		return []byte{'\t'}
	case tea.KeyEscape:
		return []byte{0x1b}
	case tea.KeyUp:
		return []byte("\x1b[A")
	case tea.KeyDown:
		return []byte("\x1b[B")
	case tea.KeyRight:
		return []byte("\x1b[C")
	case tea.KeyLeft:
		return []byte("\x1b[D")
	case tea.KeyHome:
		return []byte("\x1b[H")
	case tea.KeyEnd:
		return []byte("\x1b[F")
	case tea.KeyDelete:
		return []byte("\x1b[3~")
	}
	if key.Text != "" {
		return []byte(key.Text)
	}
	if key.Code == tea.KeySpace {
		return []byte{' '}
	}
	return nil
}

// lineTerm is a minimal line-oriented terminal: it keeps lines, applies
// carriage return, backspace and tab, and drops escape sequences (colour,
// cursor movement) that a line view cannot show. State survives between
// writes, so sequences and UTF-8 split across reads are handled.
type lineTerm struct {
	lines   []string
	cur     []rune
	col     int
	esc     int // 0 none, 1 after ESC, 2 in CSI, 3 in OSC, 4 OSC saw ESC
	partial []byte
}

func (t *lineTerm) Write(b []byte) {
	if len(t.partial) > 0 {
		b = append(t.partial, b...)
		t.partial = nil
	}
	for len(b) > 0 {
		if !utf8.FullRune(b) {
			t.partial = append([]byte(nil), b...)
			return
		}
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		t.put(r)
	}
}

func (t *lineTerm) put(r rune) {
	switch t.esc {
	case 1:
		switch r {
		case '[':
			t.esc = 2
		case ']':
			t.esc = 3
		default:
			t.esc = 0
		}
		return
	case 2:
		if r >= 0x40 && r <= 0x7e {
			t.esc = 0
		}
		return
	case 3:
		switch r {
		case 0x07:
			t.esc = 0
		case 0x1b:
			t.esc = 4
		}
		return
	case 4:
		t.esc = 0
		return
	}
	switch r {
	case 0x1b:
		t.esc = 1
	case '\n':
		t.lines = append(t.lines, string(t.cur))
		if len(t.lines) > maxSerialLines {
			t.lines = append(t.lines[:0], t.lines[len(t.lines)-maxSerialLines:]...)
		}
		t.cur, t.col = t.cur[:0], 0
	case '\r':
		t.col = 0
	case '\b':
		if t.col > 0 {
			t.col--
		}
	case '\t':
		for {
			t.putRune(' ')
			if t.col%8 == 0 {
				break
			}
		}
	default:
		if r < 0x20 || r == 0x7f {
			return // other control characters (bell...) show nothing
		}
		t.putRune(r)
	}
}

func (t *lineTerm) putRune(r rune) {
	if t.col < len(t.cur) {
		t.cur[t.col] = r
	} else {
		t.cur = append(t.cur, r)
	}
	t.col++
}

// Lines returns the lines including the one being written.
func (t *lineTerm) Lines() []string {
	out := make([]string, 0, len(t.lines)+1)
	out = append(out, t.lines...)
	return append(out, strings.TrimRight(string(t.cur), " "))
}
