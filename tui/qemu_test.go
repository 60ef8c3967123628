package tui

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"vlab/internal/fixture"
	"vlab/machine"
)

// TestRealQEMUEventsReachTheModel: a fixture VM started with the CLI is
// paused, resumed and force-stopped by other `vlab` processes; the TUI
// program (real MachineService, real QEMU, no key press, no tick) shows
// each change. The pause's latency from the exec of `vlab pause` to the
// frame showing it is logged (bench/RESULTS.md), not asserted.
//
// It needs VLAB_BIN (a built vlab) and QEMU and the fixtures; without them
// it skips, or fails when VLAB_REQUIRE_E2E=1.
func TestRealQEMUEventsReachTheModel(t *testing.T) {
	bin := os.Getenv("VLAB_BIN")
	if bin == "" {
		fixture.Need(t, "VLAB_BIN is not set: build vlab (make build) and set VLAB_BIN to it")
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	fixture.Program(t, "qemu-system-x86_64")
	kernel, initrd := fixture.Guest(t, "x86_64")
	root, err := os.MkdirTemp("", "vtq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	for _, kv := range [][2]string{{"XDG_DATA_HOME", "d"}, {"XDG_CONFIG_HOME", "c"}, {"XDG_STATE_HOME", "s"}, {"XDG_CACHE_HOME", "k"}, {"XDG_RUNTIME_DIR", "r"}} {
		dir := filepath.Join(root, kv[1])
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Setenv(kv[0], dir)
	}
	vlab := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("vlab %v: %v\n%s", args, err, out)
		}
	}
	const name = "tuiqmp"
	vlab("create", name, "--kernel", kernel, "--initrd", initrd, "--append", fixture.Append("x86_64"), "--display", "none", "--memory", "256M")
	vlab("start", name)
	t.Cleanup(func() { _ = exec.Command(bin, "stop", "--force", name).Run() })

	store, err := machine.Open(machine.DefaultDirs())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := NewMachineService(store)
	m := New(ctx, svc, Options{Env: []string{"TERM=xterm-256color"}, StatsInterval: time.Hour})
	tm, updates := newCountingFlow(t, m, 120, 30)
	waitRow(t, tm, name, StateRunning)
	// The monitor view's calls, on the real QEMU beside the TUI's own QMP.
	if out, err := svc.HMP(ctx, name, "info status"); err != nil || out != "VM status: running\n" {
		t.Fatalf("monitor info status: %q %v", out, err)
	}
	if out, err := svc.TraceTail(ctx, name, 1<<10); err != nil || out != "" {
		t.Fatalf("trace log before any trace: %q %v", out, err)
	}
	time.Sleep(500 * time.Millisecond) // the watcher subscribes to QMP

	start := time.Now()
	vlab("pause", name)
	waitRow(t, tm, name, StatePaused)
	t.Logf("vlab pause → list shows paused: %v (includes the vlab process's own start)", time.Since(start).Round(time.Millisecond))

	vlab("resume", name)
	waitRow(t, tm, name, StateRunning)
	vlab("stop", "--force", name) // QEMU killed: its end is seen
	waitRow(t, tm, name, StateStopped)
	if updates.Load() == 0 {
		t.Fatal("no Update counted")
	}
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}
