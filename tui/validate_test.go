package tui

import "testing"

// TestWizardRefusesWhatCreateRefuses: the wizard checks a new machine with
// the validator `vlab create` uses, so the same input gets the same error
// (here: more memory than the mac99 machine takes, the line the CLI prints)
// and nothing is created.
func TestWizardRefusesWhatCreateRefuses(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	h.press("n")
	w := h.m.view.(*wizard)
	w.mac = "52:54:00:00:00:01"
	h.typeText("mac")
	h.press("enter")
	h.typeText("generic ppc machine") // mac99
	h.press("enter")
	h.press("left") // boot from: none (the last choice)
	h.press("enter")
	h.press("backspace", "backspace", "backspace", "backspace")
	h.typeText("3000")
	h.press("enter", "enter")
	if w.step != stepReview {
		t.Fatalf("not on the review page: %s", h.screen())
	}
	h.contains("memory 3000M is too much: the mac99 machine takes at most 2 GiB: use at most 2G")
	h.press("enter")
	if _, ok := f.VM("mac"); ok {
		t.Fatal("the wizard created a machine the validator refuses")
	}
	// The positive control: at the limit the same machine is created.
	h.press("esc")
	for w.step != stepHardware {
		h.press("esc")
	}
	h.press("backspace", "backspace", "backspace", "backspace")
	h.typeText("2048")
	h.press("enter", "enter", "enter")
	if _, ok := f.VM("mac"); !ok {
		t.Fatalf("2048 MiB on mac99 was not created: %s", h.screen())
	}
}
