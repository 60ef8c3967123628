package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/spinner"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"vlab/emulator"
)

// Options configure Run and New.
type Options struct {
	// Input and Output default to the terminal (stdin/stdout).
	Input  io.Reader
	Output io.Writer
	// Env is the environment the program sees (default os.Environ()).
	Env []string
	// NoColor disables colour; it is also set when NO_COLOR is in Env.
	NoColor bool
	// StatsInterval is how old the CPU%/RSS figures of running machines
	// may get before a key press refreshes them (default 10s). Nothing is
	// polled: everything else arrives through Service.Changes.
	StatsInterval time.Duration
	// FPS is how often Bubble Tea flushes a changed frame to the terminal
	// (default DefaultFPS).
	FPS int
	// VNCCommand, when set, returns the command that opens a machine's
	// graphical console (e.g. `vlab vnc NAME`); the TUI suspends while it
	// runs. When nil the TUI shows the VNC socket and how to connect.
	VNCCommand func(name string) *exec.Cmd
	// NoMouse turns mouse reporting off.
	NoMouse bool
}

// DefaultFPS is the TUI's frame rate. Bubble Tea v2 wakes up at this rate
// even when nothing changed, and on the small VMs vlab is measured on every
// wake-up of a Go program costs ~0.02 % of a core per frame per second
// (bench/RESULTS.md): 5 keeps the idle TUI near nemu's 0.10 % while a key
// still shows within 200 ms.
const DefaultFPS = 5

func (o *Options) defaults() {
	if o.Env == nil {
		o.Env = os.Environ()
	}
	for _, kv := range o.Env {
		if v, ok := strings.CutPrefix(kv, "NO_COLOR="); ok && v != "" {
			o.NoColor = true
		}
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = 10 * time.Second
	}
	if o.FPS <= 0 {
		o.FPS = DefaultFPS
	}
}

// Run runs the TUI until the user quits; running VMs keep running.
func Run(ctx context.Context, svc Service, opts Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts.defaults()
	// The TUI is one event loop woken a few times a second. With one P a
	// wake-up does not also wake a second OS thread to look for work, which
	// cuts the idle CPU by a quarter (bench/RESULTS.md). GOMAXPROCS in the
	// environment still wins.
	if os.Getenv("GOMAXPROCS") == "" {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	}
	m := New(ctx, svc, opts)
	popts := []tea.ProgramOption{
		tea.WithContext(ctx),
		tea.WithEnvironment(opts.Env),
		tea.WithFPS(opts.FPS),
	}
	if opts.Input != nil {
		popts = append(popts, tea.WithInput(opts.Input))
	}
	if opts.Output != nil {
		popts = append(popts, tea.WithOutput(opts.Output))
	}
	if opts.NoColor {
		popts = append(popts, tea.WithColorProfile(colorprofile.ASCII))
	}
	_, err := tea.NewProgram(m, popts...).Run()
	if errors.Is(err, tea.ErrInterrupted) || errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil // interrupted or cancelled: a normal way to leave
	}
	if err != nil {
		return fmt.Errorf("run tui: %w", err)
	}
	return nil
}

// view is one full-screen view besides the main list.
type view interface {
	Init() tea.Cmd
	Update(msg tea.Msg) tea.Cmd
	View() string
	SetSize(w, h int)
	Help() help.KeyMap
}

// status is the status line's message.
type status struct {
	text string
	err  error
}

// job is a running action shown with a spinner or a progress bar.
type job struct {
	id    int
	title string
	p     Progress
}

// Model is the root Bubble Tea model: the main list with its detail pane,
// the views opened from it, dialogs, jobs and the status line.
type Model struct {
	ctx    context.Context
	svc    Service
	opts   Options
	keys   KeyMap
	styles Styles
	help   help.Model

	width, height int

	list      vmList
	listed    bool // a List result arrived
	listing   bool // the first List call is in flight
	selectNew string
	host      HostLimits
	changes   <-chan Change
	getting   map[string]bool // VMs being re-read; true: read once more after
	ticking   bool            // a Stats call is in flight
	statsAt   time.Time       // when the last Stats call started

	filtering bool
	filter    textinput.Model

	view    view
	confirm *confirmDialog
	prompt  *promptDialog
	dialog  *formDialog

	spinner spinner.Model
	bar     progress.Model
	jobs    []job
	nextJob int
	status  status
	quitArm bool

	helpKey, helpText string // helpView's cache

	// execProcess suspends the TUI to run a command in the terminal
	// (tea.ExecProcess; tests replace it to see the command).
	execProcess func(*exec.Cmd, tea.ExecCallback) tea.Cmd
}

// New returns the root model. ctx bounds every service call and the change
// stream.
func New(ctx context.Context, svc Service, opts Options) *Model {
	opts.defaults()
	st := NewStyles(opts.NoColor)
	h := help.New()
	h.Styles = st.Help
	f := newTextInput()
	f.Prompt = "/"
	f.Placeholder = "filter"
	f.CharLimit = 64
	m := &Model{
		ctx:     ctx,
		svc:     svc,
		opts:    opts,
		keys:    DefaultKeyMap(),
		styles:  st,
		help:    h,
		width:   80,
		height:  24,
		filter:  f,
		spinner: spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(st.StatusMsg)),
		bar:     progress.New(progress.WithDefaultBlend(), progress.WithoutPercentage()),

		execProcess: tea.ExecProcess,
	}
	m.changes = svc.Changes(ctx)
	m.layout()
	return m
}

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd {
	m.listing = true
	return tea.Batch(listCmd(m.ctx, m.svc), hostCmd(m.ctx, m.svc), waitChange(m.changes))
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	return m, cmd
}

// update dispatches one message. It is long because it is the one place
// that maps every message type to its handler: each case is a line or
// two, or calls the method that does the work (applyList, applyChanges,
// applyVM, actionDone, handleKey, forward, ...); what no case takes goes to
// the open dialog or view.
func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return nil

	case vmsMsg:
		m.applyList(msg)
		return nil

	case changesMsg:
		return m.applyChanges(msg.changes)

	case vmMsg:
		return m.applyVM(msg)

	case changesClosedMsg:
		m.changes = nil
		return nil

	case statsMsg:
		m.ticking = false
		if msg.err == nil {
			m.mergeStats(msg.stats)
		}
		return nil

	case hostMsg:
		if msg.err == nil {
			m.host = msg.limits
		}
		if m.view != nil { // the wizard and the edit screen bound sizes by it
			return m.view.Update(msg)
		}
		return nil

	case jobProgressMsg:
		for i := range m.jobs {
			if m.jobs[i].id == msg.job {
				m.jobs[i].p = msg.p
			}
		}
		return waitProgress(msg.job, msg.ch)

	case actionDoneMsg:
		return m.actionDone(msg)

	case startJobMsg:
		return m.startJob(msg.js)

	case statusMsg:
		if msg.err != nil {
			m.setErr(msg.err)
		} else {
			m.status = status{text: msg.text}
		}
		return nil

	case spinner.TickMsg:
		if len(m.jobs) == 0 {
			return nil
		}
		var cmd tea.Cmd
		m.spinner, cmd = m.spinner.Update(msg)
		return cmd

	case confirmResultMsg:
		m.confirm = nil
		if msg.run != nil {
			return msg.run()
		}
		return nil

	case promptResultMsg:
		m.prompt = nil
		return msg.run

	case formResultMsg:
		m.dialog = nil
		return msg.run

	case closeViewMsg:
		m.view = nil
		m.layout()
		return nil

	case tea.KeyPressMsg:
		return tea.Batch(m.handleKey(msg), m.refreshStats())

	case tea.MouseClickMsg:
		return m.handleClick(msg)

	case tea.MouseWheelMsg:
		if m.view == nil && m.confirm == nil && m.prompt == nil && m.dialog == nil {
			switch msg.Button {
			case tea.MouseWheelUp:
				m.list.Move(-1)
			case tea.MouseWheelDown:
				m.list.Move(1)
			}
			return nil
		}
	}
	return m.forward(msg)
}

// applyList shows a fresh list of every VM.
func (m *Model) applyList(msg vmsMsg) {
	m.listing = false
	if msg.err != nil {
		m.setErr(fmt.Errorf("list machines: %w", msg.err))
		return
	}
	m.listed = true
	m.list.SetVMs(msg.vms)
	if m.selectNew != "" {
		m.list.Select(m.selectNew)
		m.selectNew = ""
	}
	if v, ok := m.view.(interface{ vmChanged([]VM) }); ok {
		v.vmChanged(msg.vms)
	}
}

// actionDone ends an action's job: its error or success line, what follows
// it, and a re-read of the VM it changed.
func (m *Model) actionDone(msg actionDoneMsg) tea.Cmd {
	m.endJob(msg.job)
	var cmds []tea.Cmd
	if msg.err != nil {
		m.setErr(msg.err)
		if msg.fail != nil {
			cmds = append(cmds, msg.fail(m))
		}
	} else {
		if msg.ok != "" {
			m.status = status{text: msg.ok}
		}
		if msg.then != nil {
			cmds = append(cmds, msg.then(m))
		}
	}
	if msg.name != "" {
		cmds = append(cmds, m.getVM(msg.name))
	}
	return tea.Batch(cmds...)
}

// forward hands a message the root does not handle to the open prompt,
// dialog or view, or to the filter being typed.
func (m *Model) forward(msg tea.Msg) tea.Cmd {
	switch {
	case m.prompt != nil:
		return m.prompt.Update(msg, &m.keys)
	case m.dialog != nil:
		return m.dialog.Update(msg, &m.keys)
	case m.view != nil:
		return m.view.Update(msg)
	case m.filtering:
		var cmd tea.Cmd
		m.filter, cmd = m.filter.Update(msg)
		return cmd
	}
	return nil
}

func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	if _, serial := m.view.(*serialView); msg.String() == "ctrl+c" && !serial {
		return tea.Quit // in the serial console ctrl+c belongs to the guest
	}
	if m.confirm != nil {
		return m.confirm.Update(msg, &m.keys)
	}
	if m.prompt != nil {
		return m.prompt.Update(msg, &m.keys)
	}
	if m.dialog != nil {
		return m.dialog.Update(msg, &m.keys)
	}
	if m.view != nil {
		if key.Matches(msg, m.keys.Help) && !m.viewTakesText() {
			m.help.ShowAll = !m.help.ShowAll
			m.layout()
			return nil
		}
		return m.view.Update(msg)
	}
	if m.filtering {
		return m.filterKey(msg)
	}
	return m.listKey(msg)
}

// filterKey edits the list's filter: enter keeps it, esc clears it.
func (m *Model) filterKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "enter":
		m.filtering = false
		m.filter.Blur()
		return nil
	case "esc":
		m.filtering = false
		m.filter.Blur()
		m.filter.SetValue("")
		m.list.SetFilter("")
		return nil
	}
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(msg)
	m.list.SetFilter(m.filter.Value())
	return cmd
}

// listKey handles a key on the VM list: moving, help, filter, new VM,
// import, quit, or an action on the selected VM.
func (m *Model) listKey(msg tea.KeyPressMsg) tea.Cmd {
	if !key.Matches(msg, m.keys.Quit) {
		m.quitArm = false
	}
	k := &m.keys
	switch {
	case key.Matches(msg, k.Quit):
		if len(m.jobs) > 0 && !m.quitArm {
			m.quitArm = true
			m.status = status{text: "a job is still running: press q again to quit and cancel it"}
			return nil
		}
		return tea.Quit
	case key.Matches(msg, k.Up):
		m.list.Move(-1)
	case key.Matches(msg, k.Down):
		m.list.Move(1)
	case key.Matches(msg, k.PageUp):
		m.list.Move(-m.list.rows())
	case key.Matches(msg, k.PageDown):
		m.list.Move(m.list.rows())
	case key.Matches(msg, k.Top):
		m.list.Top()
	case key.Matches(msg, k.Bottom):
		m.list.Bottom()
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
		m.layout()
	case key.Matches(msg, k.Filter):
		m.filtering = true
		m.layout()
		return m.filter.Focus()
	case key.Matches(msg, k.ClearFilter):
		if m.filter.Value() != "" {
			m.filter.SetValue("")
			m.list.SetFilter("")
		} else {
			m.status = status{}
		}
	case key.Matches(msg, k.New):
		return m.openView(newWizard(m))
	case key.Matches(msg, k.Import):
		m.prompt = m.importPrompt()
	default:
		return m.machineAction(msg)
	}
	return nil
}

// clonePrompt asks for the name of a full or linked clone of name and then
// makes it as a job.
func (m *Model) clonePrompt(ctx context.Context, name string, linked bool) *promptDialog {
	svc := m.svc
	title, suggest := "Clone "+name+" as", name+"-clone"
	if linked {
		title, suggest = "Linked (thin) clone of "+name+" as", name+"-linked"
	}
	return newPrompt(title, "new name", suggest, svc.ValidateName, func(dst string) tea.Cmd {
		ok := "cloned " + name + " to " + dst
		if linked {
			ok = "made " + dst + ", a linked clone of " + name + " (" + name + " cannot be deleted while it exists)"
		}
		return m.startJob(jobSpec{
			title: "cloning " + name + " to " + dst, op: "clone", name: name, ok: ok,
			run:  func(p ProgressFunc) error { return svc.Clone(ctx, name, dst, linked, p) },
			then: func(m *Model) tea.Cmd { m.selectNew = dst; return m.getVM(dst) },
		})
	})
}

func (m *Model) openConsole(vm VM) tea.Cmd {
	if !vm.State.Active() {
		m.setErr(WithFix(fmt.Errorf("console of %q: machine is %s", vm.Name, vm.State), "start it first (s)"))
		return nil
	}
	if vm.Display == emulator.DisplayNone {
		m.setErr(WithFix(fmt.Errorf("console of %q: the machine has no display", vm.Name), "use the serial console (c), or set display to vnc (e)"))
		return nil
	}
	if m.opts.VNCCommand == nil {
		m.status = status{text: fmt.Sprintf("VNC of %s: unix socket %s — connect a VNC viewer to it (e.g. vncviewer %s)", vm.Name, vm.VNC, vm.VNC)}
		return nil
	}
	name := vm.Name
	return tea.ExecProcess(m.opts.VNCCommand(name), func(err error) tea.Msg {
		if err != nil {
			return statusMsg{err: fmt.Errorf("console of %q: %w", name, err)}
		}
		return statusMsg{text: "closed the console of " + name}
	})
}

func (m *Model) handleClick(msg tea.MouseClickMsg) tea.Cmd {
	if m.view != nil || m.confirm != nil || m.prompt != nil || m.dialog != nil || msg.Button != tea.MouseLeft {
		return nil
	}
	lw, _ := m.paneWidths()
	if msg.X >= lw {
		return nil
	}
	// Row 0 is the title bar, row 1 the column header.
	m.list.ClickRow(msg.Y - 2)
	return nil
}

// openView opens a full-screen view.
func (m *Model) openView(v view) tea.Cmd {
	m.view = v
	m.status = status{}
	m.layout()
	return v.Init()
}

// viewTakesText reports whether the open view wants "?" as text.
func (m *Model) viewTakesText() bool {
	switch v := m.view.(type) {
	case *serialView, *monitorView:
		return true
	case *wizard:
		return v.typing()
	case *editView:
		return v.typing()
	}
	return false
}

func (m *Model) anyRunning() bool {
	for i := range m.list.all {
		if m.list.all[i].State == StateRunning {
			return true
		}
	}
	return false
}

func (m *Model) mergeStats(st []Stats) {
	by := make(map[string]Stats, len(st))
	for _, s := range st {
		by[s.Name] = s
	}
	for i := range m.list.all {
		if s, ok := by[m.list.all[i].Name]; ok {
			m.list.all[i].CPUPercent, m.list.all[i].RSSBytes, m.list.all[i].Uptime = s.CPUPercent, s.RSSBytes, s.Uptime
		}
	}
}

// jobSpec describes a job for startJob.
type jobSpec struct {
	title string // footer text while it runs
	op    string // verb for errors ("start")
	name  string // machine
	ok    string // status text on success
	run   func(ProgressFunc) error
	then  func(*Model) tea.Cmd // after success
	fail  func(*Model) tea.Cmd // after failure
}

// startJob runs a job: a spinner (or a bar once progress with a total
// arrives) shows in the footer until it ends with an actionDoneMsg.
func (m *Model) startJob(js jobSpec) tea.Cmd {
	m.nextJob++
	id := m.nextJob
	ch := make(chan Progress, 1)
	first := len(m.jobs) == 0
	m.jobs = append(m.jobs, job{id: id, title: js.title})
	report := func(p Progress) {
		for {
			select {
			case ch <- p:
				return
			default:
				select { // drop the stale report, keep the newest
				case <-ch:
				default:
				}
			}
		}
	}
	run := func() tea.Msg {
		err := js.run(report)
		close(ch)
		if err != nil && fixOf(err) == "" && !strings.Contains(err.Error(), js.name) {
			err = fmt.Errorf("%s %q: %w", js.op, js.name, err)
		}
		return actionDoneMsg{job: id, op: js.op, name: js.name, ok: js.ok, err: err, then: js.then, fail: js.fail}
	}
	m.status = status{}
	cmds := []tea.Cmd{run, waitProgress(id, ch)}
	if first {
		cmds = append(cmds, m.spinner.Tick)
	}
	return tea.Batch(cmds...)
}

// action is startJob for a plain machine operation.
func (m *Model) action(title, op, name, ok string, fn func() error) tea.Cmd {
	return m.startJob(jobSpec{title: title, op: op, name: name, ok: ok, run: func(ProgressFunc) error { return fn() }})
}

func (m *Model) endJob(id int) {
	for i := range m.jobs {
		if m.jobs[i].id == id {
			m.jobs = append(m.jobs[:i], m.jobs[i+1:]...)
			return
		}
	}
}

func (m *Model) setErr(err error) {
	m.status = status{err: err}
}

// paneWidths splits the width between the list and the detail pane.
func (m *Model) paneWidths() (list, detail int) {
	detail = 38
	if m.width >= 100 {
		detail = m.width * 2 / 5
	}
	return max(20, m.width-detail), detail
}

// footerHeight is the status line plus the help.
func (m *Model) footerHeight() int {
	return 1 + strings.Count(m.helpView(), "\n") + 1
}

func (m *Model) bodyHeight() int {
	return max(3, m.height-1-m.footerHeight())
}

// layout resizes the parts after a size or mode change.
func (m *Model) layout() {
	m.help.SetWidth(m.width)
	lw, _ := m.paneWidths()
	m.list.SetSize(lw-1, m.bodyHeight())
	m.filter.SetWidth(max(10, m.width/3))
	if m.view != nil {
		m.view.SetSize(m.width, m.bodyHeight())
	}
}

func (m *Model) helpKeys() help.KeyMap {
	switch {
	case m.confirm != nil:
		return bindings{short: []key.Binding{m.keys.Yes, m.keys.No}}
	case m.prompt != nil:
		return bindings{short: []key.Binding{key.NewBinding(key.WithHelp("enter", "ok")), key.NewBinding(key.WithHelp("esc", "cancel"))}}
	case m.dialog != nil:
		return bindings{short: []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "ok")), m.keys.NextField, m.keys.Cycle, key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))}}
	case m.view != nil:
		return m.view.Help()
	case m.filtering:
		return bindings{short: []key.Binding{key.NewBinding(key.WithHelp("enter", "keep filter")), key.NewBinding(key.WithHelp("esc", "clear filter"))}}
	}
	return m.keys.listHelp()
}

// helpView renders the key help, cached: it only changes with the keys on
// offer, the width and the ? toggle, and styling it costs more than the
// rest of a frame.
func (m *Model) helpView() string {
	km := m.helpKeys()
	var k strings.Builder
	fmt.Fprintf(&k, "%v|%d|", m.help.ShowAll, m.width)
	add := func(bs []key.Binding) {
		for _, b := range bs {
			h := b.Help()
			fmt.Fprintf(&k, "%s\x00%s\x00%v\x01", h.Key, h.Desc, b.Enabled())
		}
		k.WriteByte(2)
	}
	if m.help.ShowAll {
		for _, g := range km.FullHelp() {
			add(g)
		}
	} else {
		add(km.ShortHelp())
	}
	if key := k.String(); key != m.helpKey {
		m.helpKey, m.helpText = key, m.help.View(km)
	}
	return m.helpText
}

// View implements tea.Model.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "vlab"
	if !m.opts.NoMouse {
		v.MouseMode = tea.MouseModeCellMotion
	}
	return v
}

// Render returns the screen as a string (View without the terminal
// settings); tests and the benchmark use it.
func (m *Model) Render() string {
	helpV := m.helpView()
	bodyH := max(3, m.height-2-strings.Count(helpV, "\n")-1)
	var body string
	if m.view != nil {
		body = fitBlock(m.view.View(), m.width, bodyH)
	} else {
		body = m.mainBody(bodyH) // exactly width×bodyH already
	}
	switch {
	case m.confirm != nil:
		body = overlay(body, m.confirm.View(&m.styles, m.width), m.width, bodyH)
	case m.prompt != nil:
		body = overlay(body, m.prompt.View(&m.styles, m.width), m.width, bodyH)
	case m.dialog != nil:
		body = overlay(body, m.dialog.View(&m.styles, m.width), m.width, bodyH)
	}
	return m.titleBar() + "\n" + body + "\n" + m.statusLine() + "\n" + helpV
}

func (m *Model) mainBody(h int) string {
	lw, dw := m.paneWidths()
	var left string
	switch {
	case !m.listed:
		left = m.styles.Muted.Render("loading machines…")
	case len(m.list.all) == 0:
		left = m.styles.Muted.Render("No machines yet. Press n to create one.")
	case m.list.Len() == 0:
		left = m.styles.Muted.Render(fmt.Sprintf("No machine matches %q. Press esc to clear the filter.", m.list.filter))
	}
	if m.list.Len() == 0 || !m.listed {
		left = fitBlock(left, lw, h)
	} else {
		left = m.list.View(&m.styles) // exactly (lw-1)×h
		left = strings.ReplaceAll(left, "\n", " \n") + " "
	}
	var sel *VM
	if vm, ok := m.list.Selected(); ok {
		sel = &vm
	}
	right := renderDetail(sel, dw, h, &m.styles)
	ll, rl := strings.Split(left, "\n"), strings.Split(right, "\n")
	var b strings.Builder
	for i := 0; i < h; i++ {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(ll[i])
		if i < len(rl) {
			b.WriteString(rl[i])
		}
	}
	return b.String()
}

func (m *Model) titleBar() string {
	st := &m.styles
	running, paused := 0, 0
	for i := range m.list.all {
		switch m.list.all[i].State {
		case StateRunning:
			running++
		case StatePaused:
			paused++
		}
	}
	left := st.Title.Render("vlab")
	if v, ok := m.view.(interface{ Title() string }); ok && m.view != nil {
		left += " " + st.Muted.Render("›") + " " + st.Bold.Render(v.Title())
	} else {
		counts := fmt.Sprintf("  %d machines · %d running", len(m.list.all), running)
		if paused > 0 {
			counts += fmt.Sprintf(" · %d paused", paused)
		}
		left += st.Muted.Render(counts)
	}
	right := ""
	if m.host.CPUs > 0 {
		right = st.Muted.Render(fmt.Sprintf("host %d CPUs · %s RAM · %s free", m.host.CPUs, fmtBytes(int64(m.host.MemoryMiB)<<20), fmtBytes(m.host.FreeDiskBytes)))
	}
	if m.view == nil && (m.filtering || m.filter.Value() != "") {
		if m.filtering {
			right = m.filter.View()
		} else {
			right = st.Filter.Render("filter: " + m.filter.Value())
		}
	}
	gap := m.width - ansiWidth(left) - ansiWidth(right)
	if gap < 1 {
		return fit(left, m.width)
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *Model) statusLine() string {
	st := &m.styles
	if len(m.jobs) > 0 && !m.quitArm {
		j := m.jobs[len(m.jobs)-1]
		title := j.title
		if j.p.Step != "" {
			title += ": " + j.p.Step
		}
		if j.p.Total > 0 {
			pct := float64(j.p.Done) / float64(j.p.Total)
			barW := min(30, max(10, m.width/4))
			m.bar.SetWidth(barW)
			bar := m.bar.ViewAs(pct)
			text := fit(title, max(1, m.width-barW-8))
			return text + " " + bar + fmt.Sprintf(" %3.0f%%", pct*100)
		}
		return fit(m.spinner.View()+" "+title+"…", m.width)
	}
	if m.status.err != nil {
		// The fix is the useful part: shorten the error before the fix.
		msg := "✗ " + m.status.err.Error()
		fix := fixOf(m.status.err)
		if fix == "" {
			return fit(st.StatusErr.Render(ansi.Truncate(msg, m.width, "…")), m.width)
		}
		fix = " — fix: " + fix
		fixW := min(ansiWidth(fix), m.width/2)
		return fit(st.StatusErr.Render(ansi.Truncate(msg, max(1, m.width-fixW), "…"))+st.Fix.Render(ansi.Truncate(fix, fixW, "…")), m.width)
	}
	if m.status.text != "" {
		return fit(st.StatusMsg.Render(m.status.text), m.width)
	}
	return strings.Repeat(" ", m.width)
}

// fitBlock makes s exactly w×h cells.
func fitBlock(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	return strings.Join(lines, "\n")
}

func ansiWidth(s string) int { return cellWidth(s) }
