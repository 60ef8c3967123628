package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"vlab/console"
	"vlab/internal/fixture"
)

// xtermBG is the background of the test's xterm (ivory). The viewer's
// sixel palette cannot produce it: its colours are the 6×6×6 cube (every
// channel a multiple of 51) and greys (r = g = b), and 0xf0 is neither. So
// every pixel of this colour is xterm's own, and every pixel of the guest's
// picture differs from it.
const xtermBG = 0xfffff0

// TestScreensXtermVT340 (issue 17): `vlab vnc NAME --graphics sixel` run by
// a real sixel terminal, xterm -ti vt340 on an Xvfb of the test's own, shows
// the guest's screen. The X screen is captured with `xwd -root` (decoded
// here, xwd_test.go); the picture is the tallest block of rows that each
// have one same-extent run of non-background pixels in xterm's window
// (sixel text garbage, or no picture at all, leaves no such block); it must
// have the guest screen's aspect ratio (the viewer keeps it) and match the
// QMP screendump (`vlab screenshot`) scaled to it. The last capture is kept
// as screens-xterm-vt340.png in $VLAB_ARTIFACTS (else the test's temp dir).
func TestScreensXtermVT340(t *testing.T) {
	xterm := fixture.Program(t, "xterm")
	xwd := fixture.Program(t, "xwd")
	e := newEnv(t)
	name := "screens-x"
	e.createGuest(name, guests["x86_64"], []string{"vlab.vtshell=1"}, "--net", "none")
	e.ok("start", name)
	e.waitSerial(name, "VLAB-VTSHELL")
	time.Sleep(2 * time.Second) // the shell's prompt is drawn
	disp := startXvfbScreen(t, "1280x1024x24")

	// 100×40 cells of xterm's default font: the viewer scales the guest's
	// 720×400 down into the 100×39 cells above its status line. VT340
	// sixel with 256 colour registers (a VT340 has 16 by default, too few
	// for the viewer's palette); sixelScrolling (xterm's default, said
	// anyway) draws each image at the cursor, where the viewer puts it.
	cmd := exec.Command(xterm, "-ti", "vt340",
		"-xrm", "XTerm*decTerminalID: vt340",
		"-xrm", "XTerm*numColorRegisters: 256",
		"-xrm", "XTerm*sixelScrolling: true",
		"-geometry", "100x40+0+0", "-bw", "0",
		"-bg", fmt.Sprintf("#%06x", xtermBG), "-fg", "black",
		"-e", vlabBin, "vnc", name, "--graphics", "sixel")
	cmd.Env = append(append([]string(nil), e.vars...), "DISPLAY="+disp)
	var xtermErr syncBuf
	cmd.Stdout, cmd.Stderr = &xtermErr, &xtermErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Killing xterm hangs up its pty: the viewer in it gets SIGHUP.
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	capture := func() *console.Frame {
		t.Helper()
		b, err := exec.Command(xwd, "-root", "-silent", "-display", disp).Output()
		if err != nil {
			t.Fatalf("xwd -root: %v", err)
		}
		f, err := decodeXWD(b)
		if err != nil {
			t.Fatalf("xwd -root output: %v", err)
		}
		return f
	}
	var last *console.Frame
	defer func() {
		if last != nil {
			saveArtifact(t, "screens-xterm-vt340.png", last)
		}
	}()

	// Wait for a picture with text on it: the viewer's first frame.
	var box image.Rectangle
	waitFor(t, "xterm to show the guest's screen as a picture", 2*time.Minute, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("xterm exited: %v\n%s", err, xtermErr.Bytes())
		default:
		}
		last = capture()
		box = findPicture(last, xtermBG)
		return box.Dx() >= 200 && box.Dy() >= 100 && litFraction(crop(last, box)) > 0.005
	})
	time.Sleep(time.Second) // any update after the first frame is drawn
	last = capture()
	shotPNG := filepath.Join(t.TempDir(), "shot.png")
	e.ok("screenshot", name, shotPNG)
	shot := readPNG(t, shotPNG)

	box = findPicture(last, xtermBG)
	t.Logf("picture at %v (%dx%d) in a %dx%d X screen, guest screen %dx%d", box, box.Dx(), box.Dy(), last.W, last.H, shot.W, shot.H)
	// The viewer keeps the aspect ratio, rounding the scaled side down.
	w, h := box.Dx(), box.Dy()
	if h != shot.H*w/shot.W && w != shot.W*h/shot.H {
		t.Fatalf("picture %dx%d is not the guest's %dx%d scaled with its aspect ratio", w, h, shot.W, shot.H)
	}
	if w > shot.W || w < shot.W/2 {
		t.Fatalf("picture %dx%d: want the %dx%d screen scaled down into xterm's 100 columns", w, h, shot.W, shot.H)
	}
	if lit := litFraction(shot) * float64(len(shot.Pix)); lit < 500 {
		t.Fatalf("the guest's screen is blank (%.0f lit pixels): nothing to compare", lit)
	}

	// Thresholds. xterm paints the viewer's palette colours exactly (the
	// cube's levels are whole percent in sixel's colour units; greys are
	// off by at most 2), so the difference is the palette's: at most 25 per
	// channel, for this screen's colours (VGA black, exact; VGA grey 170
	// drawn as grey 168) 2. The guest's text is ~1.5% of the picture, so
	// quantising costs ~0.03 over the whole picture and 2 over the text.
	// The VGA cursor blinks between capture and screendump: ~16 of the
	// picture's pixels, ~0.5% of the text's, up to ~1 of the text's mean.
	// Hence: over the whole picture a mean under 1 (a black picture without
	// the text would be ~2.5 off); over the screendump's text pixels a mean
	// under 10 (each text pixel the picture lacks costs ~170: at most ~5%
	// of the text may be wrong, far less than a line of it); and, as in
	// TestScreensSixelAndKitty, at most 1% of all the pixels may differ by
	// more than the palette's 25.
	pic := crop(last, box)
	all, text, share := meanDiff(pic, shot)
	far := screenDiff(pic, shot, 25)
	t.Logf("mean difference per channel %.2f over the picture, %.2f over the guest's text (%.2f%% of it); %.3f%% of the pixels differ by more than 25", all, text, 100*share, 100*far)
	if all > 1 {
		t.Errorf("the picture differs from the screendump by %.2f per channel on average, want at most 1", all)
	}
	if text > 10 {
		t.Errorf("the picture's text differs from the screendump's by %.2f per channel on average, want at most 10", text)
	}
	if far > 0.01 {
		t.Errorf("%.2f%% of the picture's pixels differ from the screendump by more than 25", 100*far)
	}
}

// findPicture returns the tallest block of consecutive rows of f inside the
// bounding box of the bg pixels (xterm's window) whose longest run of
// non-bg pixels has the same extent and is at least 100 pixels long: the
// image xterm drew. It is empty when there is none.
func findPicture(f *console.Frame, bg uint32) image.Rectangle {
	win := image.Rectangle{Min: image.Pt(f.W, f.H)}
	for y := 0; y < f.H; y++ {
		for x := 0; x < f.W; x++ {
			if f.At(x, y) == bg {
				win.Min.X, win.Min.Y = min(win.Min.X, x), min(win.Min.Y, y)
				win.Max.X, win.Max.Y = max(win.Max.X, x+1), max(win.Max.Y, y+1)
			}
		}
	}
	if win.Empty() {
		return image.Rectangle{}
	}
	var best, cur image.Rectangle
	for y := win.Min.Y; y < win.Max.Y; y++ {
		x0, x1, run := 0, 0, 0
		for x := win.Min.X; x < win.Max.X; x++ {
			if f.At(x, y) == bg {
				run = 0
				continue
			}
			run++
			if run > x1-x0 {
				x0, x1 = x-run+1, x+1
			}
		}
		if x1-x0 < 100 {
			cur = image.Rectangle{}
			continue
		}
		if !cur.Empty() && cur.Min.X == x0 && cur.Max.X == x1 && cur.Max.Y == y {
			cur.Max.Y = y + 1
		} else {
			cur = image.Rect(x0, y, x1, y+1)
		}
		if cur.Dy() > best.Dy() {
			best = cur
		}
	}
	return best
}

// crop returns the pixels of f inside r.
func crop(f *console.Frame, r image.Rectangle) *console.Frame {
	c := &console.Frame{W: r.Dx(), H: r.Dy(), Pix: make([]uint32, 0, r.Dx()*r.Dy())}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		c.Pix = append(c.Pix, f.Pix[y*f.W+r.Min.X:y*f.W+r.Max.X]...)
	}
	return c
}

// litFraction is the fraction of f's pixels that are not black.
func litFraction(f *console.Frame) float64 {
	if len(f.Pix) == 0 {
		return 0
	}
	n := 0
	for _, p := range f.Pix {
		if p != 0 {
			n++
		}
	}
	return float64(n) / float64(len(f.Pix))
}

// meanDiff returns the mean absolute difference per channel between pic
// and the screendump pixels the viewer's nearest-pixel scaling samples (as
// screenDiff), over all of pic and over the pixels whose screendump sample
// is not black (the guest's text), and the share of those pixels.
func meanDiff(pic, shot *console.Frame) (all, text, textShare float64) {
	var sum, textSum, n, textN int
	for y := 0; y < pic.H; y++ {
		sy := min(shot.H-1, (2*y+1)*shot.H/(2*pic.H))
		for x := 0; x < pic.W; x++ {
			sx := min(shot.W-1, (2*x+1)*shot.W/(2*pic.W))
			a, b := pic.At(x, y), shot.At(sx, sy)
			d := 0
			for _, s := range []uint{16, 8, 0} {
				d += absDiff(int(a>>s&0xff) - int(b>>s&0xff))
			}
			sum += d
			n += 3
			if b != 0 {
				textSum += d
				textN += 3
			}
		}
	}
	return float64(sum) / float64(max(n, 1)), float64(textSum) / float64(max(textN, 1)), float64(textN) / float64(max(n, 1))
}

// saveArtifact writes f as a PNG named name into $VLAB_ARTIFACTS, or the
// test's temp dir when that is unset, and logs where.
func saveArtifact(t *testing.T, name string, f *console.Frame) {
	t.Helper()
	dir := os.Getenv("VLAB_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artefact dir: %v", err)
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, f.Image()); err != nil {
		t.Errorf("artefact %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Errorf("artefact: %v", err)
		return
	}
	t.Logf("artefact: %s", path)
}
