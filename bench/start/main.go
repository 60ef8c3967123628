// Command start measures what `vlab start` adds to QEMU's own start-up, as
// the performance issue defines it: the wall time from the exec of
// `vlab start NAME` to the first QMP greeting on the VM's socket, against
// the very argv of `vlab cmdline NAME` exec'd by hand, alternating, medians
// of n rounds, on a direct-kernel VM and on a memtest86+ ISO VM. Both paths
// are clocked by the same poller on the same socket: the VM's last QMP
// monitor (vlab itself waits on the first), so neither side is timed by a
// different method. What `vlab start` costs until it returns (its records,
// its output and the exit of the process) and what running the vlab binary
// at all costs (`vlab --version`) are shown beside, from the same rounds.
//
// Usage: go run ./bench/start [-n 21] [-vlab bin/vlab] [-out bench/RESULTS.md]
package main

import (
	"bufio"
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
	vlab string
	env  []string
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
	done := func() { os.RemoveAll(home) }
	fail := func(err error) (world, []benchVM, func(), error) {
		done()
		return world{}, nil, nil, err
	}
	w := world{vlab: vlab, env: append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_STATE_HOME="+filepath.Join(home, "state"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_RUNTIME_DIR="+filepath.Join(home, "run"))}
	if err := os.MkdirAll(filepath.Join(home, "run"), 0o700); err != nil {
		return fail(err)
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
type times struct{ bare, vlab, returned []time.Duration }

func run(n int, vlab, out string) error {
	w, vms, done, err := newWorld(vlab)
	if err != nil {
		return err
	}
	defer done()
	// Warm both paths once (page cache, vlab's probe cache; vlab's run
	// also creates the runtime and log folders the argv names).
	for _, vm := range vms {
		if _, _, err := viaVlab(w, vm); err != nil {
			return err
		}
		if _, err := bare(vm); err != nil {
			return err
		}
	}
	got := make([]times, len(vms))
	var version []time.Duration
	for i := 0; i < n; i++ {
		for j, vm := range vms {
			b, err := bare(vm)
			if err != nil {
				return err
			}
			v, r, err := viaVlab(w, vm)
			if err != nil {
				return err
			}
			got[j].bare, got[j].vlab, got[j].returned = append(got[j].bare, b), append(got[j].vlab, v), append(got[j].returned, r)
		}
		e, err := execOnly(w)
		if err != nil {
			return err
		}
		version = append(version, e)
	}

	var rows strings.Builder
	var worst time.Duration
	for j, vm := range vms {
		t := got[j]
		added := median(t.vlab) - median(t.bare)
		worst = max(worst, added)
		fmt.Fprintf(&rows, "| %s | %s | %s | **%s** | %s |\n", vm.what, ms(median(t.bare)), ms(median(t.vlab)),
			signedMs(added), ms(median(t.returned)))
	}
	verdict := "met"
	if worst > 5*time.Millisecond {
		verdict = "missed"
	}
	body := fmt.Sprintf(`Wall time from the exec of `+"`vlab start NAME`"+` to the first QMP greeting on the VM's socket, against the
very argv of `+"`vlab cmdline NAME`"+` exec'd by hand (q35, TCG, VNC, 4 QMP monitors, serial chardev with
log). Both clocked by the same poller on the VM's last QMP socket; medians of %d alternating rounds,
measured with `+"`go run ./bench/start`"+`. "vlab start returns" is the same run until the command exits (its
records, its output line and the exit of the process; a script waits for this).

| VM | QEMU by hand | vlab start | added by vlab | vlab start returns |
|---|---|---|---|---|
%s
Largest addition: **%s** against the goal of at most +5 ms: %s.
Running the vlab binary at all (`+"`vlab --version`"+`, same rounds) takes %s: the Go runtime, package
initialisation and exit of a static binary, part of every number in the vlab column.
Peers measured on the reference machine: bare QEMU 13 ms, nemu 30.5 ms (+7 ms over its own argv),
quickemu 119 ms (+74 ms).

Machine: %s.
`, n, rows.String(), signedMs(worst), verdict, ms(median(version)), results.Machine())
	fmt.Print(body)
	return results.Write(out, "Start: time to QMP ready", body)
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
