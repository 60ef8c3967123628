package tui

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
)

// openMonitor opens the monitor view of the running machine web.
func openMonitor(t *testing.T, h *harness) *monitorView {
	t.Helper()
	selectVM(t, h, "web")
	h.press("m")
	mv, ok := h.m.view.(*monitorView)
	if !ok {
		t.Fatalf("m opened %T", h.m.view)
	}
	return mv
}

func TestMonitorView(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			f.SetTraceLog("web", "4242@1735787045.000001:virtio_notify vdev 0x5581 vq 0x7f31\n4242@1735787045.000002:virtio_queue_notify vdev 0x5581 n 0 vq 0x7f31\n")
			h := newHarness(t, f, sz.w, sz.h)
			mv := openMonitor(t, h)
			h.contains("QEMU monitor of web", "(qemu)", "trace.log", "virtio_queue_notify vdev 0x5581",
				"f1 info registers", "f2 info mtree -f", "f5 info tlb", "esc back")
			h.requireScreen()

			// A typed command runs through the service; its answer shows.
			h.typeText("info status")
			h.press("enter")
			h.contains("(qemu) info status", "VM status: running")
			if got := f.HMPLines(); !reflect.DeepEqual(got, []string{"web: info status"}) {
				t.Fatalf("monitor lines run: %q", got)
			}
			if mv.in.Value() != "" {
				t.Fatalf("the command line kept %q", mv.in.Value())
			}
			// "?" and "q" are text here, not TUI keys.
			h.typeText("q?")
			if h.m.help.ShowAll || h.quit || mv.in.Value() != "q?" {
				t.Fatalf("? or q reached the TUI (line %q)", mv.in.Value())
			}
			// ↑ recalls the typed line (the draft comes back with ↓).
			h.press("up")
			if mv.in.Value() != "info status" {
				t.Fatalf("↑ recalled %q", mv.in.Value())
			}
			h.press("down")
			if mv.in.Value() != "q?" {
				t.Fatalf("↓ came back to %q", mv.in.Value())
			}
			// An unknown command is QEMU's answer, not an error.
			mv.in.SetValue("")
			h.typeText("frobnicate")
			h.press("enter")
			h.contains("unknown command: 'frobnicate'")
			// The trace log is re-read after each command.
			f.SetTraceLog("web", "4242@1735787046.000000:vlab_fresh_event\n")
			h.typeText("info pci")
			h.press("enter")
			h.contains("Ethernet controller", "vlab_fresh_event")
			h.press("esc")
			if h.m.view != nil {
				t.Fatal("esc did not close the monitor")
			}
			if vm, _ := f.VM("web"); vm.State != StateRunning {
				t.Fatal("closing the monitor changed the machine")
			}
		})
	}
}

func TestMonitorRefusedWhenStopped(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	selectVM(t, h, "arm-build")
	h.press("m")
	if h.m.view != nil {
		t.Fatal("the monitor opened on a stopped machine")
	}
	h.contains(`QEMU monitor of "arm-build": machine is stopped`, "fix: start it first (s)")
	if slices.Contains(f.Calls(), "HMP arm-build") {
		t.Fatal("a stopped machine's monitor was called")
	}
}

func TestMonitorTabCompletes(t *testing.T) {
	h := newHarness(t, demoService(), 80, 24)
	mv := openMonitor(t, h)
	h.typeText("inf")
	h.press("tab")
	if mv.in.Value() != "info " {
		t.Fatalf("tab made %q of inf", mv.in.Value())
	}
	h.typeText("reg")
	h.press("tab")
	if mv.in.Value() != "info registers " {
		t.Fatalf("tab made %q of info reg", mv.in.Value())
	}
	// Several matches: their common prefix, and the candidates shown.
	mv.in.SetValue("sy")
	h.press("tab")
	if mv.in.Value() != "system_" {
		t.Fatalf("tab made %q of sy", mv.in.Value())
	}
	h.contains("system_reset  system_powerdown")
}

func TestMonitorShortcuts(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	openMonitor(t, h)
	h.send(tea.KeyPressMsg{Code: tea.KeyF1})
	h.contains("(qemu) info registers", "RIP=ffffffff81f7a20e")
	h.send(tea.KeyPressMsg{Code: '2', Mod: tea.ModAlt}) // alt+2, for terminals that keep F-keys
	h.contains("(qemu) info mtree -f", "FlatView #0")
	want := []string{"web: info registers", "web: info mtree -f"}
	if got := f.HMPLines(); !reflect.DeepEqual(got, want) {
		t.Fatalf("monitor lines run: %q, want %q", got, want)
	}
}

func TestMonitorErrorsAndTraceToggle(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	mv := openMonitor(t, h)
	h.contains("empty: `vlab trace web EVENT…`")
	f.FailNext("HMP", errors.New("vm \"web\": human-monitor-command: QMP error GenericError:\nmonitor is busy"))
	h.typeText("info status")
	h.press("enter")
	h.contains(`✗ vm "web": human-monitor-command: QMP error GenericError: monitor is busy`)
	// The machine stops behind the view: the view says so.
	f.SetState("web", StateStopped)
	h.send(changed("web"))
	h.contains("web is stopped: its monitor is gone")
	// ctrl+t hides the trace log, ctrl+t shows (and re-reads) it.
	h.press("ctrl+t")
	h.lacks("trace.log")
	f.SetTraceLog("web", "late event\n")
	h.press("ctrl+t")
	h.contains("trace.log", "late event")
	// ctrl+r re-reads it.
	f.SetTraceLog("web", "later event\n")
	h.press("ctrl+r")
	h.contains("later event")
	// quit leaves the view (never QEMU's quit).
	mv.in.SetValue("quit")
	h.press("enter")
	if h.m.view != nil {
		t.Fatal("quit did not close the monitor")
	}
	for _, l := range f.HMPLines() {
		if strings.HasSuffix(l, ": quit") {
			t.Fatal("quit reached QEMU")
		}
	}
}

func TestCompleteHMP(t *testing.T) {
	for _, c := range []struct {
		in, out string
		cands   int
	}{
		{"inf", "info ", 0},
		{"info  tl", "info tlb ", 0},
		{"info r", "info r", 4}, // registers roms replay ramblock
		{"screend", "screendump ", 0},
		{"x/8i $pc", "x/8i $pc", 0},
		{"info registers -a", "info registers -a", 0},
		{"zzz", "zzz", 0},
	} {
		out, cands := completeHMP(c.in)
		if out != c.out || len(cands) != c.cands {
			t.Errorf("completeHMP(%q) = %q %q, want %q and %d candidates", c.in, out, cands, c.out, c.cands)
		}
	}
}
