package emulator

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"strings"
)

// Screendump has QEMU write the guest's screen to path (QMP screendump) and
// returns the picture, checked to be whole. The file at path is a PNG
// either way: QEMU before 7.1 writes only PPM, which is decoded and written
// back to path as PNG. path must be somewhere QEMU may write; the caller
// chooses its folder and mode.
func (m *Monitor) Screendump(ctx context.Context, path string) (image.Image, error) {
	return screendump(ctx, m.Execute, path)
}

// executeFunc is Monitor.Execute: tests stand in for QEMU with one.
type executeFunc func(ctx context.Context, cmd string, args, out any) error

func screendump(ctx context.Context, execute executeFunc, path string) (image.Image, error) {
	err := execute(ctx, "screendump", map[string]any{"filename": path, "format": "png"}, nil)
	ppm := false
	var qe *QMPError
	if errors.As(err, &qe) && strings.Contains(qe.Desc, "format") {
		// QEMU before 7.1 has no format argument and writes PPM only.
		ppm = true
		err = execute(ctx, "screendump", map[string]any{"filename": path}, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("screendump: %w", err)
	}
	img, err := readScreendump(path, ppm)
	if err != nil {
		return nil, err
	}
	if ppm {
		if err := writePNG(path, img); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// readScreendump decodes what QEMU wrote, checking it is a whole picture.
func readScreendump(path string, ppm bool) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if ppm {
		img, err := decodePPM(f)
		if err != nil {
			return nil, err
		}
		return img, nil
	}
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("qemu's screendump is not a valid png: %w", err)
	}
	return img, nil
}

// writePNG replaces the file at path with img as PNG.
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
