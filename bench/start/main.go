// Command start measures time-to-QMP-ready of one VM started through
// `vlab start` and through the very same qemu argv run by hand, side by side
// in one run, and records both and their difference in bench/RESULTS.md.
//
// With -base OLD (a vlab binary built from an earlier commit, e.g. by
// bench/start/base.sh), that vlab's start is timed in the same rounds, in
// its own library, so the table also shows what the change since costs.
//
// Usage: go run ./bench/start [-n 15] [-vlab bin/vlab] [-base OLD -base-rev REV] [-out bench/RESULTS.md]
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

func main() {
	n := flag.Int("n", 15, "rounds (each starts the VM both ways)")
	vlab := flag.String("vlab", "bin/vlab", "vlab binary")
	out := flag.String("out", "bench/RESULTS.md", "results file")
	base := flag.String("base", "", "an earlier vlab binary to time in the same rounds (optional)")
	baseRev := flag.String("base-rev", "an earlier commit", "what -base was built from, for the table")
	flag.Parse()
	if err := run(*n, *vlab, *base, *baseRev, *out); err != nil {
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

// newWorld makes a library of its own for the vlab binary at path, with the
// bench VM defined in it.
func newWorld(path string) (world, func(), error) {
	vlab, err := filepath.Abs(path)
	if err != nil {
		return world{}, nil, err
	}
	home, err := os.MkdirTemp("", "vlab bench")
	if err != nil {
		return world{}, nil, err
	}
	done := func() { os.RemoveAll(home) }
	w := world{vlab: vlab, env: append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_STATE_HOME="+filepath.Join(home, "state"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_RUNTIME_DIR="+filepath.Join(home, "run"))}
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	kernel := filepath.Join(fixture.Dir(), "x86_64", "vmlinuz")
	initrd := filepath.Join(fixture.Dir(), "x86_64", "initrd.img")
	if _, err := os.Stat(kernel); err != nil {
		done()
		return world{}, nil, fmt.Errorf("fixture kernel missing (run scripts/fixtures.sh): %w", err)
	}
	if _, err := w.cmd("create", "bench", "--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0",
		"--memory", "256M", "--disk", "64M", "--net", "none", "--display", "vnc"); err != nil {
		done()
		return world{}, nil, err
	}
	return w, done, nil
}

func run(n int, vlab, base, baseRev, out string) error {
	w, done, err := newWorld(vlab)
	if err != nil {
		return err
	}
	defer done()
	var old *world
	if base != "" {
		ow, done, err := newWorld(base)
		if err != nil {
			return fmt.Errorf("base vlab: %w", err)
		}
		defer done()
		old = &ow
		if _, err := viaVlab(ow); err != nil { // warm it too
			return err
		}
	}
	var show struct {
		QMPSocket  string   `json:"qmp_socket"`
		QMPSockets []string `json:"qmp_sockets"`
	}
	data, err := w.cmd("show", "bench", "--json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &show); err != nil {
		return err
	}
	data, err = w.cmd("cmdline", "bench", "--json")
	if err != nil {
		return err
	}
	var argv []string
	if err := json.Unmarshal(data, &argv); err != nil {
		return err
	}
	// Warm both paths once (page cache, probe cache); vlab's run also
	// creates the runtime and log folders the argv names.
	if _, err := viaVlab(w); err != nil {
		return err
	}
	if _, err := bare(argv, show.QMPSocket); err != nil {
		return err
	}
	var tb, tv, te, to []time.Duration
	for i := 0; i < n; i++ {
		b, err := bare(argv, show.QMPSocket)
		if err != nil {
			return err
		}
		v, err := viaVlab(w)
		if err != nil {
			return err
		}
		e, err := execOnly(w)
		if err != nil {
			return err
		}
		tb, tv, te = append(tb, b), append(tv, v), append(te, e)
		if old != nil {
			o, err := viaVlab(*old)
			if err != nil {
				return err
			}
			to = append(to, o)
		}
	}
	mb, mv, me := median(tb), median(tv), median(te)
	baseRows := ""
	if old != nil {
		mo := median(to)
		baseRows = fmt.Sprintf(`| vlab start, built from %s | %s | %s | %s |

What the change since %s adds to `+"`vlab start`"+`, measured in the same rounds: **%s**.
`, baseRev, ms(mo), ms(slices.Min(to)), ms(slices.Max(to)), baseRev, signedMs(mv-mo))
	}
	body := fmt.Sprintf(`Time from exec to the QMP greeting, for one x86_64 VM (q35, TCG, VNC + tablet, 4 QMP
monitors, serial chardev with log): `+"`vlab start`"+` (the whole CLI process: load machine.toml, cached
host probe, accel choice, argv, launch, wait) vs the same argv from `+"`vlab cmdline`"+` exec'd by hand.
Medians of %d alternating rounds, measured with `+"`go run ./bench/start`"+`.

| path | median | min | max |
|---|---|---|---|
| qemu argv by hand | %s | %s | %s |
| vlab start | %s | %s | %s |
%s
vlab over its own argv: **%s** (ratio %.2f). Target: at most +5 ms.
Of that, %s is running the vlab binary at all: `+"`vlab --version`"+`, timed in the same rounds, takes
%s (the Go runtime and package initialisation of a static binary, and process exit); vlab's own
work on the start path (machine.toml, lock, cached host probe, accel choice, argv, launch, records)
is the remaining %s.
Peers measured on the reference machine: bare QEMU 13 ms, nemu 30.5 ms (+7 ms over its own argv),
quickemu 119 ms (+74 ms).

Machine: %s.
`, n, ms(mb), ms(slices.Min(tb)), ms(slices.Max(tb)), ms(mv), ms(slices.Min(tv)), ms(slices.Max(tv)), baseRows, signedMs(mv-mb), float64(mv)/float64(mb),
		ms(me), ms(me), ms(mv-mb-me), results.Machine())
	fmt.Print(body)
	return results.Write(out, "Start: time to QMP ready", body)
}

// bare runs argv directly and returns the time until QMP accepts; then it
// kills QEMU and waits for it.
func bare(argv []string, qmp string) (time.Duration, error) {
	os.Remove(qmp)
	if err := os.MkdirAll(filepath.Dir(qmp), 0o700); err != nil {
		return 0, err
	}
	c := exec.Command(argv[0], argv[1:]...)
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
	for {
		select {
		case <-exited:
			return 0, fmt.Errorf("qemu by hand exited: %s", stderr.String())
		default:
		}
		if conn, err := net.Dial("unix", qmp); err == nil {
			// Ready means greeted, as for vlab: a connect alone succeeds
			// before QEMU's main loop runs.
			line, err := bufio.NewReader(conn).ReadSlice('\n')
			conn.Close()
			if err == nil && strings.Contains(string(line), `"QMP"`) {
				return time.Since(t0), nil
			}
		}
		if time.Since(t0) > 30*time.Second {
			return 0, fmt.Errorf("qemu by hand: QMP never came up")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func viaVlab(w world) (time.Duration, error) {
	t0 := time.Now()
	if _, err := w.cmd("start", "bench"); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	_, err := w.cmd("stop", "--force", "bench")
	return d, err
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
