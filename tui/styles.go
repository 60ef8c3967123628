package tui

import (
	"image/color"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	"charm.land/lipgloss/v2"
)

// palette is the small set of semantic colours every style is built from.
type palette struct {
	Accent, Muted, Text, OK, Warn, Bad, Info, SelBg, Border color.Color
}

func defaultPalette() palette {
	return palette{
		Accent: lipgloss.Color("#7D56F4"),
		Muted:  lipgloss.Color("#8A8A8A"),
		Text:   lipgloss.Color("#E4E4E4"),
		OK:     lipgloss.Color("#3FB950"),
		Warn:   lipgloss.Color("#D29922"),
		Bad:    lipgloss.Color("#F85149"),
		Info:   lipgloss.Color("#58A6FF"),
		SelBg:  lipgloss.Color("#3A3A5A"),
		Border: lipgloss.Color("#5A5A7A"),
	}
}

// Styles are all the styles the views use. Views never build styles inline.
type Styles struct {
	NoColor bool

	App       lipgloss.Style // the whole screen
	TitleBar  lipgloss.Style // top line
	Title     lipgloss.Style // "vlab"
	Muted     lipgloss.Style
	Bold      lipgloss.Style
	Label     lipgloss.Style // detail pane labels
	Value     lipgloss.Style
	Header    lipgloss.Style // list column headers
	Selected  lipgloss.Style // selected list row
	Pane      lipgloss.Style // bordered pane
	PaneEdge  lipgloss.Style // the pane's border characters, drawn by hand
	PaneTitle lipgloss.Style
	Dialog    lipgloss.Style // confirm / prompt box
	Danger    lipgloss.Style // text of destructive questions
	StatusOK  lipgloss.Style
	StatusErr lipgloss.Style
	StatusMsg lipgloss.Style
	Fix       lipgloss.Style
	Input     lipgloss.Style // a focused field label
	FieldErr  lipgloss.Style
	Locked    lipgloss.Style // a field that cannot change now
	Code      lipgloss.Style // command lines, logs
	Step      lipgloss.Style // wizard step, inactive
	StepOn    lipgloss.Style // wizard step, active
	Filter    lipgloss.Style

	state map[State]lipgloss.Style
	Help  help.Styles
}

// NewStyles builds the styles. With noColor no colour is used at all and
// selection is shown in reverse video, so nothing depends on colour.
func NewStyles(noColor bool) Styles {
	p := defaultPalette()
	fg := func(s lipgloss.Style, c color.Color) lipgloss.Style {
		if noColor {
			return s
		}
		return s.Foreground(c)
	}
	base := lipgloss.NewStyle()
	s := Styles{NoColor: noColor}
	s.App = base
	s.TitleBar = base.Bold(true)
	s.Title = fg(base.Bold(true), p.Accent)
	s.Muted = fg(base, p.Muted)
	s.Bold = base.Bold(true)
	s.Label = fg(base, p.Muted)
	s.Value = base
	s.Header = fg(base.Bold(true), p.Muted)
	if noColor {
		s.Selected = base.Reverse(true)
	} else {
		s.Selected = base.Background(p.SelBg).Bold(true)
	}
	border := lipgloss.RoundedBorder()
	s.Pane = base.Border(border).Padding(0, 1)
	s.Dialog = base.Border(border).Padding(0, 2)
	if !noColor {
		s.Pane = s.Pane.BorderForeground(p.Border)
		s.Dialog = s.Dialog.BorderForeground(p.Accent)
	}
	s.PaneEdge = fg(base, p.Border)
	s.PaneTitle = fg(base.Bold(true), p.Accent)
	s.Danger = fg(base.Bold(true), p.Bad)
	s.StatusOK = fg(base, p.OK)
	s.StatusErr = fg(base.Bold(true), p.Bad)
	s.StatusMsg = fg(base, p.Info)
	s.Fix = fg(base, p.Warn)
	s.Input = fg(base.Bold(true), p.Accent)
	s.FieldErr = fg(base, p.Bad)
	s.Locked = fg(base.Faint(true), p.Muted)
	s.Code = base
	s.Step = fg(base, p.Muted)
	s.StepOn = fg(base.Bold(true).Underline(true), p.Accent)
	s.Filter = fg(base.Bold(true), p.Info)
	s.state = map[State]lipgloss.Style{
		StateRunning:  fg(base.Bold(true), p.OK),
		StateStarting: fg(base, p.Info),
		StateStopping: fg(base, p.Info),
		StatePaused:   fg(base, p.Warn),
		StateStopped:  fg(base, p.Muted),
		StateCrashed:  fg(base.Bold(true), p.Bad),
		StateError:    fg(base.Bold(true), p.Bad),
		StateInvalid:  fg(base.Bold(true), p.Bad),
	}
	s.Help = help.Styles{
		Ellipsis:       fg(base, p.Muted),
		ShortKey:       fg(base.Bold(true), p.Text),
		ShortDesc:      fg(base, p.Muted),
		ShortSeparator: fg(base, p.Border),
		FullKey:        fg(base.Bold(true), p.Text),
		FullDesc:       fg(base, p.Muted),
		FullSeparator:  fg(base, p.Border),
	}
	return s
}

// State returns the style of a lifecycle state.
func (s Styles) State(st State) lipgloss.Style {
	if v, ok := s.state[st]; ok {
		return v
	}
	return s.Value
}

// stateIcon is a glyph for each state, so state never depends on colour.
func stateIcon(st State) string {
	switch st {
	case StateRunning:
		return "●"
	case StatePaused:
		return "‖"
	case StateStarting, StateStopping:
		return "◐"
	case StateCrashed, StateError, StateInvalid:
		return "✗"
	default:
		return "○"
	}
}

// newTextInput returns a bubbles textinput with vlab's look and a steady
// (non-blinking) cursor: a blinking cursor would redraw the screen twice a
// second while a form is open.
func newTextInput() textinput.Model {
	p := defaultPalette()
	in := textinput.New()
	s := textinput.DefaultDarkStyles()
	s.Focused.Placeholder = lipgloss.NewStyle().Foreground(p.Muted)
	s.Blurred.Placeholder = s.Focused.Placeholder
	s.Focused.Prompt = lipgloss.NewStyle().Foreground(p.Accent)
	s.Cursor.Blink = false
	in.SetStyles(s)
	return in
}
