package tui

import (
	"slices"
	"strings"
	"testing"

	"vlab/emulator"
)

// TestForwardsEditor adds an auto forward to a running machine: it is bound
// at once, and the editor and the status line show the port it got.
func TestForwardsEditor(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			selectVM(t, h, "web")
			h.press("f")
			if _, ok := h.m.view.(*forwardsView); !ok {
				t.Fatalf("f opened %T", h.m.view)
			}
			h.contains("Port forwards of web", "2222", "8080", "guest 10.0.2.15", "active")
			h.press("a")
			if h.m.prompt == nil {
				t.Fatal("a asked for no rule")
			}
			h.press("ctrl+u") // clear the suggested rule
			h.typeText("tcp:auto:443")
			h.press("enter")
			vm, _ := f.VM("web")
			got := vm.NICs[0].Forwards
			if len(got) != 3 || got[2].RuleString() != "tcp:127.0.0.1:auto:443" || got[2].BoundPort != 40001 {
				t.Fatalf("forwards after add: %+v", got)
			}
			h.contains("added tcp 127.0.0.1:40001→443 (auto) to web: active now", "40001 (auto)")
			h.requireScreen()

			// Back on the list, the detail pane shows the bound port too.
			h.press("esc")
			h.contains("127.0.0.1:40001→443 (auto)")
		})
	}
}

// TestForwardsReachTheService adds and removes forwards on a stopped
// machine (saved for its next start) and a running one (released at once),
// and checks that bad rules and NIC-less machines are refused.
func TestForwardsReachTheService(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 100, 30)
	selectVM(t, h, "arm-build")
	h.press("f")
	h.contains("no forwards: press a to add one", "saved and applied at the next start")
	h.press("a")
	h.press("ctrl+u") // clear the suggested rule
	h.press("enter")  // an empty rule is not submitted
	if h.m.prompt == nil {
		t.Fatal("an empty rule closed the prompt")
	}
	h.typeText("udp:5353:53")
	h.press("enter")
	vm, _ := f.VM("arm-build")
	if fw := vm.NICs[0].Forwards; len(fw) != 1 || fw[0].Rule != (emulator.Forward{Proto: "udp", HostAddr: "127.0.0.1", HostPort: 5353, GuestPort: 53}) || fw[0].BoundPort != 0 {
		t.Fatalf("forwards after add: %+v", fw)
	}
	h.contains("added udp 127.0.0.1:5353→53 to arm-build: applied at next start", "at next start")

	// A rule the service cannot read: the error and its fix, nothing added.
	h.press("a")
	h.press("ctrl+u") // clear the suggested rule
	h.typeText("tcp:99999:80")
	h.press("enter")
	if h.m.status.err == nil || !strings.Contains(h.m.status.err.Error(), "bad host port") || fixOf(h.m.status.err) == "" {
		t.Fatalf("status after a bad rule: %+v", h.m.status)
	}
	if vm, _ := f.VM("arm-build"); len(vm.NICs[0].Forwards) != 1 {
		t.Fatalf("a bad rule was added: %+v", vm.NICs[0].Forwards)
	}

	h.press("d")
	if vm, _ := f.VM("arm-build"); len(vm.NICs[0].Forwards) != 0 {
		t.Fatalf("forward not removed: %+v", vm.NICs[0].Forwards)
	}
	h.contains("removed udp 127.0.0.1:5353→53 from arm-build", "no forwards")
	h.press("d")
	h.contains("no forward selected")

	// Running: removing the selected (second) forward releases its port.
	h.press("esc")
	selectVM(t, h, "web")
	h.press("f", "down", "d")
	vm, _ = f.VM("web")
	if fw := vm.NICs[0].Forwards; len(fw) != 1 || fw[0].Rule.HostPort != 2222 {
		t.Fatalf("web forwards after remove: %+v", fw)
	}
	h.contains("removed tcp 127.0.0.1:8080→80 from web: port released")

	for _, want := range []string{"AddForward arm-build", "RemoveForward arm-build", "RemoveForward web"} {
		if !slices.Contains(f.Calls(), want) {
			t.Errorf("calls %v lack %q", f.Calls(), want)
		}
	}

	// A machine without a user-mode NIC cannot take forwards.
	h.press("esc")
	dos, _ := f.VM("dos622")
	dos.NICs = []NIC{{ID: "net0", Kind: emulator.NetBridge, Mode: "bridge:br0", MAC: "52:54:00:00:00:01"}}
	f.Add(dos)
	h.send(changed("dos622"))
	selectVM(t, h, "dos622")
	h.press("f")
	h.contains("bridge:br0", "forwards need a user-mode or sandbox NIC")
	h.press("a")
	if h.m.prompt != nil || h.m.status.err == nil || fixOf(h.m.status.err) == "" {
		t.Fatalf("a on a bridged machine: prompt %v status %+v", h.m.prompt != nil, h.m.status)
	}

	// A sandbox NIC takes forwards (passt's).
	h.press("esc")
	dos.NICs = []NIC{{ID: "net0", Kind: emulator.NetSandbox, Mode: "sandbox", MAC: "52:54:00:00:00:01"}}
	f.Add(dos)
	h.send(changed("dos622"))
	selectVM(t, h, "dos622")
	h.press("f")
	h.contains("sandbox", "no forwards: press a to add one")
	h.press("a")
	if h.m.prompt == nil {
		t.Fatalf("a on a sandbox machine opened no prompt: status %+v", h.m.status)
	}
}

// TestDetailShowsForwardState: an auto forward shows "auto" while stopped
// and its bound port while running; the guest IP shows while running.
func TestDetailShowsForwardState(t *testing.T) {
	f := demoService()
	arm, _ := f.VM("arm-build")
	arm.NICs[0].Forwards = portForwards([]emulator.Forward{{Proto: "tcp", HostAddr: "127.0.0.1", GuestPort: 22}})
	f.Add(arm)
	h := newHarness(t, f, 120, 40)
	selectVM(t, h, "arm-build")
	h.contains("tcp 127.0.0.1:auto→22")
	h.lacks("Guest IP")
	h.press("s")
	h.contains("tcp 127.0.0.1:40001→22 (auto)", "Guest IP  10.0.2.15")
}

// TestForwardsScrollKeepsTheCursorVisible: with more forwards than rows,
// the selected one stays on screen under the heading.
func TestForwardsScrollKeepsTheCursorVisible(t *testing.T) {
	f := demoService()
	arm, _ := f.VM("arm-build")
	var rules []emulator.Forward
	for i := 0; i < 40; i++ {
		rules = append(rules, emulator.Forward{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 10000 + i, GuestPort: 2000 + i})
	}
	arm.NICs[0].Forwards = portForwards(rules)
	f.Add(arm)
	h := newHarness(t, f, 80, 24)
	selectVM(t, h, "arm-build")
	h.press("f")
	h.contains("10000")
	for i := 0; i < 39; i++ {
		h.press("down")
	}
	h.contains("Port forwards of arm-build", "10039")
	h.lacks("10000")
	h.press("d")
	if vm, _ := f.VM("arm-build"); len(vm.NICs[0].Forwards) != 39 || vm.NICs[0].Forwards[38].Rule.HostPort != 10038 {
		t.Fatalf("d removed the wrong forward: %d left", len(vm.NICs[0].Forwards))
	}
	h.contains("10038")
}
