package machine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// screenTimeout bounds a QMP exchange made for a VM's screen (a screendump,
// setting the VNC password), connecting included.
const screenTimeout = 15 * time.Second

// Screenshot saves what running VM name's display shows to out as a PNG
// (QMP screendump, so it matches what a VNC viewer sees) and returns the
// picture's size. The file appears complete or not at all: QEMU writes a
// temp file beside out, which is made owner-only (0600) and renamed into
// place. out's folder must exist and out must not be a folder.
func (s *Store) Screenshot(ctx context.Context, name, out string) (width, height int, err error) {
	abs, err := screenshotTarget(name, out)
	if err != nil {
		return 0, 0, err
	}
	if err := s.RequireActive(ctx, "screenshot", name); err != nil {
		return 0, 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(abs), ".vlab-screenshot-*")
	if err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	qctx, cancel := context.WithTimeout(ctx, screenTimeout)
	defer cancel()
	mon, err := s.Monitor(qctx, name)
	if err != nil {
		return 0, 0, err
	}
	defer mon.Close()
	img, err := mon.Screendump(qctx, tmp.Name())
	if err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), abs); err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
	}
	b := img.Bounds()
	return b.Dx(), b.Dy(), nil
}

// screenshotTarget returns out as an absolute path after checking that its
// folder exists and that it is not a folder itself.
func screenshotTarget(name, out string) (string, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", fmt.Errorf("screenshot %q: %w", name, err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("screenshot %q: folder %s does not exist: create it first", name, filepath.Dir(abs))
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return "", fmt.Errorf("screenshot %q: %s is a folder: give a file name ending in .png", name, out)
	}
	return abs, nil
}
