package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"

	"vlab/emulator"
)

const (
	// traceTailBytes is how much of the trace log's end the monitor view
	// reads; it shows the last lines that fit.
	traceTailBytes = 64 << 10
	// maxMonitorHistory bounds the lines ↑ recalls.
	maxMonitorHistory = 500
	// hmpPrompt is QEMU's monitor prompt, before the command line and
	// before each command in the transcript.
	hmpPrompt = "(qemu) "
)

// monitorView is QEMU's human monitor (HMP) of a running machine, over
// QMP: a command line with history (↑/↓) and Tab completion of command
// names, the transcript in a scrollable viewport, the tail of the
// machine's trace log under it (what `vlab trace` turned on; ctrl+t hides
// it, ctrl+r re-reads it, and it is re-read after every command: nothing
// polls), and keys that run the info commands students use most. Commands
// run in tea.Cmds, one at a time; esc closes the view, the machine keeps
// running.
type monitorView struct {
	m    *Model
	name string
	in   textinput.Model
	vp   viewport.Model
	term lineTerm // the transcript

	history []string // typed lines, oldest first
	hist    int      // where ↑/↓ are in history; len(history): the line being typed
	draft   string   // the line being typed when ↑ was first pressed

	running string // the command line in flight, "" when none
	err     error  // the last error, shown as one line
	hint    string // completion candidates, shown as one line

	showTrace bool
	trace     []string // the trace log's last lines
	traceRead bool     // a TraceTail answer arrived
	traceErr  error

	width, height int
}

type (
	// hmpDoneMsg carries the answer to one monitor command line.
	hmpDoneMsg struct {
		v    *monitorView
		line string
		out  string
		err  error
	}
	// traceTailMsg carries the end of the trace log.
	traceTailMsg struct {
		v    *monitorView
		text string
		err  error
	}
)

func newMonitorView(m *Model, name string) *monitorView {
	v := &monitorView{m: m, name: name, vp: viewport.New(), in: newTextInput(), showTrace: true}
	v.in.Prompt = hmpPrompt
	v.in.Placeholder = "info status — tab completes, ↑ recalls"
	v.in.CharLimit = 1024
	v.in.KeyMap.AcceptSuggestion.SetEnabled(false)
	v.in.KeyMap.NextSuggestion.SetEnabled(false)
	v.in.KeyMap.PrevSuggestion.SetEnabled(false)
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
func (v *monitorView) Title() string { return "QEMU monitor of " + v.name }

func (v *monitorView) Init() tea.Cmd {
	return tea.Batch(v.in.Focus(), v.readTrace())
}

func (v *monitorView) SetSize(w, h int) {
	v.width, v.height = w, max(1, h)
	v.in.SetWidth(max(10, w-len(hmpPrompt)-1))
	v.vp.SetWidth(w)
	v.fit()
}

func (v *monitorView) Help() help.KeyMap {
	k := &v.m.keys
	return bindings{short: []key.Binding{
		k.Back, k.RunLine, k.Complete, k.HistoryPrev, k.ToggleTrace,
		key.NewBinding(key.WithKeys("pgup", "pgdown"), key.WithHelp("pgup/pgdn", "scroll")),
		k.ReloadTrace,
	}}
}

// vmChanged notes that the machine stopped: the monitor went with it.
func (v *monitorView) vmChanged(vms []VM) {
	for _, vm := range vms {
		if vm.Name == v.name && !vm.State.Active() {
			v.err = fmt.Errorf("%s is %s: its monitor is gone", v.name, vm.State)
			v.fit()
		}
	}
}

// run sends one command line to the monitor.
func (v *monitorView) run(line string) tea.Cmd {
	line = strings.TrimSpace(line)
	switch line {
	case "":
		return nil
	case "quit", "q", "exit": // as in `vlab monitor`: leave, never QEMU's quit
		return v.close()
	}
	if v.running != "" {
		v.err = fmt.Errorf("%q is still running: wait for its answer", v.running)
		return nil
	}
	v.running, v.err, v.hint = line, nil, ""
	v.term.Write([]byte(hmpPrompt + line + "\n"))
	v.refresh(-1)
	ctx, svc, name := v.m.ctx, v.m.svc, v.name
	return func() tea.Msg {
		out, err := svc.HMP(ctx, name, line)
		return hmpDoneMsg{v: v, line: line, out: out, err: err}
	}
}

// readTrace re-reads the end of the trace log.
func (v *monitorView) readTrace() tea.Cmd {
	if !v.showTrace {
		return nil
	}
	ctx, svc, name := v.m.ctx, v.m.svc, v.name
	return func() tea.Msg {
		text, err := svc.TraceTail(ctx, name, traceTailBytes)
		return traceTailMsg{v: v, text: text, err: err}
	}
}

func (v *monitorView) close() tea.Cmd {
	return func() tea.Msg { return closeViewMsg{} }
}

// remember adds a typed line to the history.
func (v *monitorView) remember(line string) {
	if n := len(v.history); n == 0 || v.history[n-1] != line {
		v.history = append(v.history, line)
		if len(v.history) > maxMonitorHistory {
			v.history = v.history[len(v.history)-maxMonitorHistory:]
		}
	}
	v.hist, v.draft = len(v.history), ""
}

// recall moves through the history: -1 older, +1 newer (past the newest:
// the line that was being typed).
func (v *monitorView) recall(step int) {
	if v.hist == len(v.history) {
		v.draft = v.in.Value()
	}
	i := v.hist + step
	if i < 0 || i > len(v.history) {
		return
	}
	v.hist = i
	if i == len(v.history) {
		v.in.SetValue(v.draft)
	} else {
		v.in.SetValue(v.history[i])
	}
	v.in.CursorEnd()
}

func (v *monitorView) Update(msg tea.Msg) tea.Cmd {
	cmd := v.update(msg)
	v.fit()
	return cmd
}

func (v *monitorView) update(msg tea.Msg) tea.Cmd {
	k := &v.m.keys
	switch msg := msg.(type) {
	case hmpDoneMsg:
		if msg.v != v {
			return nil
		}
		v.running = ""
		start := len(v.term.Lines()) - 1 // the empty line after the prompt
		if msg.err != nil {
			v.err = msg.err
		} else {
			out := strings.ReplaceAll(msg.out, "\r\n", "\n")
			if out != "" && !strings.HasSuffix(out, "\n") {
				out += "\n"
			}
			v.term.Write([]byte(out))
		}
		v.refresh(start)
		return v.readTrace()
	case traceTailMsg:
		if msg.v != v {
			return nil
		}
		v.traceRead, v.traceErr = true, msg.err
		if msg.err == nil {
			v.trace = traceLines(msg.text)
		}
		return nil
	case tea.KeyPressMsg:
		for _, s := range k.MonitorShortcuts {
			if key.Matches(msg, s.Key) {
				return v.run(s.Line)
			}
		}
		switch {
		case key.Matches(msg, k.Back):
			return v.close()
		case key.Matches(msg, k.RunLine):
			line := strings.TrimSpace(v.in.Value())
			if line != "" && v.running == "" {
				v.remember(line)
				v.in.SetValue("")
			}
			return v.run(line)
		case key.Matches(msg, k.HistoryPrev):
			v.recall(-1)
			return nil
		case key.Matches(msg, k.HistoryNext):
			v.recall(1)
			return nil
		case key.Matches(msg, k.Complete):
			line, cands := completeHMP(v.in.Value())
			v.in.SetValue(line)
			v.in.CursorEnd()
			v.hint = strings.Join(cands, "  ")
			return nil
		case key.Matches(msg, k.ToggleTrace):
			v.showTrace = !v.showTrace
			return v.readTrace()
		case key.Matches(msg, k.ReloadTrace):
			return v.readTrace()
		}
		switch msg.String() {
		case "pgup", "pgdown", "shift+up", "shift+down":
			var cmd tea.Cmd
			v.vp, cmd = v.vp.Update(msg)
			return cmd
		}
		v.hint = ""
	case tea.MouseWheelMsg:
		var cmd tea.Cmd
		v.vp, cmd = v.vp.Update(msg)
		return cmd
	}
	var cmd tea.Cmd
	v.in, cmd = v.in.Update(msg)
	return cmd
}

// traceLines splits the trace log's end into lines, dropping a line cut
// by the tail and the empty one after the last newline.
func traceLines(text string) []string {
	if len(text) >= traceTailBytes {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	text = strings.TrimRight(strings.ReplaceAll(text, "\r", ""), "\n")
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}

// completeHMP completes the word being typed at the end of line: the
// command name, or the topic after "info". One match is completed with a
// space after it; several complete to their longest common prefix and are
// returned to be shown.
func completeHMP(line string) (string, []string) {
	head, word, words := "", strings.TrimLeft(line, " "), emulator.HMPCommands
	if i := strings.IndexByte(word, ' '); i >= 0 {
		cmd, rest := word[:i], strings.TrimLeft(word[i:], " ")
		if cmd != "info" || strings.Contains(rest, " ") {
			return line, nil // arguments: nothing to complete from a fixed list
		}
		head, word, words = "info ", rest, emulator.HMPInfoTopics
	}
	var match []string
	for _, w := range words {
		if strings.HasPrefix(w, word) {
			match = append(match, w)
		}
	}
	switch len(match) {
	case 0:
		return line, nil
	case 1:
		return head + match[0] + " ", nil
	}
	common := match[0]
	for _, w := range match[1:] {
		for !strings.HasPrefix(w, common) {
			common = common[:len(common)-1]
		}
	}
	return head + common, match
}

// traceRows is how many trace log lines show under the transcript: the
// lines there are, up to a third of the view.
func (v *monitorView) traceRows() int {
	if !v.showTrace {
		return 0
	}
	return max(1, min(len(v.trace), 12, v.height/3))
}

// fit gives the transcript what the other parts leave: the trace log (a
// header and its rows), the error or hint line, the command line and the
// shortcut line.
func (v *monitorView) fit() {
	h := v.height - 2
	if tr := v.traceRows(); tr > 0 {
		h -= tr + 1
	}
	if v.running != "" || v.err != nil || v.hint != "" {
		h--
	}
	atBottom := v.vp.AtBottom()
	v.vp.SetHeight(max(1, h))
	if atBottom {
		v.vp.GotoBottom()
	}
}

// refresh puts the transcript in the viewport and scrolls so that line
// from (the start of the last command) is at the top when the answer is
// longer than the viewport, else to the end; from -1 scrolls to the end.
func (v *monitorView) refresh(from int) {
	lines := v.term.Lines()
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1] // the line the next prompt goes on
	}
	v.vp.SetContentLines(lines)
	v.vp.GotoBottom()
	if from >= 0 && len(lines)-from > v.vp.Height() {
		v.vp.SetYOffset(from)
	}
}

func (v *monitorView) View() string {
	st := &v.m.styles
	var b strings.Builder
	if len(v.term.lines) == 0 && v.running == "" {
		b.WriteString(fitBlock(st.Muted.Render("Type a monitor command (help lists them), or press a key below."), v.width, v.vp.Height()))
	} else {
		b.WriteString(fitBlock(v.vp.View(), v.width, v.vp.Height()))
	}
	if tr := v.traceRows(); tr > 0 {
		head := "── trace.log (ctrl+r re-reads, ctrl+t hides) "
		b.WriteString("\n" + fit(st.Header.Render(head)+st.Muted.Render(strings.Repeat("─", max(0, v.width-cellWidth(head)))), v.width))
		var rows []string
		switch {
		case v.traceErr != nil:
			rows = []string{st.StatusErr.Render("✗ " + oneLine(v.traceErr.Error()))}
		case !v.traceRead:
			rows = []string{st.Muted.Render("reading…")}
		case len(v.trace) == 0:
			rows = []string{st.Muted.Render("empty: `vlab trace " + v.name + " EVENT…` sends QEMU trace events here")}
		default:
			rows = v.trace[max(0, len(v.trace)-tr):]
		}
		b.WriteString("\n" + fitBlock(st.Code.Render(strings.Join(rows, "\n")), v.width, tr))
	}
	switch {
	case v.running != "":
		b.WriteString("\n" + fit(st.Muted.Render("running "+v.running+"…"), v.width))
	case v.err != nil:
		msg := "✗ " + oneLine(v.err.Error())
		if fix := fixOf(v.err); fix != "" {
			msg += " — fix: " + fix
		}
		b.WriteString("\n" + fit(st.StatusErr.Render(msg), v.width))
	case v.hint != "":
		b.WriteString("\n" + fit(st.Muted.Render(v.hint), v.width))
	}
	b.WriteString("\n" + fit(v.in.View(), v.width))
	var keys []string
	for _, s := range v.m.keys.MonitorShortcuts {
		keys = append(keys, st.Help.ShortKey.Render(s.Key.Help().Key)+" "+st.Help.ShortDesc.Render(s.Line))
	}
	b.WriteString("\n" + fit(strings.Join(keys, "  "), v.width))
	return b.String()
}

// oneLine joins a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
