package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// selectVM moves the list to the named machine.
func selectVM(t *testing.T, h *harness, name string) {
	t.Helper()
	h.m.list.Select(name)
	if vm, _ := h.m.list.Selected(); vm.Name != name {
		t.Fatalf("cannot select %s", name)
	}
}

func TestEditStopped(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "arm-build")
			h.press("e")
			if _, ok := h.m.view.(*editView); !ok {
				t.Fatalf("e opened %T", h.m.view)
			}
			h.requireScreen()
			h.press("backspace", "backspace", "backspace")
			h.typeText("99999")
			h.contains("memory must be at most 8192")
			h.press("enter")
			if h.m.view == nil {
				t.Fatal("an invalid memory size was saved")
			}
			for range "99999" {
				h.press("backspace")
			}
			h.typeText("768")
			h.press("tab", "tab", "tab", "right") // boot first: cdrom
			h.press("enter")
			vm, _ := f.VM("arm-build")
			if vm.MemoryMiB != 768 || vm.BootOrder != "cdrom" {
				t.Fatalf("saved memory %d boot %q", vm.MemoryMiB, vm.BootOrder)
			}
			if h.m.view != nil {
				t.Fatal("the edit screen stayed open after saving")
			}
			h.contains("saved the settings of arm-build")
		})
	}
}

func TestEditRunningLocksWhatNeedsAStop(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "web")
			h.press("e")
			ev := h.m.view.(*editView)
			h.contains("only the ISO can change now", "fixed while QEMU runs: stop the machine")
			h.requireScreen()
			if cur := ev.form.current(); cur == nil || cur.label != "ISO" {
				t.Fatal("focus is not on the one editable field")
			}
			// Moving around never lands on a locked field.
			for i := 0; i < 10; i++ {
				h.press("tab")
				if ev.form.current().locked != "" {
					t.Fatalf("focus reached locked field %s", ev.form.current().label)
				}
			}
			// Eject the ISO: allowed live.
			for range "/srv/iso/debian-12.5.0-amd64-netinst.iso" {
				h.press("backspace")
			}
			h.press("enter")
			vm, _ := f.VM("web")
			if vm.ISO != "" || vm.MemoryMiB != 2048 {
				t.Fatalf("after eject: iso %q memory %d", vm.ISO, vm.MemoryMiB)
			}
		})
	}
}

func TestEditFollowsState(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	selectVM(t, h, "web")
	h.press("e")
	ev := h.m.view.(*editView)
	if ev.form.fields[edMemory].locked == "" {
		t.Fatal("memory editable while running")
	}
	f.SetState("web", StateStopped)
	h.send(changed("web"))
	if ev.form.fields[edMemory].locked != "" {
		t.Fatal("memory still locked after the machine stopped")
	}
	h.press("esc")
	if h.m.view != nil {
		t.Fatal("esc did not close the edit screen")
	}
}

func TestSerialConsole(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			f.SetSerialOutput("web", []byte("SeaBIOS (version 1.16.2)\r\nBooting from Hard Disk...\r\n\x1b[1;32mOK\x1b[0m reached login\r\nweb login: "))
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "web")
			h.press("c")
			sv, ok := h.m.view.(*serialView)
			if !ok {
				t.Fatalf("c opened %T", h.m.view)
			}
			h.contains("serial console of web", "Booting from Hard Disk...", "OK reached login", "web login:", "ctrl+] detach")
			h.requireScreen()
			// Keys go to the guest; the fake echoes them back.
			h.typeText("root")
			h.press("enter")
			h.await("the echo of root", func() bool { return strings.Contains(h.screen(), "web login: root") })
			// "?" and "q" are text for the guest here, not TUI keys.
			h.typeText("q?")
			h.await("the echo of q?", func() bool { return strings.Contains(h.screen(), "q?") })
			if h.m.help.ShowAll || h.quit {
				t.Fatal("? or q reached the TUI instead of the guest")
			}
			h.press("ctrl+]")
			if h.m.view != nil {
				t.Fatal("ctrl+] did not detach")
			}
			if !sv.closed {
				t.Fatal("detach did not close the console")
			}
			if vm, _ := f.VM("web"); vm.State != StateRunning {
				t.Fatal("detaching stopped the machine")
			}
		})
	}
}

func TestSerialRefusedWhenStopped(t *testing.T) {
	h := newHarness(t, demoService(), 80, 24)
	selectVM(t, h, "arm-build")
	h.press("c")
	if h.m.view != nil {
		t.Fatal("serial console opened on a stopped machine")
	}
	h.contains(`serial console of "arm-build": machine is stopped`, "fix: start it first (s)")
}

func TestLineTerm(t *testing.T) {
	var lt lineTerm
	// Split in the middle of an escape sequence and of a UTF-8 rune.
	in := "ab\x1b[3" + "1mcd\x1b[0m\r\nprogress 10%\rprogress 99%\r\nx\bY\tz\n\xe2\x82" + "\xacuro\x1b]0;title\x07!"
	for i := 0; i < len(in); i += 3 {
		lt.Write([]byte(in[i:min(len(in), i+3)]))
	}
	got := strings.Join(lt.Lines(), "|")
	want := "abcd|progress 99%|Y       z|€uro!"
	if got != want {
		t.Fatalf("lines %q, want %q", got, want)
	}
	for i := 0; i < maxSerialLines+10; i++ {
		lt.Write([]byte("l\n"))
	}
	if n := len(lt.Lines()); n != maxSerialLines+1 {
		t.Fatalf("scrollback keeps %d lines", n)
	}
}

func TestKeyBytes(t *testing.T) {
	cases := map[string]string{"a": "a", "enter": "\r", "ctrl+c": "\x03", "up": "\x1b[A", "backspace": "\x7f", "tab": "\t", "esc": "\x1b", "space": " "}
	for k, want := range cases {
		if got := string(keyBytes(keyMsg(k))); got != want {
			t.Errorf("%s sends %q, want %q", k, got, want)
		}
	}
}

func TestLogView(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			var b strings.Builder
			for i := 1; i <= 60; i++ {
				fmt.Fprintf(&b, "2025-01-02T03:04:%02d qemu-system-ppc: line %d\n", i%60, i)
			}
			b.WriteString("qemu-system-ppc: could not load PowerPC BIOS 'openbios-ppc'\n")
			f.SetLog("macos9", b.String())
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "macos9")
			h.press("l")
			h.contains("qemu.log of macos9", "could not load PowerPC BIOS") // follows the end
			h.lacks("line 1\n")
			h.requireScreen()
			h.press("g")
			h.contains("line 1 ")
			f.SetLog("macos9", "fresh start\n")
			h.press("r")
			h.contains("fresh start")
			h.press("esc")
			if h.m.view != nil {
				t.Fatal("esc did not close the log")
			}
		})
	}
}

func TestCmdlineView(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			selectVM(t, h, "web")
			h.press("i")
			h.contains("qemu command line of web", "qemu-system-x86_64 -name web", "hostfwd=tcp:127.0.0.1:2222-:22")
			h.requireScreen()
			h.press("q")
			if h.m.view != nil || h.quit {
				t.Fatal("q in the cmdline view should go back, not quit")
			}
		})
	}
}

func TestSnapshots(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "web")
			h.press("t")
			h.contains("Snapshots of web", "fresh-install")
			h.press("n")
			h.contains("Take a snapshot of web", "snap2")
			h.press("enter")
			h.contains("snap2 (current)", "saved snapshot snap2")
			h.requireScreen()
			// Restore asks first; n keeps the current state.
			h.press("up", "R")
			h.contains("Restore fresh-install?", "Its current")
			h.press("n")
			for _, c := range f.Calls() {
				if strings.HasPrefix(c, "RestoreSnapshot") {
					t.Fatal("restore ran without a yes")
				}
			}
			h.press("R", "y")
			h.contains("fresh-install (current)", "restored snapshot fresh-install")
			// Delete asks first.
			h.press("D", "y")
			if sv := h.m.view.(*snapshotView); len(sv.snaps) != 1 || sv.snaps[0].Name != "snap2" {
				t.Fatalf("after delete: %+v", sv.snaps)
			}
			h.press("esc")
			if h.m.view != nil {
				t.Fatal("esc did not close the snapshots")
			}
		})
	}
}

func TestSnapshotsNotSupported(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	f.FailNext("Snapshots", fmt.Errorf("list snapshots: %w", ErrNotSupported))
	h.press("t")
	h.contains("not supported yet", "fix: this build cannot do that yet")
}

func TestForceStopAsksAndStrayKeysDoNotConfirm(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "web")
			h.press("K")
			h.contains("Force stop web?", "pulling the power plug")
			h.requireScreen()
			h.press("enter", "K", "x", "space")
			if vm, _ := f.VM("web"); vm.State != StateRunning {
				t.Fatal("a stray key confirmed the force stop")
			}
			h.press("y")
			if vm, _ := f.VM("web"); vm.State != StateStopped {
				t.Fatalf("y did not force stop (state %s)", vm.State)
			}
			if c := f.Calls(); c[len(c)-1] != "ForceStop web" {
				t.Fatalf("last call %q", c[len(c)-1])
			}
		})
	}
}

func TestResetAndPause(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	selectVM(t, h, "web")
	h.press("R")
	h.contains("Reset web?")
	h.press("esc")
	h.press("p")
	if vm, _ := f.VM("web"); vm.State != StatePaused {
		t.Fatal("p did not pause")
	}
	h.contains("web paused")
	h.press("p")
	if vm, _ := f.VM("web"); vm.State != StateRunning {
		t.Fatal("p did not resume")
	}
	h.press("R", "y")
	if c := f.Calls(); c[len(c)-1] != "Reset web" {
		t.Fatalf("last call %q", c[len(c)-1])
	}
}

func TestDeleteRunningRefusedWithFix(t *testing.T) {
	h := newHarness(t, demoService(), 80, 24)
	selectVM(t, h, "web")
	h.press("D")
	if h.m.confirm != nil {
		t.Fatal("delete of a running machine asked instead of refusing")
	}
	h.contains(`delete "web": machine is running`, "fix: stop it first")
}

func TestDeleteStoppedAsks(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "arm-build")
			h.press("D")
			h.contains("Delete arm-build?", "cannot be undone")
			h.requireScreen()
			h.press("n")
			if _, ok := f.VM("arm-build"); !ok {
				t.Fatal("n deleted the machine")
			}
			h.press("D", "y")
			if _, ok := f.VM("arm-build"); ok {
				t.Fatal("y did not delete")
			}
			for _, vm := range h.m.list.all {
				if vm.Name == "arm-build" {
					t.Fatal("the list still shows the deleted machine")
				}
			}
			h.contains("arm-build deleted")
		})
	}
}

func TestActionErrorShowsFixAndKeepsRunning(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "arm-build")
			f.FailNext("Start", WithFix(errors.New(`start vm "arm-build": no qemu for aarch64`), "apt-get install qemu-system-arm"))
			h.press("s")
			h.contains(`✗ start vm "arm-build": no qemu`, "fix: apt-get install qemu-system-arm")
			h.requireScreen()
			// A plain error gets the operation and machine named.
			f.FailNext("Start", errors.New("boom"))
			h.press("s")
			h.contains(`start "arm-build": boom`)
			// And the TUI still works.
			h.press("s")
			if vm, _ := f.VM("arm-build"); vm.State != StateRunning {
				t.Fatal("start after errors did not work")
			}
		})
	}
}

func TestCloneAsksForAName(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "arm-build")
			h.press("y")
			h.contains("Clone arm-build as", "arm-build-clone")
			h.requireScreen()
			for range "arm-build-clone" {
				h.press("backspace")
			}
			h.typeText("web")
			h.contains(`name "web" is taken`)
			h.press("enter")
			if h.m.prompt == nil {
				t.Fatal("a taken name was accepted")
			}
			h.press("backspace", "backspace", "backspace")
			h.typeText("arm2")
			h.press("enter")
			if _, ok := f.VM("arm2"); !ok {
				t.Fatal("no clone made")
			}
			sel, _ := h.m.list.Selected()
			if sel.Name != "arm2" {
				t.Fatalf("selection %s after clone", sel.Name)
			}
		})
	}
}

func TestConsoleHint(t *testing.T) {
	h := newHarness(t, demoService(), 120, 40)
	selectVM(t, h, "web")
	h.press("v")
	h.contains("VNC of web: unix socket /run/user/0/vlab/web/vnc.sock")
	selectVM(t, h, "arm-build")
	h.press("v")
	h.contains(`console of "arm-build": machine is stopped`)
}

// TestProgressBar holds a job open to check the footer: a spinner without a
// size, a bar with one, and a second q to quit while it runs.
func TestProgressBar(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			release := make(chan struct{})
			var report ProgressFunc
			started := make(chan struct{})
			cmd := h.m.startJob(jobSpec{title: "converting disk of web", op: "convert", name: "web", ok: "converted",
				run: func(p ProgressFunc) error { report = p; close(started); <-release; return nil }})
			h.run(cmd)
			<-started
			h.contains("converting disk of web…")
			report(Progress{Step: "qemu-img convert", Done: 3 << 30, Total: 8 << 30})
			h.await("the progress report", func() bool { return strings.Contains(h.screen(), "38%") })
			h.contains("converting disk of web: qemu-img convert")
			h.requireScreen()
			h.press("q")
			if h.quit {
				t.Fatal("q quit at once while a job runs")
			}
			h.contains("press q again")
			close(release)
			h.await("the end of the job", func() bool { return len(h.m.jobs) == 0 })
			h.contains("converted")
		})
	}
}

func TestQuitLeavesMachinesRunning(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	h.press("q")
	if !h.quit {
		t.Fatal("q did not quit")
	}
	if vm, _ := f.VM("web"); vm.State != StateRunning {
		t.Fatal("quitting stopped a machine")
	}
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "Stop") || strings.HasPrefix(c, "ForceStop") {
			t.Fatalf("quitting called %s", c)
		}
	}
}

func TestNoColor(t *testing.T) {
	f := demoService()
	h := newHarnessOpts(t, f, 80, 24, Options{Env: []string{"NO_COLOR=1"}, StatsInterval: time.Hour})
	m := h.m
	if !m.opts.NoColor || !m.styles.NoColor {
		t.Fatal("NO_COLOR in the environment did not turn colour off")
	}
	out := m.Render()
	// The selection must still be visible without colour: reverse video.
	if !strings.Contains(out, "\x1b[7m") {
		t.Fatal("no reverse video for the selection without colour")
	}
	for _, seq := range []string{"38;2;", "48;2;", "38;5;", "48;5;"} {
		if strings.Contains(out, seq) {
			t.Fatalf("colour sequence %q with NO_COLOR", seq)
		}
	}
	colored := New(t.Context(), f, Options{Env: []string{}})
	if colored.opts.NoColor {
		t.Fatal("colour off without NO_COLOR")
	}
}

func TestLinkedCloneProtectsItsSource(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	selectVM(t, h, "arm-build")
	h.press("Y")
	h.contains("Linked (thin) clone of arm-build as", "arm-build-linked")
	h.press("enter")
	if _, ok := f.VM("arm-build-linked"); !ok {
		t.Fatal("no linked clone made")
	}
	h.contains("a linked clone of arm-build")
	selectVM(t, h, "arm-build")
	h.press("D")
	h.press("y")
	h.contains(`linked clone "arm-build-linked" sits on its disks`)
	if _, ok := f.VM("arm-build"); !ok {
		t.Fatal("the source of a linked clone was deleted")
	}
}
