package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// debugJSON is `vlab debug --json`: what vlab would run, without running it.
type debugJSON struct {
	Name       string   `json:"name"`
	GDB        string   `json:"gdb"`
	Argv       []string `json:"argv"`
	GDBSocket  string   `json:"gdb_socket"`
	GDBArch    string   `json:"gdb_arch"`
	Symbols    string   `json:"symbols,omitempty"`
	StartedNow bool     `json:"started_now"`
}

func (a *app) debugCmd() *cobra.Command {
	var symbols string
	var paused bool
	cmd := &cobra.Command{
		Use:   "debug NAME [-- GDB-ARGS...]",
		Short: "Attach gdb to a VM's private gdb stub (starting the VM with one if it is stopped)",
		Long: `Run gdb (gdb-multiarch when installed) attached to the VM's gdb stub, a unix socket only you can
open, with the guest's architecture set and the kernel's symbols loaded: --symbols FILE, or a vmlinux
found beside the VM's --kernel. A stopped VM is started with a stub for this run; with --paused its
CPUs wait at the first instruction (the reset vector). Arguments after -- go to gdb.
In a replay started with ` + "`vlab replay NAME --gdb`" + `, reverse-stepi and reverse-continue work.`,
		Example: `  vlab debug tiny --paused
  vlab debug tiny --symbols ~/linux/vmlinux -- -ex 'break start_kernel' -ex continue
  vlab debug tiny -- -batch -ex 'info registers'`,
		Args: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			if at := cmd.ArgsLenAtDash(); at >= 0 {
				n = at
			}
			if n != 1 {
				return usageError{fmt.Errorf("debug takes NAME and then, after --, gdb's arguments (got %d before --): see `vlab debug --help`", n)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[0]
			gdbArgs := args[1:]
			if symbols != "" {
				if fi, err := os.Stat(symbols); err != nil || !fi.Mode().IsRegular() {
					return usageError{fmt.Errorf("--symbols %q: not a file: give the kernel's vmlinux (an ELF with symbols)", symbols)}
				}
			}
			gdb, err := findGDB()
			if err != nil {
				return err
			}
			started, err := startForDebug(ctx, s, name, paused)
			if err != nil {
				return err
			}
			t, err := s.Debug(ctx, name)
			if err != nil {
				return err
			}
			if symbols == "" {
				symbols = t.Symbols
			}
			argv := gdbArgv(gdb, t, symbols, gdbArgs)
			if a.json {
				return printResult(cmd.OutOrStdout(), debugJSON{Name: name, GDB: gdb, Argv: argv, GDBSocket: t.Socket,
					GDBArch: t.GDBArch, Symbols: symbols, StartedNow: started})
			}
			if started {
				how := "running"
				if paused {
					how = "paused at its first instruction"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "started %s with a gdb stub (%s); `vlab stop %s` ends it\n", name, how, name)
			}
			// gdb takes over this process: the terminal, signals (Ctrl-C
			// interrupts the guest) and the exit status are gdb's.
			if err := syscall.Exec(gdb, argv, os.Environ()); err != nil {
				return fmt.Errorf("debug %s: run %s: %w", name, gdb, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&symbols, "symbols", "", "the kernel's vmlinux (ELF with symbols); default: one found beside the VM's --kernel")
	f.BoolVar(&paused, "paused", false, "start the stopped VM with its CPUs waiting at the first instruction")
	f.BoolVar(&a.json, "json", false, "print the gdb command line as JSON instead of running it")
	return cmd
}

// startForDebug starts VM name with a gdb stub (its CPUs waiting at the
// first instruction with paused) unless it runs already; started tells
// which.
func startForDebug(ctx context.Context, s *machine.Store, name string, paused bool) (started bool, err error) {
	st, err := s.Status(ctx, name)
	if err != nil {
		return false, err
	}
	if st.State.Active() {
		if paused {
			return false, usageError{fmt.Errorf("debug %s: --paused catches the first instruction only at start and %s is %s: `vlab stop %s` first", name, name, st.State, name)}
		}
		return false, nil
	}
	if err := s.Start(ctx, name, machine.StartOptions{Paused: paused, Debug: machine.DebugOptions{GDB: true}}); err != nil {
		return false, err
	}
	return true, nil
}

// findGDB prefers gdb-multiarch, which knows every guest arch.
func findGDB() (string, error) {
	for _, g := range []string{"gdb-multiarch", "gdb"} {
		if p, err := exec.LookPath(g); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("debug: gdb not found: install it (apt-get install gdb-multiarch)")
}

// gdbArgv is gdb's command line: the arch, the symbols, the stub, then the
// user's arguments (so their -ex commands run attached).
func gdbArgv(gdb string, t machine.DebugTarget, symbols string, user []string) []string {
	argv := []string{gdb, "-q"}
	if t.GDBArch != "" {
		argv = append(argv, "-ex", "set architecture "+t.GDBArch)
	}
	if t.Endian != "" {
		argv = append(argv, "-ex", "set endian "+t.Endian)
	}
	if symbols != "" {
		argv = append(argv, "-ex", "symbol-file "+strconv.Quote(symbols))
	}
	argv = append(argv, "-ex", "target remote "+t.Socket)
	return append(argv, user...)
}
