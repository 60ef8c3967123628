package tui

import (
	"path/filepath"
	"strings"
	"testing"

	"vlab/emulator"
)

// wizardAt opens the wizard and walks it to step s with valid answers.
func wizardAt(t *testing.T, h *harness, s wizStep) *wizard {
	t.Helper()
	h.press("n")
	w, ok := h.m.view.(*wizard)
	if !ok {
		t.Fatalf("n opened %T, want the wizard", h.m.view)
	}
	w.mac = "52:54:00:00:00:01"
	if s == stepName {
		return w
	}
	h.typeText("newvm")
	h.press("enter")
	if s == stepProfile {
		return w
	}
	h.typeText("debian")
	h.press("enter")
	if s == stepSource {
		return w
	}
	h.press("left") // boot from: none (the last choice)
	h.press("enter")
	if s == stepHardware {
		return w
	}
	h.press("enter")
	if s == stepNetwork {
		return w
	}
	h.press("enter")
	return w
}

func TestWizardPages(t *testing.T) {
	for _, sz := range sizes {
		for _, step := range []wizStep{stepName, stepProfile, stepSource, stepHardware, stepNetwork, stepReview} {
			t.Run(sz.name+"/"+stepNames[step], func(t *testing.T) {
				h := newHarness(t, demoService(), sz.w, sz.h)
				w := wizardAt(t, h, step)
				if w.step != step {
					t.Fatalf("at step %s, want %s; screen:\n%s", stepNames[w.step], stepNames[step], h.screen())
				}
				h.requireScreen()
			})
		}
	}
}

func TestWizardNameValidatedAsTyped(t *testing.T) {
	h := newHarness(t, demoService(), 80, 24)
	w := wizardAt(t, h, stepName)
	h.typeText("web")
	h.contains(`name "web" is taken`)
	h.press("enter")
	if w.step != stepName {
		t.Fatal("a taken name moved the wizard on")
	}
	h.typeText("/x")
	h.contains("only letters, digits")
	h.press("backspace", "backspace", "-2")
	h.contains("✓ available")
	h.press("enter")
	if w.step != stepProfile {
		t.Fatalf("a valid name did not move on (step %s)", stepNames[w.step])
	}
	// esc goes back; esc on the first page cancels the wizard.
	h.press("esc")
	if w.step != stepName {
		t.Fatal("esc did not go back")
	}
	h.press("esc")
	if h.m.view != nil {
		t.Fatal("esc on the first page did not close the wizard")
	}
}

func TestWizardProfileSearch(t *testing.T) {
	h := newHarness(t, demoService(), 120, 40)
	w := wizardAt(t, h, stepProfile)
	h.typeText("arm64")
	if len(w.profVis) != 1 || w.profiles[w.profVis[0]].Name != "alpine-arm64" {
		t.Fatalf("search arm64 shows %v", w.profVis)
	}
	h.press("enter")
	if w.profile.Arch != emulator.ArchAArch64 {
		t.Fatalf("chose %v", w.profile)
	}
	// The profile's suggested sizes become the defaults.
	if got := w.hardware.fields[0].Value(); got != "512" {
		t.Fatalf("memory default %s, want the profile's 512", got)
	}
}

func TestWizardSourceChecks(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			w := wizardAt(t, h, stepSource)
			h.press("enter") // ISO chosen, no path
			h.contains("choose an ISO image")
			h.press("tab")
			h.typeText("/nonexistent/debian.iso")
			h.press("enter")
			h.contains("ISO image /nonexistent/debian.iso: no such file or directory")
			if w.step != stepSource {
				t.Fatal("a missing ISO moved the wizard on")
			}
			h.requireScreen()
			// A directory is refused too.
			for range "/nonexistent/debian.iso" {
				h.press("backspace")
			}
			h.typeText("testdata")
			h.press("enter")
			h.contains("is a directory")
			for range "testdata" {
				h.press("backspace")
			}
			h.typeText("testdata/isos/tiny.iso")
			h.press("enter")
			if w.step != stepHardware {
				t.Fatalf("an existing ISO did not move on: %s", h.screen())
			}
		})
	}
}

func TestWizardFilePicker(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			w := wizardAt(t, h, stepSource)
			h.press("tab")
			h.typeText("testdata/isos/x")
			h.press("ctrl+o")
			if w.picker == nil {
				t.Fatal("ctrl+o did not open the file picker")
			}
			h.contains("tiny.iso", "readme.txt", "sub")
			h.requireScreen()
			// The picker lists directories first: sub, readme.txt, tiny.iso.
			h.press("down") // readme.txt (not an ISO: disabled)
			h.press("enter")
			if w.picker == nil {
				t.Fatal("a non-ISO file was accepted")
			}
			h.press("down", "enter")
			if w.picker != nil {
				t.Fatal("selecting tiny.iso did not close the picker")
			}
			if got := w.source.fields[1].Value(); got != "testdata/isos/tiny.iso" {
				t.Fatalf("ISO field = %q", got)
			}
			// esc closes the picker without choosing.
			h.press("ctrl+o")
			h.press("esc")
			if w.picker != nil || w.source.fields[1].Value() != "testdata/isos/tiny.iso" {
				t.Fatal("esc did not just close the picker")
			}
		})
	}
}

func TestWizardHardwareBoundedByHost(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			w := wizardAt(t, h, stepHardware)
			h.press("backspace", "backspace", "backspace", "backspace")
			h.typeText("9000") // host has 8192 MiB
			h.press("tab", "backspace")
			h.typeText("8") // host has 4 CPUs
			h.press("tab", "backspace")
			h.typeText("500") // 100 GiB free
			h.contains("memory must be at most 8192", "CPUs must be at most 4", "disk size must be at most 100")
			h.requireScreen()
			h.press("enter")
			if w.step != stepHardware {
				t.Fatal("out-of-range sizes moved the wizard on")
			}
		})
	}
}

func TestWizardNetworkForwards(t *testing.T) {
	h := newHarness(t, demoService(), 80, 24)
	w := wizardAt(t, h, stepNetwork)
	h.press("tab")
	h.typeText("2222:22, udp:99999:53")
	h.contains("ports are numbers from 1 to 65535")
	h.press("enter")
	if w.step != stepNetwork {
		t.Fatal("a bad forward moved the wizard on")
	}
	for range ", udp:99999:53" {
		h.press("backspace")
	}
	h.press("enter")
	if w.step != stepReview {
		t.Fatalf("good forwards did not move on: %s", h.screen())
	}
	h.contains("forwards 2222:22", "hostfwd=tcp:127.0.0.1:2222-:22")
}

// TestWizardCreates walks every page and creates the machine.
func TestWizardCreates(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	h.press("n")
	h.typeText("fresh")
	h.press("enter")
	h.typeText("alpine")
	h.press("enter")
	h.press("right", "right", "tab") // kernel + initrd
	h.typeText("testdata/isos/tiny.iso")
	h.press("tab")
	h.press("tab")
	h.typeText("console=ttyAMA0")
	h.press("enter")
	h.press("tab", "backspace")
	h.typeText("2")
	h.press("enter")
	h.press("tab")
	h.typeText("8022:22")
	h.press("enter")
	kernel, _ := filepath.Abs("testdata/isos/tiny.iso") // the wizard makes typed paths absolute
	h.contains("Review", "qemu-system-aarch64", "-kernel "+kernel, "console=ttyAMA0")
	h.press("enter")
	vm, ok := f.VM("fresh")
	if !ok {
		t.Fatalf("no machine created; calls %v", f.Calls())
	}
	if vm.Arch != emulator.ArchAArch64 || vm.CPUs != 2 || vm.MemoryMiB != 512 || vm.Kernel != kernel ||
		vm.Append != "console=ttyAMA0" || vm.Disks[0].VirtualBytes != 2<<30 || vm.NICs[0].Forwards[0].Rule.HostPort != 8022 {
		t.Fatalf("created %+v", vm)
	}
	if h.m.view != nil {
		t.Fatal("the wizard stayed open after creating")
	}
	sel, _ := h.m.list.Selected()
	if sel.Name != "fresh" {
		t.Fatalf("selection %q, want the new machine", sel.Name)
	}
	h.contains("created fresh")
}

func TestWizardCreateFailureStaysOnReview(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	w := wizardAt(t, h, stepReview)
	f.FailNext("Create", WithFix(errTest("qemu-img not found"), "apt-get install qemu-utils"))
	h.press("enter")
	if h.m.view != view(w) || w.creating {
		t.Fatal("a failed create left the review page")
	}
	h.contains("qemu-img not found", "fix: apt-get install qemu-utils")
}

func TestWizardPreviewError(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 80, 24)
	w := wizardAt(t, h, stepNetwork)
	f.FailNext("PreviewCmdline", WithFix(errTest("no qemu for aarch64"), "apt-get install qemu-system-arm"))
	h.press("enter")
	if w.step != stepReview {
		t.Fatal("not on the review page")
	}
	h.contains("no qemu for aarch64", "fix: apt-get install qemu-system-arm")
}

func TestFormatArgv(t *testing.T) {
	argv := []string{"qemu-system-x86_64", "-name", "my vm", "-m", "1024", "-nographic", "-append", "console=ttyS0 quiet"}
	got := formatArgv(argv, 40)
	want := "qemu-system-x86_64 -name 'my vm' \\\n  -m 1024 -nographic \\\n  -append 'console=ttyS0 quiet'"
	if got != want {
		t.Fatalf("formatArgv:\n%s\nwant:\n%s", got, want)
	}
	if q := shellQuote("it's"); q != `'it'\''s'` {
		t.Fatalf("quote: %s", q)
	}
	for _, l := range strings.Split(formatArgv(argv, 200), "\n") {
		if strings.HasSuffix(l, "\\") {
			t.Fatal("a wide screen still broke the line")
		}
	}
}

func TestParseForwards(t *testing.T) {
	fw, err := parseForwards("2222:22, udp:5353:53 tcp:0.0.0.0:8080:80")
	if err != nil {
		t.Fatal(err)
	}
	if len(fw) != 3 || fw[1].Proto != "udp" || fw[2].HostAddr != "0.0.0.0" || fw[2].GuestPort != 80 {
		t.Fatalf("%+v", fw)
	}
	if got := formatForwards(fw); got != "2222:22, udp:5353:53, 0.0.0.0:8080:80" {
		t.Fatalf("format: %s", got)
	}
	auto, err := parseForwards("auto:22, udp:AUTO:53")
	if err != nil || len(auto) != 2 || auto[0].HostPort != 0 || auto[1].Proto != "udp" || auto[1].GuestPort != 53 {
		t.Fatalf("auto: %+v %v", auto, err)
	}
	if got := formatForwards(auto); got != "auto:22, udp:auto:53" {
		t.Fatalf("format auto: %s", got)
	}
	for _, bad := range []string{"22", "a:b", "0:22", "1:2:3:4:5", "tcp:70000:1", "auto:auto"} {
		if _, err := parseForwards(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
