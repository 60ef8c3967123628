package tui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"vlab/machine"
)

// The TUI is event-driven: it wakes for a key, a Change from the service
// (a QMP event of a running VM, a file changed by another vlab), the end of
// a job, or the spinner while a job runs. Nothing is polled: a Change makes
// the screen re-read only the VM it names, and a QMP event's content shows
// at once, before that re-read returns.

// changesMsg carries the Changes that arrived together.
type changesMsg struct{ changes []Change }

// vmMsg carries a fresh Get result for one VM.
type vmMsg struct {
	name string
	vm   VM
	err  error
}

// waitChange waits for the next Changes; it is re-issued after each. What
// is queued behind the first Change comes along in the same message.
func waitChange(ch <-chan Change) tea.Cmd {
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		c, ok := <-ch
		if !ok {
			return changesClosedMsg{}
		}
		out := []Change{c}
		for len(out) < 256 {
			select {
			case c, ok := <-ch:
				if !ok {
					return changesMsg{out}
				}
				out = append(out, c)
			default:
				return changesMsg{out}
			}
		}
		return changesMsg{out}
	}
}

func getCmd(ctx context.Context, svc Service, name string) tea.Cmd {
	return func() tea.Msg {
		vm, err := svc.Get(ctx, name)
		return vmMsg{name: name, vm: vm, err: err}
	}
}

// applyChanges shows what the events say and re-reads each VM they name,
// once.
func (m *Model) applyChanges(cs []Change) tea.Cmd {
	var cmds []tea.Cmd
	seen := map[string]bool{}
	for _, c := range cs {
		if st, ok := machine.EventState(c.Event); ok {
			if i := m.list.index(c.Name); i >= 0 {
				m.list.all[i].State = st
			}
		}
		if c.Name != "" && !seen[c.Name] {
			seen[c.Name] = true
			cmds = append(cmds, m.getVM(c.Name))
		}
	}
	cmds = append(cmds, waitChange(m.changes))
	return tea.Batch(cmds...)
}

// getVM re-reads one VM unless a read of it is in flight, in which case
// that read is followed by one more.
func (m *Model) getVM(name string) tea.Cmd {
	if m.getting == nil {
		m.getting = map[string]bool{}
	}
	if _, busy := m.getting[name]; busy {
		m.getting[name] = true
		return nil
	}
	m.getting[name] = false
	return getCmd(m.ctx, m.svc, name)
}

// applyVM puts one re-read VM into the list (or takes it out).
func (m *Model) applyVM(msg vmMsg) tea.Cmd {
	again := m.getting[msg.name]
	delete(m.getting, msg.name)
	switch {
	case errors.Is(msg.err, ErrNoMachine):
		m.list.remove(msg.name)
	case msg.err != nil:
		m.setErr(fmt.Errorf("read %q: %w", msg.name, msg.err))
	default:
		m.list.upsert(msg.vm)
		if m.selectNew == msg.name {
			m.list.Select(m.selectNew)
			m.selectNew = ""
		}
	}
	if v, ok := m.view.(interface{ vmChanged([]VM) }); ok {
		v.vmChanged(m.list.all)
	}
	if again {
		return m.getVM(msg.name)
	}
	return nil
}

// refreshStats fetches CPU% and RSS of the running VMs when a key arrives
// and the figures are older than StatsInterval: they are never refreshed on
// a timer, so an untouched TUI stays asleep.
func (m *Model) refreshStats() tea.Cmd {
	if m.ticking || !m.anyRunning() || time.Since(m.statsAt) < m.opts.StatsInterval {
		return nil
	}
	m.ticking = true
	m.statsAt = time.Now()
	return statsCmd(m.ctx, m.svc)
}

// index is the position of VM name in all, -1 when it is not there.
func (l *vmList) index(name string) int {
	for i := range l.all {
		if l.all[i].Name == name {
			return i
		}
	}
	return -1
}

// upsert replaces VM vm.Name, or adds it in name order.
func (l *vmList) upsert(vm VM) {
	sel := ""
	if s, ok := l.Selected(); ok {
		sel = s.Name
	}
	if i := l.index(vm.Name); i >= 0 {
		l.all[i] = vm
	} else {
		i, _ := slices.BinarySearchFunc(l.all, vm.Name, func(v VM, n string) int { return strings.Compare(v.Name, n) })
		l.all = slices.Insert(l.all, i, vm)
	}
	l.refilter(sel)
}

// remove takes VM name out of the list.
func (l *vmList) remove(name string) {
	i := l.index(name)
	if i < 0 {
		return
	}
	sel := ""
	if s, ok := l.Selected(); ok {
		sel = s.Name
	}
	l.all = slices.Delete(l.all, i, i+1)
	l.refilter(sel)
}
