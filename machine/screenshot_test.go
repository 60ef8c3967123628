package machine

import (
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"vlab/emulator"
	"vlab/internal/fakeqemu"
)

// Screenshot refuses a bad target before it looks at the VM, and a VM that
// does not run, with the one-line errors `vlab screenshot` prints; nothing
// is left beside the target.
func TestScreenshotRefuses(t *testing.T) {
	s := testStore(t, NewSpec("web", emulator.ArchX86_64))
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, out, want string
		notRunning      bool
	}{
		{"web", filepath.Join(dir, "no", "shot.png"),
			`screenshot "web": folder ` + filepath.Join(dir, "no") + ` does not exist: create it first`, false},
		{"web", dir, `screenshot "web": ` + dir + ` is a folder: give a file name ending in .png`, false},
		// The target is checked first, even for a VM that does not exist.
		{"nosuch", dir, `screenshot "nosuch": ` + dir + ` is a folder: give a file name ending in .png`, false},
		{"web", filepath.Join(dir, "shot.png"),
			"screenshot \"web\": vm is not running (state stopped): start it with `vlab start web`", true},
	} {
		w, h, err := s.Screenshot(ctx, tc.name, tc.out)
		if err == nil || err.Error() != tc.want || w != 0 || h != 0 {
			t.Errorf("Screenshot(%q, %q) = %dx%d, %v\nwant error %s", tc.name, tc.out, w, h, err, tc.want)
		}
		if tc.notRunning != errors.Is(err, ErrNotRunning) {
			t.Errorf("Screenshot(%q, %q): errors.Is(ErrNotRunning) = %v", tc.name, tc.out, !tc.notRunning)
		}
	}
	if _, _, err := s.Screenshot(ctx, "nosuch", filepath.Join(dir, "shot.png")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a VM that does not exist: %v, want ErrNotFound", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused screenshot left %d files", len(ents))
	}
}

// A screenshot of a running VM is a whole PNG, owner-only, with nothing
// left beside it.
func TestScreenshotWithFakeQEMU(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	ctx := context.Background()
	createFake(t, s, "vm1")
	if err := s.Start(ctx, "vm1", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "shot.png")
	w, h, err := s.Screenshot(ctx, "vm1", out)
	if err != nil || w != 2 || h != 1 {
		t.Fatalf("Screenshot = %dx%d, %v; want the fake's 2x1 screen", w, h, err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if img, err := png.Decode(f); err != nil || img.Bounds().Dx() != 2 {
		t.Errorf("%s: not the 2x1 png: %v", out, err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, %v; want 0600", out, fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files beside the screenshot, want none", len(ents)-1)
	}
}

func TestRequireActive(t *testing.T) {
	s := testStore(t, NewSpec("web", emulator.ArchX86_64))
	err := s.RequireActive(context.Background(), "console", "web")
	want := "console \"web\": vm is not running (state stopped): start it with `vlab start web`"
	if !errors.Is(err, ErrNotRunning) || err.Error() != want {
		t.Errorf("RequireActive on a stopped VM = %v, want %s", err, want)
	}
	if err := s.RequireActive(context.Background(), "console", "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RequireActive on a missing VM = %v, want ErrNotFound", err)
	}
}

func TestVNCDisplayRefuses(t *testing.T) {
	headless := NewSpec("srv", emulator.ArchX86_64)
	headless.Display = emulator.DisplayNone
	s := testStore(t, headless)
	ctx := context.Background()
	_, err := s.VNCDisplay(ctx, "srv")
	want := "vnc \"srv\": the vm has no graphical console (display none): use `vlab console srv`, or set display = \"vnc\" in its machine.toml"
	if err == nil || err.Error() != want {
		t.Errorf("VNCDisplay on a headless VM = %v\nwant %s", err, want)
	}
	s = testStore(t, NewSpec("web", emulator.ArchX86_64))
	if _, err := s.VNCDisplay(ctx, "web"); !errors.Is(err, ErrNotRunning) || err.Error() != "vnc \"web\": vm is not running (state stopped): start it with `vlab start web`" {
		t.Errorf("VNCDisplay on a stopped VM = %v", err)
	}
	if _, err := s.VNCDisplay(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("VNCDisplay on a missing VM = %v, want ErrNotFound", err)
	}
}

func TestConfiguredViewer(t *testing.T) {
	s := emptyStore(t)
	if v := s.ConfiguredViewer(); v != "" {
		t.Errorf("no config.toml: viewer %q", v)
	}
	if err := os.MkdirAll(s.Dirs().Config, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(s.Dirs().Config, "config.toml")
	if err := os.WriteFile(cfg, []byte("viewer = \"vinagre {host}::{port}\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := s.ConfiguredViewer(); v != "vinagre {host}::{port}" {
		t.Errorf("viewer %q", v)
	}
	if err := os.WriteFile(cfg, []byte("viewer = [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := s.ConfiguredViewer(); v != "" {
		t.Errorf("unreadable config.toml: viewer %q", v)
	}
}
