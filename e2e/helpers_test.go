// Package e2e drives the real vlab binary, as a user types it, against real
// QEMU booting real Linux guests built from Debian packages (see
// scripts/fixtures.sh). Every test runs under its own XDG directories whose
// paths contain spaces.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

var vlabBin string

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == sshWrapperName {
		fmt.Fprintln(os.Stderr, sshWrapper()) // libvirtd_test.go; returns only on failure
		os.Exit(255)
	}
	if root := os.Getenv(libvirtdHelperEnv); root != "" {
		if err := libvirtdHelper(root); err != nil { // libvirtd_test.go
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "vlab-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vlabBin = filepath.Join(dir, "vlab")
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(self))
	build := exec.Command("go", "build", "-o", vlabBin, "./cmd/vlab")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build vlab: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one user's world: XDG dirs under a folder whose name has spaces.
type env struct {
	t    *testing.T
	home string
	vars []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	if keep := os.Getenv("VLAB_E2E_KEEP"); keep != "" {
		// Debugging: keep every test's world (logs, disks) under $VLAB_E2E_KEEP.
		var err error
		if base, err = os.MkdirTemp(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-"); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(base, "my home")
	e := &env{t: t, home: home}
	e.vars = append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config dir"),
		"XDG_DATA_HOME="+filepath.Join(home, "data dir"),
		"XDG_STATE_HOME="+filepath.Join(home, "state dir"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache dir"),
		"XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
	)
	if err := os.MkdirAll(filepath.Join(home, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stopAll)
	return e
}

// stopAll force-stops every VM the test left running, so no QEMU outlives it.
func (e *env) stopAll() {
	out, _, _ := e.run("list", "--json")
	var vms []struct{ Name, State string }
	_ = json.Unmarshal([]byte(out), &vms)
	for _, v := range vms {
		if v.State != "stopped" && v.State != "crashed" {
			e.run("stop", "--force", v.Name)
		}
	}
}

// run runs vlab with args and returns stdout, stderr and the exit status.
func (e *env) run(args ...string) (string, string, int) {
	return e.runIn("", args...)
}

func (e *env) runIn(stdin string, args ...string) (string, string, int) {
	cmd := exec.Command(vlabBin, args...)
	cmd.Env = e.vars
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run vlab %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ok runs vlab and fails the test unless it exits 0.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("vlab %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// fail runs vlab, expects a non-zero exit and a one-line error on stderr
// that mentions every want, and returns that line.
func (e *env) fail(wants []string, args ...string) string {
	e.t.Helper()
	return e.failIn("", wants, args...)
}

func (e *env) failIn(stdin string, wants []string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.runIn(stdin, args...)
	if code == 0 {
		e.t.Fatalf("vlab %q succeeded, want an error\nstdout: %s", args, out)
	}
	line := strings.TrimRight(errs, "\n")
	if line == "" || strings.Contains(line, "\n") {
		e.t.Fatalf("vlab %q: want exactly one error line, got %q", args, errs)
	}
	if !strings.HasPrefix(line, "vlab: ") {
		e.t.Errorf("vlab %q: error line should start with 'vlab: ': %q", args, line)
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			e.t.Errorf("vlab %q: error %q does not mention %q", args, line, w)
		}
	}
	return line
}

type shown struct {
	Name         string   `json:"name"`
	State        string   `json:"state"`
	Arch         string   `json:"arch"`
	Accel        string   `json:"accel"`
	AccelReason  string   `json:"accel_reason"`
	PID          int      `json:"pid"`
	QMPSocket    string   `json:"qmp_socket"`
	QMPSockets   []string `json:"qmp_sockets"`
	VNCSocket    string   `json:"vnc_socket"`
	SerialSocket string   `json:"serial_socket"`
	SerialLog    string   `json:"serial_log"`
	QEMULog      string   `json:"qemu_log"`
	Dir          string   `json:"dir"`
	Disks        []struct {
		File, Path, Size, Format string
	} `json:"disks"`
}

func (e *env) show(name string) shown {
	e.t.Helper()
	var s shown
	if err := json.Unmarshal([]byte(e.ok("show", name, "--json")), &s); err != nil {
		e.t.Fatalf("show --json: %v", err)
	}
	return s
}

func (e *env) state(name string) string {
	e.t.Helper()
	return e.show(name).State
}

// waitFor polls cond until it holds or the safety timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSerial waits until the VM's serial log contains marker and returns
// the log.
func (e *env) waitSerial(name, marker string) string {
	e.t.Helper()
	logPath := e.show(name).SerialLog
	var data []byte
	deadline := time.Now().Add(3 * time.Minute)
	for {
		data, _ = os.ReadFile(logPath)
		if bytes.Contains(data, []byte(marker)) {
			return string(data)
		}
		if time.Now().After(deadline) {
			qlog, _ := os.ReadFile(e.show(name).QEMULog)
			e.t.Fatalf("%s: marker %q never appeared on the serial console\nserial:\n%s\nqemu.log:\n%s", name, marker, tail(string(data), 3000), qlog)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shell types line into the shell on VM name's serial console, again
// should the answer not show up, until re matches what the console printed
// after it, and returns re's submatches. It types only once the shell has
// answered a probe: input typed while the guest still boots loses characters
// when the shell takes over the console (a lost "pr" once turned
// `printf … | dd` into a pipeline that wrote nothing and still succeeded).
func (e *env) shell(name, line string, re *regexp.Regexp) []string {
	e.t.Helper()
	f := e.show(name)
	sock, log := f.SerialSocket, f.SerialLog
	e.typeUntil(sock, log, "\x15echo \"VLAB-T:\"\"ready\"\n", reReady, time.Second, 3*time.Minute)
	return e.typeUntil(sock, log, "\x15"+line+"\n", re, 20*time.Second, 2*time.Minute)
}

var reReady = regexp.MustCompile(`VLAB-T:ready`)

// typeUntil types text into the serial console at sock, again every resend,
// until re matches the console log after where it ended before the first
// try; it returns re's submatches and fails the test after timeout.
func (e *env) typeUntil(sock, log, text string, re *regexp.Regexp, resend, timeout time.Duration) []string {
	e.t.Helper()
	data, _ := os.ReadFile(log)
	from := len(data)
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			e.t.Fatalf("serial console %s: %v", sock, err)
		}
		// Read what QEMU sends while connected: a client that does not read
		// stalls the guest's console output. Stay connected until the
		// answer is there: QEMU drops typed bytes the UART has not taken
		// when the client leaves. The leading ^U clears a half-typed try.
		go io.Copy(io.Discard, c)
		fmt.Fprint(c, text)
		next := time.Now().Add(resend)
		for time.Now().Before(next) {
			data, _ = os.ReadFile(log)
			if from <= len(data) {
				if m := re.FindStringSubmatch(string(data[from:])); m != nil {
					c.Close()
					return m
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
		if time.Now().After(deadline) {
			e.t.Fatalf("typed %q, %q never came back:\n%s", text, re, tail(string(data), 3000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// guest is a fixture kernel for one arch and how vlab names that arch.
type guest struct {
	fixtureArch string // as the fixtures name it
	vlabArch    string
	qemu        string
}

var guests = map[string]guest{
	"x86_64":  {"x86_64", "x86_64", "qemu-system-x86_64"},
	"aarch64": {"aarch64", "aarch64", "qemu-system-aarch64"},
	"ppc64":   {"ppc64le", "ppc64", "qemu-system-ppc64"},
}

// createGuest defines VM name booting the fixture kernel of g with the
// given vlab.* parameters and extra create flags.
func (e *env) createGuest(name string, g guest, params []string, flags ...string) {
	e.t.Helper()
	fixture.Program(e.t, g.qemu)
	kernel, initrd := fixture.Guest(e.t, g.fixtureArch)
	args := []string{"create", name, "--arch", g.vlabArch, "--memory", "512M",
		"--kernel", kernel, "--initrd", initrd, "--append", fixture.Append(g.fixtureArch, params...)}
	e.ok(append(args, flags...)...)
}
