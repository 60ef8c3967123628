package tui

import (
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// sharesView lists a machine's shared folders as `vlab share list` does
// (tag, host folder, access, the kind the next start serves it with, and
// the command that mounts it in a Linux guest) and adds and removes them.
// Shares change only while the machine is stopped (QEMU cannot add or drop
// one live): on a running machine the view says so and a and d refuse with
// the fix. Removing a share loses no data, so it asks nothing.
type sharesView struct {
	m      *Model
	vm     VM
	shares []ShareView
	loaded bool // a Shares answer arrived
	err    error
	cursor int

	width, height int
}

// sharesMsg carries a Shares answer.
type sharesMsg struct {
	v      *sharesView
	shares []ShareView
	err    error
}

func newSharesView(m *Model, vm VM) *sharesView {
	return &sharesView{m: m, vm: vm}
}

// Title implements the title bar.
func (v *sharesView) Title() string { return "shared folders of " + v.vm.Name }

func (v *sharesView) Init() tea.Cmd { return v.load() }

func (v *sharesView) SetSize(w, h int) { v.width, v.height = w, h }

func (v *sharesView) Help() help.KeyMap {
	k := &v.m.keys
	return bindings{short: []key.Binding{k.AddShare, k.RemoveShare, k.Up, k.Down, k.Reload, k.Back}}
}

// vmChanged follows the machine's state (a start or a stop elsewhere).
func (v *sharesView) vmChanged(vms []VM) {
	for _, vm := range vms {
		if vm.Name == v.vm.Name {
			v.vm = vm
		}
	}
}

// load re-reads the shares.
func (v *sharesView) load() tea.Cmd {
	ctx, svc, name := v.m.ctx, v.m.svc, v.vm.Name
	return func() tea.Msg {
		sh, err := svc.Shares(ctx, name)
		return sharesMsg{v: v, shares: sh, err: err}
	}
}

func (v *sharesView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case sharesMsg:
		if msg.v == v {
			v.shares, v.err, v.loaded = msg.shares, msg.err, true
			v.cursor = min(max(0, v.cursor), max(0, len(v.shares)-1))
		}
		return nil
	case tea.KeyPressMsg:
		k := &v.m.keys
		switch {
		case key.Matches(msg, k.Back), msg.String() == "q":
			return func() tea.Msg { return closeViewMsg{} }
		case key.Matches(msg, k.Up):
			v.cursor = max(0, v.cursor-1)
		case key.Matches(msg, k.Down):
			v.cursor = max(0, min(len(v.shares)-1, v.cursor+1))
		case key.Matches(msg, k.Reload):
			return v.load()
		case key.Matches(msg, k.AddShare):
			return v.add()
		case key.Matches(msg, k.RemoveShare):
			return v.remove()
		}
	}
	return nil
}

// refuseRunning reports (in the status line, with the fix) that shares of
// an active machine cannot change now.
func (v *sharesView) refuseRunning(op string) bool {
	if !v.vm.State.Active() {
		return false
	}
	v.m.setErr(WithFix(fmt.Errorf("%s %q: it is %s, and shared folders change only while it is stopped", op, v.vm.Name, v.vm.State), "stop it first (x)"))
	return true
}

// Share access choices of the add dialog.
const (
	accessRW = "read-write"
	accessRO = "read-only"
)

func (v *sharesView) add() tea.Cmd {
	m, name := v.m, v.vm.Name
	if v.refuseRunning("share a folder with") {
		return nil
	}
	ctx, svc, home := m.ctx, m.svc, m.home()
	dir := textField("Host folder", "", "e.g. ~/project", func(s string) error {
		if s == "" {
			return errors.New("give the folder to share")
		}
		return nil
	})
	dir.err = nil // no error before anything is typed
	tag := textField("Tag", "", "the folder's name", nil)
	access := choiceField("Access", []string{accessRW, accessRO}, accessRW)
	m.dialog = &formDialog{
		title: "Share a folder with " + name,
		form:  newForm(dir, tag, access),
		note:  "The guest mounts it by its tag; machines made from a cloud image mount it at boot at /mnt/TAG. Read-only is enforced on the host.",
		submit: func() tea.Cmd {
			sh := Share{HostDir: absPath(expandHome(dir.Value(), home)), Tag: tag.Value(), ReadOnly: access.Value() == accessRO}
			var got Share
			return startJobCmd(jobSpec{
				title: "sharing " + sh.HostDir + " with " + name, op: "share a folder with", name: name,
				run: func(ProgressFunc) error {
					var err error
					got, err = svc.AddShare(ctx, name, sh)
					return err
				},
				then: func(m *Model) tea.Cmd {
					m.status = status{text: fmt.Sprintf("shared %s with %s as %s%s: applied at its next start", got.HostDir, name, got.Tag, roText(got.ReadOnly))}
					return v.load()
				},
			})
		},
	}
	return nil
}

func (v *sharesView) remove() tea.Cmd {
	if v.cursor < 0 || v.cursor >= len(v.shares) {
		return statusCmd("no shared folder selected", nil)
	}
	if v.refuseRunning("unshare a folder of") {
		return nil
	}
	ctx, svc, name := v.m.ctx, v.m.svc, v.vm.Name
	sh := v.shares[v.cursor].Share
	return startJobCmd(jobSpec{
		title: "unsharing " + sh.Tag + " of " + name, op: "unshare a folder of", name: name,
		ok:   "stopped sharing " + sh.HostDir + " (" + sh.Tag + ") with " + name + ": the folder itself is untouched",
		run:  func(ProgressFunc) error { return svc.RemoveShare(ctx, name, sh.Tag) },
		then: func(m *Model) tea.Cmd { return v.load() },
	})
}

func roText(ro bool) string {
	if ro {
		return " (read-only)"
	}
	return ""
}

// sharesHint explains shares below the table.
const sharesHint = "Machines made from a cloud image mount their shares at boot; other Linux guests run the command shown. Virtiofs needs a virtiofsd on the host (QEMU 7.2's needs root); 9p serves the rest."

func (v *sharesView) View() string {
	st := &v.m.styles
	w := max(20, v.width)
	head := st.Bold.Render("Shared folders of "+v.vm.Name) + "  " + st.State(v.vm.State).Render(stateIcon(v.vm.State)+" "+string(v.vm.State))
	when := "Changes are saved and apply at the next start."
	if v.vm.State.Active() {
		when = "It is " + string(v.vm.State) + ": stop it (x) to add or remove shares."
	}
	lines := []string{head, st.Muted.Render(fit(when, w)), ""}
	switch {
	case v.err != nil:
		lines = append(lines, st.FieldErr.Render(ansi.Truncate("✗ "+v.err.Error(), w, "…")))
		return strings.Join(lines, "\n")
	case !v.loaded:
		lines = append(lines, st.Muted.Render("reading…"))
		return strings.Join(lines, "\n")
	case len(v.shares) == 0:
		lines = append(lines, st.Muted.Render("No shared folders: press a to share one."))
	default:
		cols := func(tag, dir, access, kind string) string {
			dirW := max(10, w-2-16-1-6-1-10-2)
			return fit(fit(tag, 16)+" "+fit(dir, dirW)+" "+fit(access, 6)+" "+fit(kind, 10), w-2)
		}
		lines = append(lines, "  "+st.Header.Render(cols("TAG", "HOST FOLDER", "ACCESS", "KIND")))
		cursorLine := 0
		for i, sv := range v.shares {
			access, kind := "rw", orDefault(sv.Uses, "—")
			if sv.ReadOnly {
				access = "ro"
			}
			line := cols(sv.Tag, sv.HostDir, access, kind)
			if i == v.cursor {
				line = st.Selected.Render(line)
				cursorLine = len(lines)
			}
			lines = append(lines, "  "+line)
			if sv.Error != "" {
				lines = append(lines, "    "+st.FieldErr.Render(ansi.Truncate("✗ "+sv.Error, w-4, "…")))
			}
			lines = append(lines, "    "+st.Muted.Render(ansi.Truncate("guest: "+sv.Mount, w-4, "…")))
		}
		if h := max(6, v.height-3); cursorLine >= h-1 {
			lines = append(lines[:4], lines[4+cursorLine-(h-2):]...)
		}
	}
	lines = append(lines, "")
	for _, l := range strings.Split(ansi.Wrap(sharesHint, w, " "), "\n") {
		lines = append(lines, st.Muted.Render(l))
	}
	return strings.Join(lines, "\n")
}
