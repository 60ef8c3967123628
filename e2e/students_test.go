package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// rePC is gdb's answer to `p $pc`: "$1 = (void (*)()) 0xfff0".
var rePC = regexp.MustCompile(`\$\d+ = \(void \(\*\)\(\)\) (0x[0-9a-f]+)`)

// gdbPC runs `vlab debug NAME [flags] -- -batch -ex 'p $pc' extra...` and
// returns the pc gdb printed and its whole output.
func (e *env) gdbPC(name string, flags []string, extra ...string) (uint64, string) {
	e.t.Helper()
	args := append([]string{"debug", name}, flags...)
	args = append(args, "--", "-batch")
	args = append(args, extra...)
	args = append(args, "-ex", "p $pc")
	out, errs, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("vlab %q: exit %d\n%s\n%s", args, code, out, errs)
	}
	m := rePC.FindAllStringSubmatch(out, -1)
	if m == nil {
		e.t.Fatalf("vlab %q: gdb printed no pc:\n%s\n%s", args, out, errs)
	}
	pc, err := strconv.ParseUint(m[len(m)-1][1], 0, 64)
	if err != nil {
		e.t.Fatal(err)
	}
	return pc, out
}

// TestDebugGDB: `vlab debug` attaches gdb-multiarch to each fixture arch's
// private stub. With --paused the pc is where the board starts: x86 0xfff0
// (cs base 0xffff0000, so the first fetch is at 0xfffffff0; gdb shows $pc as
// the 16-bit ip), aarch64 virt 0x40000000 (the boot stub QEMU writes at the
// start of RAM for -kernel), ppc64 pseries 0x100 (SLOF's entry,
// SPAPR_ENTRY_POINT; the CPU runs big-endian there, which vlab tells gdb).
// Once booted the pc is elsewhere; for ppc64le, whose Debian kernel is an
// unstripped vmlinux, `info symbol $pc` after continue + interrupt names a
// kernel function.
func TestDebugGDB(t *testing.T) {
	fixture.Program(t, "gdb-multiarch")
	resets := map[string]uint64{"x86_64": 0xfff0, "aarch64": 0x40000000, "ppc64": 0x100}
	for _, arch := range []string{"x86_64", "aarch64", "ppc64"} {
		t.Run(arch, func(t *testing.T) {
			e := newEnv(t)
			g := guests[arch]
			e.createGuest("dbg", g, nil, "--display", "none", "--net", "none")
			pc, out := e.gdbPC("dbg", []string{"--paused"})
			if pc != resets[arch] {
				t.Fatalf("--paused: pc %#x, want the reset vector %#x\n%s", pc, resets[arch], out)
			}
			// gdb detached: the guest runs on and boots.
			e.waitSerial("dbg", fixture.MarkerBootOK)
			pc, out = e.gdbPC("dbg", nil)
			if pc == resets[arch] || pc == 0 {
				t.Fatalf("booted guest: pc %#x is still the reset vector\n%s", pc, out)
			}
			if arch != "ppc64" {
				return
			}
			re := regexp.MustCompile(`(?m)^(\w+) \+ \d+ in section \.text`)
			var m []string
			for try := 0; try < 5 && m == nil; try++ { // an interrupt may land outside .text (firmware, user space)
				_, out = e.gdbPC("dbg", nil,
					"-ex", `python import threading; threading.Timer(2, lambda: gdb.post_event(lambda: gdb.execute("interrupt"))).start()`,
					"-ex", "continue", "-ex", "info symbol $pc")
				m = re.FindStringSubmatch(out)
			}
			if m == nil {
				t.Fatalf("info symbol $pc named no kernel function:\n%s", out)
			}
			t.Logf("interrupted in %s", m[1])
		})
	}
}

// TestDebugRefusals: a running VM without a stub gets the fix, and --paused
// on a running VM is a usage error.
func TestDebugRefusals(t *testing.T) {
	fixture.Program(t, "gdb-multiarch")
	e := newEnv(t)
	e.createGuest("nostub", guests["aarch64"], nil, "--display", "none", "--net", "none")
	e.ok("start", "nostub")
	e.fail([]string{"without --gdb", "vlab stop nostub"}, "debug", "nostub", "--", "-batch")
	if _, _, code := e.run("debug", "nostub", "--paused"); code != 2 {
		t.Fatalf("debug --paused on a running vm: exit %d, want 2", code)
	}
}

// TestMonitorAndTrace: `vlab monitor -c` answers info status and info
// registers; `vlab trace` turns an event on and its lines appear in the
// VM's owner-only trace log.
func TestMonitorAndTrace(t *testing.T) {
	e := newEnv(t)
	e.createGuest("mon", guests["aarch64"], nil, "--display", "none", "--net", "none")
	e.ok("start", "mon")
	if out := e.ok("monitor", "mon", "-c", "info status"); !strings.Contains(out, "VM status: running") {
		t.Fatalf("info status: %q", out)
	}
	var j struct{ Command, Output string }
	if err := json.Unmarshal([]byte(e.ok("monitor", "mon", "-c", "info registers", "--json")), &j); err != nil {
		t.Fatal(err)
	}
	if j.Command != "info registers" || !regexp.MustCompile(`PC=[0-9a-f]{16}`).MatchString(j.Output) {
		t.Fatalf("info registers: %+v", j)
	}
	e.fail([]string{"foo_bar_nosuch", "--list"}, "trace", "mon", "foo_bar_nosuch")
	e.ok("trace", "mon", "qmp_enter_query_status")
	e.ok("monitor", "mon", "-c", "info status") // vlab asks query-status first
	e.ok("show", "mon")                         // and show asks it too
	log := filepath.Join(e.home, "state dir", "vlab", "mon", "trace.log")
	waitFor(t, "trace lines in "+log, time.Minute, func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "qmp_enter_query_status")
	})
	if fi, err := os.Stat(log); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("trace log %s: %v %v, want mode 0600", log, fi, err)
	}
	var l struct {
		Events []struct{ Name, State string }
	}
	if err := json.Unmarshal([]byte(e.ok("trace", "mon", "--list", "qmp_enter_query_status", "--json")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 1 || l.Events[0].State != "enabled" {
		t.Fatalf("trace --list: %+v", l)
	}
	e.ok("trace", "mon", "qmp_enter_query_status", "--off")
	e.ok("stop", "--force", "mon")
	e.fail([]string{"nosuch_item", "guest_errors"}, "start", "mon", "--log", "nosuch_item")
}
