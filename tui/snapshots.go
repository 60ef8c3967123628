package tui

import (
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// snapshotView lists a machine's snapshots and takes, restores and deletes
// them. Restore and delete are shifted keys and ask first.
type snapshotView struct {
	m             *Model
	vm            VM
	snaps         []Snapshot
	cursor        int
	loaded        bool
	err           error
	width, height int
}

type snapshotsMsg struct {
	v     *snapshotView
	snaps []Snapshot
	err   error
}

func newSnapshotView(m *Model, vm VM) *snapshotView {
	return &snapshotView{m: m, vm: vm}
}

// Title implements the title bar.
func (v *snapshotView) Title() string { return "snapshots of " + v.vm.Name }

func (v *snapshotView) Init() tea.Cmd { return v.load() }

func (v *snapshotView) load() tea.Cmd {
	ctx, svc, name := v.m.ctx, v.m.svc, v.vm.Name
	return func() tea.Msg {
		s, err := svc.Snapshots(ctx, name)
		return snapshotsMsg{v: v, snaps: s, err: err}
	}
}

func (v *snapshotView) SetSize(w, h int) { v.width, v.height = w, h }

func (v *snapshotView) Help() help.KeyMap {
	k := &v.m.keys
	return bindings{short: []key.Binding{k.TakeSnap, k.RestoreSnap, k.DeleteSnap, k.Up, k.Down, k.Reload, k.Back}}
}

func (v *snapshotView) selected() (Snapshot, bool) {
	if v.cursor < 0 || v.cursor >= len(v.snaps) {
		return Snapshot{}, false
	}
	return v.snaps[v.cursor], true
}

func (v *snapshotView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case snapshotsMsg:
		if msg.v != v {
			return nil
		}
		v.loaded, v.err = true, msg.err
		v.snaps = msg.snaps
		v.cursor = min(max(0, v.cursor), max(0, len(v.snaps)-1))
		if errors.Is(msg.err, ErrNotSupported) {
			return statusCmd("", fmt.Errorf("snapshots of %q: %w", v.vm.Name, msg.err))
		}
		return nil
	case vmsMsg:
		return nil
	case tea.KeyPressMsg:
		return v.handleKey(msg)
	}
	return nil
}

func (v *snapshotView) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &v.m.keys
	m := v.m
	ctx, svc, name := m.ctx, m.svc, v.vm.Name
	reload := func(*Model) tea.Cmd { return v.load() }
	switch {
	case key.Matches(msg, k.Back), msg.String() == "q":
		return func() tea.Msg { return closeViewMsg{} }
	case key.Matches(msg, k.Up):
		v.cursor = max(0, v.cursor-1)
	case key.Matches(msg, k.Down):
		v.cursor = min(len(v.snaps)-1, v.cursor+1)
	case key.Matches(msg, k.Reload):
		return v.load()
	case key.Matches(msg, k.TakeSnap):
		def := fmt.Sprintf("snap%d", len(v.snaps)+1)
		m.prompt = newPrompt("Take a snapshot of "+name, "snapshot name", def, func(s string) error {
			if s == "" {
				return errors.New("name is empty")
			}
			if strings.ContainsAny(s, " /\\\"'") {
				return errors.New("no spaces, slashes or quotes in a snapshot name")
			}
			for _, sn := range v.snaps {
				if sn.Name == s {
					return fmt.Errorf("%q exists already", s)
				}
			}
			return nil
		}, func(snap string) tea.Cmd {
			return startJobCmd(jobSpec{
				title: "saving snapshot " + snap + " of " + name, op: "save snapshot", name: name, ok: "saved snapshot " + snap,
				run:  func(p ProgressFunc) error { return svc.SaveSnapshot(ctx, name, snap, p) },
				then: reload,
			})
		})
	case key.Matches(msg, k.RestoreSnap):
		s, ok := v.selected()
		if !ok {
			return nil
		}
		snap := s.Name
		m.confirm = &confirmDialog{
			title: "Restore " + snap + "?",
			body:  fmt.Sprintf("%s goes back to snapshot %q. Its current state, including anything not saved in a snapshot, is lost.", name, snap),
			yes: func() tea.Cmd {
				return startJobCmd(jobSpec{
					title: "restoring " + snap + " of " + name, op: "restore snapshot", name: name, ok: "restored snapshot " + snap,
					run:  func(p ProgressFunc) error { return svc.RestoreSnapshot(ctx, name, snap, p) },
					then: reload,
				})
			},
		}
	case key.Matches(msg, k.DeleteSnap):
		s, ok := v.selected()
		if !ok {
			return nil
		}
		snap := s.Name
		m.confirm = &confirmDialog{
			title: "Delete snapshot " + snap + "?",
			body:  fmt.Sprintf("Snapshot %q of %s is removed. This cannot be undone.", snap, name),
			yes: func() tea.Cmd {
				return startJobCmd(jobSpec{
					title: "deleting snapshot " + snap, op: "delete snapshot", name: name, ok: "deleted snapshot " + snap,
					run:  func(ProgressFunc) error { return svc.DeleteSnapshot(ctx, name, snap) },
					then: reload,
				})
			},
		}
	}
	return nil
}

func (v *snapshotView) View() string {
	st := &v.m.styles
	head := st.Bold.Render(fmt.Sprintf("Snapshots of %s", v.vm.Name)) + "  " + st.State(v.vm.State).Render(stateIcon(v.vm.State)+" "+string(v.vm.State))
	switch {
	case v.err != nil:
		s := head + "\n\n" + st.StatusErr.Render("✗ "+v.err.Error())
		if fix := fixOf(v.err); fix != "" {
			s += "\n" + st.Fix.Render("fix: "+fix)
		}
		return s
	case !v.loaded:
		return head + "\n\n" + st.Muted.Render("loading…")
	case len(v.snaps) == 0:
		return head + "\n\n" + st.Muted.Render("No snapshots yet. Press n to take one"+liveNote(v.vm)+".")
	}
	var b strings.Builder
	b.WriteString(head + "\n\n")
	b.WriteString(st.Header.Render(fit(fit("NAME", 24)+" "+fit("TAKEN", 17)+" "+align("VM STATE", 10, true), max(10, v.width))) + "\n")
	rows := max(1, v.height-4)
	top := max(0, v.cursor-rows+1)
	for i := top; i < len(v.snaps) && i < top+rows; i++ {
		s := v.snaps[i]
		state := "disk only"
		if s.SizeBytes > 0 {
			state = fmtBytes(s.SizeBytes)
		}
		name := s.Name
		if s.Current {
			name += " (current)"
		}
		line := fit(fit(name, 24)+" "+fit(s.Created.Format("2006-01-02 15:04"), 17)+" "+align(state, 10, true), max(10, v.width))
		if i == v.cursor {
			line = st.Selected.Render(line)
		}
		b.WriteString(line + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func liveNote(vm VM) string {
	if vm.State.Active() {
		return " (live: memory and disks)"
	}
	return " (disks only while stopped)"
}
