package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"vlab/console"
	"vlab/emulator"
)

func (a *app) qmpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "qmp NAME [JSON]",
		Short: "Talk raw QMP to a running VM (interactive without JSON)",
		Long: `Send QMP commands to a running VM and print QEMU's replies verbatim.
With a JSON argument, run that one command. Without, read one JSON command per line from stdin
and print replies and asynchronous events as they arrive. Each VM has several QMP monitors, so this
works while the TUI and other vlab commands are connected.`,
		Example: `  vlab qmp deb '{"execute":"query-status"}'
  vlab qmp deb    # then type {"execute":"query-block"}`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("qmp takes NAME and an optional JSON command: see `vlab qmp --help`")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			send := func(mon *emulator.Monitor, line string) error {
				if !json.Valid([]byte(line)) {
					return fmt.Errorf(`qmp: %q is not JSON: write e.g. {"execute":"query-status"}`, line)
				}
				reply, err := mon.ExecuteRaw(ctx, json.RawMessage(line))
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(reply))
				return nil
			}
			if len(args) == 2 {
				if !json.Valid([]byte(args[1])) {
					return usageError{fmt.Errorf(`qmp: %q is not JSON: write e.g. '{"execute":"query-status"}'`, args[1])}
				}
				mon, err := s.Monitor(ctx, args[0])
				if err != nil {
					return err
				}
				defer mon.Close()
				return send(mon, args[1])
			}
			mon, err := s.Monitor(ctx, args[0])
			if err != nil {
				return err
			}
			defer mon.Close()
			out := cmd.OutOrStdout()
			g := mon.Greeting()
			fmt.Fprintf(cmd.ErrOrStderr(), "connected to %s (QEMU %d.%d.%d); one JSON command per line, Ctrl-D to leave\n",
				args[0], g.Major, g.Minor, g.Micro)
			go func() {
				for ev := range mon.Events() {
					b, _ := json.Marshal(map[string]any{"event": ev.Name, "data": ev.Data, "timestamp": ev.Time})
					fmt.Fprintln(out, string(b))
				}
			}()
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					continue
				}
				if err := send(mon, line); err != nil {
					if errors.Is(err, emulator.ErrMonitorClosed) {
						return err
					}
					fmt.Fprintln(cmd.ErrOrStderr(), "vlab: "+oneLine(err.Error()))
				}
			}
			return sc.Err()
		},
	}
}

func (a *app) consoleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "console NAME",
		Short: "Attach to a VM's serial console (" + console.DetachHint + " detaches; the VM keeps running)",
		Long: `Attach this terminal to the VM's serial console. Type ` + console.DetachHint + ` to detach: the VM keeps running.
If the VM is still starting, console waits for it. With stdin not a terminal, input is sent as-is
and output is printed until the VM's console closes or vlab is interrupted.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name := args[0]
			if err := s.RequireActive(cmd.Context(), "console", name); err != nil {
				return err
			}
			p := s.Paths(name)
			if st, ok := s.Launched(name); ok && st.Replay != "" {
				return fmt.Errorf("console %q: this run is a %s run, whose console is written to %s only (typed input would not be in the recording): follow it with `tail -f %q`", name, st.Replay, p.SerialLog, p.SerialLog)
			}
			ser, err := console.AttachSerial(cmd.Context(), p.Serial)
			if err != nil {
				if errors.Is(err, console.ErrSerialBusy) {
					return fmt.Errorf("console %q: %w (the TUI serial view or another `vlab console`): detach there, or follow the output read-only with `tail -f %q`", name, console.ErrSerialBusy, p.SerialLog)
				}
				return err
			}
			defer ser.Close()
			interactive := stdinIsTerminal()
			if interactive {
				fmt.Fprintf(cmd.ErrOrStderr(), "attached to %s serial console; %s detaches\r\n", name, console.DetachHint)
				old, err := term.MakeRaw(os.Stdin.Fd())
				if err == nil {
					defer term.Restore(os.Stdin.Fd(), old)
				}
			}
			err = console.Pump(cmd.Context(), ser, cmd.InOrStdin(), cmd.OutOrStdout(), interactive)
			if !interactive && err == nil {
				// Input ended: keep showing output until the console closes
				// or we are interrupted.
				err = console.Pump(cmd.Context(), ser, strings.NewReader(""), cmd.OutOrStdout(), false)
				if err == nil {
					<-cmd.Context().Done()
				}
			}
			if interactive {
				fmt.Fprintf(cmd.ErrOrStderr(), "\r\ndetached from %s (still running)\r\n", name)
			}
			return err
		},
	}
}

func (a *app) doctorCmd() *cobra.Command {
	var fixPerms bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Show what this host has and lacks for vlab, with the command that fixes each gap",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			checks, err := s.Doctor(cmd.Context(), fixPerms)
			if err != nil {
				return err
			}
			if a.json {
				if err := printJSON(cmd.OutOrStdout(), checks); err != nil {
					return err
				}
				return doctorFindings(checks)
			}
			for _, c := range checks {
				mark := "ok  "
				if !c.OK {
					mark = "MISS"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "[%s] %-24s %s\n", mark, c.What, c.Info)
				if c.Fix != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "       fix: %s\n", c.Fix)
				}
			}
			return doctorFindings(checks)
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON")
	cmd.Flags().BoolVar(&fixPerms, "fix-permissions", false, "make every folder in vlab's own directories 0700 and take group/world access off every file (links are never followed)")
	return cmd
}
