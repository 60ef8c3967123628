package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// runAt runs vlab in folder dir and fails the test unless it exits 0.
func (e *env) runAt(dir string, args ...string) string {
	e.t.Helper()
	cmd := exec.Command(vlabBin, args...)
	cmd.Env, cmd.Dir = e.vars, dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("vlab %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// TestRelativePathsWorkFromAnotherFolder: a VM created with relative
// --kernel/--initrd in folder A starts and boots from folder B.
func TestRelativePathsWorkFromAnotherFolder(t *testing.T) {
	e := newEnv(t)
	fixture.Program(t, "qemu-system-x86_64")
	kernel, initrd := fixture.Guest(t, "x86_64")
	a, b := filepath.Join(e.home, "folder a"), filepath.Join(e.home, "folder b")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for src, dst := range map[string]string{kernel: "vmlinuz", initrd: "initrd.img"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a, dst), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.runAt(a, "create", "rel", "--arch", "x86_64", "--memory", "256M", "--display", "none", "--net", "none",
		"--kernel", "vmlinuz", "--initrd", "./initrd.img", "--append", fixture.Append("x86_64", "vlab.marker=relpath-ok"))
	if got := e.show("rel"); got.Name != "rel" {
		t.Fatalf("show: %+v", got)
	}
	showOut := e.runAt(b, "show", "rel")
	if !strings.Contains(showOut, filepath.Join(a, "vmlinuz")) || !strings.Contains(showOut, filepath.Join(a, "initrd.img")) {
		t.Fatalf("show does not list the absolute paths under %s:\n%s", a, showOut)
	}
	e.runAt(b, "start", "rel")
	e.waitSerial("rel", "VLAB-MARKER relpath-ok")
	e.ok("stop", "rel", "--force")
	// A relative path that does not exist is refused at once, naming the absolute path.
	cmd := exec.Command(vlabBin, "edit", "rel", "--kernel", "nope/vmlinuz")
	cmd.Env, cmd.Dir = e.vars, b
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), filepath.Join(b, "nope", "vmlinuz")+" does not exist") {
		t.Fatalf("edit --kernel nope/vmlinuz: %v, %s; want an error naming %s", err, out, filepath.Join(b, "nope", "vmlinuz"))
	}
}
