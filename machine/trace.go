package machine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"vlab/emulator"
)

// traceLogFile is the per-VM log of QEMU trace events and -d items, beside
// qemu.log in the VM's log folder.
const traceLogFile = "trace.log"

// TraceLog is the file QEMU writes VM p's trace events and -d log to.
func TraceLog(p Paths) string { return filepath.Join(p.LogDir, traceLogFile) }

// prepareTraceLog creates the trace log owner-only, so QEMU (which opens it
// with the umask's mode) writes into a private file.
func (s *Store) prepareTraceLog(p Paths) error {
	if err := mkdirPrivate(p.LogDir); err != nil {
		return fmt.Errorf("trace log: %w", err)
	}
	return touchPrivate(TraceLog(p))
}

// hmpString quotes s as a string argument of a human monitor command: HMP
// reads a double-quoted string with backslash escapes.
func hmpString(s string) string {
	return strconv.Quote(s)
}

// TraceEvents lists the trace events of running VM name whose names match
// pattern ("*" for all), sorted by name.
func (s *Store) TraceEvents(ctx context.Context, name, pattern string) ([]emulator.TraceEvent, error) {
	if err := emulator.CheckTracePattern(pattern); err != nil {
		return nil, err
	}
	var evs []emulator.TraceEvent
	err := s.withMonitor(ctx, name, func(m *emulator.Monitor) (err error) {
		evs, err = m.TraceEventGetState(ctx, pattern)
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Name < evs[j].Name })
	return evs, nil
}

// SetTrace turns the trace events matching each pattern on or off in
// running VM name and points QEMU's log at the VM's trace log (TraceLog). It
// returns the events that matched; a pattern that matches nothing is an
// error naming it, and nothing is changed.
func (s *Store) SetTrace(ctx context.Context, name string, patterns []string, on bool) ([]string, error) {
	mon, err := s.Monitor(ctx, name)
	if err != nil {
		return nil, err
	}
	defer mon.Close()
	var names []string
	for _, pat := range patterns {
		if err := emulator.CheckTracePattern(pat); err != nil {
			return nil, err
		}
		evs, err := mon.TraceEventGetState(ctx, pat)
		if err != nil {
			var qe *emulator.QMPError
			if !errors.As(err, &qe) {
				return nil, fmt.Errorf("trace vm %q: %w", name, err)
			}
			evs = nil // QEMU: unknown event
		}
		n := 0
		for _, e := range evs {
			if e.State != "unavailable" {
				names = append(names, e.Name)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("trace vm %q: %w matches %q: see `vlab trace %s --list`", name, emulator.ErrNoTraceEvent, pat, name)
		}
	}
	if on {
		p := s.Paths(name)
		if err := s.prepareTraceLog(p); err != nil {
			return nil, err
		}
		out, err := mon.HumanMonitorCommand(ctx, "logfile "+hmpString(TraceLog(p)))
		if err != nil {
			return nil, fmt.Errorf("trace vm %q: logfile: %w", name, err)
		}
		if out = strings.TrimSpace(out); out != "" {
			return nil, fmt.Errorf("trace vm %q: logfile: %s", name, out)
		}
	}
	for _, pat := range patterns {
		if err := mon.TraceEventSetState(ctx, pat, on); err != nil {
			return nil, fmt.Errorf("trace vm %q: %s: %w", name, pat, err)
		}
	}
	sort.Strings(names)
	return names, nil
}

// HMP runs one human monitor command on running VM name and returns its
// output.
func (s *Store) HMP(ctx context.Context, name, line string) (string, error) {
	var out string
	err := s.withMonitor(ctx, name, func(m *emulator.Monitor) (err error) {
		out, err = m.HumanMonitorCommand(ctx, line)
		return err
	})
	return out, err
}
