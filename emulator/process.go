package emulator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process identifies a running QEMU across vlab restarts. It is stored as
// JSON by the machine package. PID alone is not enough: after a reboot or a
// long uptime the PID may belong to something else, so the boot id and the
// kernel's start time of the process are recorded with it.
type Process struct {
	PID        int       `json:"pid"`
	BootID     string    `json:"boot_id"`     // /proc/sys/kernel/random/boot_id at launch
	StartTicks uint64    `json:"start_ticks"` // field 22 of /proc/PID/stat
	Binary     string    `json:"binary"`
	StartedAt  time.Time `json:"started_at"`
}

// LaunchOptions says how to start one QEMU.
type LaunchOptions struct {
	Argv    []string      // argv[0] is the qemu binary path; never run through a shell
	LogPath string        // QEMU stdout+stderr are appended here (created 0600)
	Dir     string        // working directory
	QMP     string        // a QMP socket path: launch waits until it accepts a connection
	Timeout time.Duration // how long to wait for QMP (default 30s)
	// OnSpawn, when set, runs as soon as the QEMU process exists (before its
	// QMP socket is up), in Launch's goroutine, so the caller can record it
	// before anything else can happen. It must not block for long.
	OnSpawn func(*Process)
}

// DefaultLaunchTimeout is how long Launch waits for the QMP socket when
// LaunchOptions.Timeout is zero.
const DefaultLaunchTimeout = 30 * time.Second

// StartError is a QEMU that exited (or never opened QMP) during start; Tail
// is the last lines of its log written by this start.
type StartError struct {
	ExitCode int           // exit status; -1 when killed by a signal or when it timed out
	Signal   string        // the signal that ended it, if one did (e.g. "killed")
	Timeout  time.Duration // non-zero: it never opened QMP within this time and was killed
	Tail     string        // last lines of the log written by this start
	Binary   string        // the qemu binary that was started
}

// Error returns "qemu exited during start (status N): <line>", where line is
// the last line of Tail that QEMU prefixed with its binary name (QEMU's
// error lines; a hint such as "Use -machine help..." may follow them), or
// else the last non-empty line.
func (e *StartError) Error() string {
	var s string
	switch {
	case e.Timeout > 0:
		s = fmt.Sprintf("qemu did not open its QMP socket within %s", e.Timeout)
	case e.Signal != "":
		s = fmt.Sprintf("qemu exited during start (signal: %s)", e.Signal)
	default:
		s = fmt.Sprintf("qemu exited during start (status %d)", e.ExitCode)
	}
	if line := errorLine(e.Tail, filepath.Base(e.Binary)); line != "" {
		s += ": " + line
	}
	return s
}

// errorLine returns the last line of tail starting with "<bin>: ", or the
// last non-empty line.
func errorLine(tail, bin string) string {
	lines := strings.Split(tail, "\n")
	if bin != "" && bin != "." {
		for i := len(lines) - 1; i >= 0; i-- {
			if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, bin+": ") {
				return l
			}
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

const (
	tailBytes = 8 << 10 // how much of the log a StartError reads back
	tailLines = 20      // and how many lines of it it keeps
	pollFirst = time.Millisecond
	// launchPoll is Launch's poll for the QMP socket until it exists (from
	// then on the wait is a blocking read of the greeting). Finer costs more
	// than it saves: on two cores each poll takes CPU from the QEMU that is
	// starting, and bench/start measured a 200 µs poll slower to the
	// greeting than a 1 ms one.
	launchPoll = time.Millisecond
	pollMax    = 20 * time.Millisecond // waitGone's longest poll interval
	killWait   = 10 * time.Second      // safety net after SIGKILL
	bootIDFile = "/proc/sys/kernel/random/boot_id"
)

// Launch starts QEMU detached from vlab: in its own session (Setsid), stdin
// /dev/null, stdout and stderr appended to LogPath, so it survives vlab
// exiting or being killed, and Ctrl-C in vlab's terminal never reaches it. It
// returns once the QEMU it started (checked with SO_PEERCRED) sends the QMP
// greeting on the QMP socket, or a *StartError with the log tail if QEMU exits
// first or never opens QMP within Timeout (it is then killed). If ctx ends
// before QMP is up, the half-started QEMU is killed and ctx's error returned.
// While vlab runs, a goroutine reaps the child so no zombie stays behind.
func Launch(ctx context.Context, opts LaunchOptions) (*Process, error) {
	if len(opts.Argv) == 0 || opts.Argv[0] == "" {
		return nil, errors.New("launch qemu: empty argv")
	}
	if opts.QMP == "" {
		return nil, fmt.Errorf("launch %s: no QMP socket to wait for", opts.Argv[0])
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultLaunchTimeout
	}
	l, err := spawn(opts)
	if err != nil {
		return nil, err
	}
	if opts.OnSpawn != nil {
		opts.OnSpawn(l.p)
	}
	return l.waitQMP(ctx, opts.QMP, timeout)
}

// launching is a QEMU that Launch spawned and has not yet seen up.
type launching struct {
	cmd      *exec.Cmd
	p        *Process
	logPath  string
	logStart int64         // the log's size before QEMU wrote to it
	exited   chan struct{} // closed once the child is reaped
}

// spawn starts opts.Argv detached, its output appended to opts.LogPath,
// and a goroutine that reaps it.
func spawn(opts LaunchOptions) (*launching, error) {
	bin := opts.Argv[0]
	if !strings.ContainsRune(bin, filepath.Separator) {
		p, err := exec.LookPath(bin)
		if err != nil {
			return nil, fmt.Errorf("launch %s: %w", bin, err)
		}
		bin = p
	}
	boot, err := BootID()
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", bin, err)
	}
	l := &launching{logPath: opts.LogPath, exited: make(chan struct{})}
	logPath := opts.LogPath
	if logPath == "" {
		logPath = os.DevNull
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("launch %s: open log: %w", bin, err)
	}
	if st, err := logf.Stat(); err == nil && st.Mode().IsRegular() {
		l.logStart = st.Size()
	}
	l.cmd = &exec.Cmd{
		Path:        bin,
		Args:        opts.Argv,
		Dir:         opts.Dir,
		Stdout:      logf, // an *os.File is handed to the child as is: no copying goroutine
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = l.cmd.Start()
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", bin, err)
	}
	startedAt := time.Now()
	pid := l.cmd.Process.Pid
	// The child exists until we reap it, so its stat entry is readable even
	// if it already exited.
	st, err := readProcStat(pid)
	if err != nil {
		_ = l.cmd.Process.Kill()
		_ = l.cmd.Wait()
		return nil, fmt.Errorf("launch %s: %w", bin, err)
	}
	go func() {
		_ = l.cmd.Wait()
		close(l.exited)
	}()
	l.p = &Process{PID: pid, BootID: boot, StartTicks: st.startTicks, Binary: bin, StartedAt: startedAt}
	return l, nil
}

// waitQMP waits until the spawned QEMU greets on socket qmp; it kills it
// when ctx ends or timeout passes first.
func (l *launching) waitQMP(ctx context.Context, qmp string, timeout time.Duration) (*Process, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-l.exited:
			return nil, l.startErr(0)
		case <-ctx.Done():
			l.kill()
			return nil, fmt.Errorf("launch %s: %w", l.p.Binary, ctx.Err())
		case <-deadline.C:
			l.kill()
			return nil, l.startErr(timeout)
		case <-tick.C:
		}
		if qmpAccepts(qmp, l.p.PID) {
			return l.p, nil
		}
		tick.Reset(launchPoll)
	}
}

// startErr says why QEMU did not come up: it exited (timedOut 0, with its
// status) or never greeted within timedOut; both with the log's tail.
func (l *launching) startErr(timedOut time.Duration) *StartError {
	e := &StartError{ExitCode: -1, Tail: readTail(l.logPath, l.logStart), Binary: l.p.Binary}
	if timedOut > 0 {
		e.Timeout = timedOut
		return e
	}
	ws, ok := l.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		e.Signal = ws.Signal().String()
	default:
		e.ExitCode = l.cmd.ProcessState.ExitCode()
	}
	return e
}

func (l *launching) kill() {
	_ = l.cmd.Process.Kill()
	<-l.exited
}

// qmpAccepts reports whether a unix socket at path, served by the process
// pid (or a process in the session pid leads, for wrappers that fork), sends
// the QMP greeting. A listening socket alone is not enough: the kernel
// completes connects before QEMU's main loop runs, and until then QEMU's
// other monitors may not exist yet. The connection is closed after the
// greeting: QEMU goes back to listening.
func qmpAccepts(path string, pid int) bool {
	conn, ok := qmpPeer(path, pid)
	if !ok {
		return false
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadSlice('\n')
	return err == nil && bytes.Contains(line, []byte(`"QMP"`))
}

// qmpPeer connects to path and checks the peer is pid or in its session.
func qmpPeer(path string, pid int) (net.Conn, bool) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, false
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return conn, true
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return conn, true
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return conn, true
	}
	if int(cred.Pid) == pid {
		return conn, true
	}
	if sid, err := getsid(int(cred.Pid)); err == nil && sid == pid {
		return conn, true
	}
	conn.Close()
	return nil, false
}

func getsid(pid int) (int, error) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(sid), nil
}

// readTail returns the last lines of the log written since offset.
func readTail(path string, offset int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	from := max(offset, st.Size()-tailBytes)
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, tailBytes))
	if err != nil {
		return ""
	}
	if from > offset {
		// Started mid-line: drop the partial first line.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}

// BootID returns the current boot id. It is read once per vlab process (it
// cannot change while the process runs): Check, which liveness polls call
// every few milliseconds, compares against it.
func BootID() (string, error) { return bootID() }

var bootID = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("read boot id: %s is empty", bootIDFile)
	}
	return id, nil
})

type procStat struct {
	state      byte
	startTicks uint64
}

// readProcStat reads the state (field 3) and start time (field 22) of pid.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	return parseProcStat(string(b))
}

// parseProcStat parses /proc/PID/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc stat: no command name in %.60q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse /proc stat: too few fields in %.60q", s)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: start time %q: %w", f[19], err)
	}
	return procStat{state: f[0][0], startTicks: start}, nil
}

// Self describes the calling process (pid, boot id, start time), e.g. to
// record which vlab holds an operation: Check on it later tells whether that
// vlab still runs.
func Self() (*Process, error) {
	boot, err := BootID()
	if err != nil {
		return nil, err
	}
	st, err := readProcStat(os.Getpid())
	if err != nil {
		return nil, err
	}
	exe, _ := os.Executable()
	return &Process{PID: os.Getpid(), BootID: boot, StartTicks: st.startTicks, Binary: exe, StartedAt: time.Now()}, nil
}

// Find looks for a live process whose command line is exactly argv and that
// started no earlier than notBefore (a start time in clock ticks since boot,
// as in /proc/PID/stat; e.g. that of the vlab that launched it). It tries the
// PID in pidfile first (QEMU writes it early in its start) and then every
// process of this user: a QEMU forked by a vlab killed before it could
// record the PID is found either way. It returns nil when there is none.
// argv must be specific enough to name one QEMU (vlab's hold the VM's own
// socket paths).
func Find(pidfile string, argv []string, notBefore uint64) *Process {
	if len(argv) == 0 {
		return nil
	}
	want := strings.Join(argv, "\x00")
	try := func(pid int) *Process {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil || strings.TrimSuffix(string(b), "\x00") != want {
			return nil
		}
		st, err := readProcStat(pid)
		if err != nil || st.state == 'Z' || st.state == 'X' || st.startTicks < notBefore {
			return nil
		}
		boot, err := BootID()
		if err != nil {
			return nil
		}
		bin := argv[0]
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
			bin = exe
		}
		return &Process{PID: pid, BootID: boot, StartTicks: st.startTicks, Binary: bin, StartedAt: time.Now()}
	}
	if b, err := os.ReadFile(pidfile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			if p := try(pid); p != nil {
				return p
			}
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if p := try(pid); p != nil {
			return p
		}
	}
	return nil
}

// Liveness is what the host says about a recorded Process.
type Liveness int

// Liveness values.
const (
	LiveGone    Liveness = iota // no such process (or only its zombie)
	LiveRunning                 // the recorded QEMU is running
	LiveReused                  // the PID now belongs to another process, or the record is from another boot
)

// String returns "gone", "running" or "reused".
func (l Liveness) String() string {
	switch l {
	case LiveRunning:
		return "running"
	case LiveReused:
		return "reused"
	default:
		return "gone"
	}
}

// Check compares the recorded boot id and /proc/PID/stat start time with the
// host's. A zombie counts as gone. A zero StartTicks or empty BootID is not
// compared.
func (p *Process) Check() Liveness {
	if p == nil || p.PID <= 0 {
		return LiveGone
	}
	st, err := readProcStat(p.PID)
	if err != nil || st.state == 'Z' || st.state == 'X' {
		return LiveGone
	}
	if p.BootID != "" {
		if cur, err := BootID(); err == nil && cur != p.BootID {
			return LiveReused
		}
	}
	if p.StartTicks != 0 && st.startTicks != p.StartTicks {
		return LiveReused
	}
	return LiveRunning
}

// exited reports whether p is not running and has released everything: a
// killed multi-threaded process shows its main thread as a zombie while its
// other threads still exit and hold its files (sockets) open.
func (p *Process) exited() bool {
	if p.Check() == LiveRunning {
		return false
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(p.PID) + "/task")
	return err != nil || len(tasks) <= 1 || p.Check() == LiveReused
}

// ErrUnresponsive: the process is alive but none of its QMP sockets answers.
var ErrUnresponsive = errors.New("qemu is running but its QMP monitor does not answer")

// ErrNotRunning is returned (wrapped) by Attach when the recorded QEMU is
// gone or its PID was reused.
var ErrNotRunning = errors.New("qemu is not running")

// Attach connects to a running QEMU's monitor through DialAny. It tells the
// three failure states apart: the process is gone (ErrNotRunning), every
// monitor is held by other vlab processes (ErrMonitorsBusy), or the process
// is alive and no socket answers (ErrUnresponsive).
func (p *Process) Attach(ctx context.Context, qmp []string) (*Monitor, error) {
	if l := p.Check(); l != LiveRunning {
		return nil, fmt.Errorf("attach to qemu %d: %w (%s)", p.PID, ErrNotRunning, l)
	}
	m, err := DialAny(ctx, qmp)
	if err == nil {
		return m, nil
	}
	if errors.Is(err, ErrMonitorsBusy) || ctx.Err() != nil {
		return nil, fmt.Errorf("attach to qemu %d: %w", p.PID, err)
	}
	if p.Check() != LiveRunning {
		return nil, fmt.Errorf("attach to qemu %d: %w", p.PID, ErrNotRunning)
	}
	return nil, fmt.Errorf("attach to qemu %d: %w: %w", p.PID, ErrUnresponsive, err)
}

// StopOptions tunes Stop's escalation.
type StopOptions struct {
	Force            bool          // skip system_powerdown: quit, then SIGKILL
	PowerdownTimeout time.Duration // default 60s (guest ACPI shutdown)
	QuitTimeout      time.Duration // default 30s: QEMU flushes qcow2 metadata as it quits, and a SIGKILL loses it
}

// Defaults for StopOptions.
const (
	DefaultPowerdownTimeout = 60 * time.Second
	DefaultQuitTimeout      = 30 * time.Second
	// dialTimeout bounds reaching a monitor during Stop: an unresponsive
	// QEMU goes to signals without waiting a whole QuitTimeout.
	dialTimeout = 5 * time.Second
)

// StopResult says how Stop ended the process.
type StopResult struct {
	Method string // StopPowerdown, StopQuit, StopTerm, StopKill or StopNotRunning
}

// Values of StopResult.Method.
const (
	StopPowerdown  = "powerdown" // the guest powered off after system_powerdown
	StopQuit       = "quit"      // QEMU obeyed QMP quit
	StopTerm       = "term"      // QMP was unreachable and QEMU obeyed SIGTERM
	StopKill       = "kill"      // it took SIGKILL
	StopNotRunning = "none"      // it was not running (gone or PID reused): nothing was signalled
)

// Stop ends a running QEMU by escalation: system_powerdown, wait for exit,
// quit, wait, SIGKILL. The power button is always tried (unless Force):
// when every monitor is held by other clients, Stop waits for one to free up
// (at most PowerdownTimeout) rather than skipping to signals, and a guest
// the user paused is resumed first (`cont`) so it can power off cleanly and
// flush its filesystems. A guest that never ran (started with -S, QEMU's
// "prelaunch") or that has already shut down goes straight to quit. qmp are
// the VM's monitor sockets (tried through DialAny); if QMP cannot be reached
// it goes to SIGTERM, then SIGKILL. It returns when the process is gone. A
// process that is not running (or whose PID was reused) is never signalled.
// If ctx ends first, Stop returns ctx's error and the process may still be
// running.
func Stop(ctx context.Context, p *Process, qmp []string, opts StopOptions) (StopResult, error) {
	if opts.PowerdownTimeout <= 0 {
		opts.PowerdownTimeout = DefaultPowerdownTimeout
	}
	if opts.QuitTimeout <= 0 {
		opts.QuitTimeout = DefaultQuitTimeout
	}
	if p.Check() != LiveRunning {
		return StopResult{Method: StopNotRunning}, nil
	}
	st := &stopping{p: p, opts: opts}
	if len(qmp) > 0 {
		st.mon = dialForStop(ctx, p, qmp, opts)
		if st.mon != nil {
			defer st.mon.Close()
		}
		if err := ctx.Err(); err != nil {
			return st.fail(err)
		}
	}
	if st.alive() && !opts.Force && readyForPowerdown(ctx, st.mon, opts.QuitTimeout) {
		gone, err := st.powerdown(ctx)
		if err != nil {
			return st.fail(err)
		}
		if gone {
			return StopResult{Method: StopPowerdown}, nil
		}
	}
	method, gone, err := st.quit(ctx)
	if err != nil {
		return st.fail(err)
	}
	if gone {
		return StopResult{Method: method}, nil
	}
	if err := signalIfRunning(p, syscall.SIGKILL); err != nil {
		return st.fail(err)
	}
	gone, err = waitGone(ctx, p, killWait, nil, nil)
	if err != nil {
		return st.fail(err)
	}
	if !gone {
		return st.fail(errors.New("still running after SIGKILL"))
	}
	return StopResult{Method: StopKill}, nil
}

// stopping is one Stop: the process and the monitor it got (nil: none).
type stopping struct {
	p    *Process
	mon  *Monitor
	opts StopOptions
}

func (st *stopping) fail(err error) (StopResult, error) {
	return StopResult{}, fmt.Errorf("stop qemu %d: %w", st.p.PID, err)
}

// alive tells whether Stop holds a monitor that is still connected.
func (st *stopping) alive() bool {
	if st.mon == nil {
		return false
	}
	select {
	case <-st.mon.Done():
		return false
	default:
		return true
	}
}

// powerdown presses the ACPI power button and waits for QEMU to go. After
// the guest's SHUTDOWN event QEMU exits by itself, or stays stopped when
// run with -no-shutdown: quit covers both, and the stop still counts as a
// powerdown. A refused button is not an error: Stop goes on to quit.
func (st *stopping) powerdown(ctx context.Context) (gone bool, err error) {
	ectx, cancel := context.WithTimeout(ctx, st.opts.QuitTimeout)
	err = st.mon.SystemPowerdown(ectx)
	cancel()
	if err != nil {
		return false, ctx.Err()
	}
	onShutdown := func() {
		go func() {
			qctx, cancel := context.WithTimeout(ctx, st.opts.QuitTimeout)
			defer cancel()
			_ = st.mon.Quit(qctx)
		}()
	}
	return waitGone(ctx, st.p, st.opts.PowerdownTimeout, st.mon.Events(), onShutdown)
}

// quit asks QEMU to quit through the monitor, or sends SIGTERM when there
// is none, and waits for it to go.
func (st *stopping) quit(ctx context.Context) (method string, gone bool, err error) {
	method = StopQuit
	if st.alive() {
		ectx, cancel := context.WithTimeout(ctx, st.opts.QuitTimeout)
		// QEMU may exit before its reply is read: the error says nothing.
		_ = st.mon.Quit(ectx)
		cancel()
	} else {
		method = StopTerm
		if err := signalIfRunning(st.p, syscall.SIGTERM); err != nil {
			return method, false, err
		}
	}
	gone, err = waitGone(ctx, st.p, st.opts.QuitTimeout, nil, nil)
	return method, gone, err
}

// busyPoll is how often Stop retries when every monitor is held.
const busyPoll = 50 * time.Millisecond

// dialForStop reaches one of the VM's monitors. When all are held by other
// clients (the TUI, a `vlab qmp` session...) a graceful stop waits for one
// to free up, at most PowerdownTimeout, while QEMU runs: the power button is
// worth waiting for. A force stop does not wait. It returns nil when no
// monitor could be had.
func dialForStop(ctx context.Context, p *Process, qmp []string, opts StopOptions) *Monitor {
	var deadline time.Time
	if !opts.Force {
		deadline = time.Now().Add(opts.PowerdownTimeout)
	}
	for {
		dctx, cancel := context.WithTimeout(ctx, min(opts.QuitTimeout, dialTimeout))
		mon, err := DialAny(dctx, qmp)
		cancel()
		if err == nil {
			return mon
		}
		if !errors.Is(err, ErrMonitorsBusy) || !time.Now().Before(deadline) || p.Check() != LiveRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(busyPoll):
		}
	}
}

// readyForPowerdown reports whether the guest can act on the ACPI power
// button, resuming it first when the user paused it: a paused guest would
// only let the powerdown time out, and quitting it instead loses what its
// filesystems had not written yet. A guest that never ran (prelaunch), or
// has shut down already, or is in an error state is not asked. When in doubt
// (query-status fails or names no state) it says yes.
func readyForPowerdown(ctx context.Context, mon *Monitor, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	st, err := mon.QueryStatus(ctx)
	if err != nil || st.Status == "" || st.Running {
		return true
	}
	if st.Status != "paused" {
		return false
	}
	return mon.Cont(ctx) == nil
}

// signalIfRunning signals p unless it is gone or its PID was reused.
func signalIfRunning(p *Process, sig syscall.Signal) error {
	if p.Check() != LiveRunning {
		return nil
	}
	if err := syscall.Kill(p.PID, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("send %s: %w", sig, err)
	}
	return nil
}

// waitGone polls until p is no longer running or d has passed. onShutdown
// runs once when events (a monitor's stream, may be nil) reports SHUTDOWN.
func waitGone(ctx context.Context, p *Process, d time.Duration, events <-chan Event, onShutdown func()) (bool, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTimer(pollFirst)
	defer tick.Stop()
	delay := pollFirst
	for {
		if p.exited() {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			return p.exited(), nil
		case ev, ok := <-events:
			if !ok {
				events = nil // connection gone: QEMU is probably exiting
				continue
			}
			if ev.Name == "SHUTDOWN" && onShutdown != nil {
				onShutdown()
				onShutdown = nil
			}
			continue
		case <-tick.C:
		}
		delay = min(delay*2, pollMax)
		tick.Reset(delay)
	}
}

// RemoveStaleSocket removes path only if it is a unix socket that nothing
// accepts on. A missing path is not an error; a live socket or anything that
// is not a socket (a regular file, a directory) is refused and kept.
func RemoveStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	if st.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("remove stale socket %s: not a socket (%s)", path, st.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("remove stale socket %s: %w", path, ErrSocketInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// ErrSocketInUse is returned (wrapped) by RemoveStaleSocket for a socket
// that something still accepts on.
var ErrSocketInUse = errors.New("socket is in use")
