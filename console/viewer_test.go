package console

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseInput(t *testing.T) {
	k := func(sym uint32, m Mod) inputEvent { return key(sym, m) }
	cases := []struct {
		name string
		in   string
		want []inputEvent
	}{
		{"letters", "aZ", []inputEvent{k('a', 0), k('Z', 0)}},
		{"enter tab backspace", "\r\t\x7f", []inputEvent{k(KeysymReturn, 0), k(KeysymTab, 0), k(KeysymBackSpace, 0)}},
		{"ctrl-c", "\x03", []inputEvent{k('c', ModCtrl)}},
		{"alt-x", "\x1bx", []inputEvent{k('x', ModAlt)}},
		{"alt-ctrl-a", "\x1b\x01", []inputEvent{k('a', ModAlt|ModCtrl)}},
		{"arrows", "\x1b[A\x1b[D\x1bOB", []inputEvent{k(KeysymUp, 0), k(KeysymLeft, 0), k(KeysymDown, 0)}},
		{"ctrl-shift-right", "\x1b[1;6C", []inputEvent{k(KeysymRight, ModCtrl|ModShift)}},
		{"delete pgup f5 f12", "\x1b[3~\x1b[5~\x1b[15~\x1b[24~", []inputEvent{k(KeysymDelete, 0), k(KeysymPageUp, 0), k(KeysymF1+4, 0), k(KeysymF1+11, 0)}},
		{"f1 ss3", "\x1bOP", []inputEvent{k(KeysymF1, 0)}},
		{"shift-tab", "\x1b[Z", []inputEvent{k(KeysymTab, ModShift)}},
		{"utf8", "é€", []inputEvent{k(0xe9, 0), k(0x010020ac, 0)}},
		{"kitty ctrl-enter", "\x1b[13;5u", []inputEvent{k(KeysymReturn, ModCtrl)}},
		{"leave", "ab\x1dcd", []inputEvent{k('a', 0), k('b', 0), {kind: evLeave}, k('c', 0), k('d', 0)}},
		{"ctrl-alt-end", "\x1b[1;7F", []inputEvent{{kind: evCAD}}},
		{"ctrl-alt-delete", "\x1b[3;7~", []inputEvent{{kind: evCAD}}},
		{"mouse press", "\x1b[<0;10;5M", []inputEvent{{kind: evMouse, col: 9, row: 4, button: 0}}},
		{"mouse release right", "\x1b[<2;1;1m", []inputEvent{{kind: evMouse, button: 2, release: true}}},
		{"mouse motion", "\x1b[<35;3;4M", []inputEvent{{kind: evMouse, col: 2, row: 3, button: 3, motion: true}}},
		{"wheel ctrl", "\x1b[<81;3;4M", []inputEvent{{kind: evMouse, col: 2, row: 3, button: 65, mods: ModCtrl}}},
		{"focus report ignored", "\x1b[Ia", []inputEvent{k('a', 0)}},
	}
	for _, c := range cases {
		got, rest := parseInput([]byte(c.in), false)
		if len(rest) != 0 {
			t.Errorf("%s: %q left over", c.name, rest)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: event %d = %+v, want %+v", c.name, i, got[i], c.want[i])
			}
		}
	}
}

func TestParseInputSplitSequences(t *testing.T) {
	// A sequence cut between two reads waits for its end.
	evs, rest := parseInput([]byte("a\x1b[1;5"), false)
	if len(evs) != 1 || string(rest) != "\x1b[1;5" {
		t.Fatalf("got %+v rest %q", evs, rest)
	}
	evs, rest = parseInput(append(rest, 'A'), false)
	if len(evs) != 1 || evs[0] != key(KeysymUp, ModCtrl) || len(rest) != 0 {
		t.Fatalf("got %+v rest %q", evs, rest)
	}
	// A lone ESC is held, then counts as Escape once no more input comes.
	evs, rest = parseInput([]byte("\x1b"), false)
	if len(evs) != 0 || len(rest) != 1 {
		t.Fatalf("lone ESC: got %+v rest %q", evs, rest)
	}
	evs, rest = parseInput(rest, true)
	if len(evs) != 1 || evs[0] != key(KeysymEscape, 0) || len(rest) != 0 {
		t.Fatalf("flushed ESC: got %+v rest %q", evs, rest)
	}
	// Half a UTF-8 character waits too.
	evs, rest = parseInput([]byte("\xc3"), false)
	if len(evs) != 0 || len(rest) != 1 {
		t.Fatalf("half rune: got %+v rest %q", evs, rest)
	}
	evs, _ = parseInput(append(rest, 0xa9), false)
	if len(evs) != 1 || evs[0].sym != 0xe9 {
		t.Fatalf("joined rune: got %+v", evs)
	}
}

func TestPressKeyModifiersAndShift(t *testing.T) {
	var calls [][2]uint32
	rec := recorder(func(sym uint32, down bool) {
		d := uint32(0)
		if down {
			d = 1
		}
		calls = append(calls, [2]uint32{sym, d})
	})
	pressKey(rec, 'c', ModCtrl|ModAlt)
	pressKey(rec, ':', 0)
	want := [][2]uint32{
		{KeysymControlL, 1}, {KeysymAltL, 1}, {'c', 1}, {'c', 0}, {KeysymAltL, 0}, {KeysymControlL, 0},
		{KeysymShiftL, 1}, {':', 1}, {':', 0}, {KeysymShiftL, 0},
	}
	if len(calls) != len(want) {
		t.Fatalf("key events %x, want %x", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("key events %x, want %x", calls, want)
		}
	}
}

type recorder func(sym uint32, down bool)

func (r recorder) Key(sym uint32, down bool) error { r(sym, down); return nil }

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestViewerForwardsInputAndLeaves(t *testing.T) {
	v, f := startFakeRFB(t, 800, 600, VNCOptions{})
	f.update(rect{x: 1, enc: EncodingPointerTypeChange}, rect{w: 800, h: 600, enc: EncodingRaw, data: rawPixels(randomFrame(800, 600, 9).Pix)})
	waitUpdate(t, v)
	inR, inW := io.Pipe()
	out := &syncBuffer{}
	vw := &Viewer{VNC: v, Title: "test-vm", Size: func() (int, int) { return 100, 31 }}
	vw.SetStdin(inR)
	vw.SetStdout(out)
	done := make(chan error, 1)
	go func() { done <- vw.Run() }()

	// 800×600 in 100×30 cells: height-bound, 80×30 cells from column 10.
	// Press at the bottom-right cell, drag to the top-left, release; wheel
	// down in the middle; type; Ctrl-Alt-End; leave.
	io.WriteString(inW, "\x1b[<0;90;30M\x1b[<32;11;1M\x1b[<0;11;1m\x1b[<65;51;16M")
	type ptr struct {
		b    Buttons
		x, y int
	}
	want := []ptr{
		{ButtonLeft, 799, 599}, {ButtonLeft, 0, 0}, {0, 0, 0},
		{ButtonWheelDown, 405, 310}, {0, 405, 310},
	}
	for _, w := range want {
		m := f.next(5).body
		got := ptr{Buttons(m[0]), int(binary.BigEndian.Uint16(m[1:])), int(binary.BigEndian.Uint16(m[3:]))}
		if got != w {
			t.Errorf("pointer event %+v, want %+v", got, w)
		}
	}
	io.WriteString(inW, "A\x03")
	wantKeys := []struct {
		sym  uint32
		down bool
	}{
		{KeysymShiftL, true}, {'A', true}, {'A', false}, {KeysymShiftL, false},
		{KeysymControlL, true}, {'c', true}, {'c', false}, {KeysymControlL, false},
		{KeysymControlL, true}, {KeysymAltL, true}, {KeysymDelete, true},
		{KeysymDelete, false}, {KeysymAltL, false}, {KeysymControlL, false},
	}
	io.WriteString(inW, "\x1b[1;7F")
	for _, w := range wantKeys {
		m := f.next(4).body
		if (m[0] == 1) != w.down || binary.BigEndian.Uint32(m[3:]) != w.sym {
			t.Errorf("key event % x, want keysym %#x down=%v", m, w.sym, w.down)
		}
	}
	io.WriteString(inW, "\x1d")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("viewer returned %v after the leave key", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("viewer did not leave on Ctrl-]")
	}
	inW.Close()
	o := out.String()
	if !strings.Contains(o, "\x1b[?1049h") || !strings.HasSuffix(o, "\x1b[?1049l") {
		t.Error("viewer did not switch to the alternate screen and back")
	}
	if !strings.Contains(o, "\x1b[?1006h") || !strings.Contains(o, "\x1b[?1006l") {
		t.Error("viewer did not switch SGR mouse reports on and off")
	}
	if !strings.Contains(o, "test-vm") || !strings.Contains(o, "Ctrl-]") || !strings.Contains(o, "800×600") {
		t.Errorf("status line missing title, size or leave key")
	}
	if strings.Count(o, "▀") < 80*30/2 {
		t.Errorf("viewer drew only %d half blocks", strings.Count(o, "▀"))
	}
	if v.Err() != nil {
		t.Errorf("leaving the viewer ended the session: %v", v.Err())
	}
}

func TestViewerReturnsWhenSessionEnds(t *testing.T) {
	v, f := startFakeRFB(t, 64, 48, VNCOptions{})
	inR, inW := io.Pipe()
	defer inW.Close()
	vw := &Viewer{VNC: v, Size: func() (int, int) { return 80, 24 }}
	vw.SetStdin(inR)
	vw.SetStdout(io.Discard)
	done := make(chan error, 1)
	go func() { done <- vw.Run() }()
	f.conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("viewer returned %v, want ErrSessionEnded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("viewer kept running after the server went away")
	}
}
