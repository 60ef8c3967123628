package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// listAction is one thing a key does to the selected machine: the key (its
// help text comes with it) and what it does. machineAction dispatches
// through listActions; the help of the main screen lists the same keys.
// A new action is one entry here (and its binding in KeyMap).
type listAction struct {
	key func(k *KeyMap) key.Binding
	run func(m *Model, vm VM) tea.Cmd
}

// listActions returns the actions on the selected machine, in help order
// (a function, not a variable: the actions reach the help, which lists
// them). It is long because it is the action table itself: one entry per
// key, each a few lines that ask the service through m.action.
func listActions() []listAction {
	return []listAction{
		{func(k *KeyMap) key.Binding { return k.Start }, func(m *Model, vm VM) tea.Cmd {
			name, svc, ctx := vm.Name, m.svc, m.ctx
			if vm.State.Active() {
				m.status = status{text: fmt.Sprintf("%s is already %s", name, vm.State)}
				return nil
			}
			return m.action("starting "+name, "start", name, name+" started", func() error {
				return svc.Start(ctx, name)
			})
		}},
		{func(k *KeyMap) key.Binding { return k.Stop }, func(m *Model, vm VM) tea.Cmd {
			name, svc, ctx := vm.Name, m.svc, m.ctx
			if !vm.State.Active() {
				m.status = status{text: name + " is not running"}
				return nil
			}
			return m.action("stopping "+name+" (ACPI power button)", "stop", name, "asked "+name+" to power off", func() error {
				return svc.Stop(ctx, name, false)
			})
		}},
		{func(k *KeyMap) key.Binding { return k.ForceStop }, func(m *Model, vm VM) tea.Cmd {
			name, svc, ctx := vm.Name, m.svc, m.ctx
			if !vm.State.Active() {
				m.status = status{text: name + " is not running"}
				return nil
			}
			m.confirm = &confirmDialog{
				title: "Force stop " + name + "?",
				body:  "QEMU is killed at once, like pulling the power plug: the guest loses anything it has not written to disk.",
				yes: func() tea.Cmd {
					return m.action("force stopping "+name, "force stop", name, name+" stopped", func() error {
						return svc.Stop(ctx, name, true)
					})
				},
			}
			return nil
		}},
		{func(k *KeyMap) key.Binding { return k.Pause }, func(m *Model, vm VM) tea.Cmd {
			name, svc, ctx := vm.Name, m.svc, m.ctx
			switch vm.State {
			case StateRunning:
				return m.action("pausing "+name, "pause", name, name+" paused", func() error { return svc.Pause(ctx, name) })
			case StatePaused:
				return m.action("resuming "+name, "resume", name, name+" resumed", func() error { return svc.Resume(ctx, name) })
			default:
				m.status = status{text: name + " is not running"}
			}
			return nil
		}},
		{func(k *KeyMap) key.Binding { return k.Reset }, func(m *Model, vm VM) tea.Cmd {
			name, svc, ctx := vm.Name, m.svc, m.ctx
			if !vm.State.Active() {
				m.status = status{text: name + " is not running"}
				return nil
			}
			m.confirm = &confirmDialog{
				title: "Reset " + name + "?",
				body:  "A hard reset, like pressing the reset button: the guest loses anything it has not written to disk.",
				yes: func() tea.Cmd {
					return m.action("resetting "+name, "reset", name, name+" reset", func() error {
						return svc.Reset(ctx, name)
					})
				},
			}
			return nil
		}},
		{func(k *KeyMap) key.Binding { return k.Console }, func(m *Model, vm VM) tea.Cmd {
			return m.openConsole(vm)
		}},
		{func(k *KeyMap) key.Binding { return k.Serial }, func(m *Model, vm VM) tea.Cmd {
			name := vm.Name
			if !vm.State.Active() {
				m.setErr(WithFix(fmt.Errorf("serial console of %q: machine is %s", name, vm.State), "start it first (s)"))
				return nil
			}
			return m.openView(newSerialView(m, name))
		}},
		{func(k *KeyMap) key.Binding { return k.SSH }, func(m *Model, vm VM) tea.Cmd {
			return m.sshAction(vm)
		}},
		{func(k *KeyMap) key.Binding { return k.Copy }, func(m *Model, vm VM) tea.Cmd {
			return m.copyAction(vm)
		}},
		{func(k *KeyMap) key.Binding { return k.Monitor }, func(m *Model, vm VM) tea.Cmd {
			name := vm.Name
			if !vm.State.Active() {
				m.setErr(WithFix(fmt.Errorf("QEMU monitor of %q: machine is %s", name, vm.State), "start it first (s)"))
				return nil
			}
			return m.openView(newMonitorView(m, name))
		}},
		{func(k *KeyMap) key.Binding { return k.Log }, func(m *Model, vm VM) tea.Cmd {
			name := vm.Name
			return m.openView(newLogView(m, name))
		}},
		{func(k *KeyMap) key.Binding { return k.Cmdline }, func(m *Model, vm VM) tea.Cmd {
			name := vm.Name
			return m.openView(newCmdlineView(m, name))
		}},
		{func(k *KeyMap) key.Binding { return k.Snapshots }, func(m *Model, vm VM) tea.Cmd {
			return m.openView(newSnapshotView(m, vm))
		}},
		{func(k *KeyMap) key.Binding { return k.Forwards }, func(m *Model, vm VM) tea.Cmd {
			return m.openView(newForwardsView(m, vm))
		}},
		{func(k *KeyMap) key.Binding { return k.Shares }, func(m *Model, vm VM) tea.Cmd {
			return m.openView(newSharesView(m, vm))
		}},
		{func(k *KeyMap) key.Binding { return k.Edit }, func(m *Model, vm VM) tea.Cmd {
			return m.openView(newEditView(m, vm))
		}},
		{func(k *KeyMap) key.Binding { return k.Clone }, func(m *Model, vm VM) tea.Cmd {
			name, ctx := vm.Name, m.ctx
			m.prompt = m.clonePrompt(ctx, name, false)
			return nil
		}},
		{func(k *KeyMap) key.Binding { return k.LinkedClone }, func(m *Model, vm VM) tea.Cmd {
			name, ctx := vm.Name, m.ctx
			m.prompt = m.clonePrompt(ctx, name, true)
			return nil
		}},
		{func(k *KeyMap) key.Binding { return k.Export }, func(m *Model, vm VM) tea.Cmd {
			return m.exportAction(vm)
		}},
		{func(k *KeyMap) key.Binding { return k.Delete }, func(m *Model, vm VM) tea.Cmd {
			name, svc, ctx := vm.Name, m.svc, m.ctx
			if vm.State.Active() {
				m.setErr(WithFix(fmt.Errorf("delete %q: machine is %s", name, vm.State), "stop it first (x, or K to force)"))
				return nil
			}
			m.confirm = &confirmDialog{
				title: "Delete " + name + "?",
				body:  fmt.Sprintf("The machine %q, its %d disk(s) and %d snapshot(s) are removed. This cannot be undone.", name, len(vm.Disks), vm.Snapshots),
				yes: func() tea.Cmd {
					return m.action("deleting "+name, "delete", name, name+" deleted", func() error {
						return svc.Delete(ctx, name)
					})
				},
			}
			return nil
		}},
	}
}

// machineAction handles the keys that act on the selected machine.
func (m *Model) machineAction(msg tea.KeyPressMsg) tea.Cmd {
	vm, ok := m.list.Selected()
	for _, a := range listActions() {
		if !key.Matches(msg, a.key(&m.keys)) {
			continue
		}
		if !ok {
			m.status = status{text: "no machine selected: press n to create one"}
			return nil
		}
		return a.run(m, vm)
	}
	return nil
}
