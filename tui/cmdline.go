package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
)

// textView is a scrollable read-only text page (the qemu command line and
// the qemu.log views share it).
type textView struct {
	m       *Model
	title   string
	vp      viewport.Model
	loaded  bool
	err     error
	content string
	argv    []string       // command line views: formatted to the width
	load    func() tea.Msg // fetches the text; returns a textLoadedMsg
	follow  bool           // scroll to the end after a load
	extra   []key.Binding  // view-specific help
}

// textLoadedMsg carries the text of a textView.
type textLoadedMsg struct {
	v    *textView
	text string
	argv []string // when set, text is built from it at the view's width
	err  error
}

func newTextView(m *Model, title string, follow bool, load func(v *textView) func() tea.Msg) *textView {
	v := &textView{m: m, title: title, follow: follow, vp: viewport.New()}
	v.vp.SoftWrap = true
	v.vp.MouseWheelEnabled = true
	v.load = load(v)
	return v
}

// Title implements the title bar.
func (v *textView) Title() string { return v.title }

func (v *textView) Init() tea.Cmd { return v.load }

func (v *textView) SetSize(w, h int) {
	v.vp.SetWidth(w)
	v.vp.SetHeight(max(1, h))
	if v.argv != nil {
		v.setContent(formatArgv(v.argv, max(20, w)))
	}
}

func (v *textView) setContent(s string) {
	v.content = s
	v.vp.SetContent(s)
}

func (v *textView) Help() help.KeyMap {
	k := &v.m.keys
	short := []key.Binding{k.Back, k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}
	return bindings{short: append(short, v.extra...)}
}

func (v *textView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case textLoadedMsg:
		if msg.v != v {
			return nil
		}
		v.loaded, v.err = true, msg.err
		if msg.err == nil {
			v.argv = msg.argv
			if msg.argv != nil {
				msg.text = formatArgv(msg.argv, max(20, v.vp.Width()))
			}
			v.setContent(msg.text)
			if v.follow {
				v.vp.GotoBottom()
			}
		}
		return nil
	case tea.KeyPressMsg:
		k := &v.m.keys
		switch {
		case key.Matches(msg, k.Back), msg.String() == "q":
			return func() tea.Msg { return closeViewMsg{} }
		case key.Matches(msg, k.Top):
			v.vp.GotoTop()
			return nil
		case key.Matches(msg, k.Bottom):
			v.vp.GotoBottom()
			return nil
		case key.Matches(msg, k.Reload):
			return v.load
		}
	}
	var cmd tea.Cmd
	v.vp, cmd = v.vp.Update(msg)
	return cmd
}

func (v *textView) View() string {
	st := &v.m.styles
	switch {
	case v.err != nil:
		s := st.StatusErr.Render("✗ " + v.err.Error())
		if fix := fixOf(v.err); fix != "" {
			s += "\n" + st.Fix.Render("fix: "+fix)
		}
		return s
	case !v.loaded:
		return st.Muted.Render("loading…")
	case strings.TrimSpace(v.content) == "":
		return st.Muted.Render("(empty)")
	}
	return v.vp.View()
}

// newCmdlineView shows the qemu command line of a machine.
func newCmdlineView(m *Model, name string) *textView {
	ctx, svc := m.ctx, m.svc
	v := newTextView(m, "qemu command line of "+name, false, func(v *textView) func() tea.Msg {
		return func() tea.Msg {
			argv, err := svc.Cmdline(ctx, name)
			return textLoadedMsg{v: v, argv: argv, err: err}
		}
	})
	return v
}

// newLogView shows the end of a machine's qemu.log.
func newLogView(m *Model, name string) *textView {
	ctx, svc := m.ctx, m.svc
	v := newTextView(m, "qemu.log of "+name, true, func(v *textView) func() tea.Msg {
		return func() tea.Msg {
			text, err := svc.LogTail(ctx, name, 256<<10)
			return textLoadedMsg{v: v, text: text, err: err}
		}
	})
	v.extra = []key.Binding{m.keys.Reload}
	return v
}

// shellQuote quotes one argument for a POSIX shell, only when needed.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// formatArgv renders argv as a shell command that can be pasted, breaking
// lines (with " \") only before an option and keeping each option with its
// value. Lines stay within width where the arguments allow.
func formatArgv(argv []string, width int) string {
	if len(argv) == 0 {
		return ""
	}
	// Group each option with the value that follows it.
	var groups []string
	for i := 0; i < len(argv); i++ {
		g := shellQuote(argv[i])
		if strings.HasPrefix(argv[i], "-") && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			g += " " + shellQuote(argv[i+1])
			i++
		}
		groups = append(groups, g)
	}
	var b strings.Builder
	line := groups[0]
	for _, g := range groups[1:] {
		if ansiWidth(line)+1+ansiWidth(g)+2 > width {
			b.WriteString(line + " \\\n")
			line = "  " + g
			continue
		}
		line += " " + g
	}
	b.WriteString(line)
	return b.String()
}
