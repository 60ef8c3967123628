package tui

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// TestE2ETmux drives the real `vlab` TUI in tmux against real QEMU and the
// x86_64 fixture guest: a VM made with the CLI shows as stopped, s starts
// it (running), c opens the serial console where the guest's boot markers
// appear, ctrl+] detaches, x powers it off over ACPI (stopped), q quits.
//
// It needs VLAB_BIN (a built vlab, e.g. `make build`), tmux and QEMU
// (`make deps`) and the fixtures (`make fixtures`). Without them it skips,
// or fails when VLAB_REQUIRE_E2E=1.
func TestE2ETmux(t *testing.T) {
	bin := os.Getenv("VLAB_BIN")
	if bin == "" {
		fixture.Need(t, "VLAB_BIN is not set: build vlab (make build) and set VLAB_BIN to it")
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	for _, tool := range []string{"tmux", "qemu-system-x86_64"} {
		fixture.Program(t, tool)
	}
	kernel, initrd := fixture.Guest(t, "x86_64")

	// A private library: every XDG directory under one short temp dir.
	root, err := os.MkdirTemp("", "vtui")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	env := []string{
		"XDG_DATA_HOME=" + filepath.Join(root, "d"),
		"XDG_CONFIG_HOME=" + filepath.Join(root, "c"),
		"XDG_STATE_HOME=" + filepath.Join(root, "s"),
		"XDG_CACHE_HOME=" + filepath.Join(root, "k"),
		"XDG_RUNTIME_DIR=" + filepath.Join(root, "r"),
	}
	for _, kv := range env {
		if err := os.MkdirAll(strings.SplitN(kv, "=", 2)[1], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	vlab := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	const name = "tuie2e"
	if out, err := vlab("create", name, "--kernel", kernel, "--initrd", initrd,
		"--append", fixture.Append("x86_64", "vlab.marker=tui-e2e"), "--display", "none", "--memory", "256M"); err != nil {
		t.Fatalf("vlab create: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = vlab("stop", "--force", name) })

	session := "vlab-tui-e2e-" + strings.ReplaceAll(filepath.Base(root), ".", "")
	tmuxArgs := []string{"new-session", "-d", "-s", session, "-x", "120", "-y", "40", "env"}
	tmuxArgs = append(append(tmuxArgs, env...), bin)
	if out, err := exec.Command("tmux", tmuxArgs...).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "kill-session", "-t", session).Run() })

	capture := func() string {
		out, _ := exec.Command("tmux", "capture-pane", "-p", "-t", session).Output()
		return string(out)
	}
	waitFor := func(what string, timeout time.Duration, cond func(screen string) bool) {
		t.Helper()
		deadline := time.Now().Add(timeout) // a safety net, not a timing assertion
		for {
			s := capture()
			if cond(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; the screen shows:\n%s", what, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	shows := func(parts ...string) func(string) bool {
		return func(s string) bool {
			for _, p := range parts {
				if !strings.Contains(s, p) {
					return false
				}
			}
			return true
		}
	}
	rowState := func(state string) func(string) bool {
		return func(s string) bool {
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, name) && strings.Contains(l, state) {
					return true
				}
			}
			return false
		}
	}
	keys := func(k ...string) {
		t.Helper()
		if out, err := exec.Command("tmux", append([]string{"send-keys", "-t", session}, k...)...).CombinedOutput(); err != nil {
			t.Fatalf("tmux send-keys %v: %v\n%s", k, err, out)
		}
	}

	waitFor("the VM made by the CLI, stopped", 30*time.Second, rowState("stopped"))
	keys("s")
	waitFor("the VM running", 60*time.Second, rowState("running"))
	keys("c")
	waitFor("the serial view with the guest's boot markers", 90*time.Second,
		shows("serial console of "+name, fixture.MarkerBootOK, "VLAB-MARKER tui-e2e"))
	keys("C-]")
	waitFor("the list after detaching", 10*time.Second, rowState("running"))
	keys("x")
	waitFor("the VM stopped after the ACPI power-off", 120*time.Second, rowState("stopped"))
	keys("q")
	waitFor("vlab to exit", 10*time.Second, func(string) bool {
		return exec.Command("tmux", "has-session", "-t", session).Run() != nil
	})
}
