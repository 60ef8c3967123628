package tui

import (
	"context"

	tea "charm.land/bubbletea/v2"
)

// Messages the root model consumes. Messages private to one view live next
// to that view.

// vmsMsg carries a fresh List result.
type vmsMsg struct {
	vms []VM
	err error
}

// statsMsg carries a Stats refresh of the running machines.
type statsMsg struct {
	stats []Stats
	err   error
}

// changesClosedMsg says the change stream ended.
type changesClosedMsg struct{}

// hostMsg carries the host limits.
type hostMsg struct {
	limits HostLimits
	err    error
}

// actionDoneMsg reports the end of a machine action or job.
type actionDoneMsg struct {
	job  int    // job id, 0 for none
	op   string // "start", "stop", ...
	name string // machine
	ok   string // status text on success
	err  error
	// then is run after a success (e.g. select the new machine), fail
	// after a failure.
	then, fail func(m *Model) tea.Cmd
}

// jobProgressMsg carries one progress report of a running job.
type jobProgressMsg struct {
	job int
	p   Progress
	ch  <-chan Progress
}

// closeViewMsg returns from a view to the main list.
type closeViewMsg struct{}

// statusMsg sets the status line.
type statusMsg struct {
	text string
	err  error
}

// Commands that talk to the service. All of them run off the UI goroutine.

func listCmd(ctx context.Context, svc Service) tea.Cmd {
	return func() tea.Msg {
		vms, err := svc.List(ctx)
		return vmsMsg{vms: vms, err: err}
	}
}

func statsCmd(ctx context.Context, svc Service) tea.Cmd {
	return func() tea.Msg {
		st, err := svc.Stats(ctx)
		return statsMsg{stats: st, err: err}
	}
}

func hostCmd(ctx context.Context, svc Service) tea.Cmd {
	return func() tea.Msg {
		l, err := svc.HostLimits(ctx)
		return hostMsg{limits: l, err: err}
	}
}

// waitProgress waits for the next progress report of a job; it is
// re-issued after each and ends when the job closes its channel.
func waitProgress(job int, ch <-chan Progress) tea.Cmd {
	return func() tea.Msg {
		p, ok := <-ch
		if !ok {
			return nil
		}
		return jobProgressMsg{job: job, p: p, ch: ch}
	}
}

// Views never change the root model: they return these messages and the
// root applies them.

// startJobMsg asks the root to run a job (spinner or bar in the footer).
type startJobMsg struct{ js jobSpec }

func startJobCmd(js jobSpec) tea.Cmd {
	return func() tea.Msg { return startJobMsg{js} }
}

// statusCmd sets the status line (err wins over text).
func statusCmd(text string, err error) tea.Cmd {
	return func() tea.Msg { return statusMsg{text: text, err: err} }
}
