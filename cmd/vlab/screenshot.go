package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"vlab/console"
	"vlab/emulator"
	"vlab/machine"
)

func (a *app) screenshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "screenshot NAME FILE.png",
		Short: "Save a running VM's screen as a PNG (QMP screendump)",
		Long: `Save what the VM's display shows right now as a PNG file. QEMU draws the picture
(QMP screendump), so it matches what a VNC viewer sees. The file appears complete or not at all.`,
		Example: `  vlab screenshot web web.png`,
		Args:    exactArgs("NAME", "FILE.png"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name, out := args[0], args[1]
			w, h, err := screenshot(cmd.Context(), s, name, out)
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), struct {
					Path   string `json:"path"`
					Width  int    `json:"width"`
					Height int    `json:"height"`
				}{out, w, h})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %s's screen (%dx%d) to %s\n", name, w, h, out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, `print {"path","width","height"}`)
	return cmd
}

// screenshot saves name's screen to out as PNG and returns its size.
func screenshot(ctx context.Context, s *machine.Store, name, out string) (int, int, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return 0, 0, fmt.Errorf("screenshot %q: folder %s does not exist: create it first", name, filepath.Dir(abs))
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return 0, 0, fmt.Errorf("screenshot %q: %s is a folder: give a file name ending in .png", name, out)
	}
	if err := requireActive(ctx, s, "screenshot", name); err != nil {
		return 0, 0, err
	}
	// QEMU writes the file itself: into a temp file beside the result, renamed
	// into place once complete.
	tmp, err := os.CreateTemp(filepath.Dir(abs), ".vlab-screenshot-*")
	if err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	qctx, cancel := context.WithTimeout(ctx, vncTimeout)
	defer cancel()
	mon, err := s.Monitor(qctx, name)
	if err != nil {
		return 0, 0, err
	}
	defer mon.Close()
	err = mon.Execute(qctx, "screendump", map[string]any{"filename": tmp.Name(), "format": "png"}, nil)
	ppm := false
	var qe *emulator.QMPError
	if errors.As(err, &qe) && strings.Contains(qe.Desc, "format") {
		// QEMU before 7.1 writes PPM only.
		ppm = true
		err = mon.Execute(qctx, "screendump", map[string]any{"filename": tmp.Name()}, nil)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: screendump: %w", name, err)
	}
	img, err := readScreendump(tmp.Name(), ppm)
	if err != nil {
		return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
	}
	if ppm {
		if err := writePNG(tmp.Name(), img); err != nil {
			return 0, 0, fmt.Errorf("screenshot %q: %w", name, err)
		}
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

// readScreendump decodes what QEMU wrote, checking it is a whole picture.
func readScreendump(path string, ppm bool) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if ppm {
		return console.DecodePPM(f)
	}
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("qemu's screendump is not a valid png: %w", err)
	}
	return img, nil
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
