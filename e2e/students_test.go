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

// reRandom is the fixture's VLAB-RANDOM line: 64 bits from /dev/urandom.
var reRandom = regexp.MustCompile(fixture.MarkerRandom + ` ([0-9a-f]{16})\r?\n`)

// randomOf waits for VM name's VLAB-RANDOM line and returns its number.
func (e *env) randomOf(name string) string {
	e.t.Helper()
	var m []string
	e.waitSerial(name, fixture.MarkerRandom)
	waitFor(e.t, name+"'s whole VLAB-RANDOM line", time.Minute, func() bool {
		b, _ := os.ReadFile(e.show(name).SerialLog)
		m = reRandom.FindStringSubmatch(string(b))
		return m != nil
	})
	return m[1]
}

// TestRecordReplay: a run recorded with `vlab start --record` replays
// exactly. The guest prints a number drawn from /dev/urandom at boot (its
// seed comes from interrupt and clock timing, which differ from boot to
// boot) and reads its disk; every replay prints the recorded console byte
// for byte and ends by itself where the recording was stopped, while a
// fresh boot draws another number. In a replay with --gdb, reverse-stepi
// walks back over the instructions stepi ran. The console of a recorded or
// replayed run is the serial log only, and `vlab console` says so.
func TestRecordReplay(t *testing.T) {
	fixture.Program(t, "gdb-multiarch")
	e := newEnv(t)
	e.createGuest("rr", guests["x86_64"], []string{"vlab.random=1"}, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", "rr", "--record")
	recorded := e.randomOf("rr")
	e.waitSerial("rr", fixture.MarkerDiskRead)
	e.fail([]string{"record run", "tail -f"}, "console", "rr")
	e.ok("stop", "--force", "rr")
	log := e.show("rr").SerialLog
	want, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}

	var l struct {
		Runs []struct {
			ID       string `json:"id"`
			LogBytes int64  `json:"log_bytes"`
			Disks    int    `json:"disks"`
		}
	}
	if err := json.Unmarshal([]byte(e.ok("replay", "rr", "--list", "--json")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Runs) != 1 || l.Runs[0].LogBytes == 0 || l.Runs[0].Disks != 1 {
		t.Fatalf("replay --list: %+v, want one run with a log and the disk", l.Runs)
	}
	for i := 1; i <= 2; i++ {
		e.ok("replay", "rr")
		if got := e.randomOf("rr"); got != recorded {
			t.Fatalf("replay %d printed VLAB-RANDOM %s, the recorded run %s", i, got, recorded)
		}
		// The replay ends with the recording: QEMU replays the recorded
		// quit and exits; vlab sees a clean stop, not a crash. On a loaded
		// host a replaying QEMU can be slow to answer QMP and show as
		// unresponsive for a while: only an end state counts.
		var st string
		waitFor(t, "the replay to reach the end of the recording", 5*time.Minute, func() bool {
			st = e.state("rr")
			return st == "stopped" || st == "crashed"
		})
		if st != "stopped" {
			t.Fatalf("replay %d ended in state %q, want stopped", i, st)
		}
		if got, _ := os.ReadFile(log); string(got) != string(want) {
			t.Fatalf("replay %d console differs from the recorded one:\n%q\nrecorded:\n%q", i, got, want)
		}
	}

	e.ok("replay", "rr", "--gdb", "--paused")
	e.fail([]string{"replay run", "tail -f"}, "console", "rr")
	out := e.ok("debug", "rr", "--", "-batch",
		"-ex", "p $pc", "-ex", "stepi", "-ex", "p $pc", "-ex", "stepi", "-ex", "p $pc",
		"-ex", "reverse-stepi", "-ex", "p $pc", "-ex", "reverse-stepi", "-ex", "p $pc")
	var pcs []string
	for _, m := range rePC.FindAllStringSubmatch(out, -1) {
		pcs = append(pcs, m[1])
	}
	if len(pcs) != 5 || pcs[0] != "0xfff0" || pcs[1] == pcs[0] || pcs[2] == pcs[1] || pcs[3] != pcs[1] || pcs[4] != pcs[0] {
		t.Fatalf("stepi, stepi, reverse-stepi, reverse-stepi: pcs %v, want a, b, c, b, a from the reset vector 0xfff0\n%s", pcs, out)
	}
	e.ok("stop", "--force", "rr")

	e.ok("start", "rr")
	if fresh := e.randomOf("rr"); fresh == recorded {
		t.Fatalf("a fresh boot printed the recorded VLAB-RANDOM %s too: the test cannot tell a replay from a boot", fresh)
	}
	e.ok("stop", "--force", "rr")
	e.ok("replay", "rr", "--rm", l.Runs[0].ID)
	e.fail([]string{"recorded run", "--record"}, "replay", "rr")
}
