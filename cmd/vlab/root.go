package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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

// newRootCmd builds the command tree for the command line args (without
// the program name). Only the top-level command args names is built, with its
// subcommands: building and wiring all of them costs about a millisecond,
// which `vlab start` cannot spare (its start-up budget is 5 ms over QEMU's
// own). Help, completion, a mistyped or missing command and anything
// starting with a flag get the whole tree.
func newRootCmd(args []string) *cobra.Command {
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
	tops := a.topCommands()
	if t, ok := pickTop(tops, args); ok {
		root.AddCommand(t.build())
	} else {
		for _, t := range tops {
			root.AddCommand(t.build())
		}
		root.InitDefaultCompletionCmd() // now, so that wireUsage sees it
	}
	for _, c := range root.Commands() {
		if c.Args == nil {
			c.Args = cobra.NoArgs
		}
	}
	a.wireCompletion(root) // complete.go: VM names, tags, profiles...
	wireUsage(root)        // usage.go: exit status 2 and suggestions everywhere
	return root
}

// topCommand is one of vlab's top-level commands, not yet built.
type topCommand struct {
	names []string // its name and aliases, as the built command has them (TestTopCommandNames)
	build func() *cobra.Command
	tree  bool // it walks the whole tree, so it is never built alone
}

// buildTools are top-level commands only build-time binaries have (man.go).
var buildTools []topCommand

// topCommands lists the top-level commands in the order help shows them.
func (a *app) topCommands() []topCommand {
	one := func(build func() *cobra.Command, names ...string) topCommand {
		return topCommand{names: names, build: build}
	}
	simple := func(use, done, short string, run func(ctx context.Context, s *machine.Store, name string) error) topCommand {
		return one(func() *cobra.Command { return a.simpleCmd(use, done, short, run) }, use)
	}
	tops := []topCommand{
		one(a.createCmd, "create"),
		one(a.listCmd, "list", "ls"),
		one(a.showCmd, "show"),
		one(a.startCmd, "start"),
		one(a.stopCmd, "stop"),
		simple("pause", "paused", "Pause a running VM's CPUs", a.pause),
		simple("resume", "resumed", "Resume a paused VM", a.resume),
		simple("reset", "reset", "Hard-reset a running VM (like the reset button)", a.reset),
		one(a.editCmd, "edit"),
		one(a.deleteCmd, "delete"),
		one(a.snapshotCmd, "snapshot", "snap"),
		one(a.cloneCmd, "clone"),
		one(a.diskCmd, "disk"),
		one(a.cmdlineCmd, "cmdline"),
		one(a.qmpCmd, "qmp"),
		one(a.consoleCmd, "console"),
		one(a.vncCmd, "vnc"),
		one(a.screenshotCmd, "screenshot"),
		one(a.doctorCmd, "doctor"),
		one(a.netCmd, "net"),
		one(a.profilesCmd, "profiles"),
		one(a.detectCmd, "detect"),
		one(a.isoCmd, "iso"),
		one(a.cdromCmd, "cdrom"),
		one(a.importCmd, "import"),
		one(a.exportCmd, "export"),
		one(a.galleryCmd, "gallery"),
		one(a.sshCmd, "ssh"),
		one(a.execCmd, "exec"),
		one(a.cpCmd, "cp"),
		one(a.labCmd, "lab"), // classlab.go
		one(a.shareCmd, "share"),
		one(a.debugCmd, "debug"), // debug.go, monitor.go, trace.go, replay.go
		one(a.monitorCmd, "monitor"),
		one(a.traceCmd, "trace"),
		one(a.replayCmd, "replay"),
		{names: []string{"__commands"}, build: commandsCmd, tree: true},
	}
	return append(tops, buildTools...)
}

// pickTop returns the top-level command args starts with, when that command
// alone is enough to run the command line.
func pickTop(tops []topCommand, args []string) (topCommand, bool) {
	if len(args) == 0 {
		return topCommand{}, false
	}
	for _, t := range tops {
		if slices.Contains(t.names, args[0]) {
			return t, !t.tree
		}
	}
	return topCommand{}, false
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
