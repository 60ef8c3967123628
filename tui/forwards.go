package tui

import (
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"vlab/emulator"
)

// forwardsView lists a machine's NICs with their port forwards as they are
// now (the host port each is bound to) and adds and removes forwards. A
// running machine applies a change at once; a stopped one at its next
// start. Removing a forward loses no data, so it asks nothing.
type forwardsView struct {
	m             *Model
	vm            VM
	cursor        int // index into rows()
	width, height int
}

// fwdRow is one forward of the view: NIC index and forward index.
type fwdRow struct{ nic, fwd int }

func newForwardsView(m *Model, vm VM) *forwardsView {
	return &forwardsView{m: m, vm: vm}
}

// Title implements the title bar.
func (v *forwardsView) Title() string { return "port forwards of " + v.vm.Name }

func (v *forwardsView) Init() tea.Cmd { return nil }

func (v *forwardsView) SetSize(w, h int) { v.width, v.height = w, h }

func (v *forwardsView) Help() help.KeyMap {
	k := &v.m.keys
	return bindings{short: []key.Binding{k.AddForward, k.RemoveForward, k.Up, k.Down, k.Back}}
}

// vmChanged follows the machine as the list refreshes (after a change here,
// a start or a stop), so bound ports and notes are current.
func (v *forwardsView) vmChanged(vms []VM) {
	for _, vm := range vms {
		if vm.Name == v.vm.Name {
			v.vm = vm
			v.cursor = min(max(0, v.cursor), max(0, len(v.rows())-1))
		}
	}
}

func (v *forwardsView) rows() []fwdRow {
	var out []fwdRow
	for i, n := range v.vm.NICs {
		for k := range n.Forwards {
			out = append(out, fwdRow{i, k})
		}
	}
	return out
}

func (v *forwardsView) selected() (fwdRow, bool) {
	r := v.rows()
	if v.cursor < 0 || v.cursor >= len(r) {
		return fwdRow{}, false
	}
	return r[v.cursor], true
}

// targetNIC is the NIC a new forward goes to: the selected forward's, else
// the first user-mode NIC (-1 lets the service pick it); ok is false when
// the machine has no user-mode NIC.
func (v *forwardsView) targetNIC() (int, bool) {
	if r, ok := v.selected(); ok {
		return r.nic, true
	}
	for _, n := range v.vm.NICs {
		if n.Kind == emulator.NetUser || n.Kind == emulator.NetSandbox {
			return -1, true
		}
	}
	return 0, false
}

func (v *forwardsView) Update(msg tea.Msg) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	k := &v.m.keys
	switch {
	case key.Matches(km, k.Back), km.String() == "q":
		return func() tea.Msg { return closeViewMsg{} }
	case key.Matches(km, k.Up):
		v.cursor = max(0, v.cursor-1)
	case key.Matches(km, k.Down):
		v.cursor = max(0, min(len(v.rows())-1, v.cursor+1))
	case key.Matches(km, k.AddForward):
		return v.add()
	case key.Matches(km, k.RemoveForward):
		return v.remove()
	}
	return nil
}

func (v *forwardsView) add() tea.Cmd {
	m, name := v.m, v.vm.Name
	nic, ok := v.targetNIC()
	if !ok {
		m.setErr(WithFix(fmt.Errorf("add forward to %q: it has no user-mode NIC", name), "set Network to user in the edit screen (e)"))
		return nil
	}
	title := "Add a forward to " + name
	if nic >= 0 && len(v.vm.NICs) > 1 {
		title += " (" + v.vm.NICs[nic].ID + ")"
	}
	ctx, svc, running := m.ctx, m.svc, v.vm.State.Active()
	m.prompt = newPrompt(title, "proto:[addr:]hostport|auto:guestport", "tcp:auto:22", checkRuleText, func(rule string) tea.Cmd {
		var got PortForward
		return startJobCmd(jobSpec{
			title: "adding forward " + rule + " to " + name, op: "add forward", name: name,
			run: func(ProgressFunc) error {
				var err error
				got, err = svc.AddForward(ctx, name, nic, rule)
				return err
			},
			then: func(m *Model) tea.Cmd {
				m.status = status{text: addedText(name, got, running)}
				return nil
			},
		})
	})
	return nil
}

func (v *forwardsView) remove() tea.Cmd {
	r, ok := v.selected()
	if !ok {
		return statusCmd("no forward selected", nil)
	}
	m, name := v.m, v.vm.Name
	ctx, svc := m.ctx, m.svc
	was := v.vm.NICs[r.nic].Forwards[r.fwd]
	nic, rule := r.nic, was.RuleString()
	var got PortForward
	return startJobCmd(jobSpec{
		title: "removing forward " + rule + " from " + name, op: "remove forward", name: name,
		run: func(ProgressFunc) error {
			var err error
			got, err = svc.RemoveForward(ctx, name, nic, rule)
			return err
		},
		then: func(m *Model) tea.Cmd {
			m.status = status{text: removedText(name, was, got)}
			return nil
		},
	})
}

// checkRuleText catches what cannot be a rule while it is typed; the
// service reads the rule itself and says what is wrong with it.
func checkRuleText(s string) error {
	switch {
	case s == "":
		return errors.New("write proto:[addr:]hostport|auto:guestport, e.g. tcp:auto:22")
	case strings.ContainsAny(s, " \t,"):
		return errors.New("one rule, without spaces or commas")
	}
	return nil
}

// addedText is the status line after adding pf to machine name.
func addedText(name string, pf PortForward, running bool) string {
	s := "added " + fmtForward(PortForward{Rule: pf.Rule, BoundPort: pf.BoundPort}) + " to " + name
	switch {
	case pf.BoundPort != 0:
		return s + ": active now"
	case pf.Note != "":
		return s + ": " + pf.Note
	case running:
		return s + ": saved (not bound yet)"
	}
	return s + ": applied at next start"
}

// removedText is the status line after removing was (the forward as the
// view showed it) from machine name; got is the service's answer.
func removedText(name string, was, got PortForward) string {
	s := "removed " + fmtForward(PortForward{Rule: was.Rule, BoundPort: was.BoundPort}) + " from " + name
	switch {
	case got.BoundPort != 0 && got.Note != "":
		return s + ": " + got.Note
	case was.BoundPort != 0:
		return s + ": port released"
	}
	return s
}

func (v *forwardsView) View() string {
	st := &v.m.styles
	w := max(20, v.width)
	head := st.Bold.Render("Port forwards of "+v.vm.Name) + "  " + st.State(v.vm.State).Render(stateIcon(v.vm.State)+" "+string(v.vm.State))
	when := "Changes are saved and applied at the next start."
	if v.vm.State.Active() {
		when = "Changes apply at once and are saved for the next start."
	}
	lines := []string{head, st.Muted.Render(fit(when, w)), ""}
	if len(v.vm.NICs) == 0 {
		lines = append(lines, st.Muted.Render("No network card: set Network to user in the edit screen (e)."))
		return strings.Join(lines, "\n")
	}
	cols := func(proto, addr, port, guest, state string) string {
		return fit(fit(proto, 5)+" "+fit(addr, 15)+" "+align(port, 12, true)+"  "+align(guest, 5, true)+"  "+state, w-2)
	}
	cursorLine := 0
	row := 0
	for _, n := range v.vm.NICs {
		nl := st.PaneTitle.Render(n.ID) + " " + orDefault(n.Mode, string(n.Kind))
		if n.Model != "" {
			nl += " " + n.Model
		}
		nl += " " + n.MAC
		if n.GuestIP != "" {
			nl += st.Muted.Render(" · guest ") + n.GuestIP
		}
		lines = append(lines, fit(nl, w))
		switch {
		case n.Kind != emulator.NetUser && n.Kind != emulator.NetSandbox:
			lines = append(lines, "  "+st.Muted.Render("forwards need a user-mode or sandbox NIC"))
			continue
		case len(n.Forwards) == 0:
			lines = append(lines, "  "+st.Muted.Render("no forwards: press a to add one"))
			continue
		}
		lines = append(lines, "  "+st.Header.Render(cols("PROTO", "HOST ADDRESS", "HOST PORT", "GUEST", "STATE")))
		for _, f := range n.Forwards {
			port := "auto"
			switch {
			case f.BoundPort != 0 && f.Auto():
				port = fmt.Sprintf("%d (auto)", f.BoundPort)
			case f.BoundPort != 0:
				port = fmt.Sprint(f.BoundPort)
			case !f.Auto():
				port = fmt.Sprint(f.Rule.HostPort)
			}
			line := cols(orDefault(f.Rule.Proto, "tcp"), orDefault(f.Rule.HostAddr, "127.0.0.1"), port, fmt.Sprint(f.Rule.GuestPort), forwardState(f, v.vm.State))
			if row == v.cursor {
				line = st.Selected.Render(line)
				cursorLine = len(lines)
			}
			lines = append(lines, "  "+line)
			row++
		}
	}
	lines = append(lines, "")
	for _, l := range strings.Split(ansi.Wrap(forwardsHint, w, " "), "\n") {
		lines = append(lines, st.Muted.Render(l))
	}
	if h := max(4, v.height); cursorLine >= h-1 {
		lines = append(lines[:3], lines[3+cursorLine-(h-2):]...)
	}
	return strings.Join(lines, "\n")
}

// forwardsHint explains the rule syntax below the table.
const forwardsHint = "Rules read proto:[addr:]hostport|auto:guestport, e.g. tcp:8080:80, udp:127.0.0.1:5353:53 or tcp:auto:22 (auto: a free host port picked at each start)."

// forwardState says whether a forward is bound now.
func forwardState(f PortForward, s State) string {
	switch {
	case f.Note != "":
		return f.Note
	case f.BoundPort != 0:
		return "active"
	case s.Active():
		return "not bound"
	}
	return "at next start"
}
