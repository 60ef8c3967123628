package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// traceJSON is `vlab trace --json`.
type traceJSON struct {
	Name    string   `json:"name"`
	Enabled bool     `json:"enabled"`
	Events  []string `json:"events"`
	Log     string   `json:"log"`
}

type traceEventJSON struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

func (a *app) traceCmd() *cobra.Command {
	var off, list, follow bool
	cmd := &cobra.Command{
		Use:   "trace NAME [PATTERN...]",
		Short: "Turn QEMU trace events on or off in a running VM; follow the VM's trace log",
		Long: `Turn the QEMU trace events matching each PATTERN (* and ? are wildcards) on, or off with --off,
while the VM runs. Their lines go to the VM's trace log (trace.log beside qemu.log, owner-only), which
--follow prints as it grows. --list shows the events (all, or those matching the patterns) and their
state. -d log items (int, guest_errors, cpu_reset, ...) are chosen per start: vlab start NAME --log int.`,
		Example: `  vlab trace deb --list 'virtio_*'
  vlab trace deb 'virtio_blk_*' --follow
  vlab trace deb 'virtio_blk_*' --off`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageError{fmt.Errorf("trace takes NAME and event patterns: see `vlab trace --help`")}
			}
			if len(args) == 1 && !list && !follow {
				return usageError{fmt.Errorf("trace %s: name the events to turn on (or --off), or use --list or --follow: see `vlab trace --help`", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ctx, name, pats := cmd.Context(), args[0], args[1:]
			if err := s.RequireActive(ctx, "trace", name); err != nil {
				return err
			}
			log := machine.TraceLog(s.Paths(name))
			if list {
				if len(pats) == 0 {
					pats = []string{"*"}
				}
				var all []traceEventJSON
				for _, p := range pats {
					evs, err := s.TraceEvents(ctx, name, p)
					if err != nil {
						return err
					}
					for _, e := range evs {
						all = append(all, traceEventJSON{Name: e.Name, State: e.State})
					}
				}
				if a.json {
					return printResult(cmd.OutOrStdout(), map[string]any{"name": name, "events": all})
				}
				for _, e := range all {
					fmt.Fprintf(cmd.OutOrStdout(), "%-60s %s\n", e.Name, e.State)
				}
				return nil
			}
			if len(pats) > 0 {
				names, err := s.SetTrace(ctx, name, pats, !off)
				if err != nil {
					return err
				}
				if a.json && !follow {
					return printResult(cmd.OutOrStdout(), traceJSON{Name: name, Enabled: !off, Events: names, Log: log})
				}
				verb := "tracing"
				if off {
					verb = "stopped tracing"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s %s of %s; their lines go to %s\n", verb, count(len(names), "event", "events"), name, log)
			}
			if follow {
				return followFile(ctx, log, cmd.OutOrStdout())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&off, "off", false, "turn the matching events off")
	f.BoolVar(&list, "list", false, "list trace events and their state")
	f.BoolVar(&follow, "follow", false, "print the trace log and what is added to it until interrupted")
	f.BoolVar(&a.json, "json", false, "print the events as JSON")
	return cmd
}

// followFile copies path to w, then what is appended to it, until ctx ends.
// A file that shrinks (QEMU reopened it for a new trace) is read again from
// its start.
func followFile(ctx context.Context, path string, w io.Writer) error {
	var off int64
	buf := make([]byte, 64*1024)
	for {
		if f, err := os.Open(path); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Size() < off {
				off = 0
			}
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				for {
					n, err := f.Read(buf)
					if n > 0 {
						if _, werr := w.Write(buf[:n]); werr != nil {
							f.Close()
							return nil // the reader went away (a closed pipe)
						}
						off += int64(n)
					}
					if err != nil {
						break
					}
				}
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
