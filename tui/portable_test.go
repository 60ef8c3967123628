package tui

import (
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/key"

	"vlab/tui/tuifake"
)

// newHomeHarness is a harness whose environment has HOME=/home/tester, so
// that the suggested and ~/ paths are fixed.
func newHomeHarness(t *testing.T, f *tuifake.Service) *harness {
	t.Helper()
	return newHarnessOpts(t, f, 120, 40, Options{Env: []string{"TERM=xterm-256color", "HOME=/home/tester"}, StatsInterval: time.Hour})
}

func TestParseExportTarget(t *testing.T) {
	for _, c := range []struct{ in, out, format string }{
		{"/tmp/web.ova", "/tmp/web.ova", FormatOVA},
		{"  ~/web.OVA ", "/home/tester/web.OVA", FormatOVA},
		{"ovf:/tmp/web", "/tmp/web", FormatOVF},
		{"ovf:~/web-ovf", "/home/tester/web-ovf", FormatOVF},
		{"libvirt:/srv/lv", "/srv/lv", FormatLibvirt},
		{"libvirt:~", "/home/tester", FormatLibvirt},
		{"ovf:/tmp/a/../b", "/tmp/b", FormatOVF},
	} {
		out, format, err := parseExportTarget(c.in, "/home/tester")
		if err != nil || out != c.out || format != c.format {
			t.Errorf("%q → %q %q %v, want %q %q", c.in, out, format, err, c.out, c.format)
		}
	}
	for _, bad := range []string{"", "/tmp/web.tar", "/tmp/web", ".ova", "ovf:", "libvirt: ", "qcow2:/tmp/x"} {
		if _, _, err := parseExportTarget(bad, "/home/tester"); err != errExportForms {
			t.Errorf("%q: error %v, want the three forms", bad, err)
		}
	}
}

// TestExportAsksWhereAndPicksTheFormat: o on a stopped machine suggests
// ~/NAME.ova; the answer's form picks the format; the status line sums up
// the export like the CLI.
func TestExportAsksWhereAndPicksTheFormat(t *testing.T) {
	for _, c := range []struct {
		answer      string // "" keeps the suggestion
		out, format string
		status      string
	}{
		{"", "/home/tester/arm-build.ova", FormatOVA, "exported arm-build to /home/tester/arm-build.ova (ova, 1 disk)"},
		{"/tmp/a.ova", "/tmp/a.ova", FormatOVA, "exported arm-build to /tmp/a.ova (ova, 1 disk)"},
		{"ovf:~/arm-ovf", "/home/tester/arm-ovf", FormatOVF, "exported arm-build to /home/tester/arm-ovf (ovf, 1 disk)"},
		{"libvirt:/srv/lv", "/srv/lv", FormatLibvirt, "exported arm-build to /srv/lv (libvirt, 1 disk); not carried: port forwards"},
	} {
		t.Run(c.format+c.answer, func(t *testing.T) {
			f := demoService()
			h := newHomeHarness(t, f)
			selectVM(t, h, "arm-build")
			h.press("o")
			h.contains("Export arm-build to", "/home/tester/arm-build.ova")
			if c.answer != "" {
				h.press("ctrl+u")
				h.typeText(c.answer)
			}
			h.press("enter")
			got := f.Exports()
			if len(got) != 1 || got[0] != (tuifake.ExportCall{Name: "arm-build", Out: c.out, Format: c.format}) {
				t.Fatalf("exports %+v, want arm-build to %s as %s", got, c.out, c.format)
			}
			if h.m.prompt != nil {
				t.Fatal("the prompt stayed open")
			}
			h.contains(c.status)
		})
	}
}

// TestExportBadAnswerCallsNothing: an answer that names no format keeps the
// prompt open with the three forms, and nothing is exported.
func TestExportBadAnswerCallsNothing(t *testing.T) {
	f := demoService()
	h := newHomeHarness(t, f)
	selectVM(t, h, "arm-build")
	h.press("o", "ctrl+u")
	h.typeText("/tmp/arm.tar")
	h.contains("write PATH.ova")
	h.press("enter")
	if h.m.prompt == nil {
		t.Fatal("a bad answer closed the prompt")
	}
	h.press("esc")
	if h.m.prompt != nil {
		t.Fatal("esc did not cancel")
	}
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "Export") {
			t.Fatalf("called %s", c)
		}
	}
}

// TestExportRefusesAnActiveMachine: like delete, export wants the machine
// stopped, and says so before asking anything.
func TestExportRefusesAnActiveMachine(t *testing.T) {
	f := demoService()
	h := newHomeHarness(t, f)
	for _, c := range []struct{ name, state string }{{"web", "running"}, {"dos622", "paused"}} {
		selectVM(t, h, c.name)
		h.press("o")
		if h.m.prompt != nil {
			t.Fatalf("%s: a prompt opened", c.name)
		}
		h.contains(`export "`+c.name+`": machine is `+c.state, "stop it first")
	}
	if len(f.Exports()) != 0 {
		t.Fatalf("exported %+v", f.Exports())
	}
}

// TestImportSelectsTheNewMachine: I works on an empty list, asks for the
// package (expanding ~/), imports it as a job and selects the new machine.
func TestImportSelectsTheNewMachine(t *testing.T) {
	f := tuifake.New()
	h := newHomeHarness(t, f)
	h.contains("No machines yet")
	h.press("I")
	h.contains("Import an OVA or OVF package", "give the path")
	h.press("enter")
	if h.m.prompt == nil {
		t.Fatal("an empty path was accepted")
	}
	h.typeText("~/appliance.ova")
	h.press("enter")
	if _, ok := f.VM("appliance"); !ok {
		t.Fatalf("no machine imported; calls %v", f.Calls())
	}
	if calls := f.Calls(); !strings.Contains(strings.Join(calls, ","), "Import /home/tester/appliance.ova") {
		t.Fatalf("calls %v", calls)
	}
	if sel, ok := h.m.list.Selected(); !ok || sel.Name != "appliance" {
		t.Fatalf("selection %+v %v after import", sel, ok)
	}
	h.contains("imported appliance (dropped: sound card)")
}

// TestImportTakenName: a package whose machine name is taken fails with
// the reason in the status line; nothing is added.
func TestImportTakenName(t *testing.T) {
	f := demoService()
	h := newHomeHarness(t, f)
	h.press("I")
	h.typeText("/srv/web.ova")
	h.press("enter")
	h.contains(`name "web" is taken`)
	if n := len(h.m.list.all); n != 4 {
		t.Fatalf("%d machines after a failed import", n)
	}
}

// TestListKeysDistinct: no two keys of the main screen share a key.
func TestListKeysDistinct(t *testing.T) {
	k := DefaultKeyMap()
	seen := map[string]string{}
	for _, col := range k.listHelp().full {
		for _, b := range col {
			for _, ks := range b.Keys() {
				if prev, ok := seen[ks]; ok {
					t.Errorf("key %q does both %q and %q", ks, prev, b.Help().Desc)
				}
				seen[ks] = b.Help().Desc
			}
		}
	}
	for _, want := range []key.Binding{k.Export, k.Import} {
		if _, ok := seen[want.Keys()[0]]; !ok {
			t.Errorf("the help does not list %q", want.Help().Desc)
		}
	}
}
