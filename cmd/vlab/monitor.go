package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chzyer/readline"
	"github.com/spf13/cobra"

	"vlab/emulator"
	"vlab/machine"
)

// monitorJSON is `vlab monitor NAME -c CMD --json`.
type monitorJSON struct {
	Name    string `json:"name"`
	Command string `json:"command"`
	Output  string `json:"output"`
}

func (a *app) monitorCmd() *cobra.Command {
	var commands []string
	cmd := &cobra.Command{
		Use:   "monitor NAME",
		Short: "QEMU's human monitor (HMP) for a running VM, over QMP, with history and completion",
		Long: `Talk to QEMU's human monitor: info registers, info mtree, info pci, x/10i $pc, ...
Interactive with line editing, history (kept in vlab's state folder) and Tab completion of command
names; -c CMD runs one command (repeat -c for several) and prints its answer, for scripts.`,
		Example: `  vlab monitor deb
  vlab monitor deb -c 'info status' -c 'info registers'
  vlab monitor deb -c 'info pci' --json`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[0]
			if err := s.RequireActive(ctx, "monitor", name); err != nil {
				return err
			}
			if len(commands) > 0 {
				var outs []monitorJSON
				for _, c := range commands {
					out, err := s.HMP(ctx, name, c)
					if err != nil {
						return err
					}
					out = strings.ReplaceAll(out, "\r\n", "\n")
					outs = append(outs, monitorJSON{Name: name, Command: c, Output: out})
					if !a.json {
						fmt.Fprint(cmd.OutOrStdout(), out)
					}
				}
				if a.json {
					if len(outs) == 1 {
						return printResult(cmd.OutOrStdout(), outs[0])
					}
					return printResult(cmd.OutOrStdout(), map[string]any{"name": name, "results": outs})
				}
				return nil
			}
			if a.json {
				return usageError{fmt.Errorf("monitor --json needs -c CMD: the interactive monitor prints text")}
			}
			return a.monitorLoop(cmd, s, name)
		},
	}
	cmd.Flags().StringArrayVarP(&commands, "command", "c", nil, "run this monitor command and exit (repeatable)")
	cmd.Flags().BoolVar(&a.json, "json", false, "with -c: print the answers as JSON")
	return cmd
}

// monitorLoop is the interactive monitor: a readline prompt until EOF or quit.
func (a *app) monitorLoop(cmd *cobra.Command, s *machine.Store, name string) error {
	var items []readline.PrefixCompleterInterface
	for _, c := range emulator.HMPCommands {
		if c == "info" {
			var sub []readline.PrefixCompleterInterface
			for _, i := range emulator.HMPInfoTopics {
				sub = append(sub, readline.PcItem(i))
			}
			items = append(items, readline.PcItem(c, sub...))
			continue
		}
		items = append(items, readline.PcItem(c))
	}
	history := ""
	if p := s.Paths(name); p.LogDir != "" && os.MkdirAll(p.LogDir, 0o700) == nil {
		history = filepath.Join(p.LogDir, "monitor.history")
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:       "(" + name + ") ",
		HistoryFile:  history,
		AutoComplete: readline.NewPrefixCompleter(items...),
		Stdin:        io.NopCloser(cmd.InOrStdin()),
		Stdout:       cmd.OutOrStdout(),
		Stderr:       cmd.ErrOrStderr(),
	})
	if err != nil {
		return fmt.Errorf("monitor %q: %w", name, err)
	}
	defer rl.Close()
	if history != "" {
		_ = os.Chmod(history, 0o600)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "QEMU monitor of %s: `help` lists commands, Tab completes, Ctrl-D leaves (quit is refused: use `vlab stop`)\n", name)
	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err != nil { // io.EOF
			return nil
		}
		line = strings.TrimSpace(line)
		switch line {
		case "":
			continue
		case "quit", "q", "exit":
			return nil
		}
		out, err := s.HMP(cmd.Context(), name, line)
		if err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "vlab: "+oneLine(err.Error()))
			if errors.Is(err, machine.ErrNotRunning) {
				return err
			}
			continue
		}
		fmt.Fprint(cmd.OutOrStdout(), strings.ReplaceAll(out, "\r\n", "\n"))
	}
}
