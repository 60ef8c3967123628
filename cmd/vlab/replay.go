package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"vlab/machine"
)

// startDebugFlags adds vlab start's --record, --log and --gdb-for-this-run
// flags (the students' tools) to f.
func startDebugFlags(f *pflag.FlagSet, o *machine.DebugOptions) {
	f.BoolVar(&o.Record, "record", false, "record this run for deterministic replay (`vlab replay NAME`); TCG, no network, sound or USB; the console is written to serial.log only")
	f.StringSliceVar(&o.LogItems, "log", nil, "QEMU -d log items for this run into the VM's trace.log (e.g. int,guest_errors; see qemu-system-* -d help)")
}

// listRuns prints the recorded runs of VM name.
func (a *app) listRuns(out io.Writer, s *machine.Store, name string) error {
	runs, err := s.Runs(name)
	if err != nil {
		return err
	}
	if a.json {
		if runs == nil {
			runs = []machine.Run{}
		}
		return printResult(out, map[string]any{"name": name, "runs": runs})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tRECORDED\tLOG BYTES\tDISKS")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", r.ID, r.Time.Local().Format("2006-01-02 15:04:05"), r.LogBytes, r.Disks)
	}
	return tw.Flush()
}

func (a *app) replayCmd() *cobra.Command {
	var list, gdb, paused bool
	var rm string
	cmd := &cobra.Command{
		Use:   "replay NAME [RUN]",
		Short: "Replay a run recorded with `vlab start NAME --record` (the newest without RUN); list or delete runs",
		Long: `Start the VM replaying a recorded run: the guest executes exactly as it did, with the recorded
inputs (clock, interrupts, serial input, disk completions). --gdb opens a gdb stub so that
` + "`vlab debug NAME`" + ` can step, reverse-stepi and reverse-continue (every run starts from a snapshot
kept in the run's folder). Recorded and replayed runs write the console to the VM's serial.log only (no
` + "`vlab console`" + `: input typed there would not be in the recording). --list shows the recorded runs; --rm RUN deletes one.`,
		Example: `  vlab start tiny --record
  vlab replay tiny
  vlab replay tiny --gdb --paused && vlab debug tiny
  vlab replay tiny --list
  vlab replay tiny --rm 20261204-191530`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("replay takes NAME and an optional RUN: see `vlab replay --help`")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ctx, name := cmd.Context(), args[0]
			switch {
			case list:
				return a.listRuns(cmd.OutOrStdout(), s, name)
			case rm != "":
				if err := s.RemoveRun(ctx, name, rm); err != nil {
					return err
				}
				if a.json {
					return printResult(cmd.OutOrStdout(), map[string]any{"name": name, "removed": rm})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed run %s of %s\n", rm, name)
				return nil
			}
			run := ""
			if len(args) == 2 {
				run = args[1]
			} else if run, err = s.LatestRun(name); err != nil {
				return err
			}
			if err := s.Start(ctx, name, machine.StartOptions{Paused: paused, Debug: machine.DebugOptions{Replay: run, GDB: gdb}}); err != nil {
				return err
			}
			st, _ := s.Launched(name)
			if a.json {
				return printResult(cmd.OutOrStdout(), map[string]any{"name": name, "run": run, "pid": st.PID})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replaying run %s of %s (pid %d)\n", run, name, st.PID)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&list, "list", false, "list the recorded runs")
	f.StringVar(&rm, "rm", "", "delete recorded run RUN")
	f.BoolVar(&gdb, "gdb", false, "open a gdb stub for `vlab debug NAME` (reverse-stepi works in a replay)")
	f.BoolVar(&paused, "paused", false, "start the replay with the CPUs stopped")
	f.BoolVar(&a.json, "json", false, "print the result as JSON")
	return cmd
}
