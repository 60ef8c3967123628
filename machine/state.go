package machine

import "time"

// State is where a VM is in its lifecycle. It is the one state type of
// vlab: `vlab list/show --json` print it and the TUI shows it.
type State string

// The lifecycle states. Unresponsive is a QEMU process that is alive but
// whose QMP monitors do not answer: it is not "running", and only a force
// stop ends it. Invalid is a VM whose machine.toml cannot be read.
const (
	StateStopped      State = "stopped"
	StateStarting     State = "starting"
	StateRunning      State = "running"
	StatePaused       State = "paused"
	StateShuttingDown State = "shutting-down"
	StateCrashed      State = "crashed"
	StateUnresponsive State = "unresponsive"
	StateInvalid      State = "invalid"
)

// String returns the state's name.
func (s State) String() string { return string(s) }

// Active reports whether a QEMU process exists for the VM.
func (s State) Active() bool {
	switch s {
	case StateStarting, StateRunning, StatePaused, StateShuttingDown, StateUnresponsive:
		return true
	}
	return false
}

// Transitional reports whether the state ends by itself (a start that has
// not reached QMP yet, a guest powering off).
func (s State) Transitional() bool {
	return s == StateStarting || s == StateShuttingDown
}

// Uptime is how long the VM has run at now, 0 when it does not run.
func (st Status) Uptime(now time.Time) time.Duration {
	if !st.State.Active() || st.StartedAt.IsZero() {
		return 0
	}
	return now.Sub(st.StartedAt)
}

// EventState is the state a running VM is in right after QMP event ev (as
// Change.Event carries it), and whether ev says anything about the state.
// It lets a screen show the change at once, before it re-reads the VM.
func EventState(ev string) (State, bool) {
	switch ev {
	case "STOP", "SUSPEND":
		return StatePaused, true
	case "RESUME", "WAKEUP":
		return StateRunning, true
	case "POWERDOWN", "SHUTDOWN":
		return StateShuttingDown, true
	case "GUEST_PANICKED":
		return StateCrashed, true
	}
	return "", false
}
