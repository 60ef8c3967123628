package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fakeqemu"
)

// The start helper: the test binary re-executed to run Store.Start as a
// `vlab start` would, so that VLAB_FAULT can kill it at a step.
const (
	envStartHelper     = "VLAB_TEST_START_HELPER" // JSON startHelperArgs
	envStartHelperMode = "VLAB_TEST_START_HELPER_MODE"
)

type startHelperArgs struct {
	Dirs Dirs
	Name string
}

func init() {
	if v := os.Getenv(envStartHelper); v != "" && os.Getenv(fakeqemu.EnvMode) == "" {
		os.Exit(startHelperMain(v))
	}
}

func startHelperMain(v string) int {
	var a startHelperArgs
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := Open(a.Dirs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s.host = fakeQEMUHost()
	os.Setenv(fakeqemu.EnvMode, os.Getenv(envStartHelperMode)) // for the QEMU child only
	if err := s.Start(context.Background(), a.Name, StartOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func fakeQEMUHost() *emulator.Host {
	qemuImg, _ := exec.LookPath("qemu-img")
	return &emulator.Host{
		Arch: emulator.ArchX86_64,
		Binaries: map[emulator.Arch]emulator.Binary{
			emulator.ArchX86_64: {Path: os.Args[0], Version: "7.2.0", Accels: []string{"tcg"}, Machines: []string{"pc", "q35", "none"}},
		},
		MemTotalMiB: 4096,
		QemuImg:     emulator.QemuImg(qemuImg),
	}
}

// runStartHelper runs Start in another process with VLAB_FAULT=step and
// reports whether that process was killed at the step.
func runStartHelper(t *testing.T, s *Store, name, step string) (killed bool, out string) {
	t.Helper()
	arg, _ := json.Marshal(startHelperArgs{Dirs: s.dirs, Name: name})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envStartHelper+"="+string(arg), envStartHelperMode+"="+string(fakeqemu.ModeNormal),
		"VLAB_FAULT="+step, fakeqemu.EnvMode+"=")
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, string(b)
		}
	}
	return false, fmt.Sprintf("%v: %s", err, b)
}

// qemusOf lists the live processes whose command line names the VM's first
// QMP socket: its QEMUs, recorded or not.
func qemusOf(p Paths) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(b), p.QMP[0]) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && len(st) > i+2 && (st[i+2] == 'Z' || st[i+2] == 'X') {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// TestStartKilledAtEveryStep kills a start (SIGKILL, as a crash or an OOM
// kill would) at each of its steps. The next vlab must show the VM running
// with the PID of its one QEMU (adopted), or stopped with no QEMU left; and
// stop and start must work after it.
func TestStartKilledAtEveryStep(t *testing.T) {
	steps := []string{"start:locked", "start:intent", "start:spawned", "start:recorded", "start:ready", "start:done"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			s := fakeStore(t, fakeqemu.ModeNormal)
			ctx := context.Background()
			createFake(t, s, "vm")
			p := s.Paths("vm")
			killed, out := runStartHelper(t, s, "vm", step)
			if !killed {
				t.Fatalf("start was not killed at %s: %s", step, out)
			}
			t.Cleanup(func() {
				for _, pid := range qemusOf(p) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			var st Status
			// A QEMU killed before its QMP came up shows as starting for a
			// moment: wait for it to settle.
			deadline := time.Now().Add(20 * time.Second)
			for {
				var err error
				if st, err = s.Status(ctx, "vm"); err != nil {
					t.Fatal(err)
				}
				if st.State != StateStarting || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			pids := qemusOf(p)
			switch st.State {
			case StateRunning:
				if len(pids) != 1 || pids[0] != st.PID {
					t.Fatalf("running with pid %d, but the VM's QEMUs are %v", st.PID, pids)
				}
			case StateStopped:
				if len(pids) != 0 {
					t.Fatalf("stopped, but QEMU %v of the VM runs (orphan)", pids)
				}
			default:
				t.Fatalf("state %s (%s) after a start killed at %s", st.State, st.Detail, step)
			}
			if _, err := os.Stat(intentPath(p)); err == nil {
				t.Errorf("start intent left behind")
			}
			if st.State == StateRunning {
				if how, err := s.Stop(ctx, "vm", StopOptions{}); err != nil || how != "powerdown" {
					t.Fatalf("stop of the adopted QEMU: %q %v", how, err)
				}
			}
			if err := s.Start(ctx, "vm", StartOptions{}); err != nil {
				t.Fatalf("start after a start killed at %s: %v", step, err)
			}
			wantState(t, s, "vm", StateRunning)
			if n := len(qemusOf(p)); n != 1 {
				t.Fatalf("%d QEMUs after the restart, want 1", n)
			}
		})
	}
}

// A start in progress in another, live vlab shows as starting and is not
// adopted or cleaned behind its back.
func TestStartIntentOfALiveVlabIsStarting(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	createFake(t, s, "vm")
	p := s.Paths("vm")
	self, err := emulator.Self()
	if err != nil {
		t.Fatal(err)
	}
	if err := ensurePrivateDir(p.Run); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(intentPath(p), startIntent{Argv: []string{"/nonexistent/qemu", p.QMP[0]}, Launcher: self}); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "vm", StateStarting)
	if _, err := os.Stat(intentPath(p)); err != nil {
		t.Fatalf("the intent of a live start was removed: %v", err)
	}
}

// deadProcess describes a process that has exited: a vlab that was killed.
func deadProcess(t *testing.T) *emulator.Process {
	t.Helper()
	self, err := emulator.Self()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := *self
	dead.PID = cmd.Process.Pid
	return &dead
}

// A stop marker left by a vlab killed during `vlab stop` is stale: the VM
// shows running while its QEMU runs, not shutting-down forever.
func TestStaleStopMarkerIsIgnored(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	ctx := context.Background()
	createFake(t, s, "vm")
	if err := s.Start(ctx, "vm", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	p := s.Paths("vm")
	if err := writeRecord(p.StopMark, stopMark{Stopper: deadProcess(t)}); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "vm", StateRunning)
	// A marker written by an older vlab (a timestamp) has no owner to trust.
	if err := os.WriteFile(p.StopMark, []byte(time.Now().Format(time.RFC3339)), 0o600); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "vm", StateRunning)
	// A live stopper's marker still counts.
	self, _ := emulator.Self()
	if err := writeRecord(p.StopMark, stopMark{Stopper: self}); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "vm", StateShuttingDown)
}

// Ctrl-C during `vlab stop` (its context cancelled) leaves no marker: the VM
// still runs and shows running.
func TestInterruptedStopLeavesNoMarker(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeIgnorePowerdown)
	createFake(t, s, "vm")
	if err := s.Start(context.Background(), "vm", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Stop(ctx, "vm", StopOptions{Timeout: time.Minute})
		done <- err
	}()
	p := s.Paths("vm")
	waitUntil(t, "the stop marker", func() bool { _, err := os.Stat(p.StopMark); return err == nil })
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("interrupted stop: %v", err)
	}
	wantState(t, s, "vm", StateRunning)
	if _, err := os.Stat(p.StopMark); err == nil {
		t.Error("stop marker left after an interrupted stop")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
