package tui

import (
	"testing"

	"vlab/emulator"
)

// TestWizardSandboxNetwork: the wizard offers the sandbox network next to
// user and none, picks it for a profile that suggests it (old systems), and
// creates the machine with it and its forwards.
func TestWizardSandboxNetwork(t *testing.T) {
	f := demoService()
	f.AddProfile(Profile{Name: "win98", Description: "Windows 98", Arch: emulator.ArchI386, MemoryMiB: 256, CPUs: 1, DiskBytes: 4 << 30, Net: emulator.NetSandbox})
	h := newHarness(t, f, 120, 40)
	h.press("n")
	h.typeText("old")
	h.press("enter")
	h.typeText("win98")
	h.press("enter")
	h.press("left") // boot from: none (the last choice)
	h.press("enter")
	h.press("enter") // hardware as suggested
	w := h.m.view.(*wizard)
	if w.step != stepNetwork {
		t.Fatalf("at step %v, want network", w.step)
	}
	h.contains("user  sandbox  none")
	if got := w.network.fields[0].Value(); got != "sandbox" {
		t.Fatalf("network for win98 is %q, want the profile's sandbox", got)
	}
	h.press("tab")
	h.typeText("2121:21")
	h.press("enter")
	h.contains("Review", "sandbox, forwards 2121:21")
	h.press("enter")
	vm, ok := f.VM("old")
	if !ok {
		t.Fatalf("no machine created; calls %v", f.Calls())
	}
	if vm.NICs[0].Kind != emulator.NetSandbox || len(vm.NICs[0].Forwards) != 1 || vm.NICs[0].Forwards[0].Rule.HostPort != 2121 {
		t.Fatalf("created nic %+v, want sandbox with forward 2121:21", vm.NICs[0])
	}

	// A modern profile keeps user mode.
	h.press("n")
	h.typeText("new")
	h.press("enter")
	h.typeText("debian")
	h.press("enter")
	h.press("left")
	h.press("enter")
	h.press("enter")
	if got := h.m.view.(*wizard).network.fields[0].Value(); got != "user" {
		t.Fatalf("network for debian is %q, want user", got)
	}
}
