package tuifake_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBinaryHasNoFake: the vlab binary does not contain the fake service
// (tests and bench/tui import it), while the TUI itself is in it (the
// positive control).
func TestBinaryHasNoFake(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	out, err := exec.Command(gobin, "list", "-deps", "vlab/cmd/vlab").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := "\n" + string(out)
	if strings.Contains(deps, "\nvlab/tui/tuifake\n") {
		t.Fatal("vlab/cmd/vlab depends on vlab/tui/tuifake")
	}
	if !strings.Contains(deps, "\nvlab/tui\n") {
		t.Fatalf("go list -deps does not list vlab/tui (the control):\n%s", out)
	}
}
