package tui

import (
	"errors"
	"fmt"
	"os/exec"

	tea "charm.land/bubbletea/v2"
)

// The guest actions of the main screen: a shell in the guest over SSH (S)
// and copying files to or from it (C), as `vlab ssh NAME` and `vlab cp`
// do. The shared folders view (F) is in shares.go.

// sshAction suspends the TUI and runs `vlab ssh NAME`'s ssh in the
// terminal; the TUI comes back when the session ends.
func (m *Model) sshAction(vm VM) tea.Cmd {
	name := vm.Name
	if !vm.State.Active() {
		m.setErr(WithFix(fmt.Errorf("ssh to %q: machine is %s", name, vm.State), "start it first (s)"))
		return nil
	}
	ctx, svc, run := m.ctx, m.svc, m.execProcess
	m.status = status{text: "connecting to " + name + " over ssh…"}
	return func() tea.Msg {
		argv, err := svc.SSH(ctx, name)
		if err != nil {
			return statusMsg{err: err}
		}
		// Running the exec command here hands its message to the program,
		// which suspends the TUI while ssh owns the terminal.
		return run(exec.Command(argv[0], argv[1:]...), func(err error) tea.Msg {
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee) && ee.ExitCode() == 255:
				return statusMsg{err: WithFix(fmt.Errorf("ssh to %q failed (status 255)", name), "is its SSH server up? try again once it has booted")}
			case err != nil && !errors.As(err, &ee):
				return statusMsg{err: fmt.Errorf("ssh to %q: %w", name, err)}
			}
			return statusMsg{text: "ssh session to " + name + " ended"}
		})()
	}
}

// Copy directions, as the copy dialog offers them.
const (
	copyToVM   = "host → VM"
	copyFromVM = "VM → host"
)

// copyAction asks what to copy (direction, host path, guest path) and
// copies it as a job, like `vlab cp`.
func (m *Model) copyAction(vm VM) tea.Cmd {
	name := vm.Name
	if !vm.State.Active() {
		m.setErr(WithFix(fmt.Errorf("copy files with %q: machine is %s", name, vm.State), "start it first (s)"))
		return nil
	}
	m.dialog = m.copyDialog(name)
	return nil
}

func (m *Model) copyDialog(name string) *formDialog {
	ctx, svc, home := m.ctx, m.svc, m.home()
	notEmpty := func(what string) func(string) error {
		return func(s string) error {
			if s == "" {
				return errors.New("give the " + what)
			}
			return nil
		}
	}
	dir := choiceField("Direction", []string{copyToVM, copyFromVM}, copyToVM)
	host := textField("Host path", "", "file or folder, e.g. ~/project", notEmpty("host path"))
	guest := textField("Guest path", "", "e.g. /tmp/ or . (the login user's home)", notEmpty("guest path"))
	host.err, guest.err = nil, nil // no error before anything is typed
	f := newForm(dir, host, guest)
	f.setFocus(1) // the direction is right more often than not
	return &formDialog{
		title: "Copy files with " + name,
		form:  f,
		note:  "Files and folders alike (scp -r), through the machine's SSH forward. A relative guest path is in the login user's home.",
		submit: func() tea.Cmd {
			c := CopyRequest{ToVM: dir.Value() == copyToVM, HostPath: absPath(expandHome(host.Value(), home)), GuestPath: guest.Value()}
			what := copyText(name, c)
			return startJobCmd(jobSpec{
				title: "copying " + what, op: "copy", name: name, ok: "copied " + what,
				run: func(ProgressFunc) error { return svc.Copy(ctx, name, c) },
			})
		},
	}
}
