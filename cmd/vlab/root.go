package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// app carries what every command needs. The store is opened lazily so that
// `vlab --help` and `vlab completion` work without touching the disk.
type app struct {
	store *machine.Store
	json  bool
}

func (a *app) open() (*machine.Store, error) {
	if a.store == nil {
		s, err := machine.Open(machine.DefaultDirs())
		if err != nil {
			return nil, err
		}
		a.store = s
	}
	return a.store, nil
}

func newRootCmd() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "vlab",
		Short: "A virtualization lab in the terminal: define VMs and drive QEMU (KVM or TCG) for x86, ARM and PPC guests",
		Long: `vlab defines virtual machines and runs them on local QEMU, with KVM where the host can
and TCG emulation where it cannot. Run it without arguments for the TUI; every action is also a command
for scripts, most with --json.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runTUI(cmd)
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%v: see `%s --help`", err, c.CommandPath())}
	})
	root.AddCommand(
		a.createCmd(),
		a.listCmd(),
		a.showCmd(),
		a.startCmd(),
		a.stopCmd(),
		a.simpleCmd("pause", "paused", "Pause a running VM's CPUs", a.pause),
		a.simpleCmd("resume", "resumed", "Resume a paused VM", a.resume),
		a.simpleCmd("reset", "reset", "Hard-reset a running VM (like the reset button)", a.reset),
		a.editCmd(),
		a.deleteCmd(),
		a.snapshotCmd(),
		a.cloneCmd(),
		a.diskCmd(),
		a.cmdlineCmd(),
		a.qmpCmd(),
		a.consoleCmd(),
		a.vncCmd(),
		a.screenshotCmd(),
		a.doctorCmd(),
		a.netCmd(),
		manCmd(),
		a.profilesCmd(),
		a.detectCmd(),
		a.isoCmd(),
		a.cdromCmd(),
		commandsCmd(),
		a.importCmd(),
		a.exportCmd(),
		a.galleryCmd(),
		a.sshCmd(),
		a.execCmd(),
		a.cpCmd(),
		a.labCmd(), // classlab.go
		a.shareCmd(),
	)
	root.AddCommand(a.studentCmds()...) // debug.go, monitor.go, trace.go, replay.go
	for _, c := range root.Commands() {
		if c.Args == nil {
			c.Args = cobra.NoArgs
		}
	}
	root.InitDefaultCompletionCmd() // now, so that wireUsage sees it
	a.wireCompletion(root)          // complete.go: VM names, tags, profiles...
	wireUsage(root)                 // usage.go: exit status 2 and suggestions everywhere
	return root
}

// usageError marks errors in how a command was called (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	var x interface{ ExitCode() int } // a guest command's status (guest.go)
	if errors.As(err, &x) {
		return x.ExitCode()
	}
	return 1
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// exactArgs is cobra.ExactArgs with an error that says what is missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageError{fmt.Errorf("%s takes %s (got %d arguments): see `%s --help`",
				cmd.Name(), strings.Join(names, " "), len(args), cmd.CommandPath())}
		}
		return nil
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
