package machine

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fakeqemu"
)

// The test binary doubles as a fake qemu-system-x86_64: Start execs it with
// a real argv and it serves QMP on the sockets that argv names.
func init() {
	if os.Getenv(fakeqemu.EnvMode) != "" {
		os.Exit(fakeqemu.MainFromEnv(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// fakeStore returns a Store in a temp dir (with spaces) whose host has the
// fake as its only QEMU.
func fakeStore(t *testing.T, mode fakeqemu.Mode) *Store {
	t.Helper()
	t.Setenv(fakeqemu.EnvMode, string(mode))
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	s := emptyStore(t)
	qemuImg, _ := exec.LookPath("qemu-img")
	s.host = &emulator.Host{
		Arch: emulator.ArchX86_64,
		Binaries: map[emulator.Arch]emulator.Binary{
			emulator.ArchX86_64: {Path: os.Args[0], Version: "7.2.0", Accels: []string{"tcg"}, Machines: []string{"pc", "q35", "none"}},
		},
		MemTotalMiB: 4096,
		QemuImg:     emulator.QemuImg(qemuImg),
	}
	t.Cleanup(func() {
		names, _ := s.Names()
		for _, n := range names {
			s.Stop(context.Background(), n, StopOptions{Force: true})
		}
	})
	return s
}

func createFake(t *testing.T, s *Store, name string) {
	t.Helper()
	spec := NewSpec(name, emulator.ArchX86_64)
	spec.Display = emulator.DisplayNone
	spec.NICs = nil
	if err := s.Create(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
}

func wantState(t *testing.T, s *Store, name string, want State) Status {
	t.Helper()
	st, err := s.Status(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != want {
		t.Fatalf("%s: state %s (%s), want %s", name, st.State, st.Detail, want)
	}
	return st
}

func TestLifecycleWithFakeQEMU(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	ctx := context.Background()
	createFake(t, s, "vm1")
	wantState(t, s, "vm1", StateStopped)
	if err := s.Start(ctx, "vm1", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	st := wantState(t, s, "vm1", StateRunning)
	if st.PID == 0 || st.Accel != "tcg" || st.AccelReason == "" {
		t.Fatalf("status %+v", st)
	}
	if err := s.Start(ctx, "vm1", StartOptions{}); !errors.Is(err, ErrRunning) {
		t.Fatalf("second start: %v", err)
	}
	if err := s.Pause(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "vm1", StatePaused)
	if err := s.Resume(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "vm1", StateRunning)
	if err := s.Delete(ctx, "vm1"); !errors.Is(err, ErrRunning) {
		t.Fatalf("delete of a running vm: %v", err)
	}
	how, err := s.Stop(ctx, "vm1", StopOptions{})
	if err != nil || how != "powerdown" {
		t.Fatalf("stop: %q %v", how, err)
	}
	wantState(t, s, "vm1", StateStopped)
	if _, err := os.Stat(s.Paths("vm1").Process); !os.IsNotExist(err) {
		t.Error("process record left after stop")
	}
	if _, err := s.Stop(ctx, "vm1", StopOptions{}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stop of a stopped vm: %v", err)
	}
	if err := s.Delete(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Paths("vm1").Dir); !os.IsNotExist(err) {
		t.Fatal("vm folder left after delete")
	}
}

func TestStartFailureReportsQEMUError(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeExitEarly)
	createFake(t, s, "bad")
	err := s.Start(context.Background(), "bad", StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "Could not open") {
		t.Fatalf("start error %v should carry qemu's own message", err)
	}
	wantState(t, s, "bad", StateStopped)
}

func TestHungQEMUNeedsForce(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeHang)
	ctx := context.Background()
	createFake(t, s, "hung")
	if err := s.Start(ctx, "hung", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	how, err := s.Stop(ctx, "hung", StopOptions{Force: true, QuitTimeout: time.Second})
	if err != nil || how != "kill" {
		t.Fatalf("force stop of a hung qemu: %q %v", how, err)
	}
	wantState(t, s, "hung", StateStopped)
}

func TestGarbageMonitorIsUnresponsive(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeGarbage)
	ctx := context.Background()
	createFake(t, s, "junk")
	if err := s.Start(ctx, "junk", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "junk", StateUnresponsive)
	if _, err := s.Stop(ctx, "junk", StopOptions{}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("plain stop of an unresponsive vm should point at --force: %v", err)
	}
	if _, err := s.Stop(ctx, "junk", StopOptions{Force: true, QuitTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
}

func TestKilledQEMUIsReconciled(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	ctx := context.Background()
	createFake(t, s, "gone")
	if err := s.Start(ctx, "gone", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	st := wantState(t, s, "gone", StateRunning)
	syscall.Kill(st.PID, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ = s.Status(ctx, "gone")
		if st.State == StateStopped || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.State != StateStopped {
		t.Fatalf("state after kill: %s", st.State)
	}
	p := s.Paths("gone")
	for _, sock := range p.QMP {
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("stale socket %s left", sock)
		}
	}
	if err := s.Start(ctx, "gone", StartOptions{}); err != nil {
		t.Fatalf("restart after a killed run: %v", err)
	}
}

func TestCrashReasonFromLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "qemu.log")
	os.WriteFile(log, []byte("old run: qemu-system-x86_64: fatal: old\n=== vlab start ===\nqemu-system-x86_64: warning: host doesn't support requested feature\n"), 0o644)
	off := int64(len("old run: qemu-system-x86_64: fatal: old\n"))
	if r := crashReason(log, off); r != "" {
		t.Fatalf("a warning is not a crash: %q", r)
	}
	f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("qemu-system-x86_64: ../../target/i386/tcg.c:42: assertion failed\n")
	f.Close()
	if r := crashReason(log, off); !strings.Contains(r, "assertion") {
		t.Fatalf("crash reason %q", r)
	}
}

func TestCreateLeavesNothingOnFailure(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	spec := NewSpec("half", emulator.ArchX86_64)
	spec.Disks = []DiskSpec{{File: "d.qcow2", Size: GiB}}
	s.host.QemuImg = "/nonexistent/qemu-img"
	if err := s.Create(context.Background(), spec); err == nil {
		t.Fatal("create with a broken qemu-img succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(s.dirs.Data, "machines"))
	if len(ents) != 0 {
		t.Fatalf("failed create left %v", ents)
	}
	spec.Arch = emulator.ArchPPC
	spec.Machine = "" // the ppc default (q35 is refused for ppc)
	spec.Disks = nil
	err := s.Create(context.Background(), spec)
	if !errors.Is(err, emulator.ErrNoQEMU) || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("create for a missing qemu: %v", err)
	}
}
