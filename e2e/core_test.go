package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fixture"
)

// TestBootStopEachArch is the core promise on three arches: create, start,
// see running, read the guest's marker on its serial console, ACPI
// power-down, see stopped.
func TestBootStopEachArch(t *testing.T) {
	for _, arch := range []string{"x86_64", "aarch64", "ppc64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			g := guests[arch]
			name := "boot-" + arch
			marker := "hello-" + arch
			e.createGuest(name, g, []string{"vlab.marker=" + marker}, "--display", "none", "--net", "none", "--disk", "64M")
			if st := e.state(name); st != "stopped" {
				t.Fatalf("new vm state = %s", st)
			}
			out := e.ok("start", name)
			if !strings.Contains(out, "tcg") {
				t.Errorf("start output does not name the accel: %q", out)
			}
			s := e.show(name)
			if s.State != "running" || s.PID == 0 {
				t.Fatalf("after start: state %s pid %d", s.State, s.PID)
			}
			if s.Accel != "tcg" || s.AccelReason == "" {
				t.Errorf("accel %q reason %q", s.Accel, s.AccelReason)
			}
			e.waitSerial(name, "VLAB-MARKER "+marker)
			e.waitSerial(name, "VLAB-BOOT-OK")
			out = e.ok("stop", name)
			if !strings.Contains(out, "powerdown") {
				t.Errorf("stop did not end by ACPI power-down: %q", out)
			}
			e.waitSerial(name, "VLAB-POWERDOWN")
			if st := e.state(name); st != "stopped" {
				t.Fatalf("after stop: state %s", st)
			}
			if alive(s.PID) {
				t.Fatalf("qemu pid %d still alive after stop", s.PID)
			}
		})
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is gone for our purposes.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// TestDiskPersistsAcrossRestart: a write inside the guest survives a stop
// and a start.
func TestDiskPersistsAcrossRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "persist"
	e.createGuest(name, guests["x86_64"], []string{"vlab.write=persisted-42"}, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", name)
	first := e.waitSerial(name, "VLAB-DISK-WROTE persisted-42")
	if !strings.Contains(first, "VLAB-DISK-READ EMPTY") {
		t.Errorf("a new disk should read EMPTY on first boot:\n%s", tail(first, 2000))
	}
	e.ok("stop", name)
	e.ok("start", name)
	e.waitSerial(name, "VLAB-DISK-READ persisted-42")
	e.ok("stop", name)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestForwardReachesGuestHTTP: --forward brings the host's loopback to an
// HTTP server inside the guest (on an isolated network: restrict=on).
func TestForwardReachesGuestHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := freePort(t)
	name := "web"
	e.createGuest(name, guests["x86_64"], []string{"vlab.net=1", "vlab.httpd=8080"},
		"--display", "none", "--isolated", "--forward", fmt.Sprintf("tcp:%d:8080", port))
	e.ok("start", name)
	e.waitSerial(name, "VLAB-HTTPD 8080")
	if body := waitHTTP(t, fmt.Sprintf("127.0.0.1:%d", port)); !strings.Contains(body, fixture.MarkerHTTPOK) {
		t.Fatalf("forwarded port served %q", body)
	}
	// The port is held: a second VM forwarding the same port fails to
	// start with a clear message, and the first keeps running.
	e.createGuest("web2", guests["x86_64"], nil, "--display", "none", "--forward", fmt.Sprintf("tcp:%d:8080", port))
	e.fail([]string{"web2", fmt.Sprint(port), "in use"}, "start", "web2")
	if st := e.state(name); st != "running" {
		t.Fatalf("first vm state %s after the second failed", st)
	}
	if st := e.state("web2"); st != "stopped" {
		t.Fatalf("failed vm state %s", st)
	}
	e.ok("stop", name)
}

// TestQMPWhileAnotherClientHoldsAMonitor: `vlab qmp` works while a
// long-lived QMP connection (what the TUI keeps) is open, and a graphical
// VM gets its VNC socket and no TCP port.
func TestQMPWhileAnotherClientHoldsAMonitor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "qmp-vm"
	e.createGuest(name, guests["x86_64"], nil, "--net", "none")
	e.ok("start", name)
	s := e.show(name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := emulator.DialAny(ctx, s.QMPSockets)
	if err != nil {
		t.Fatalf("hold a monitor like the TUI does: %v", err)
	}
	defer held.Close()
	out := e.ok("qmp", name, `{"execute":"query-status"}`)
	var reply struct {
		Return struct {
			Status string `json:"status"`
		} `json:"return"`
	}
	if err := json.Unmarshal([]byte(out), &reply); err != nil || reply.Return.Status != "running" {
		t.Fatalf("vlab qmp reply %q (%v)", out, err)
	}
	// The held connection still works too.
	var st struct{ Status string }
	if err := held.Execute(ctx, "query-status", nil, &st); err != nil || st.Status != "running" {
		t.Fatalf("held monitor: %v %v", st, err)
	}
	// Interactive mode: one command per line.
	out, _, code := e.runIn(`{"execute":"query-name"}`+"\n", "qmp", name)
	var named struct {
		Return struct{ Name string } `json:"return"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &named) != nil || named.Return.Name != name {
		t.Fatalf("interactive qmp: exit %d out %q", code, out)
	}
	// An error reply is printed as QEMU sent it.
	out = e.ok("qmp", name, `{"execute":"no-such-command"}`)
	if !strings.Contains(out, "CommandNotFound") {
		t.Errorf("error reply not shown: %q", out)
	}
	if fi, err := os.Stat(s.VNCSocket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("graphical vm has no VNC unix socket at %s", s.VNCSocket)
	}
	// Sockets live in a private directory.
	if fi, err := os.Stat(filepath.Dir(s.QMPSocket)); err != nil {
		t.Errorf("runtime dir: %v", err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("runtime dir mode %v", fi.Mode())
	}
	if tcp := listenersOf(t, s.PID); len(tcp) > 0 {
		t.Errorf("qemu listens on TCP %v by default", tcp)
	}
	e.ok("stop", name)
}

// TestKilledVlabLeavesVMRunning: kill -9 of a vlab process attached to a
// running VM leaves the VM running; the next vlab reattaches and stops it.
func TestKilledVlabLeavesVMRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "survivor"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none")
	e.ok("start", name)
	pid := e.show(name).PID
	console := exec.Command(vlabBin, "console", name)
	console.Env = e.vars
	stdin, _ := console.StdinPipe()
	stdout, _ := console.StdoutPipe()
	if err := console.Start(); err != nil {
		t.Fatal(err)
	}
	// The console works: type into the guest shell and read the echo.
	found := make(chan bool, 1)
	go func() {
		buf := make([]byte, 0, 64*1024)
		chunk := make([]byte, 4096)
		for {
			n, err := stdout.Read(chunk)
			buf = append(buf, chunk[:n]...)
			// The typed line's echo and the command's output.
			if s := string(buf); strings.Count(s, "typed-through-console") >= 2 && strings.Contains(s, "echo") {
				found <- true
				return
			}
			if err != nil {
				found <- false
				return
			}
		}
	}()
	e.waitSerial(name, "VLAB-BOOT-OK")
	fmt.Fprintf(stdin, "\necho typed-through-console\n")
	select {
	case ok := <-found:
		if !ok {
			t.Fatal("console output ended before the typed command echoed")
		}
	case <-time.After(time.Minute):
		t.Fatal("typed command never came back through vlab console")
	}
	console.Process.Signal(syscall.SIGKILL)
	console.Wait()
	if !alive(pid) {
		t.Fatal("qemu died with the vlab process")
	}
	if st := e.state(name); st != "running" {
		t.Fatalf("after kill -9 of vlab: state %s", st)
	}
	// The next vlab process sees it running.
	out, _, _ := e.run("list")
	if !strings.Contains(out, "running") {
		t.Fatalf("list: %s", out)
	}
	e.ok("stop", name)
	if alive(pid) {
		t.Fatal("qemu still alive after stop")
	}
}

// TestConcurrentStartsStartOneQEMU: two `vlab start` of one VM at once start
// one QEMU; the other gets a clear error.
func TestConcurrentStartsStartOneQEMU(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "race"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none")
	var wg sync.WaitGroup
	type res struct {
		errs string
		code int
	}
	results := make([]res, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs, code := e.run("start", name)
			results[i] = res{errs, code}
		}()
	}
	wg.Wait()
	okCount := 0
	for _, r := range results {
		if r.code == 0 {
			okCount++
			continue
		}
		if !strings.Contains(r.errs, "already running") && !strings.Contains(r.errs, "is running") {
			t.Errorf("losing start's error is unclear: %q", r.errs)
		}
		if strings.Count(strings.TrimSpace(r.errs), "\n") > 0 {
			t.Errorf("error is not one line: %q", r.errs)
		}
	}
	if okCount != 1 {
		t.Fatalf("%d starts succeeded, want exactly 1: %+v", okCount, results)
	}
	out, _ := exec.Command("pgrep", "-f", "process=vlab-"+name).Output()
	if n := len(strings.Fields(string(out))); n != 1 {
		t.Fatalf("%d qemu processes for %s, want 1", n, name)
	}
	e.ok("stop", "--force", name)
}

// TestStaleRunIsReconciled: QEMU killed behind vlab's back (a crash, the
// OOM killer) leaves a record and sockets; vlab reports it, cleans only the
// stale sockets, and starts the VM again.
func TestStaleRunIsReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "stale"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none")
	e.ok("start", name)
	s := e.show(name)
	syscall.Kill(s.PID, syscall.SIGKILL)
	waitFor(t, "qemu to die", 30*time.Second, func() bool { return !alive(s.PID) })
	if st := e.state(name); st != "stopped" && st != "crashed" {
		t.Fatalf("after qemu was killed: state %s", st)
	}
	if _, err := os.Stat(s.QMPSocket); err == nil {
		t.Error("stale QMP socket left behind after reconcile")
	}
	e.ok("start", name)
	if st := e.state(name); st != "running" {
		t.Fatalf("restart after a killed run: %s", st)
	}
	e.ok("stop", "--force", name)
}
