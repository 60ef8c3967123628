package emulator

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeScreendump stands in for QEMU's screendump: a QEMU (before 7.1 when
// old, so PPM only) that writes a 2×1 picture (red, blue), or fails with qerr.
func fakeScreendump(t *testing.T, old bool, qerr error) (executeFunc, *[]map[string]any) {
	var calls []map[string]any
	return func(_ context.Context, cmd string, args, _ any) error {
		a := args.(map[string]any)
		calls = append(calls, a)
		if cmd != "screendump" {
			t.Errorf("command %q, want screendump", cmd)
		}
		if qerr != nil {
			return qerr
		}
		path := a["filename"].(string)
		if _, ok := a["format"]; ok {
			if old {
				return &QMPError{Class: "GenericError", Desc: "Parameter 'format' is unexpected"}
			}
			var b bytes.Buffer
			img := image.NewRGBA(image.Rect(0, 0, 2, 1))
			img.Set(0, 0, color.RGBA{R: 0xff, A: 0xff})
			img.Set(1, 0, color.RGBA{B: 0xff, A: 0xff})
			if err := png.Encode(&b, img); err != nil {
				t.Fatal(err)
			}
			return os.WriteFile(path, b.Bytes(), 0o600)
		}
		return os.WriteFile(path, []byte("P6\n2 1\n255\n\xff\x00\x00\x00\x00\xff"), 0o600)
	}, &calls
}

// checkPNG checks that path holds the fake's picture as PNG.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a png: %v", path, err)
	}
	r, _, _, _ := img.At(0, 0).RGBA()
	_, _, b, _ := img.At(1, 0).RGBA()
	if img.Bounds().Dx() != 2 || img.Bounds().Dy() != 1 || r != 0xffff || b != 0xffff {
		t.Errorf("%s holds %v, want the red and blue 2x1 picture", path, img.Bounds())
	}
}

func TestScreendumpPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shot")
	exec, calls := fakeScreendump(t, false, nil)
	img, err := screendump(context.Background(), exec, path)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2 || b.Dy() != 1 {
		t.Errorf("size %v, want 2x1", b)
	}
	if len(*calls) != 1 || (*calls)[0]["format"] != "png" {
		t.Errorf("calls %v, want one screendump with format png", *calls)
	}
	checkPNG(t, path)
}

// A QEMU before 7.1 refuses format: the PPM it writes then comes back as a
// PNG all the same.
func TestScreendumpPPMFallback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shot")
	exec, calls := fakeScreendump(t, true, nil)
	img, err := screendump(context.Background(), exec, path)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2 || b.Dy() != 1 {
		t.Errorf("size %v, want 2x1", b)
	}
	if len(*calls) != 2 {
		t.Fatalf("calls %v, want screendump with format, then without", *calls)
	}
	if _, ok := (*calls)[1]["format"]; ok {
		t.Errorf("the fallback still asks for a format: %v", (*calls)[1])
	}
	checkPNG(t, path)
}

func TestScreendumpErrors(t *testing.T) {
	dir := t.TempDir()
	exec, calls := fakeScreendump(t, false, &QMPError{Class: "GenericError", Desc: "no display"})
	_, err := screendump(context.Background(), exec, filepath.Join(dir, "a"))
	var qe *QMPError
	if !errors.As(err, &qe) || !strings.HasPrefix(err.Error(), "screendump: ") || len(*calls) != 1 {
		t.Errorf("a failing screendump = %v after %d calls, want the QMP error named, once", err, len(*calls))
	}

	// QEMU claims success but leaves a broken file.
	broken := func(_ context.Context, _ string, args, _ any) error {
		return os.WriteFile(args.(map[string]any)["filename"].(string), []byte("\x89PNG truncated"), 0o600)
	}
	_, err = screendump(context.Background(), broken, filepath.Join(dir, "b"))
	if err == nil || !strings.Contains(err.Error(), "not a valid png") {
		t.Errorf("a broken png = %v, want it refused", err)
	}
}
