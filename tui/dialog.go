package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// confirmDialog asks a yes/no question before a destructive action. Only
// an explicit y runs it; n, esc and every other key cancel nothing and keep
// the dialog, so a stray key never confirms.
type confirmDialog struct {
	title string
	body  string
	yes   func() tea.Cmd // starts the action once confirmed
}

// confirmResultMsg closes the dialog; run is the action (nil = cancelled).
type confirmResultMsg struct{ run func() tea.Cmd }

func (d *confirmDialog) Update(msg tea.Msg, k *KeyMap) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(km, k.Yes):
		run := d.yes
		return func() tea.Msg { return confirmResultMsg{run: run} }
	case key.Matches(km, k.No):
		return func() tea.Msg { return confirmResultMsg{} }
	}
	return nil
}

func (d *confirmDialog) View(st *Styles, maxW int) string {
	w := min(56, max(20, maxW-4))
	body := ansi.Wrap(d.body, w, " ")
	return st.Dialog.Render(st.Danger.Render(d.title) + "\n\n" + body + "\n\n" +
		st.Help.ShortKey.Render("y") + st.Help.ShortDesc.Render(" yes   ") +
		st.Help.ShortKey.Render("n/esc") + st.Help.ShortDesc.Render(" no"))
}

// promptDialog asks for one line of text (a clone's or a snapshot's name).
type promptDialog struct {
	title    string
	input    textinput.Model
	validate func(string) error
	submit   func(string) tea.Cmd
	err      error
}

// promptResultMsg closes the prompt; run is the action (nil = cancelled).
type promptResultMsg struct{ run tea.Cmd }

func newPrompt(title, placeholder, value string, validate func(string) error, submit func(string) tea.Cmd) *promptDialog {
	in := newTextInput()
	in.Placeholder = placeholder
	in.SetValue(value)
	in.CharLimit = 64
	in.SetWidth(40)
	in.Focus()
	p := &promptDialog{title: title, input: in, validate: validate, submit: submit}
	p.check()
	return p
}

func (p *promptDialog) check() {
	p.err = nil
	if p.validate != nil {
		p.err = p.validate(strings.TrimSpace(p.input.Value()))
	}
}

func (p *promptDialog) Update(msg tea.Msg, k *KeyMap) tea.Cmd {
	if km, ok := msg.(tea.KeyPressMsg); ok {
		switch km.String() {
		case "enter":
			p.check()
			if p.err != nil {
				return nil
			}
			run := p.submit(strings.TrimSpace(p.input.Value()))
			return func() tea.Msg { return promptResultMsg{run: run} }
		case "esc":
			return func() tea.Msg { return promptResultMsg{} }
		}
	}
	var cmd tea.Cmd
	p.input, cmd = p.input.Update(msg)
	p.check()
	return cmd
}

func (p *promptDialog) View(st *Styles, maxW int) string {
	w := min(48, max(20, maxW-6))
	p.input.SetWidth(w - 3)
	msg := st.Muted.Render("enter ok · esc cancel")
	if p.err != nil {
		msg = st.FieldErr.Render(ansi.Truncate("✗ "+p.err.Error(), w, "…"))
	}
	return st.Dialog.Render(st.PaneTitle.Render(p.title) + "\n\n" + p.input.View() + "\n" + msg)
}

// formDialog asks for a few values at once (a copy's direction and paths,
// a share's folder, tag and access): a form in a box. enter checks every
// field, then check, and submits; esc cancels.
type formDialog struct {
	title  string
	form   *form
	note   string       // a muted line under the fields, "" for none
	check  func() error // the whole form on enter (nil: none); no I/O
	submit func() tea.Cmd
	err    error
}

// formResultMsg closes the form dialog; run is the action (nil = cancelled).
type formResultMsg struct{ run tea.Cmd }

func (d *formDialog) Update(msg tea.Msg, k *KeyMap) tea.Cmd {
	if km, ok := msg.(tea.KeyPressMsg); ok {
		switch km.String() {
		case "enter":
			d.err = nil
			if !d.form.valid() {
				return nil
			}
			if d.check != nil {
				if d.err = d.check(); d.err != nil {
					return nil
				}
			}
			run := d.submit()
			return func() tea.Msg { return formResultMsg{run: run} }
		case "esc":
			return func() tea.Msg { return formResultMsg{} }
		}
	}
	d.err = nil
	return d.form.Update(msg, k)
}

func (d *formDialog) View(st *Styles, maxW int) string {
	w := min(72, max(30, maxW-6))
	d.form.width = w
	msg := st.Muted.Render("enter ok · tab next field · esc cancel")
	if d.err != nil {
		msg = st.FieldErr.Render(ansi.Truncate("✗ "+d.err.Error(), w, "…"))
	}
	body := st.PaneTitle.Render(d.title) + "\n\n" + d.form.View(st) + "\n"
	if d.note != "" {
		body += "\n" + st.Muted.Render(ansi.Wrap(d.note, w, " "))
	}
	return st.Dialog.Render(body + "\n" + msg)
}

// overlay draws dialog centred over base (w×h cells).
func overlay(base, dialog string, w, h int) string {
	dw, dh := lipgloss.Width(dialog), lipgloss.Height(dialog)
	x, y := max(0, (w-dw)/2), max(0, (h-dh)/2)
	c := lipgloss.NewCanvas(w, h)
	c.Compose(lipgloss.NewCompositor(lipgloss.NewLayer(base), lipgloss.NewLayer(dialog).X(x).Y(y).Z(1)))
	return c.Render()
}
