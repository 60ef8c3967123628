package emulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"vlab/internal/lazyre"
)

// Instrument is what one start adds for studying a guest: QEMU's -d log
// items and the log file they (and trace events) go to, and deterministic
// record or replay. The zero value adds nothing.
type Instrument struct {
	LogItems []string // -d items ("int", "guest_errors"...), checked by CheckLogItems
	LogFile  string   // -D: where -d output and trace events go ("" = QEMU's stderr, qemu.log)
	Replay   Replay   // record/replay (replay.go)
}

// args returns the options Instrument adds to the command line.
func (in Instrument) args() []string {
	var a []string
	if len(in.LogItems) > 0 {
		a = append(a, "-d", strings.Join(in.LogItems, ","))
	}
	if in.LogFile != "" {
		// -D takes a plain file name, not an option string: no escaping.
		a = append(a, "-D", in.LogFile)
	}
	return append(a, in.Replay.args()...)
}

// logItemName is what a -d item looks like; anything else (a comma, "=",
// a path) could add an option.
var logItemName = lazyre.New(`^[a-z][a-z0-9_]*$`)

// ParseLogItemsHelp reads `qemu-system-* -d help`: one item per line, its
// name first ("int        show interrupts/exceptions in short format").
func ParseLogItemsHelp(out string) []string {
	var items []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !logItemName().MatchString(f[0]) || f[0] == "tid" {
			continue // "Log items (comma separated):", "trace:PATTERN"; tid needs a %d file name
		}
		items = append(items, f[0])
	}
	return items
}

// CheckLogItems refuses -d items the binary does not list (known, from
// ParseLogItemsHelp) and anything that is not an item name.
func CheckLogItems(items, known []string) error {
	var bad []string
	for _, it := range items {
		if !logItemName().MatchString(it) || (len(known) > 0 && !slices.Contains(known, it)) {
			bad = append(bad, fmt.Sprintf("%q", it))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	if len(known) == 0 {
		return fmt.Errorf("unknown log item %s", strings.Join(bad, ", "))
	}
	return fmt.Errorf("unknown log item %s: choose from %s", strings.Join(bad, ", "), strings.Join(known, ", "))
}

// TraceEvent is one entry of QMP trace-event-list.
type TraceEvent struct {
	Name  string `json:"name"`
	State string `json:"state"` // "unavailable", "disabled", "enabled"
	VCPU  bool   `json:"vcpu"`
}

// tracePattern is a trace event name or a glob of them.
var tracePattern = lazyre.New(`^[A-Za-z0-9_*?]+$`)

// CheckTracePattern refuses a trace event pattern that is not an event
// name with * and ? wildcards.
func CheckTracePattern(p string) error {
	if !tracePattern().MatchString(p) {
		return fmt.Errorf("trace event pattern %q: use an event name from `vlab trace NAME --list`, * and ? match any characters", p)
	}
	return nil
}

// ErrNoTraceEvent is returned when a pattern names no event.
var ErrNoTraceEvent = errors.New("no such trace event")

// LogItems runs `binary -d help` and returns the -d items it lists.
func LogItems(ctx context.Context, binary string) ([]string, error) {
	// QEMU exits 1 after printing the help: judge by what it printed.
	out, err := exec.CommandContext(ctx, binary, "-d", "help").Output()
	items := ParseLogItemsHelp(string(out))
	if len(items) == 0 {
		return nil, fmt.Errorf("list log items of %s: %v: it printed none", binary, err)
	}
	return items, nil
}
