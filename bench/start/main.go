// Command start measures what `vlab start` adds to QEMU's own start-up, as
// the performance issue defines it: the wall time from the exec of
// `vlab start NAME` to the first QMP greeting on the VM's socket, against
// the very argv of `vlab cmdline NAME` exec'd by hand, alternating, medians
// of n rounds, on a direct-kernel VM and on a memtest86+ ISO VM. Two more
// paths run in the same rounds: the floor of any Go launcher (./launcher,
// which only spawns the argv as vlab does and waits for the greeting), and
// the TUI's start, which runs in the TUI's own process (tui.MachineService
// over a machine.Store opened once, as `vlab` without arguments does). All
// paths are clocked by the same poller on the same socket: the VM's last
// QMP monitor (vlab itself waits on the first), so no side is timed by a
// different method. What `vlab start` costs until it returns (its records,
// its output and the exit of the process) and what running the vlab binary
// at all costs (`vlab --version`) are shown beside, from the same rounds.
//
// Usage: go run ./bench/start [-n 21] [-vlab bin/vlab] [-out bench/RESULTS.md]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"vlab/bench/results"
	"vlab/internal/fixture"
	"vlab/machine"
	"vlab/tui"
)

// memtestISO is where Debian's memtest86+ package puts its BIOS ISO.
const memtestISO = "/usr/lib/memtest86+/memtest86+x64.iso"

func main() {
	n := flag.Int("n", 21, "rounds (each starts every VM both ways)")
	vlab := flag.String("vlab", "bin/vlab", "vlab binary")
	out := flag.String("out", "bench/RESULTS.md", "results file")
	flag.Parse()
	if err := run(*n, *vlab, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench start:", err)
		os.Exit(1)
	}
}

type world struct {
	vlab     string
	launcher string // the minimal Go launcher, built into the world's folder
	home     string
	run      string // its XDG_RUNTIME_DIR
	env      []string
}

// runtimeDir makes the world's XDG_RUNTIME_DIR. A desktop session's is a
// tmpfs (/run/user/UID, made by systemd-logind), where vlab's sockets and
// records live: the bench uses one too, under the session's own runtime
// folder or /dev/shm, and falls back to a folder in home (a disk) only when
// neither is a tmpfs. The table says which it was.
func runtimeDir(home string) (string, error) {
	for _, parent := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/dev/shm"} {
		if parent != "" && isTmpfs(parent) {
			if dir, err := os.MkdirTemp(parent, "vlab-bench-run"); err == nil {
				return dir, nil
			}
		}
	}
	dir := filepath.Join(home, "run")
	return dir, os.MkdirAll(dir, 0o700)
}

func isTmpfs(path string) bool {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && st.Type == tmpfsMagic
}

func (w world) cmd(args ...string) ([]byte, error) {
	c := exec.Command(w.vlab, args...)
	c.Env = w.env
	out, err := c.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("vlab %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// benchVM is one VM of the bench, with what both paths need to start it.
type benchVM struct {
	name  string
	what  string   // for the table
	argv  []string // `vlab cmdline NAME`
	qmp   string   // the socket vlab's Launch waits on: removed before a run by hand
	clock string   // the socket both paths are clocked on
}

// newWorld makes a library of its own for the vlab binary at path, with the
// bench VMs defined in it.
func newWorld(path string) (world, []benchVM, func(), error) {
	vlab, err := filepath.Abs(path)
	if err != nil {
		return world{}, nil, nil, err
	}
	home, err := os.MkdirTemp("", "vlab bench")
	if err != nil {
		return world{}, nil, nil, err
	}
	run, err := runtimeDir(home)
	if err != nil {
		os.RemoveAll(home)
		return world{}, nil, nil, err
	}
	done := func() { os.RemoveAll(home); os.RemoveAll(run) }
	fail := func(err error) (world, []benchVM, func(), error) {
		done()
		return world{}, nil, nil, err
	}
	w := world{vlab: vlab, home: home, run: run, env: append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_STATE_HOME="+filepath.Join(home, "state"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_RUNTIME_DIR="+run)}
	w.launcher = filepath.Join(home, "launcher")
	if out, err := exec.Command("go", "build", "-o", w.launcher, "./bench/start/launcher").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("build the Go launcher (run the bench from the repository root): %v: %s", err, out))
	}
	kernel := filepath.Join(fixture.Dir(), "x86_64", "vmlinuz")
	initrd := filepath.Join(fixture.Dir(), "x86_64", "initrd.img")
	if _, err := os.Stat(kernel); err != nil {
		return fail(fmt.Errorf("fixture kernel missing (run scripts/fixtures.sh): %w", err))
	}
	if _, err := os.Stat(memtestISO); err != nil {
		return fail(fmt.Errorf("memtest86+ ISO missing (run scripts/deps.sh, or apt-get install memtest86+): %w", err))
	}
	creates := []struct {
		name, what string
		args       []string
	}{
		{"kernel", "direct-kernel Linux", []string{"--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0", "--disk", "64M"}},
		{"memtest", "memtest86+ ISO", []string{"--iso", memtestISO, "--disk", "64M"}},
	}
	var vms []benchVM
	for _, c := range creates {
		args := append([]string{"create", c.name, "--memory", "256M", "--net", "none", "--display", "vnc"}, c.args...)
		if _, err := w.cmd(args...); err != nil {
			return fail(err)
		}
		vm, err := w.describe(c.name, c.what)
		if err != nil {
			return fail(err)
		}
		vms = append(vms, vm)
	}
	return w, vms, done, nil
}

func (w world) describe(name, what string) (benchVM, error) {
	var show struct {
		QMPSockets []string `json:"qmp_sockets"`
	}
	data, err := w.cmd("show", name, "--json")
	if err != nil {
		return benchVM{}, err
	}
	if err := json.Unmarshal(data, &show); err != nil {
		return benchVM{}, fmt.Errorf("vlab show %s --json: %w", name, err)
	}
	if len(show.QMPSockets) < 2 {
		return benchVM{}, fmt.Errorf("vm %s has %d QMP monitors: the bench needs a spare one to clock on", name, len(show.QMPSockets))
	}
	data, err = w.cmd("cmdline", name, "--json")
	if err != nil {
		return benchVM{}, err
	}
	vm := benchVM{name: name, what: what, qmp: show.QMPSockets[0], clock: show.QMPSockets[len(show.QMPSockets)-1]}
	if err := json.Unmarshal(data, &vm.argv); err != nil {
		return benchVM{}, fmt.Errorf("vlab cmdline %s --json: %w", name, err)
	}
	return vm, nil
}

// times are one VM's measurements over the rounds.
type times struct{ bare, launcher, vlab, returned, inproc []time.Duration }

// dirs are the world's library folders, as machine.DefaultDirs finds them
// under the world's XDG variables.
func (w world) dirs() machine.Dirs {
	return machine.Dirs{
		Config:  filepath.Join(w.home, "config", "vlab"),
		Data:    filepath.Join(w.home, "data", "vlab"),
		Runtime: filepath.Join(w.run, "vlab"),
		State:   filepath.Join(w.home, "state", "vlab"),
		Cache:   filepath.Join(w.home, "cache", "vlab"),
	}
}

func run(n int, vlab, out string) error {
	w, vms, done, err := newWorld(vlab)
	if err != nil {
		return err
	}
	defer done()
	// The TUI's path: one Store for the whole run, as the TUI holds one.
	store, err := machine.Open(w.dirs())
	if err != nil {
		return err
	}
	svc := tui.NewMachineService(store)
	// Warm every path once (page cache, vlab's probe cache, the TUI
	// process's first use of its code; vlab's run also creates the runtime
	// and log folders the argv names).
	for _, vm := range vms {
		if _, _, err := viaVlab(w, vm); err != nil {
			return err
		}
		if _, err := round(w, svc, vm); err != nil {
			return err
		}
	}
	got := make([]times, len(vms))
	var version []time.Duration
	for i := 0; i < n; i++ {
		for j, vm := range vms {
			r, err := round(w, svc, vm)
			if err != nil {
				return err
			}
			t := &got[j]
			t.bare, t.launcher = append(t.bare, r.bare), append(t.launcher, r.launcher)
			t.vlab, t.returned = append(t.vlab, r.vlab), append(t.returned, r.returned)
			t.inproc = append(t.inproc, r.inproc)
		}
		e, err := execOnly(w)
		if err != nil {
			return err
		}
		version = append(version, e)
	}
	body := report(n, vms, got, median(version), w.run)
	fmt.Print(body)
	return results.Write(out, "Start: time to QMP ready", body)
}

// sample is one round of one VM: each path once, in a fixed order.
type sample struct{ bare, launcher, vlab, returned, inproc time.Duration }

func round(w world, svc *tui.MachineService, vm benchVM) (sample, error) {
	var r sample
	var err error
	if r.bare, err = bare(vm); err != nil {
		return r, err
	}
	if r.launcher, err = viaLauncher(w, vm); err != nil {
		return r, err
	}
	if r.vlab, r.returned, err = viaVlab(w, vm); err != nil {
		return r, err
	}
	r.inproc, err = inProcess(svc, vm)
	return r, err
}

func report(n int, vms []benchVM, got []times, version time.Duration, run string) string {
	var rows strings.Builder
	var worst, floor, worstTUI time.Duration
	for j, vm := range vms {
		t := got[j]
		base := median(t.bare)
		added, launcher, tuiAdded := pairedAdded(t.vlab, t.bare), pairedAdded(t.launcher, t.bare), pairedAdded(t.inproc, t.bare)
		worst, floor, worstTUI = max(worst, added), max(floor, launcher), max(worstTUI, tuiAdded)
		fmt.Fprintf(&rows, "| %s | %s | %s (%s) | %s (**%s**) | %s | %s (**%s**) |\n", vm.what, ms(base),
			ms(median(t.launcher)), signedMs(launcher), ms(median(t.vlab)), signedMs(added),
			ms(median(t.returned)), ms(median(t.inproc)), signedMs(tuiAdded))
	}
	return fmt.Sprintf(`Wall time from the start of each path to the first QMP greeting on the VM's socket (q35, TCG, VNC,
4 QMP monitors, serial chardev with log): the very argv of `+"`vlab cmdline NAME`"+` exec'd by hand; the same
argv through a minimal Go launcher (`+"`bench/start/launcher`"+`: spawns it as vlab does, waits for the greeting,
exits; no spec, no checks, no records); `+"`vlab start NAME`"+` from its exec; and the TUI's start, which runs in
the TUI's own process (`+"`tui.MachineService`"+` over one `+"`machine.Store`"+`, as `+"`vlab`"+` without arguments does).
All clocked by the same poller on the VM's last QMP socket; medians of %d rounds, the paths alternating;
what a path adds is the median of its time minus QEMU by hand's in the same round (the machine drifts
between rounds), so it need not equal the difference of the two medians beside it. Measured with
`+"`go run ./bench/start`"+`; the VM's runtime folder (sockets, records) on %s.
"vlab start returns" is the CLI run until the command exits (its records, its output line and the
exit of the process; a script waits for this).

| VM | QEMU by hand | minimal Go launcher | vlab start (added) | vlab start returns | TUI start, in-process (added) |
|---|---|---|---|---|---|
%s
- `+"`vlab start`"+` adds at most **%s** against the goal of at most +5 ms: %s.
- The TUI's in-process start adds at most **%s** against the goal of under 1 ms: %s.
- Floor: a Go program that does nothing but spawn the argv and wait for its greeting adds %s here.
  Running the vlab binary at all (`+"`vlab --version`"+`, same rounds) takes %s: the Go runtime, package
  initialisation and exit of a static binary, part of every number in the vlab column.

Peers measured on the reference machine: bare QEMU 13 ms, nemu 30.5 ms (+7 ms over its own argv),
quickemu 119 ms (+74 ms).

Machine: %s.
`, n, runKind(run), rows.String(), signedMs(worst), verdict(worst <= 5*time.Millisecond), signedMs(worstTUI),
		verdict(worstTUI < time.Millisecond), signedMs(floor), ms(version), results.Machine())
}

func runKind(run string) string {
	if isTmpfs(run) {
		return "a tmpfs, as a desktop session's XDG_RUNTIME_DIR is"
	}
	return "a disk (no tmpfs found for it)"
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

// bare runs the VM's argv directly and returns the time until QMP greets;
// then it kills QEMU and waits for it.
func bare(vm benchVM) (time.Duration, error) {
	os.Remove(vm.qmp)
	os.Remove(vm.clock)
	if err := os.MkdirAll(filepath.Dir(vm.qmp), 0o700); err != nil {
		return 0, err
	}
	c := exec.Command(vm.argv[0], vm.argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr strings.Builder
	c.Stderr = &stderr
	t0 := time.Now()
	if err := c.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	go func() { c.Wait(); close(exited) }()
	defer func() {
		c.Process.Kill()
		<-exited
	}()
	d, err := greeted(vm.clock, t0, exited)
	if err != nil {
		return 0, fmt.Errorf("qemu by hand: %v: %s", err, stderr.String())
	}
	return d, nil
}

// viaVlab runs `vlab start` and returns the time until QMP greets and the
// time until the command returned; then it stops the VM.
func viaVlab(w world, vm benchVM) (greet, returned time.Duration, err error) {
	os.Remove(vm.clock)
	c := exec.Command(w.vlab, "start", vm.name)
	c.Env = w.env
	var output strings.Builder
	c.Stdout, c.Stderr = &output, &output
	t0 := time.Now()
	if err := c.Start(); err != nil {
		return 0, 0, err
	}
	exited, failed := make(chan struct{}), make(chan struct{})
	var took time.Duration
	go func() {
		if c.Wait() != nil {
			close(failed) // QEMU will not greet: stop polling
		}
		took = time.Since(t0)
		close(exited)
	}()
	greet, gerr := greeted(vm.clock, t0, failed)
	<-exited
	if !c.ProcessState.Success() {
		return 0, 0, fmt.Errorf("vlab start %s: %s", vm.name, output.String())
	}
	if gerr != nil {
		return 0, 0, fmt.Errorf("vlab start %s: %v", vm.name, gerr)
	}
	_, err = w.cmd("stop", "--force", vm.name)
	return greet, took, err
}

// viaLauncher runs the minimal Go launcher on the VM's argv and returns the
// time until QMP greets; then it kills the QEMU the launcher left running.
func viaLauncher(w world, vm benchVM) (time.Duration, error) {
	os.Remove(vm.qmp)
	os.Remove(vm.clock)
	pidfile := pidfileOf(vm.argv)
	if pidfile == "" {
		return 0, fmt.Errorf("vm %s: the argv has no -pidfile to find the launched QEMU by", vm.name)
	}
	os.Remove(pidfile)
	log := filepath.Join(w.home, "launcher-"+vm.name+".log")
	c := exec.Command(w.launcher, append([]string{log, vm.qmp}, vm.argv...)...)
	var output strings.Builder
	c.Stdout, c.Stderr = &output, &output
	t0 := time.Now()
	if err := c.Start(); err != nil {
		return 0, err
	}
	exited, failed := make(chan struct{}), make(chan struct{})
	go func() {
		if c.Wait() != nil {
			close(failed)
		}
		close(exited)
	}()
	d, gerr := greeted(vm.clock, t0, failed)
	<-exited
	kerr := killPidfile(pidfile)
	if !c.ProcessState.Success() {
		return 0, fmt.Errorf("launcher: %s", output.String())
	}
	if gerr != nil {
		return 0, fmt.Errorf("launcher: %v", gerr)
	}
	return d, kerr
}

// pidfileOf returns the path QEMU's -pidfile option names in argv.
func pidfileOf(argv []string) string {
	for i, a := range argv[:len(argv)-1] {
		if a == "-pidfile" {
			return argv[i+1]
		}
	}
	return ""
}

// killPidfile kills the process whose pid QEMU wrote to path and waits
// until it is gone (it is not the bench's child: the launcher exited).
func killPidfile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("launched qemu: %w", err)
	}
	var pid int
	if _, err := fmt.Sscan(string(data), &pid); err != nil || pid <= 0 {
		return fmt.Errorf("launched qemu: bad pidfile %s: %q", path, data)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("launched qemu: kill %d: %w", pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return nil
		}
	}
	return fmt.Errorf("launched qemu %d: still there 10 s after SIGKILL", pid)
}

// inProcess starts the VM the way the TUI does, in this process, and
// returns the time until QMP greets; then it stops the VM the same way.
// Start runs on the calling goroutine, as bare's spawn does, and the poller
// beside it (it only has to be polling by the time QEMU greets).
func inProcess(svc *tui.MachineService, vm benchVM) (time.Duration, error) {
	os.Remove(vm.clock)
	ctx := context.Background()
	failed := make(chan struct{})
	type greeting struct {
		d   time.Duration
		err error
	}
	polled := make(chan greeting, 1)
	t0 := time.Now()
	go func() {
		d, err := greeted(vm.clock, t0, failed)
		polled <- greeting{d, err}
	}()
	err := svc.Start(ctx, vm.name)
	if err != nil {
		close(failed)
	}
	g := <-polled
	if err != nil {
		return 0, fmt.Errorf("tui start %s: %w", vm.name, err)
	}
	if g.err != nil {
		return 0, fmt.Errorf("tui start %s: %v", vm.name, g.err)
	}
	if err := svc.Stop(ctx, vm.name, true); err != nil {
		return 0, fmt.Errorf("tui stop %s: %w", vm.name, err)
	}
	return g.d, nil
}

// greeted polls the unix socket at path until a connection gets the QMP
// greeting, and returns the time since t0. It gives up when exited closes
// (the process that should open the socket is gone) or after 30 s.
func greeted(path string, t0 time.Time, exited <-chan struct{}) (time.Duration, error) {
	for {
		select {
		case <-exited:
			return 0, fmt.Errorf("exited before QMP greeted on %s", path)
		default:
		}
		if conn, err := net.Dial("unix", path); err == nil {
			// A connect alone succeeds before QEMU's main loop runs:
			// ready means greeted.
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(conn).ReadSlice('\n')
			conn.Close()
			if err == nil && strings.Contains(string(line), `"QMP"`) {
				return time.Since(t0), nil
			}
		}
		if time.Since(t0) > 30*time.Second {
			return 0, fmt.Errorf("QMP never greeted on %s", path)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// execOnly times `vlab --version`: what any vlab command costs before it
// does anything.
func execOnly(w world) (time.Duration, error) {
	t0 := time.Now()
	_, err := w.cmd("--version")
	return time.Since(t0), err
}

// pairedAdded is what a path adds to QEMU by hand: the median over the
// rounds of its time minus the by-hand time of the same round, so that the
// machine's drift from round to round (other jobs on a shared host) cancels.
func pairedAdded(path, byHand []time.Duration) time.Duration {
	diffs := make([]time.Duration, len(path))
	for i := range path {
		diffs[i] = path[i] - byHand[i]
	}
	return median(diffs)
}

func median(ds []time.Duration) time.Duration {
	return slices.Sorted(slices.Values(ds))[len(ds)/2]
}

// signedMs writes a difference with its sign: +1.2 ms, -0.4 ms.
func signedMs(d time.Duration) string {
	if d < 0 {
		return "-" + ms(-d)
	}
	return "+" + ms(d)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
