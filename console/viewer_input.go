package console

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Mod is a set of keyboard modifiers.
type Mod uint8

// Modifiers, with the bit values xterm uses in its modifier parameter
// (minus one).
const (
	ModShift Mod = 1 << iota
	ModAlt
	ModCtrl
	ModSuper
)

// X keysyms of the keys a terminal can report.
const (
	KeysymBackSpace = 0xff08
	KeysymTab       = 0xff09
	KeysymReturn    = 0xff0d
	KeysymEscape    = 0xff1b
	KeysymHome      = 0xff50
	KeysymLeft      = 0xff51
	KeysymUp        = 0xff52
	KeysymRight     = 0xff53
	KeysymDown      = 0xff54
	KeysymPageUp    = 0xff55
	KeysymPageDown  = 0xff56
	KeysymEnd       = 0xff57
	KeysymInsert    = 0xff63
	KeysymF1        = 0xffbe // F2..F12 follow
	KeysymSuperL    = 0xffeb
)

// LeaveKey is the byte that leaves the built-in viewer: Ctrl-], as for the
// serial console (DetachKey).
const LeaveKey = DetachKey

// ViewerHelp says how to use the built-in viewer, in one line.
const ViewerHelp = "Ctrl-] leaves the viewer · Ctrl-Alt-End sends Ctrl-Alt-Del · the mouse is the guest's pointer"

// evKind is what an input event is.
type evKind int

const (
	evKey   evKind = iota + 1
	evMouse        // a terminal mouse report
	evLeave        // the leave key
	evCAD          // send Ctrl-Alt-Del
)

// inputEvent is one thing the user did in the terminal.
type inputEvent struct {
	kind evKind
	sym  uint32 // evKey: X keysym
	mods Mod    // evKey, evMouse: modifiers held
	// evMouse (SGR reports), 0-based cell
	col, row int
	button   int  // 0 left, 1 middle, 2 right, 3 none; 64/65 wheel up/down
	release  bool // the button went up
	motion   bool // the pointer moved (with or without buttons held)
}

// parseInput splits terminal input into events. It returns the bytes of an
// incomplete sequence at the end (an escape sequence cut between two reads)
// to be passed again with the next input; when flush is set (no more input
// came for a moment) it resolves them instead: a lone ESC is the Escape key.
func parseInput(b []byte, flush bool) (evs []inputEvent, rest []byte) {
	for len(b) > 0 {
		ev, n := parseOne(b, flush)
		if n == 0 {
			return evs, b
		}
		if ev.kind != 0 {
			evs = append(evs, ev)
		}
		b = b[n:]
	}
	return evs, nil
}

// parseOne parses the event at the start of b and returns it with the
// number of bytes it used; n == 0 means b holds only the start of one.
// An event with kind 0 is input that means nothing to the guest.
func parseOne(b []byte, flush bool) (inputEvent, int) {
	c := b[0]
	switch {
	case c == LeaveKey:
		return inputEvent{kind: evLeave}, 1
	case c == 0x1b:
		if len(b) == 1 {
			if flush {
				return key(KeysymEscape, 0), 1
			}
			return inputEvent{}, 0
		}
		switch b[1] {
		case '[':
			ev, n := parseCSI(b)
			if n == 0 && flush {
				return key('[', ModAlt), 2
			}
			return ev, n
		case 'O':
			if len(b) == 2 {
				if flush {
					return key('O', ModAlt|ModShift), 2
				}
				return inputEvent{}, 0
			}
			return ss3(b[2]), 3
		case 0x1b:
			return key(KeysymEscape, 0), 1
		}
		// ESC before a key is Alt with that key.
		ev, n := parseOne(b[1:], flush)
		if n == 0 {
			return inputEvent{}, 0
		}
		if ev.kind == evKey {
			ev.mods |= ModAlt
		}
		return ev, n + 1
	case c < 0x20 || c == 0x7f:
		return controlKey(c), 1
	case c < 0x80:
		return key(uint32(c), 0), 1
	}
	if !utf8.FullRune(b) {
		if flush {
			return inputEvent{}, len(b)
		}
		return inputEvent{}, 0
	}
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError {
		return inputEvent{}, n
	}
	return key(runeKeysym(r), 0), n
}

func key(sym uint32, mods Mod) inputEvent { return inputEvent{kind: evKey, sym: sym, mods: mods} }

// controlKey maps a C0 control byte (or DEL) to the key combination that
// types it.
func controlKey(c byte) inputEvent {
	switch c {
	case 0x7f:
		return key(KeysymBackSpace, 0)
	case 0x08:
		return key(KeysymBackSpace, ModCtrl)
	case 0x09:
		return key(KeysymTab, 0)
	case 0x0d:
		return key(KeysymReturn, 0)
	case 0x00:
		return key(' ', ModCtrl)
	case 0x1c:
		return key('\\', ModCtrl)
	case 0x1e:
		return key('6', ModCtrl)
	case 0x1f:
		return key('-', ModCtrl)
	}
	return key(uint32('a'+c-1), ModCtrl)
}

// runeKeysym returns the X keysym that types r: Latin-1 characters are
// their own keysym, others are 0x01000000 plus the code point.
func runeKeysym(r rune) uint32 {
	if (r >= 0x20 && r < 0x7f) || (r >= 0xa0 && r <= 0xff) {
		return uint32(r)
	}
	return 0x01000000 | uint32(r)
}

// parseCSI parses ESC [ ... ; b[0:2] is "\x1b[".
func parseCSI(b []byte) (inputEvent, int) {
	i := 2
	for i < len(b) && b[i] >= 0x20 && b[i] <= 0x3f {
		i++
	}
	if i >= len(b) {
		return inputEvent{}, 0
	}
	final := b[i]
	if final < 0x40 || final > 0x7e {
		return inputEvent{}, i // not a CSI sequence after all: drop it
	}
	params := string(b[2:i])
	n := i + 1
	if strings.HasPrefix(params, "<") && (final == 'M' || final == 'm') {
		return sgrMouse(params[1:], final == 'm'), n
	}
	if params == "" && final == 'M' {
		// An X10 mouse report (ESC [ M b x y); vlab asks for SGR reports,
		// so skip one if a terminal sends it anyway.
		if len(b) < n+3 {
			return inputEvent{}, 0
		}
		return inputEvent{}, n + 3
	}
	p := strings.Split(params, ";")
	num := func(k int) int {
		if k >= len(p) {
			return 0
		}
		v, _ := strconv.Atoi(strings.SplitN(p[k], ":", 2)[0])
		return v
	}
	mods := Mod(0)
	if m := num(1); m > 1 {
		mods = Mod(m - 1)
	}
	var sym uint32
	switch final {
	case 'Z':
		return key(KeysymTab, ModShift), n
	case 'u': // CSI codepoint ; modifiers u (fixterms, kitty)
		sym = codepointKeysym(num(0))
	case '~':
		sym = tildeKeys[num(0)]
	default:
		sym = csiFinalKeys[final] // 0: focus reports, replies: nothing for the guest
	}
	if sym == 0 {
		return inputEvent{}, n
	}
	if mods&(ModCtrl|ModAlt) == ModCtrl|ModAlt && (sym == KeysymEnd || sym == KeysymDelete) {
		return inputEvent{kind: evCAD}, n
	}
	return key(sym, mods), n
}

// csiFinalKeys are the keys of CSI sequences told by their final byte
// (xterm cursor keys, Home/End, F1-F4).
var csiFinalKeys = map[byte]uint32{
	'A': KeysymUp, 'B': KeysymDown, 'C': KeysymRight, 'D': KeysymLeft,
	'H': KeysymHome, 'F': KeysymEnd,
	'P': KeysymF1, 'Q': KeysymF1 + 1, 'R': KeysymF1 + 2, 'S': KeysymF1 + 3,
}

// tildeKeys are the keys of CSI number ~ sequences (VT220 editing keys,
// F1-F12).
var tildeKeys = map[int]uint32{
	1: KeysymHome, 7: KeysymHome, 2: KeysymInsert, 3: KeysymDelete,
	4: KeysymEnd, 8: KeysymEnd, 5: KeysymPageUp, 6: KeysymPageDown,
	11: KeysymF1, 12: KeysymF1 + 1, 13: KeysymF1 + 2, 14: KeysymF1 + 3, 15: KeysymF1 + 4,
	17: KeysymF1 + 5, 18: KeysymF1 + 6, 19: KeysymF1 + 7, 20: KeysymF1 + 8, 21: KeysymF1 + 9,
	23: KeysymF1 + 10, 24: KeysymF1 + 11,
}

// codepointKeysym maps the codepoint of a CSI u sequence (fixterms, kitty)
// to a keysym (0: none).
func codepointKeysym(cp int) uint32 {
	switch cp {
	case 13:
		return KeysymReturn
	case 9:
		return KeysymTab
	case 27:
		return KeysymEscape
	case 127:
		return KeysymBackSpace
	}
	if cp <= 0 {
		return 0
	}
	return runeKeysym(rune(cp))
}

// ss3 maps ESC O <c> (keypad application mode, F1-F4).
func ss3(c byte) inputEvent {
	switch c {
	case 'A':
		return key(KeysymUp, 0)
	case 'B':
		return key(KeysymDown, 0)
	case 'C':
		return key(KeysymRight, 0)
	case 'D':
		return key(KeysymLeft, 0)
	case 'H':
		return key(KeysymHome, 0)
	case 'F':
		return key(KeysymEnd, 0)
	case 'M':
		return key(KeysymReturn, 0)
	case 'P', 'Q', 'R', 'S':
		return key(KeysymF1+uint32(c-'P'), 0)
	}
	return inputEvent{}
}

// sgrMouse parses the "b;x;y" of an SGR mouse report (x, y 1-based).
func sgrMouse(params string, release bool) inputEvent {
	p := strings.Split(params, ";")
	if len(p) != 3 {
		return inputEvent{}
	}
	b, err1 := strconv.Atoi(p[0])
	x, err2 := strconv.Atoi(p[1])
	y, err3 := strconv.Atoi(p[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return inputEvent{}
	}
	ev := inputEvent{kind: evMouse, col: x - 1, row: y - 1, release: release}
	if b&4 != 0 {
		ev.mods |= ModShift
	}
	if b&8 != 0 {
		ev.mods |= ModAlt
	}
	if b&16 != 0 {
		ev.mods |= ModCtrl
	}
	ev.motion = b&32 != 0
	switch {
	case b&64 != 0:
		ev.button = 64 + b&3
	default:
		ev.button = b & 3
	}
	return ev
}

// needsShift says whether typing keysym on a US keyboard takes Shift.
// QEMU turns keysyms into scancodes with its keymap, and for most symbols
// it presses no Shift of its own: a client that does not hold Shift gets
// "4" for "$".
func needsShift(sym uint32) bool {
	if sym >= 'A' && sym <= 'Z' {
		return true
	}
	return sym < 0x80 && strings.IndexByte(`~!@#$%^&*()_+{}|:"<>?`, byte(sym)) >= 0
}

// keySender is what key presses are sent to (a *VNC).
type keySender interface {
	Key(keysym uint32, down bool) error
}

// modKeys are the modifier keys pressed for a Mod, in press order.
var modKeys = []struct {
	mod Mod
	sym uint32
}{{ModCtrl, KeysymControlL}, {ModAlt, KeysymAltL}, {ModShift, KeysymShiftL}, {ModSuper, KeysymSuperL}}

// pressKey types one key with modifiers: modifiers down, key down and up,
// modifiers up.
func pressKey(s keySender, sym uint32, mods Mod) error {
	if needsShift(sym) {
		mods |= ModShift
	}
	for _, m := range modKeys {
		if mods&m.mod != 0 {
			if err := s.Key(m.sym, true); err != nil {
				return err
			}
		}
	}
	if err := s.Key(sym, true); err != nil {
		return err
	}
	if err := s.Key(sym, false); err != nil {
		return err
	}
	for i := len(modKeys) - 1; i >= 0; i-- {
		if mods&modKeys[i].mod != 0 {
			if err := s.Key(modKeys[i].sym, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// Type types text into the guest as key presses (US layout), "\n" as
// Return.
func (v *VNC) Type(text string) error {
	for _, r := range text {
		sym := runeKeysym(r)
		switch r {
		case '\n', '\r':
			sym = KeysymReturn
		case '\t':
			sym = KeysymTab
		}
		if err := pressKey(v, sym, 0); err != nil {
			return err
		}
	}
	return nil
}
