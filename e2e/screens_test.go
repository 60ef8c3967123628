package e2e

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"image"
	_ "image/png" // readPNG decodes PNGs
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vlab/console"
	"vlab/internal/fixture"
)

// syncBuf is a buffer written by a process and read by the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// viewerOutput runs `vlab vnc NAME --graphics MODE` on a pseudo-terminal of
// 90×26 cells (util-linux script; the pty reports no pixel size, so the
// viewer takes the VGA font's 8×16 cells: the picture area is 720×400)
// until done says the output holds a frame, then leaves with Ctrl-].
func viewerOutput(t *testing.T, e *env, name, mode string, done func([]byte) bool) []byte {
	t.Helper()
	script := fixture.Program(t, "script")
	cmd := exec.Command(script, "-qfec", "stty cols 90 rows 26; exec "+strconv.Quote(vlabBin)+" vnc "+name+" --graphics "+mode, "/dev/null")
	cmd.Env = append(append([]string(nil), e.vars...), "TERM=xterm-256color")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, "the "+mode+" viewer to draw a frame", time.Minute, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("viewer exited early: %v\n%q", err, tail(string(out.Bytes()), 2000))
		default:
		}
		return done(out.Bytes())
	})
	in.Write([]byte{0x1d}) // Ctrl-]
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("viewer: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("viewer did not leave on Ctrl-]")
	}
	in.Close()
	return out.Bytes()
}

var firstSixel = regexp.MustCompile(`(?s)\x1bP0;1;0q.*?\x1b\\`)

// kittyChunks are the kitty graphics commands of a stream.
var kittyChunks = regexp.MustCompile("\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\\\")

// firstKittyImage decodes the first whole-image transmission (a=T) of a
// kitty stream: chunks of at most 4096 bytes, base64 of zlib'd RGB.
func firstKittyImage(t *testing.T, b []byte) (*console.Frame, bool) {
	var keys map[string]string
	var payload []byte
	for _, m := range kittyChunks.FindAllSubmatch(b, -1) {
		kv := map[string]string{}
		for _, p := range strings.Split(string(m[1]), ",") {
			k, v, _ := strings.Cut(p, "=")
			kv[k] = v
		}
		if len(m[2]) > 4096 {
			t.Fatalf("kitty chunk of %d bytes", len(m[2]))
		}
		if keys == nil {
			if kv["a"] != "T" {
				continue
			}
			keys = kv
		}
		payload = append(payload, m[2]...)
		if kv["m"] == "1" {
			continue
		}
		z, err := base64.StdEncoding.DecodeString(string(payload))
		if err != nil {
			t.Fatalf("kitty base64: %v", err)
		}
		zr, err := zlib.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatalf("kitty zlib: %v", err)
		}
		rgb, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("kitty zlib: %v", err)
		}
		w, _ := strconv.Atoi(keys["s"])
		h, _ := strconv.Atoi(keys["v"])
		if len(rgb) != w*h*3 || keys["f"] != "24" {
			t.Fatalf("kitty image %v with %d bytes", keys, len(rgb))
		}
		f := &console.Frame{W: w, H: h, Pix: make([]uint32, w*h)}
		for i := range f.Pix {
			f.Pix[i] = uint32(rgb[3*i])<<16 | uint32(rgb[3*i+1])<<8 | uint32(rgb[3*i+2])
		}
		return f, true
	}
	return nil, false
}

// screenDiff compares a picture the viewer drew (scaled) with the
// screendump: it returns the fraction of the picture's pixels whose colour
// differs by more than tol in some channel from the screendump pixel that
// the viewer's nearest-pixel scaling samples.
func screenDiff(pic, shot *console.Frame, tol int) float64 {
	bad := 0
	for y := 0; y < pic.H; y++ {
		sy := min(shot.H-1, (2*y+1)*shot.H/(2*pic.H))
		for x := 0; x < pic.W; x++ {
			sx := min(shot.W-1, (2*x+1)*shot.W/(2*pic.W))
			a, b := pic.At(x, y), shot.At(sx, sy)
			d := 0
			for _, s := range []uint{16, 8, 0} {
				d = max(d, absDiff(int(a>>s&0xff)-int(b>>s&0xff)))
			}
			if d > tol {
				bad++
			}
		}
	}
	return float64(bad) / float64(pic.W*pic.H)
}

func readPNG(t *testing.T, path string) *console.Frame {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, _, err := image.Decode(fh)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return console.FrameOf(img)
}

// TestScreensSixelAndKitty: `vlab vnc NAME --graphics sixel|kitty` on a
// terminal draws the guest's VGA text screen at full resolution; the sixel
// stream decoded by libsixel's sixel2png, and the kitty stream's chunks
// decoded here, match the QMP screendump (`vlab screenshot`) taken right
// after. Thresholds: sixel pixels may differ by the palette's quantisation
// bound (25 per channel: half the 6×6×6 cube's step); kitty is lossless, so
// 0. In both at most 1% of the pixels may differ more: the VGA text cursor
// blinks between the two moments (a 9×2 cursor is 0.006% of the screen;
// the margin also covers a line of text the guest prints meanwhile).
func TestScreensSixelAndKitty(t *testing.T) {
	fixture.Program(t, "sixel2png")
	e := newEnv(t)
	name := "screens"
	e.createGuest(name, guests["x86_64"], []string{"vlab.vtshell=1"}, "--net", "none")
	e.ok("start", name)
	e.waitSerial(name, "VLAB-VTSHELL")
	time.Sleep(2 * time.Second) // the shell's prompt is drawn
	shotPNG := filepath.Join(t.TempDir(), "shot.png")

	for _, mode := range []string{"sixel", "kitty"} {
		var pic *console.Frame
		tol := 0
		switch mode {
		case "sixel":
			out := viewerOutput(t, e, name, mode, func(b []byte) bool { return firstSixel.Match(b) })
			six := firstSixel.Find(out)
			sixFile := filepath.Join(t.TempDir(), "frame.six")
			os.WriteFile(sixFile, six, 0o600)
			pngFile := filepath.Join(t.TempDir(), "frame.png")
			if b, err := exec.Command("sixel2png", "-i", sixFile, "-o", pngFile).CombinedOutput(); err != nil {
				t.Fatalf("sixel2png: %v\n%s", err, b)
			}
			pic, tol = readPNG(t, pngFile), 25
		case "kitty":
			out := viewerOutput(t, e, name, mode, func(b []byte) bool { _, ok := firstKittyImage(t, b); return ok })
			pic, _ = firstKittyImage(t, out)
		}
		e.ok("screenshot", name, shotPNG)
		shot := readPNG(t, shotPNG)
		// 720×400 VGA text in a 720×400 area: full resolution, 1:1.
		if pic.W != shot.W || pic.H < shot.H || pic.H > shot.H+5 {
			t.Errorf("%s: picture %dx%d for a %dx%d screen in a 720x400 area", mode, pic.W, pic.H, shot.W, shot.H)
		}
		pic.H = min(pic.H, shot.H) // a sixel's last band may run past the image
		pic.Pix = pic.Pix[:pic.W*pic.H]
		lit := 0
		for _, p := range shot.Pix {
			if p != 0 {
				lit++
			}
		}
		if lit < 500 {
			t.Fatalf("%s: the guest's screen is blank (%d lit pixels): nothing to compare", mode, lit)
		}
		if d := screenDiff(pic, shot, tol); d > 0.01 {
			t.Errorf("%s: %.2f%% of the pixels differ from the screendump by more than %d", mode, 100*d, tol)
		} else {
			t.Logf("%s: %.3f%% of the pixels differ by more than %d", mode, 100*d, tol)
		}
	}
}
