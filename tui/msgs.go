package tui

import (
	"context"
	"time"

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

// changedMsg says the service signalled a change.
type changedMsg struct{}

// changesClosedMsg says the change stream ended.
type changesClosedMsg struct{}

// statsTickMsg is the slow CPU%/uptime refresh tick.
type statsTickMsg struct{}

// settleTickMsg re-lists while a machine is in transition.
type settleTickMsg struct{}

// settleInterval is how soon a machine in transition is looked at again.
const settleInterval = 2 * time.Second

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

// waitChange waits for the next change signal; it is re-issued after each.
func waitChange(ch <-chan struct{}) tea.Cmd {
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		if _, ok := <-ch; !ok {
			return changesClosedMsg{}
		}
		// Coalesce a burst of signals into one re-list.
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return changedMsg{}
				}
			default:
				return changedMsg{}
			}
		}
	}
}

func statsTick(d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return statsTickMsg{} })
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
