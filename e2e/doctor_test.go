package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// doctor runs `vlab doctor args...` and returns its report. It fails the
// test unless the exit status says what the report shows: 1 with one error
// line when a check names a fix to run, 0 when none does.
func (e *env) doctor(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(append([]string{"doctor"}, args...)...)
	findings := strings.Count(out, "\n       fix: ")
	switch {
	case findings > 0 && code != 1:
		e.t.Fatalf("vlab doctor reports %d fixes but exits %d\n%s", findings, code, out)
	case findings > 0 && (!strings.HasPrefix(errs, "vlab: doctor: ") || strings.Count(errs, "\n") != 1):
		e.t.Fatalf("vlab doctor with findings: want one 'vlab: doctor: N findings' line on stderr, got %q", errs)
	case findings == 0 && code != 0:
		e.t.Fatalf("vlab doctor reports nothing to fix but exits %d: %s\n%s", code, errs, out)
	}
	return out
}

// TestDoctorExitStatus: `vlab doctor` exits 1 when it reports something to
// fix and 0 when there is nothing, in text and --json alike, so a script or
// CI step can gate on it.
func TestDoctorExitStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("create", "vm", "--memory", "64M", "--disk", "1M", "--display", "none", "--net", "none")
	spec := filepath.Join(e.show("vm").Dir, "machine.toml")
	if err := os.Chmod(spec, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := e.doctor(); !strings.Contains(out, spec) {
		t.Fatalf("doctor does not report the world-readable %s:\n%s", spec, out)
	}
	if _, _, code := e.run("doctor"); code != 1 {
		t.Errorf("doctor with a world-readable machine.toml exits %d, want 1", code)
	}
	// --json: the same status, beside a report that parses.
	out, _, code := e.run("doctor", "--json")
	var checks []struct {
		OK  bool   `json:"ok"`
		Fix string `json:"fix"`
	}
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	if code != 1 {
		t.Errorf("doctor --json with findings exits %d, want 1", code)
	}
	// No qemu at all: a finding.
	saved := e.vars
	e.vars = append(append([]string{}, e.vars...), "PATH=/nonexistent-vlab-path")
	if out := e.doctor(); !strings.Contains(out, "apt-get install qemu-system") {
		t.Errorf("doctor without qemu names no fix:\n%s", out)
	}
	e.vars = saved
	// Fixed: the permission finding is gone and the status follows what is
	// left (0 on a host with everything installed).
	e.doctor("--fix-permissions")
	if out := e.doctor(); strings.Contains(out, "others may access") {
		t.Errorf("doctor after the fix still reports:\n%s", out)
	}
}
