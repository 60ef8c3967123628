package machine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vlab/emulator"
)

// Status is the reconciled state of one VM.
type Status struct {
	State       State
	PID         int
	StartedAt   time.Time
	Accel       string // "kvm" or "tcg" while running
	AccelReason string
	Detail      string // why: the crash's last log line, the QMP error...
	Disposable  bool
	Replay      string // "record" or "replay" while a recorded or replayed run is up
}

// record is what vlab keeps about a QEMU it started, in the runtime dir.
type record struct {
	emulator.Process
	Accel       string `json:"accel"`
	AccelReason string `json:"accel_reason"`
	LogOffset   int64  `json:"log_offset"` // qemu.log size before this run
	Disposable  bool   `json:"disposable,omitempty"`
	Replay      string `json:"replay,omitempty"` // "record" or "replay": the console is a file only
}

// exitRecord remembers how the last run ended when it did not end cleanly.
type exitRecord struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

// writeRecord writes a runtime record (see writeRecordAtomic).
func writeRecord(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeRecordAtomic(path, append(data, '\n'))
}

// startGrace is how long after launch a QEMU whose monitors do not answer
// yet counts as starting rather than unresponsive.
const startGrace = 10 * time.Second

// qmpTimeout bounds one status query: a monitor that takes longer is
// reported, never waited on forever.
const qmpTimeout = 3 * time.Second

// Status reconciles the VM's state from its process record, the process
// table and QMP query-status. A run that ended while no vlab watched it is
// cleaned up here (stale sockets, the record) and classified as stopped or
// crashed from the tail of qemu.log.
//
// A start whose vlab died before it recorded its QEMU (see startintent.go)
// is resolved here too: the QEMU is adopted and shown, or the leftovers are
// removed. A stop marker counts only while the vlab that wrote it runs.
func (s *Store) Status(ctx context.Context, name string) (Status, error) {
	if err := ValidateName(name); err != nil {
		return Status{}, err
	}
	return s.status(ctx, name, false)
}

// RequireActive returns nil when VM name has a QEMU process (running,
// starting, paused...), else an error naming op that says how to start it:
// the check commands that need a live VM (a console, a screenshot) make
// first.
func (s *Store) RequireActive(ctx context.Context, op, name string) error {
	st, err := s.Status(ctx, name)
	if err != nil {
		return err
	}
	if !st.State.Active() {
		return fmt.Errorf("%s %q: %w (state %s): start it with `vlab start %s`", op, name, ErrNotRunning, st.State, name)
	}
	return nil
}

// status is Status; held says the caller holds the VM lock.
func (s *Store) status(ctx context.Context, name string, held bool) (Status, error) {
	p := s.Paths(name)
	if _, err := os.Stat(p.Spec); err != nil {
		return Status{}, fmt.Errorf("vm %q: %w", name, ErrNotFound)
	}
	var rec record
	if err := readJSON(p.Process, &rec); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return Status{State: StateCrashed, Detail: "process record unreadable: " + err.Error()}, nil
		}
		adopted, final := s.adoptStart(p, held)
		switch {
		case final != nil:
			return *final, nil
		case adopted != nil:
			rec = *adopted
		default:
			var ex exitRecord
			if readJSON(p.LastExit, &ex) == nil {
				return Status{State: StateCrashed, Detail: ex.Reason}, nil
			}
			return Status{State: StateStopped}, nil
		}
	}
	settleIntent(p, held)
	st := Status{PID: rec.PID, StartedAt: rec.StartedAt, Accel: rec.Accel, AccelReason: rec.AccelReason, Disposable: rec.Disposable, Replay: rec.Replay}
	switch rec.Check() {
	case emulator.LiveRunning:
	default:
		return s.reconcileExit(name, p, rec, held), nil
	}
	if stopping(p) {
		st.State = StateShuttingDown
		return st, nil
	}
	qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	mon, err := emulator.DialAny(qctx, p.QMP)
	if err != nil {
		if errors.Is(err, emulator.ErrMonitorsBusy) {
			// Every monitor is held by other vlab clients: they prove QEMU is
			// alive and serving, so report it running.
			st.State = StateRunning
			st.Detail = "all QMP monitors busy"
			return st, nil
		}
		if time.Since(rec.StartedAt) < startGrace {
			st.State = StateStarting
			return st, nil
		}
		st.State = StateUnresponsive
		st.Detail = fmt.Sprintf("%v: `vlab stop --force %s` ends it", err, name)
		return st, nil
	}
	defer mon.Close()
	qs, err := mon.QueryStatus(qctx)
	if err != nil {
		st.State = StateUnresponsive
		st.Detail = err.Error()
		return st, nil
	}
	st.State = stateFromQMP(qs.Status, qs.Running)
	if st.State == StateCrashed {
		st.Detail = "guest state " + qs.Status
	}
	return st, nil
}

// stateFromQMP maps a query-status run state to a lifecycle state.
func stateFromQMP(status string, running bool) State {
	switch status {
	case "running":
		return StateRunning
	case "paused", "suspended", "prelaunch", "debug", "watchdog", "save-vm", "restore-vm", "finish-migrate", "postmigrate":
		if running {
			return StateRunning
		}
		return StatePaused
	case "shutdown":
		return StateShuttingDown
	case "inmigrate", "colo":
		return StateStarting
	case "internal-error", "io-error", "guest-panicked":
		return StateCrashed
	}
	if running {
		return StateRunning
	}
	return StatePaused
}

// reconcileExit handles a recorded QEMU that is gone: it removes the record
// and the stale sockets, and tells a clean power-off from a crash by what
// QEMU wrote to its log during the run.
func (s *Store) reconcileExit(name string, p Paths, rec record, held bool) Status {
	st := Status{State: StateStopped}
	if reason := crashReason(p.QEMULog, rec.LogOffset); reason != "" {
		st = Status{State: StateCrashed, Detail: reason}
	}
	l, err := lockIfFree(p, held)
	if err != nil {
		return st // someone else is cleaning up or starting it
	}
	defer l.unlock()
	if st.State == StateCrashed {
		_ = writeJSON(p.LastExit, exitRecord{Time: time.Now(), Reason: st.Detail})
	}
	s.cleanRuntime(p)
	if rec.Disposable {
		s.discardOverlays(name)
	}
	return st
}

// cleanRuntime removes what a finished run leaves in the runtime dir: the
// record, the stop marker and sockets nothing listens on. A QEMU that was
// just killed can hold its sockets for a moment after its PID is gone (its
// threads exit last), so a socket still in use is retried briefly.
func (s *Store) cleanRuntime(p Paths) {
	s.cleanSandbox(p) // sandbox.go
	os.Remove(p.Process)
	os.Remove(intentPath(p))
	os.Remove(p.StopMark)
	os.Remove(p.Pidfile)
	os.Remove(p.VNCPass) // the shared one-time password died with the run
	for _, sock := range append(append([]string{}, p.QMP...), p.VNC, emulator.ExternalVNCSocket(p.VNC), p.Serial, p.GDB, p.Agent) {
		for try := 0; try < 25; try++ {
			if err := emulator.RemoveStaleSocket(sock); !errors.Is(err, emulator.ErrSocketInUse) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// crashReason returns the last error-looking line QEMU logged after offset,
// or "" when the run ended quietly (guest power-off, a vlab stop).
func crashReason(logPath string, offset int64) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		lower := strings.ToLower(line)
		switch {
		case line == "", strings.HasPrefix(line, "=== vlab"), strings.Contains(lower, "terminating on signal"),
			strings.Contains(lower, "warning"):
			continue
		}
		if strings.Contains(lower, "error") || strings.Contains(lower, "abort") || strings.Contains(lower, "assert") ||
			strings.Contains(lower, "fault") || strings.Contains(lower, "fatal") || strings.Contains(lower, "panic") {
			last = line
		}
	}
	return last
}

// StartOptions tune one start.
type StartOptions struct {
	Accel      emulator.Accel // overrides the spec's accel when not auto
	Disposable bool           // discard every disk write at power-off
	Paused     bool           // start with the CPUs stopped (-S)
	Debug      DebugOptions   // gdb stub, -d log items, record/replay (debug.go)
}

// Start boots VM name. It returns once QEMU's QMP monitor answers, or with
// QEMU's own error when it exits during start. Two concurrent starts of one
// VM start one QEMU: the second gets ErrRunning.
//
// From the start intent to the process record it stays one function on
// purpose: the order of intent, helpers, spawn, record and the clean-up of
// each failure is the crash-safety contract that startintent.go settles
// and TestStartKilledAtEveryStep kills at every fault point.
func (s *Store) Start(ctx context.Context, name string, opts StartOptions) error {
	spec, err := s.Load(name)
	if err != nil {
		return err
	}
	p := s.Paths(name)
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	l, err := lock(lctx, p.Lock)
	cancel()
	if err != nil {
		return fmt.Errorf("start vm %q: %w", name, err)
	}
	defer l.unlock()
	st, err := s.status(ctx, name, true)
	if err != nil {
		return err
	}
	if st.State.Active() {
		return fmt.Errorf("start vm %q: %w (state %s, pid %d): stop it first with `vlab stop %s`", name, ErrRunning, st.State, st.PID, name)
	}
	faultPoint("start:locked")
	cfg, argv, err := s.startConfig(ctx, spec, opts)
	if err != nil {
		return err
	}
	offset, err := s.prepareRuntime(name, p)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil { // interrupted before anything was spawned
		return fmt.Errorf("start vm %q: %w", name, err)
	}
	launcher, err := emulator.Self()
	if err != nil {
		return fmt.Errorf("start vm %q: %w", name, err)
	}
	sandbox, err := s.startSandbox(ctx, spec) // passt for sandbox NICs (sandbox.go)
	if err == nil {
		if err = sandbox.startShares(ctx, spec, cfg.Shares); err != nil { // virtiofsd.go
			sandbox.stop()
		}
	}
	if err != nil {
		if opts.Disposable {
			s.discardOverlays(name)
		}
		return fmt.Errorf("start vm %q: %w", name, err)
	}
	rec := record{Accel: cfg.Accel.Accel.String(), AccelReason: cfg.Accel.Reason, LogOffset: offset, Disposable: opts.Disposable}
	if m := cfg.Instrument.Replay.Mode; m != emulator.ReplayOff {
		rec.Replay = m.String()
	}
	rec.StartedAt = time.Now()
	if err := writeRecord(intentPath(p), startIntent{Record: rec, Argv: argv, Launcher: launcher}); err != nil {
		sandbox.stop()
		return fmt.Errorf("start vm %q: %w", name, err)
	}
	faultPoint("start:intent")
	// From here the QEMU process may exist. If ctx ends (Ctrl-C, SIGTERM,
	// SIGHUP) before QMP is up, Launch kills it and the run is undone below;
	// after that the start completes whatever happens to ctx.
	var recErr error
	proc, err := emulator.Launch(ctx, emulator.LaunchOptions{
		Argv:    argv,
		LogPath: p.QEMULog,
		Dir:     p.Dir,
		QMP:     p.QMP[0],
		OnSpawn: func(proc *emulator.Process) {
			faultPoint("start:spawned")
			r := rec
			r.Process = *proc
			recErr = writeRecord(p.Process, r)
			faultPoint("start:recorded")
		},
	})
	if err != nil {
		sandbox.stop()
		os.Remove(p.Process)
		os.Remove(intentPath(p))
		if opts.Disposable {
			s.discardOverlays(name)
		}
		return fmt.Errorf("start vm %q: %w", name, err)
	}
	faultPoint("start:ready")
	rec.Process = *proc
	if recErr != nil {
		if err := writeRecord(p.Process, rec); err != nil {
			// QEMU runs; the intent stays, so the next vlab adopts it.
			return fmt.Errorf("start vm %q: record process %d: %w", name, proc.PID, err)
		}
	}
	os.Remove(intentPath(p))
	faultPoint("start:done")
	// The host ports auto forwards got (network.go). QEMU runs either way;
	// `vlab net show` asks it again when this fails.
	nctx, cancel := cleanupContext(ctx, 10*time.Second)
	_ = s.recordNetwork(nctx, spec, proc.PID)
	cancel()
	sandbox.record(proc.PID)
	return nil
}

// startConfig checks what the VM needs from the host (boot files, its
// networks) and returns its emulator configuration for this start and the
// QEMU argv.
func (s *Store) startConfig(ctx context.Context, spec *Spec, opts StartOptions) (emulator.Config, []string, error) {
	name := spec.Name
	fail := func(err error) (emulator.Config, []string, error) {
		return emulator.Config{}, nil, fmt.Errorf("start vm %q: %w", name, err)
	}
	if err := CheckSources(spec.Boot); err != nil {
		return fail(err)
	}
	if err := s.prepareNetwork(ctx, spec); err != nil { // network.go
		return fail(err)
	}
	host, err := s.Host(ctx)
	if err != nil {
		return emulator.Config{}, nil, err
	}
	want := spec.Accel
	if opts.Accel != emulator.AccelAuto {
		want = opts.Accel
	}
	cfg, err := s.config(spec, host, want)
	if err != nil {
		return fail(err)
	}
	cfg.StartPaused = opts.Paused
	if err := s.instrument(ctx, name, host, &cfg, opts.Debug); err != nil { // debug.go
		return fail(err)
	}
	if opts.Disposable {
		if cfg.Disks, err = s.disposableDisks(ctx, name, host, cfg.Disks); err != nil {
			return fail(err)
		}
	}
	argv, err := emulator.Cmdline(cfg, host)
	if err != nil {
		return fail(err)
	}
	return cfg, argv, nil
}

// prepareRuntime readies the VM's runtime folder and logs for a start and
// returns where this run's part of qemu.log begins.
func (s *Store) prepareRuntime(name string, p Paths) (int64, error) {
	if err := ensurePrivateDir(p.Run); err != nil {
		return 0, err // it names the folder and the fix
	}
	if err := mkdirPrivate(p.LogDir); err != nil {
		return 0, fmt.Errorf("start vm %q: %w", name, err)
	}
	s.cleanRuntime(p)
	os.Remove(p.LastExit)
	rotateLog(p.SerialLog)
	// QEMU creates the serial log (a chardev logfile) with the umask's
	// mode: give it an owner-only file to append to.
	for _, f := range []string{p.SerialLog, p.QEMULog} {
		if err := touchPrivate(f); err != nil {
			return 0, fmt.Errorf("start vm %q: %w", name, err)
		}
	}
	var offset int64
	if fi, err := os.Stat(p.QEMULog); err == nil {
		offset = fi.Size()
	}
	return offset, nil
}

// checkForwards fails early, with the port in the message, when a forward's
// host port is taken (QEMU's own error is cryptic).
func checkForwards(spec *Spec) error {
	for _, n := range spec.NICs {
		for _, f := range n.Forwards {
			addr := net.JoinHostPort(f.HostAddr, strconv.Itoa(f.HostPort))
			var err error
			if f.Proto == "udp" {
				var c net.PacketConn
				if c, err = net.ListenPacket("udp", addr); err == nil {
					c.Close()
				}
			} else {
				var l net.Listener
				if l, err = net.Listen("tcp", addr); err == nil {
					l.Close()
				}
			}
			if err != nil {
				return fmt.Errorf("host port %s of forward %s is in use: stop what uses it or change the forward", addr, f)
			}
		}
	}
	return nil
}

// Launched returns what vlab recorded when it launched the VM's QEMU (pid,
// accel and its reason) without asking QEMU anything: cheap, for reporting
// right after Start. ok is false when there is no live record.
func (s *Store) Launched(name string) (st Status, ok bool) {
	var rec record
	if readJSON(s.Paths(name).Process, &rec) != nil || rec.Check() != emulator.LiveRunning {
		return Status{}, false
	}
	return Status{State: StateRunning, PID: rec.PID, StartedAt: rec.StartedAt, Accel: rec.Accel,
		AccelReason: rec.AccelReason, Disposable: rec.Disposable, Replay: rec.Replay}, true
}

// rotateLog keeps the previous boot's serial log as serial.log.1.
func rotateLog(path string) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		_ = os.Rename(path, path+".1")
	}
}

// StopOptions tune one stop.
type StopOptions struct {
	Force   bool          // skip the ACPI power-down: quit, then kill
	Timeout time.Duration // how long the guest gets to power off (default 60s)
	// QuitTimeout is how long QEMU gets to obey quit (and flush its disks)
	// before SIGKILL (default 30s).
	QuitTimeout time.Duration
}

// Stop ends VM name: the guest agent's guest-shutdown when the VM has an
// agent that answers, else (or when the guest is still up after
// opts.Timeout) ACPI power-down, then quit, then SIGKILL. It returns how it
// finally ended ("agent", "powerdown", "quit" or "kill").
func (s *Store) Stop(ctx context.Context, name string, opts StopOptions) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	p := s.Paths(name)
	st, err := s.Status(ctx, name)
	if err != nil {
		return "", err
	}
	if !st.State.Active() {
		return "", fmt.Errorf("stop vm %q: %w (state %s)", name, ErrNotRunning, st.State)
	}
	if st.State == StateUnresponsive && !opts.Force {
		return "", fmt.Errorf("stop vm %q: qemu (pid %d) does not answer QMP: use `vlab stop --force %s`", name, st.PID, name)
	}
	var rec record
	if err := readJSON(p.Process, &rec); err != nil {
		return "", fmt.Errorf("stop vm %q: read process record: %w", name, err)
	}
	if !opts.Force {
		if self, err := emulator.Self(); err == nil {
			_ = writeRecord(p.StopMark, stopMark{Stopper: self})
		}
	}
	byAgent := !opts.Force && s.agentShutdown(ctx, name, &rec.Process, opts.Timeout) // agent.go: guest-shutdown first
	res, err := emulator.Stop(ctx, &rec.Process, p.QMP, emulator.StopOptions{Force: opts.Force, PowerdownTimeout: opts.Timeout, QuitTimeout: opts.QuitTimeout})
	if byAgent && err == nil && res.Method == emulator.StopNotRunning {
		res.Method = StopAgent
	}
	// What follows runs to the end even when the stop was interrupted: the
	// marker goes, and a QEMU that is gone is cleaned up, so the next status
	// is the truth (running if QEMU still runs, stopped if not).
	cctx, cancel := cleanupContext(ctx, 10*time.Second)
	defer cancel()
	os.Remove(p.StopMark)
	if err != nil && rec.Check() == emulator.LiveRunning {
		return "", fmt.Errorf("stop vm %q: %w: it is still running", name, err)
	}
	l, lerr := lock(cctx, p.Lock)
	if lerr == nil {
		s.cleanRuntime(p)
		if rec.Disposable {
			s.discardOverlays(name)
		}
		l.unlock()
	}
	if err != nil {
		return "", fmt.Errorf("stop vm %q: %w", name, err)
	}
	return res.Method, nil
}

// withMonitor runs f on a QMP connection of its own to running VM name.
func (s *Store) withMonitor(ctx context.Context, name string, f func(*emulator.Monitor) error) error {
	mon, err := s.Monitor(ctx, name)
	if err != nil {
		return err
	}
	defer mon.Close()
	if err := f(mon); err != nil {
		return fmt.Errorf("vm %q: %w", name, err)
	}
	return nil
}

// Monitor opens a QMP connection to a running VM on a monitor no one else
// holds. The caller closes it.
func (s *Store) Monitor(ctx context.Context, name string) (*emulator.Monitor, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	p := s.Paths(name)
	if _, err := os.Stat(p.Spec); err != nil {
		return nil, fmt.Errorf("vm %q: %w", name, ErrNotFound)
	}
	var rec record
	if err := readJSON(p.Process, &rec); err != nil || rec.Check() != emulator.LiveRunning {
		return nil, fmt.Errorf("vm %q: %w: start it with `vlab start %s`", name, ErrNotRunning, name)
	}
	mon, err := emulator.DialAny(ctx, p.QMP)
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", name, err)
	}
	return mon, nil
}

// Pause stops the guest CPUs.
func (s *Store) Pause(ctx context.Context, name string) error {
	return s.withMonitor(ctx, name, func(m *emulator.Monitor) error { return m.Stop(ctx) })
}

// Resume continues paused guest CPUs.
func (s *Store) Resume(ctx context.Context, name string) error {
	return s.withMonitor(ctx, name, func(m *emulator.Monitor) error { return m.Cont(ctx) })
}

// Reset hard-resets the guest, like the reset button.
func (s *Store) Reset(ctx context.Context, name string) error {
	return s.withMonitor(ctx, name, func(m *emulator.Monitor) error { return m.SystemReset(ctx) })
}

// Delete removes VM name with its disks, runtime files and logs. The caller
// must have asked the user: this destroys their data.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("delete vm: %w", err)
	}
	p := s.Paths(name)
	if _, err := os.Stat(p.Spec); err != nil {
		return fmt.Errorf("delete vm %q: %w", name, ErrNotFound)
	}
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return fmt.Errorf("delete vm %q: %w", name, err)
	}
	defer l.unlock()
	st, err := s.Status(ctx, name)
	if err != nil {
		return err
	}
	if st.State.Active() {
		return fmt.Errorf("delete vm %q: %w: stop it first with `vlab stop %s`", name, ErrRunning, name)
	}
	if err := s.checkDeletable(name); err != nil {
		return err
	}
	// Move the folder aside first so a half-finished delete never leaves a
	// vm that looks whole.
	trash := filepath.Join(filepath.Dir(p.Dir), ".deleted-"+name+"-"+fmt.Sprint(time.Now().UnixNano()))
	if err := s.beginIntent(&intent{Op: intentDelete, VM: name, Temps: []string{trash}}); err != nil {
		return fmt.Errorf("delete vm %q: %w", name, err)
	}
	faultPoint("delete:intent")
	if err := renameDurable(p.Dir, trash); err != nil {
		s.endIntent(name)
		return fmt.Errorf("delete vm %q: %w", name, err)
	}
	faultPoint("delete:renamed")
	os.RemoveAll(p.LogDir)
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("delete vm %q: remove %s: %w", name, trash, err)
	}
	faultPoint("delete:removed")
	s.endIntent(name)
	os.RemoveAll(p.Run)
	return nil
}

// checkDeletable refuses to delete a VM other VMs depend on: a linked clone
// names its source in linked_to.
func (s *Store) checkDeletable(name string) error {
	deps, err := s.Dependents(name)
	if err != nil {
		return err
	}
	if len(deps) > 0 {
		return fmt.Errorf("delete vm %q: %w: linked clones %s use its disk; delete them first", name, ErrProtected, strings.Join(deps, ", "))
	}
	return nil
}

// Dependents lists the VMs whose disks are overlays on name's disks. It
// fails closed: a VM whose machine.toml cannot be read well enough to tell
// whether it is a linked clone of name is an error naming it, so nothing
// it may depend on is deleted.
func (s *Store) Dependents(name string) ([]string, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, n := range names {
		if n == name {
			continue
		}
		linked, err := s.linkedTo(n)
		if err != nil {
			return nil, fmt.Errorf("vm %q may be a linked clone of %q, but %v: fix or delete %s first", n, name, err, n)
		}
		if linked == name {
			deps = append(deps, n)
		}
	}
	return deps, nil
}
