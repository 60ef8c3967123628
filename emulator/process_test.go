package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/internal/fakeqemu"
	"vlab/internal/fixture"
)

// Environment of the launcher helper: the test binary re-executed to call
// Launch and then die, as a vlab killed with -9 would.
const (
	envLauncherDir  = "VLAB_TEST_LAUNCHER_DIR"
	envLauncherMode = "VLAB_TEST_LAUNCHER_MODE"
)

// The test binary doubles as a fake QEMU and as the launcher helper. This
// runs before the testing package starts (an init, not TestMain, so other
// test files of the package stay free to define TestMain).
func init() {
	if os.Getenv(fakeqemu.EnvMode) != "" {
		os.Exit(fakeqemu.MainFromEnv(os.Args[1:], os.Stdout, os.Stderr))
	}
	if dir := os.Getenv(envLauncherDir); dir != "" {
		os.Exit(launcherMain(dir, os.Getenv(envLauncherMode)))
	}
}

// launcherMain launches a fake QEMU, prints its Process as JSON and kills
// itself with SIGKILL.
func launcherMain(dir, mode string) int {
	os.Setenv(fakeqemu.EnvMode, mode) // for the child only: this process is past init
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := Launch(ctx, LaunchOptions{
		Argv:    fakeArgv(exe, dir),
		LogPath: filepath.Join(dir, "qemu.log"),
		Dir:     dir,
		QMP:     filepath.Join(dir, "qmp0.sock"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(p); err != nil {
		return 1
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// fakeArgv is a qemu-like command line for the fake with two QMP monitors:
// one -chardev/-mon pair and one -qmp.
// Paths go through QEMU's option escaping (test directories can hold commas).
func fakeArgv(exe, dir string) []string {
	esc := func(s string) string { return strings.ReplaceAll(s, ",", ",,") }
	return []string{exe,
		"-name", "fake,process=vlab-fake",
		"-chardev", "socket,id=qmp0,path=" + esc(filepath.Join(dir, "qmp0.sock")) + ",server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control",
		"-qmp", "unix:" + esc(filepath.Join(dir, "qmp1.sock")) + ",server=on,wait=off",
		"-pidfile", filepath.Join(dir, "qemu.pid"),
	}
}

func fakeQMP(dir string) []string {
	return []string{filepath.Join(dir, "qmp0.sock"), filepath.Join(dir, "qmp1.sock")}
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// killAtCleanup SIGKILLs p at the end of the test if it still runs.
func killAtCleanup(t *testing.T, p *Process) {
	t.Cleanup(func() {
		if p.Check() == LiveRunning {
			syscall.Kill(p.PID, syscall.SIGKILL)
			for i := 0; i < 1000 && p.Check() == LiveRunning; i++ {
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
}

// useFake makes QEMUs launched by this test fakes in mode. Under -race a Go
// binary sleeps a second at exit unless GORACE says otherwise; the fake
// exits promptly like QEMU does.
func useFake(t *testing.T, mode fakeqemu.Mode) {
	t.Setenv(fakeqemu.EnvMode, string(mode))
	t.Setenv("GORACE", quickRaceExit())
}

func quickRaceExit() string {
	return strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
}

// fakeEnv is the environment of a directly started fake in mode.
func fakeEnv(mode fakeqemu.Mode) []string {
	return append(os.Environ(), fakeqemu.EnvMode+"="+string(mode), "GORACE="+quickRaceExit())
}

// launchFake starts the fake QEMU in mode and returns it with its directory.
func launchFake(t *testing.T, mode fakeqemu.Mode) (*Process, string) {
	t.Helper()
	dir := shortDir(t)
	useFake(t, mode)
	p, err := Launch(testCtx(t), LaunchOptions{
		Argv:    fakeArgv(testExe(t), dir),
		LogPath: filepath.Join(dir, "qemu.log"),
		Dir:     dir,
		QMP:     filepath.Join(dir, "qmp0.sock"),
		Timeout: 15 * time.Second,
	})
	if err != nil {
		t.Fatalf("Launch(%s): %v", mode, err)
	}
	killAtCleanup(t, p)
	return p, dir
}

func TestLaunchDetachedAndCheck(t *testing.T) {
	p, dir := launchFake(t, fakeqemu.ModeNormal)

	if got := p.Check(); got != LiveRunning {
		t.Fatalf("Check() = %s, want running", got)
	}
	boot, _ := BootID()
	if p.PID <= 0 || p.BootID != boot || p.StartTicks == 0 || p.Binary != testExe(t) || p.StartedAt.IsZero() {
		t.Errorf("Process = %+v", p)
	}
	// A record read back from JSON (as the machine package stores it) still checks.
	b, _ := json.Marshal(p)
	var back Process
	if err := json.Unmarshal(b, &back); err != nil || back.Check() != LiveRunning {
		t.Errorf("round-tripped %s: %v, %s", b, err, back.Check())
	}
	if pid, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(p.PID) {
		t.Errorf("pidfile = %q, %v; pid %d", pid, err, p.PID)
	}

	// Its own session: Ctrl-C (SIGINT to our foreground group) and our
	// session's SIGHUP never reach it.
	sid, err := getsid(p.PID)
	ours, _ := getsid(0)
	if err != nil || sid != p.PID || sid == ours {
		t.Errorf("getsid(qemu) = %d (%v), want its own session %d (ours %d)", sid, err, p.PID, ours)
	}
	// stdin is /dev/null; stdout and stderr go to the log.
	fd := func(n int) string {
		s, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, n))
		return s
	}
	logPath := filepath.Join(dir, "qemu.log")
	if fd(0) != os.DevNull || fd(1) != logPath || fd(2) != logPath {
		t.Errorf("fds 0,1,2 = %s, %s, %s", fd(0), fd(1), fd(2))
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if log, _ := os.ReadFile(logPath); !strings.Contains(string(log), "fakeqemu: mode normal") {
		t.Errorf("log = %q", log)
	}
	// Both monitors answer.
	for _, s := range fakeQMP(dir) {
		m, err := Dial(testCtx(t), s)
		if err != nil {
			t.Fatalf("Dial %s: %v", s, err)
		}
		m.Close()
	}
}

func TestLaunchStartErrorTail(t *testing.T) {
	dir := shortDir(t)
	logPath := filepath.Join(dir, "qemu.log")
	if err := os.WriteFile(logPath, []byte("line from the previous run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	useFake(t, fakeqemu.ModeExitEarly)
	p, err := Launch(testCtx(t), LaunchOptions{Argv: fakeArgv(testExe(t), dir), LogPath: logPath, QMP: fakeQMP(dir)[0]})
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("Launch = %v, %v; want a *StartError", p, err)
	}
	if se.ExitCode != 1 || se.Timeout != 0 || !strings.Contains(se.Tail, fakeqemu.ExitEarlyMessage) {
		t.Errorf("StartError = %+v", se)
	}
	if strings.Contains(se.Tail, "previous run") {
		t.Errorf("tail includes an older run: %q", se.Tail)
	}
	if want := "qemu exited during start (status 1): " + fakeqemu.ExitEarlyMessage; err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
	}
	if log, _ := os.ReadFile(logPath); !strings.HasPrefix(string(log), "line from the previous run\n") {
		t.Errorf("log not appended to: %q", log)
	}
}

// TestLaunchSlowStartIgnoresForeignSocket: QMP comes up late, and until then
// something else (here: the test) accepts on the QMP path. Launch must wait
// for the QEMU it started, not take the first socket that answers.
func TestLaunchSlowStartIgnoresForeignSocket(t *testing.T) {
	dir := shortDir(t)
	qmp := fakeQMP(dir)[0]
	l, err := net.Listen("unix", qmp)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	useFake(t, fakeqemu.ModeSlowStart)
	t.Setenv(fakeqemu.EnvDelay, "400ms")
	p, err := Launch(testCtx(t), LaunchOptions{Argv: fakeArgv(testExe(t), dir), LogPath: filepath.Join(dir, "qemu.log"), QMP: qmp})
	if err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, p)
	m, err := Dial(testCtx(t), qmp)
	if err != nil {
		t.Fatalf("QMP not up when Launch returned: %v", err)
	}
	defer m.Close()
	if m.Greeting().Package != "fakeqemu" {
		t.Errorf("greeting from %q, want the fake", m.Greeting().Package)
	}
}

func TestLaunchTimeoutKills(t *testing.T) {
	dir := shortDir(t)
	useFake(t, fakeqemu.ModeSlowStart)
	t.Setenv(fakeqemu.EnvDelay, "1m")
	p, err := Launch(testCtx(t), LaunchOptions{
		Argv: fakeArgv(testExe(t), dir), LogPath: filepath.Join(dir, "qemu.log"),
		QMP: fakeQMP(dir)[0], Timeout: 300 * time.Millisecond,
	})
	var se *StartError
	if !errors.As(err, &se) || se.Timeout != 300*time.Millisecond {
		t.Fatalf("Launch = %v, %v; want a timed-out *StartError", p, err)
	}
	if !strings.HasPrefix(err.Error(), "qemu did not open its QMP socket within 300ms: fakeqemu: mode slow-start") {
		t.Errorf("Error() = %q", err)
	}
	pid, err := os.ReadFile(filepath.Join(dir, "qemu.pid"))
	if err == nil {
		t.Errorf("the slow fake wrote its pidfile (%s) before its delay", pid)
	}
	// Launch must not leave the process behind; find it by its log line.
	log, _ := os.ReadFile(filepath.Join(dir, "qemu.log"))
	var n int
	if _, err := fmt.Sscanf(strings.SplitN(string(log), "pid ", 2)[1], "%d", &n); err != nil {
		t.Fatalf("no pid in log %q", log)
	}
	if st, err := readProcStat(n); err == nil && st.state != 'Z' {
		t.Errorf("timed-out qemu %d still running (state %c)", n, st.state)
	}
}

func TestLaunchContextCancelKills(t *testing.T) {
	dir := shortDir(t)
	useFake(t, fakeqemu.ModeSlowStart)
	t.Setenv(fakeqemu.EnvDelay, "1m")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Launch(ctx, LaunchOptions{Argv: fakeArgv(testExe(t), dir), LogPath: filepath.Join(dir, "qemu.log"), QMP: fakeQMP(dir)[0]})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Launch = %v, want context.DeadlineExceeded", err)
	}
}

func TestLaunchBadArgs(t *testing.T) {
	ctx := testCtx(t)
	if _, err := Launch(ctx, LaunchOptions{QMP: "/x"}); err == nil {
		t.Error("empty argv accepted")
	}
	if _, err := Launch(ctx, LaunchOptions{Argv: []string{"/bin/true"}}); err == nil {
		t.Error("no QMP socket accepted")
	}
	if _, err := Launch(ctx, LaunchOptions{Argv: []string{"/nonexistent/qemu"}, QMP: "/x"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/qemu") {
		t.Errorf("missing binary: %v", err)
	}
}

func TestStopEscalation(t *testing.T) {
	short := StopOptions{PowerdownTimeout: 300 * time.Millisecond, QuitTimeout: 500 * time.Millisecond}
	cases := []struct {
		name   string
		mode   fakeqemu.Mode
		noQMP  bool
		force  bool
		method string
	}{
		{"guest powers off", fakeqemu.ModeNormal, false, false, StopPowerdown},
		{"guest ignores powerdown", fakeqemu.ModeIgnorePowerdown, false, false, StopQuit},
		{"qemu hangs", fakeqemu.ModeHang, false, false, StopKill},
		{"force skips powerdown", fakeqemu.ModeNormal, false, true, StopQuit},
		{"force on a hung qemu", fakeqemu.ModeHang, false, true, StopKill},
		{"no QMP: SIGTERM", fakeqemu.ModeNormal, true, false, StopTerm},
		{"no QMP, ignores SIGTERM", fakeqemu.ModeHang, true, false, StopKill},
		{"garbage on QMP", fakeqemu.ModeGarbage, false, false, StopTerm},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, dir := launchFake(t, c.mode)
			qmp := fakeQMP(dir)
			if c.noQMP {
				qmp = nil
			}
			opts := short
			opts.Force = c.force
			res, err := Stop(testCtx(t), p, qmp, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != c.method {
				log, _ := os.ReadFile(filepath.Join(dir, "qemu.log"))
				t.Errorf("Method = %q, want %q; qemu.log:\n%s", res.Method, c.method, log)
			}
			if l := p.Check(); l != LiveGone {
				t.Errorf("after Stop, Check() = %s", l)
			}
		})
	}
}

// TestStopFromAnotherProcess: Stop does not need to be QEMU's parent
// (vlab restarted), and a monitor held elsewhere does not block it.
func TestStopWithOneMonitorHeld(t *testing.T) {
	p, dir := launchFake(t, fakeqemu.ModeNormal)
	qmp := fakeQMP(dir)
	held, err := DialAny(testCtx(t), qmp)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	res, err := Stop(testCtx(t), p, qmp, StopOptions{PowerdownTimeout: 10 * time.Second})
	if err != nil || res.Method != StopPowerdown {
		t.Fatalf("Stop = %+v, %v", res, err)
	}
	// The other client saw the guest go down.
	for ev := range held.Events() {
		if ev.Name == "SHUTDOWN" {
			return
		}
	}
	t.Error("the held monitor saw no SHUTDOWN")
}

// A guest that never ran (-S, QEMU's "prelaunch") has no OS to press the
// power button for: Stop goes to quit without waiting out the powerdown
// timeout.
func TestStopPausedGuestSkipsPowerdown(t *testing.T) {
	dir := shortDir(t)
	useFake(t, fakeqemu.ModeNormal)
	p, err := Launch(testCtx(t), LaunchOptions{
		Argv: append(fakeArgv(testExe(t), dir), "-S"), LogPath: filepath.Join(dir, "qemu.log"), QMP: fakeQMP(dir)[0],
	})
	if err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, p)
	res, err := Stop(testCtx(t), p, fakeQMP(dir), StopOptions{PowerdownTimeout: time.Minute})
	if err != nil || res.Method != StopQuit {
		t.Fatalf("Stop = %+v, %v; want quit (a powerdown would power the fake off)", res, err)
	}
}

// qmpLog returns the QMP commands the fake in dir ran, in order.
func qmpLog(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, line := range strings.Split(string(data), "\n") {
		if c, ok := strings.CutPrefix(line, fakeqemu.CommandLogPrefix); ok {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// pauseFake pauses the fake's guest as `vlab pause` does (QMP stop).
func pauseFake(t *testing.T, dir string) {
	t.Helper()
	m, err := DialAny(testCtx(t), fakeQMP(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Execute(testCtx(t), "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
}

// A guest the user paused is resumed before the power button, so it can
// flush its filesystems and power off, instead of being quit.
func TestStopPausedGuestIsResumedAndPoweredDown(t *testing.T) {
	p, dir := launchFake(t, fakeqemu.ModeNormal)
	pauseFake(t, dir)
	res, err := Stop(testCtx(t), p, fakeQMP(dir), StopOptions{PowerdownTimeout: time.Minute})
	if err != nil || res.Method != StopPowerdown {
		t.Fatalf("Stop = %+v, %v; want powerdown; commands %q", res, err, qmpLog(t, dir))
	}
	cmds := strings.Join(qmpLog(t, dir), " ")
	if !strings.Contains(cmds, "stop query-status cont system_powerdown") {
		t.Errorf("commands %q: want cont then system_powerdown after query-status", cmds)
	}
}

// --force keeps pulling the plug on a paused guest: no cont, no powerdown.
func TestStopForcePausedGuestQuits(t *testing.T) {
	p, dir := launchFake(t, fakeqemu.ModeNormal)
	pauseFake(t, dir)
	res, err := Stop(testCtx(t), p, fakeQMP(dir), StopOptions{Force: true})
	if err != nil || res.Method != StopQuit {
		t.Fatalf("Stop = %+v, %v; want quit", res, err)
	}
	for _, c := range qmpLog(t, dir) {
		if c == "cont" || c == "system_powerdown" {
			t.Errorf("force stop sent %s: commands %q", c, qmpLog(t, dir))
		}
	}
}

// When every monitor is held by other clients, Stop waits for one to free
// up and still presses the power button, rather than jumping to SIGTERM.
func TestStopWaitsForABusyMonitor(t *testing.T) {
	p, dir := launchFake(t, fakeqemu.ModeNormal)
	qmp := fakeQMP(dir)
	var held []*Monitor
	for range qmp {
		m, err := DialAny(testCtx(t), qmp)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, m)
	}
	defer func() {
		for _, m := range held {
			m.Close()
		}
	}()
	type result struct {
		res StopResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Stop(testCtx(t), p, qmp, StopOptions{PowerdownTimeout: time.Minute})
		done <- result{res, err}
	}()
	// Free a monitor only once Stop has found them all busy (it holds none
	// and the fake still runs).
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("Stop returned while every monitor was held: %+v, %v", r.res, r.err)
	default:
	}
	held[0].Close()
	r := <-done
	if r.err != nil || r.res.Method != StopPowerdown {
		t.Fatalf("Stop = %+v, %v; want powerdown once a monitor was free", r.res, r.err)
	}
}

func TestStopNotRunningSignalsNothing(t *testing.T) {
	self := selfProcess(t)
	reused := *self
	reused.StartTicks++ // our PID, but "another" process
	res, err := Stop(testCtx(t), &reused, nil, StopOptions{})
	if err != nil || res.Method != StopNotRunning {
		t.Errorf("Stop(reused pid) = %+v, %v", res, err)
	}
	gone := &Process{PID: deadPID(t)}
	res, err = Stop(testCtx(t), gone, nil, StopOptions{})
	if err != nil || res.Method != StopNotRunning {
		t.Errorf("Stop(dead pid) = %+v, %v", res, err)
	}
}

// selfProcess describes the test process itself, which is certainly running.
func selfProcess(t *testing.T) *Process {
	t.Helper()
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	boot, err := BootID()
	if err != nil {
		t.Fatal(err)
	}
	return &Process{PID: os.Getpid(), BootID: boot, StartTicks: st.startTicks}
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(testExe(t))
	cmd.Env = fakeEnv(fakeqemu.ModeExitEarly)
	_ = cmd.Run()
	return cmd.Process.Pid
}

func TestCheck(t *testing.T) {
	self := selfProcess(t)
	if l := self.Check(); l != LiveRunning {
		t.Errorf("Check(self) = %s", l)
	}
	wrongStart := *self
	wrongStart.StartTicks++
	if l := wrongStart.Check(); l != LiveReused {
		t.Errorf("Check(wrong start time) = %s, want reused", l)
	}
	otherBoot := *self
	otherBoot.BootID = "00000000-0000-0000-0000-000000000000"
	if l := otherBoot.Check(); l != LiveReused {
		t.Errorf("Check(other boot) = %s, want reused", l)
	}
	if l := (&Process{PID: deadPID(t)}).Check(); l != LiveGone {
		t.Errorf("Check(dead pid) = %s, want gone", l)
	}
	var nilProc *Process
	if l := nilProc.Check(); l != LiveGone {
		t.Errorf("Check(nil) = %s", l)
	}
	if LiveRunning.String() != "running" || LiveGone.String() != "gone" || LiveReused.String() != "reused" {
		t.Error("Liveness.String")
	}
}

func TestCheckZombieIsGone(t *testing.T) {
	cmd := exec.Command(testExe(t))
	cmd.Env = fakeEnv(fakeqemu.ModeExitEarly)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	st, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{PID: cmd.Process.Pid, StartTicks: st.startTicks}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := readProcStat(p.PID)
		if err != nil {
			t.Fatal(err)
		}
		if st.state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never became a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if l := p.Check(); l != LiveGone {
		t.Errorf("Check(zombie) = %s, want gone", l)
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (qemu (x) 1) S 1 4242 4242 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 3 0 987654 123 45 ..."
	st, err := parseProcStat(line)
	if err != nil || st.state != 'S' || st.startTicks != 987654 {
		t.Errorf("parseProcStat = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "12 qemu S 1", "12 (q) S 1 2 3"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

func TestLaunchSurvivesLauncherKill(t *testing.T) {
	dir := shortDir(t)
	cmd := exec.Command(testExe(t))
	cmd.Env = append(os.Environ(), envLauncherDir+"="+dir, envLauncherMode+"="+string(fakeqemu.ModeNormal), "GORACE="+quickRaceExit())
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("launcher: %v (stderr %s)", err, ee.Stderr)
	}
	var p Process
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("launcher output %q: %v", out, err)
	}
	killAtCleanup(t, &p)
	// The launcher is dead; QEMU runs on and is reachable.
	if l := p.Check(); l != LiveRunning {
		t.Fatalf("after the launcher died, Check() = %s", l)
	}
	m, err := p.Attach(testCtx(t), fakeQMP(dir))
	if err != nil {
		t.Fatal(err)
	}
	var st statusInfo
	if err := m.Execute(testCtx(t), "query-status", nil, &st); err != nil || !st.Running {
		t.Errorf("query-status = %+v, %v", st, err)
	}
	m.Close()
	res, err := Stop(testCtx(t), &p, fakeQMP(dir), StopOptions{PowerdownTimeout: 10 * time.Second})
	if err != nil || res.Method != StopPowerdown {
		t.Errorf("Stop = %+v, %v", res, err)
	}
}

func TestAttach(t *testing.T) {
	p, dir := launchFake(t, fakeqemu.ModeNormal)
	qmp := fakeQMP(dir)
	ctx := testCtx(t)

	m1, err := p.Attach(ctx, qmp)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	m2, err := p.Attach(ctx, qmp)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if _, err := p.Attach(ctx, qmp); !errors.Is(err, ErrMonitorsBusy) || errors.Is(err, ErrUnresponsive) {
		t.Errorf("Attach with every monitor held = %v, want ErrMonitorsBusy", err)
	}
	nowhere := []string{filepath.Join(dir, "nothing-here.sock")}
	if _, err := p.Attach(ctx, nowhere); !errors.Is(err, ErrUnresponsive) {
		t.Errorf("Attach with no answering socket = %v, want ErrUnresponsive", err)
	}
	if _, err := (&Process{PID: deadPID(t)}).Attach(ctx, qmp); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Attach to a dead process = %v, want ErrNotRunning", err)
	}
}

func TestRemoveStaleSocket(t *testing.T) {
	dir := shortDir(t)

	dead := filepath.Join(dir, "dead.sock")
	l, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if err := RemoveStaleSocket(dead); err != nil {
		t.Errorf("dead socket: %v", err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead socket still there: %v", err)
	}

	live := filepath.Join(dir, "live.sock")
	ll, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	if err := RemoveStaleSocket(live); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("live socket: %v, want ErrSocketInUse", err)
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("live socket removed: %v", err)
	}

	file := filepath.Join(dir, "disk.qcow2")
	os.WriteFile(file, []byte("precious"), 0o600)
	if err := RemoveStaleSocket(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Error("regular file touched")
	}
	if err := RemoveStaleSocket(dir); err == nil {
		t.Error("directory accepted")
	}
	if err := RemoveStaleSocket(filepath.Join(dir, "missing.sock")); err != nil {
		t.Errorf("missing path: %v", err)
	}
}

// A QEMU killed with SIGKILL leaves its socket files behind: they are stale.
func TestRemoveStaleSocketAfterKill(t *testing.T) {
	p, dir := launchFake(t, fakeqemu.ModeHang)
	qmp := fakeQMP(dir)[0]
	if err := RemoveStaleSocket(qmp); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("socket of a running qemu: %v", err)
	}
	res, err := Stop(testCtx(t), p, nil, StopOptions{Force: true, QuitTimeout: 200 * time.Millisecond})
	if err != nil || res.Method != StopKill {
		t.Fatalf("Stop = %+v, %v", res, err)
	}
	if err := RemoveStaleSocket(qmp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(qmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket kept: %v", err)
	}
}

// --- real QEMU ---

func TestLaunchStopRealQEMU(t *testing.T) {
	bin := fixture.Program(t, "qemu-system-x86_64")
	dir := shortDir(t)
	qmp := filepath.Join(dir, "qmp.sock")
	argv := []string{bin, "-machine", "none", "-display", "none", "-nodefaults", "-no-user-config",
		"-qmp", "unix:" + qmp + ",server=on,wait=off", "-pidfile", filepath.Join(dir, "qemu.pid")}
	p, err := Launch(testCtx(t), LaunchOptions{Argv: argv, LogPath: filepath.Join(dir, "qemu.log"), QMP: qmp})
	if err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, p)
	if l := p.Check(); l != LiveRunning {
		t.Fatalf("Check() = %s", l)
	}
	if pid, _ := os.ReadFile(filepath.Join(dir, "qemu.pid")); strings.TrimSpace(string(pid)) != strconv.Itoa(p.PID) {
		t.Errorf("pidfile %q, pid %d", pid, p.PID)
	}
	// machine none has no ACPI: the powerdown times out and quit ends it.
	res, err := Stop(testCtx(t), p, []string{qmp}, StopOptions{PowerdownTimeout: 500 * time.Millisecond})
	if err != nil || res.Method != StopQuit {
		t.Fatalf("Stop = %+v, %v; want quit", res, err)
	}
	if l := p.Check(); l != LiveGone {
		t.Errorf("after Stop, Check() = %s", l)
	}
}

func TestLaunchRealQEMUStartError(t *testing.T) {
	bin := fixture.Program(t, "qemu-system-x86_64")
	dir := shortDir(t)
	qmp := filepath.Join(dir, "qmp.sock")
	argv := []string{bin, "-machine", "no-such-machine", "-display", "none", "-nodefaults",
		"-qmp", "unix:" + qmp + ",server=on,wait=off"}
	_, err := Launch(testCtx(t), LaunchOptions{Argv: argv, LogPath: filepath.Join(dir, "qemu.log"), QMP: qmp})
	var se *StartError
	if !errors.As(err, &se) || se.ExitCode != 1 ||
		!strings.HasSuffix(err.Error(), ": qemu-system-x86_64: unsupported machine type") ||
		!strings.Contains(se.Tail, "Use -machine help") {
		t.Fatalf("Launch = %v, want a StartError quoting qemu's complaint", err)
	}
}
