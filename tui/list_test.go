package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"vlab/tui/tuifake"

	tea "charm.land/bubbletea/v2"

	"vlab/emulator"
)

// demoService is a small library with one machine in each interesting state.
func demoService() *tuifake.Service {
	f := tuifake.New()
	web := tuifake.Machine("web", emulator.ArchX86_64)
	web.Profile, web.OS = "debian-12", "Debian 12"
	web.CPUs, web.MemoryMiB = 2, 2048
	web.ISO, web.BootOrder = "/srv/iso/debian-12.5.0-amd64-netinst.iso", "cdrom"
	web.NICs[0].Forwards = portForwards([]emulator.Forward{{Proto: "tcp", HostPort: 2222, GuestPort: 22}, {Proto: "tcp", HostPort: 8080, GuestPort: 80}})
	f.MakeRunning(&web)
	web.CPUPercent, web.Uptime = 12.5, 62*time.Minute+5*time.Second
	f.Add(web)

	arm := tuifake.Machine("arm-build", emulator.ArchAArch64)
	arm.Profile = "alpine-arm64"
	arm.Kernel, arm.Initrd, arm.Append = "/srv/boot/vmlinuz-arm64", "/srv/boot/initrd-arm64", "console=ttyAMA0"
	f.Add(arm)

	dos := tuifake.Machine("dos622", emulator.ArchI386)
	dos.Profile, dos.OS = "msdos-6.22", "MS-DOS 6.22"
	dos.MemoryMiB = 32
	f.MakeRunning(&dos)
	dos.State = StatePaused
	dos.CPUPercent, dos.Uptime = 0, 3*time.Hour+4*time.Minute
	f.Add(dos)

	mac := tuifake.Machine("macos9", emulator.ArchPPC)
	mac.Profile, mac.OS = "macos-9", "Mac OS 9.2"
	mac.State = StateCrashed
	mac.LastError = "qemu exited with status 1: could not load PowerPC BIOS 'openbios-ppc'"
	f.Add(mac)
	f.AddSnapshot("web", Snapshot{Name: "fresh-install", Created: tuifake.Epoch, SizeBytes: 280 << 20})
	return f
}

func TestMainScreen(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			h.contains("arm-build", "web", "running", "paused", "crashed")
			h.requireScreen()
		})
	}
}

func TestMainScreenSelectionShowsDetail(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			h.press("G") // last: web
			h.contains("2222→22", "netinst.iso", "Snapshots", "vnc.sock")
			h.requireScreen()
		})
	}
}

func TestMainScreenEmptyAndFullHelp(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, tuifake.New(), sz.w, sz.h)
			h.contains("No machines yet. Press n to create one.")
			h.press("?")
			h.contains("force stop", "reset", "snapshots", "qemu cmdline", "delete")
			h.requireScreen()
		})
	}
}

func TestListNavigationAndMouse(t *testing.T) {
	f := tuifake.New()
	f.Populate(50, 3)
	h := newHarness(t, f, 80, 24)
	sel := func() string { vm, _ := h.m.list.Selected(); return vm.Name }
	if sel() != "vm-000" {
		t.Fatalf("first selection %q", sel())
	}
	h.press("j", "j", "down")
	if sel() != "vm-003" {
		t.Fatalf("after 3 downs: %q", sel())
	}
	h.press("G")
	if sel() != "vm-049" {
		t.Fatalf("after G: %q", sel())
	}
	h.contains("vm-049")
	h.lacks("vm-000 ")
	h.press("g")
	if sel() != "vm-000" {
		t.Fatalf("after g: %q", sel())
	}
	// Row 0 is the title, row 1 the header: y=5 is the fourth machine.
	h.send(tea.MouseClickMsg{X: 3, Y: 5, Button: tea.MouseLeft})
	if sel() != "vm-003" {
		t.Fatalf("click on row 5 selected %q", sel())
	}
	// A click in the detail pane or below the rows changes nothing.
	h.send(tea.MouseClickMsg{X: 70, Y: 8, Button: tea.MouseLeft})
	h.send(tea.MouseClickMsg{X: 3, Y: 0, Button: tea.MouseLeft})
	if sel() != "vm-003" {
		t.Fatalf("stray clicks moved the selection to %q", sel())
	}
	h.send(tea.MouseWheelMsg{X: 3, Y: 5, Button: tea.MouseWheelDown})
	if sel() != "vm-004" {
		t.Fatalf("wheel down selected %q", sel())
	}
}

func TestFilter(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			h.press("/")
			h.typeText("run") // matches state "running"
			if h.m.list.Len() != 1 {
				t.Fatalf("filter 'run' shows %d machines, want 1 (web)", h.m.list.Len())
			}
			h.press("enter")
			h.contains("filter: run")
			h.requireScreen()
			h.press("esc")
			if h.m.list.Len() != 4 {
				t.Fatalf("esc left %d machines shown, want 4", h.m.list.Len())
			}
			h.press("/")
			h.typeText("zzz")
			h.contains(`No machine matches "zzz"`)
		})
	}
}

func TestLiveUpdateFromOutside(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	h.contains("arm-build")
	f.SetState("arm-build", StateRunning) // as the CLI or another vlab would
	h.send(changed("arm-build"))
	vm, _ := h.m.list.Selected()
	if vm.Name != "arm-build" || vm.State != StateRunning {
		t.Fatalf("after a change the list shows %s %s", vm.Name, vm.State)
	}
	// CPU% is refreshed by a key press once the figures are old, never on
	// a timer.
	f.SetCPU("web", 77.7)
	h.press("G")
	h.lacks("77.7")
	h.m.opts.StatsInterval = time.Nanosecond
	h.m.ticking = false
	h.press("G")
	h.contains("77.7")
}

func TestChangesAreCoalesced(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	// Two changes of one VM while its re-read is in flight lead to exactly
	// one more re-read, of that VM only.
	_, first := h.m.Update(changed("web"))
	_, second := h.m.Update(changed("web"))
	if first == nil {
		t.Fatal("a change did not start a re-read")
	}
	if second != nil {
		t.Fatal("a second change started a second concurrent re-read")
	}
	if !h.m.getting["web"] {
		t.Fatal("the second change was not kept for after the re-read")
	}
	h.run(first)
	if len(h.m.getting) != 0 {
		t.Fatalf("re-reads still pending: %v", h.m.getting)
	}
}

func TestChangeStreamWakesTheModel(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	ch := make(chan Change, 4)
	ch <- Change{Name: "web", Event: "STOP"}
	ch <- Change{Name: "db"}
	msg, ok := waitChange(ch)().(changesMsg)
	if !ok || len(msg.changes) != 2 || msg.changes[0].Event != "STOP" {
		t.Fatalf("waitChange returned %#v", msg)
	}
	close(ch)
	if _, ok := waitChange(ch)().(changesClosedMsg); !ok {
		t.Fatal("a closed stream did not end the wait")
	}
	// The fake's real stream names the machine changed from outside.
	sub := f.Changes(h.m.ctx)
	f.SetState("web", StateStopped)
	if msg, ok := waitChange(sub)().(changesMsg); !ok || msg.changes[0].Name != "web" {
		t.Fatalf("after SetState the stream gave %#v", msg)
	}
}

func TestReadErrorKeepsTheList(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	f.FailNext("Get", WithFix(errors.New("machine.toml: permission denied"), "check the owner of ~/.local/share/vlab"))
	h.send(changed("web"))
	h.contains("read \"web\": machine.toml: permission denied", "fix: check the owner", "arm-build")
}

func TestStatsRefreshOnlyWhileRunning(t *testing.T) {
	f := tuifake.New()
	f.Populate(3, 0)
	h := newHarness(t, f, 80, 24)
	h.m.ticking = false
	h.m.opts.StatsInterval = time.Nanosecond
	if cmd := h.m.refreshStats(); cmd != nil {
		t.Fatal("a stats refresh with nothing running")
	}
	f.SetState("vm-001", StateRunning)
	h.send(changed("vm-001"))
	if cmd := h.m.refreshStats(); cmd == nil {
		t.Fatal("no stats refresh with a machine running")
	}
	if cmd := h.m.refreshStats(); cmd != nil {
		t.Fatal("a second refresh while one is in flight")
	}
}

func TestFormatters(t *testing.T) {
	cases := map[string]string{
		fmtMiB(512): "512M", fmtMiB(2048): "2G", fmtMiB(1536): "1.5G", fmtMiB(0): "-",
		fmtBytes(512): "512 B", fmtBytes(8 << 30): "8 GiB", fmtBytes(196 << 20): "196 MiB", fmtBytes(1536 << 20): "1.5 GiB",
		fmtDuration(45 * time.Second): "45s", fmtDuration(12*time.Minute + 5*time.Second): "12m05s",
		fmtDuration(62 * time.Minute): "1h02m", fmtDuration(76 * time.Hour): "3d04h",
	}
	for got, want := range cases {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestColumnsFitTheWidth(t *testing.T) {
	for w := 20; w <= 200; w++ {
		cols, nameW := layoutColumns(w)
		total := nameW
		for _, c := range cols {
			total += c.width + 1
		}
		if total != w || nameW < minNameWidth && len(cols) > 0 {
			t.Fatalf("width %d: columns take %d, name %d", w, total, nameW)
		}
	}
	cols, _ := layoutColumns(41)
	var names []string
	for _, c := range cols {
		names = append(names, c.title)
	}
	if got := strings.Join(names, " "); got != "ARCH STATE CPU% MEM" {
		t.Fatalf("80-column list shows %s", got)
	}
	_ = fmt.Sprint()
}
