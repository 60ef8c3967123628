package tui

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"vlab/emulator"
)

// field is one row of a form: a bubbles textinput or a choice between a few
// values. A locked field shows its value and why it cannot change now.
type field struct {
	label    string
	input    textinput.Model
	choices  []string // non-nil: a choice field
	choice   int
	locked   string // why it cannot change now; "" = editable
	hint     string
	validate func(string) error
	err      error
	picker   bool // ctrl+o opens a file picker for it
	hidden   bool
}

func textField(label, value, placeholder string, validate func(string) error) *field {
	in := newTextInput()
	in.Prompt = ""
	in.Placeholder = placeholder
	in.CharLimit = 4096
	in.SetValue(value)
	f := &field{label: label, input: in, validate: validate}
	f.check()
	return f
}

func choiceField(label string, choices []string, value string) *field {
	f := &field{label: label, choices: choices}
	for i, c := range choices {
		if c == value {
			f.choice = i
		}
	}
	return f
}

// Value is the field's current value.
func (f *field) Value() string {
	if f.choices != nil {
		return f.choices[f.choice]
	}
	return strings.TrimSpace(f.input.Value())
}

func (f *field) check() {
	f.err = nil
	if f.validate != nil && f.choices == nil {
		f.err = f.validate(f.Value())
	}
}

// form is a vertical list of fields with one focused.
type form struct {
	fields []*field
	focus  int
	width  int
}

func newForm(fields ...*field) *form {
	f := &form{fields: fields, focus: -1}
	f.move(1)
	return f
}

func (f *form) focusable(i int) bool {
	return i >= 0 && i < len(f.fields) && f.fields[i].locked == "" && !f.fields[i].hidden
}

// move focuses the next (dir 1) or previous (-1) editable field.
func (f *form) move(dir int) {
	start := f.focus
	for i := 1; i <= len(f.fields); i++ {
		j := ((start+dir*i)%len(f.fields) + len(f.fields)) % len(f.fields)
		if start < 0 {
			j = (i - 1) % len(f.fields)
		}
		if f.focusable(j) {
			f.setFocus(j)
			return
		}
	}
}

func (f *form) setFocus(i int) {
	for j, fl := range f.fields {
		if fl.choices != nil {
			continue // choice fields have no text input
		}
		if j == i {
			fl.input.Focus()
		} else {
			fl.input.Blur()
		}
	}
	f.focus = i
}

// current returns the focused field, nil when none.
func (f *form) current() *field {
	if f.focus < 0 || f.focus >= len(f.fields) {
		return nil
	}
	return f.fields[f.focus]
}

// valid reports whether no visible editable field has an error, and
// focuses the first one that has.
func (f *form) valid() bool {
	for i, fl := range f.fields {
		if fl.hidden {
			continue
		}
		fl.check()
		if fl.err != nil && fl.locked == "" {
			f.setFocus(i)
			return false
		}
	}
	return true
}

// Update handles field navigation, choice cycling and typing.
func (f *form) Update(msg tea.Msg, k *KeyMap) tea.Cmd {
	cur := f.current()
	if km, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(km, k.NextField):
			f.move(1)
			return nil
		case key.Matches(km, k.PrevField):
			f.move(-1)
			return nil
		}
		if cur != nil && cur.choices != nil {
			switch km.String() {
			case "left":
				cur.choice = (cur.choice + len(cur.choices) - 1) % len(cur.choices)
			case "right", "space", " ":
				cur.choice = (cur.choice + 1) % len(cur.choices)
			}
			return nil
		}
	}
	if cur == nil || cur.choices != nil {
		return nil
	}
	var cmd tea.Cmd
	cur.input, cmd = cur.input.Update(msg)
	cur.check()
	return cmd
}

const formLabelWidth = 14

// View renders the fields, one per row (plus an error or hint row).
func (f *form) View(st *Styles) string {
	w := max(20, f.width)
	inW := max(8, min(60, w-formLabelWidth-4))
	var b strings.Builder
	for i, fl := range f.fields {
		if fl.hidden {
			continue
		}
		focused := i == f.focus
		marker := "  "
		label := st.Label.Render(fit(fl.label, formLabelWidth))
		if focused {
			marker = st.Input.Render("› ")
			label = st.Input.Render(fit(fl.label, formLabelWidth))
		}
		var val string
		switch {
		case fl.locked != "":
			v := fl.Value()
			if v == "" {
				v = "(none)"
			}
			val = st.Locked.Render(v) + "  " + st.Muted.Render("🔒 "+fl.locked)
		case fl.choices != nil:
			var parts []string
			for j, c := range fl.choices {
				if j == fl.choice {
					parts = append(parts, st.Selected.Render(" "+c+" "))
				} else {
					parts = append(parts, st.Muted.Render(" "+c+" "))
				}
			}
			val = strings.Join(parts, "")
			if focused {
				val += st.Muted.Render("  ←/→")
			}
		default:
			fl.input.SetWidth(inW)
			val = fl.input.View()
		}
		b.WriteString(ansi.Truncate(marker+label+val, w, "…"))
		b.WriteByte('\n')
		switch {
		case fl.err != nil && fl.locked == "":
			b.WriteString(strings.Repeat(" ", formLabelWidth+2) + st.FieldErr.Render(ansi.Truncate("✗ "+fl.err.Error(), w-formLabelWidth-2, "…")))
			b.WriteByte('\n')
		case fl.hint != "" && focused:
			b.WriteString(strings.Repeat(" ", formLabelWidth+2) + st.Muted.Render(ansi.Truncate(fl.hint, w-formLabelWidth-2, "…")))
			b.WriteByte('\n')
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// typing reports whether the focused field takes free text.
func (f *form) typing() bool {
	c := f.current()
	return c != nil && c.choices == nil
}

// intIn returns a validator for an integer between lo and hi (inclusive);
// what names the quantity in the message.
func intIn(what string, lo, hi int, why string) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%s must be a whole number", what)
		}
		if n < lo {
			return fmt.Errorf("%s must be at least %d", what, lo)
		}
		if hi > 0 && n > hi {
			return fmt.Errorf("%s must be at most %d (%s)", what, hi, why)
		}
		return nil
	}
}

// parseForwards parses "2222:22, udp:5353:53, tcp:127.0.0.1:8080:80,
// auto:22"; host port auto (0) is picked at each start.
func parseForwards(s string) ([]emulator.Forward, error) {
	var out []emulator.Forward
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		f := emulator.Forward{Proto: "tcp"}
		fs := strings.Split(part, ":")
		if fs[0] == "tcp" || fs[0] == "udp" {
			f.Proto, fs = fs[0], fs[1:]
		}
		if len(fs) == 3 {
			f.HostAddr, fs = fs[0], fs[1:]
		}
		if len(fs) != 2 {
			return nil, fmt.Errorf("forward %q: write [tcp|udp:][addr:]HOSTPORT|auto:GUESTPORT", part)
		}
		hp, err1 := 0, error(nil)
		if !strings.EqualFold(fs[0], "auto") {
			hp, err1 = strconv.Atoi(fs[0])
			if hp < 1 {
				err1 = errors.New("out of range")
			}
		}
		gp, err2 := strconv.Atoi(fs[1])
		if err1 != nil || err2 != nil || hp > 65535 || gp < 1 || gp > 65535 {
			return nil, fmt.Errorf("forward %q: ports are numbers from 1 to 65535 (host port auto: picked at start)", part)
		}
		f.HostPort, f.GuestPort = hp, gp
		out = append(out, f)
	}
	return out, nil
}

// formatForwards is the inverse of parseForwards.
func formatForwards(fw []emulator.Forward) string {
	var parts []string
	for _, f := range fw {
		s := ""
		if f.Proto != "" && f.Proto != "tcp" {
			s = f.Proto + ":"
		}
		if f.HostAddr != "" && f.HostAddr != "127.0.0.1" {
			s += f.HostAddr + ":"
		}
		host := "auto"
		if f.HostPort != 0 {
			host = strconv.Itoa(f.HostPort)
		}
		parts = append(parts, s+fmt.Sprintf("%s:%d", host, f.GuestPort))
	}
	return strings.Join(parts, ", ")
}
