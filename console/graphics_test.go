package console

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// testScreen is a frame with text-like detail: VGA's 16 colours in
// stripes, a gradient band and single-pixel dots (what scaling or a wrong
// band offset would lose).
func testScreen(w, h int) *Frame {
	vga := []uint32{0x000000, 0x0000aa, 0x00aa00, 0x00aaaa, 0xaa0000, 0xaa00aa, 0xaa5500, 0xaaaaaa,
		0x555555, 0x5555ff, 0x55ff55, 0x55ffff, 0xff5555, 0xff55ff, 0xffff55, 0xffffff}
	f := &Frame{W: w, H: h, Pix: make([]uint32, w*h)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var p uint32
			switch {
			case y < h/3:
				p = vga[(x/7+y/5)%16]
			case y < 2*h/3:
				v := uint32(x * 255 / max(1, w-1))
				p = v<<16 | uint32(y%256)<<8 | (255 - v)
			default:
				if (x*7+y*13)%11 == 0 {
					p = 0xffffff
				}
			}
			f.Pix[y*w+x] = p
		}
	}
	return f
}

// channelErr returns the largest per-channel difference of two colours.
func channelErr(a, b uint32) int {
	return max(absInt(int(a>>16&0xff)-int(b>>16&0xff)), absInt(int(a>>8&0xff)-int(b>>8&0xff)), absInt(int(a&0xff)-int(b&0xff)))
}

// TestSixelPaletteErrorBound: every colour lands within 25 per channel of
// its palette colour (half the cube's step), and VGA's within 17.
func TestSixelPaletteErrorBound(t *testing.T) {
	worst := 0
	for r := 0; r < 256; r += 3 {
		for g := 0; g < 256; g += 5 {
			for b := 0; b < 256; b++ {
				p := uint32(r<<16 | g<<8 | b)
				worst = max(worst, channelErr(p, sixelColor(sixelIndex(p))))
			}
		}
	}
	if worst > 25 {
		t.Errorf("palette error %d > 25", worst)
	}
	for _, p := range []uint32{0x0000aa, 0xaa5500, 0x555555, 0xaaaaaa, 0x5555ff} {
		if e := channelErr(p, sixelColor(sixelIndex(p))); e > 17 {
			t.Errorf("VGA colour %06x off by %d", p, e)
		}
	}
	if sixelIndex(0x808080) < 216 {
		t.Errorf("mid grey 808080 maps to cube colour %06x, not a grey", sixelColor(sixelIndex(0x808080)))
	}
}

// decodeSixel runs Debian's sixel2png (libsixel) on one sixel image.
func decodeSixel(t *testing.T, six []byte) image.Image {
	t.Helper()
	bin := fixture.Program(t, "sixel2png")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.six"), filepath.Join(dir, "out.png")
	if err := os.WriteFile(in, six, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "-i", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("sixel2png: %v\n%s", err, b)
	}
	fh, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("sixel2png output: %v", err)
	}
	return img
}

// TestSixelDecodesToTheFrame: a sixel image of a frame, decoded by
// libsixel, is the frame within the palette's error bound at every pixel.
func TestSixelDecodesToTheFrame(t *testing.T) {
	for _, sz := range [][2]int{{720, 400}, {33, 13}, {1, 1}} {
		f := testScreen(sz[0], sz[1])
		var e sixelEncoder
		img := decodeSixel(t, e.encode(nil, f.Pix, f.W, f.W, f.H))
		got := FrameOf(img)
		if got.W < f.W || got.H < f.H {
			t.Fatalf("%dx%d: decoded %dx%d", f.W, f.H, got.W, got.H)
		}
		bad := 0
		for y := 0; y < f.H; y++ {
			for x := 0; x < f.W; x++ {
				if channelErr(got.At(x, y), f.At(x, y)) > 25 {
					if bad < 3 {
						t.Errorf("%dx%d: pixel %d,%d is %06x, want %06x", f.W, f.H, x, y, got.At(x, y), f.At(x, y))
					}
					bad++
				}
			}
		}
		if bad > 0 {
			t.Errorf("%dx%d: %d pixels off by more than 25", f.W, f.H, bad)
		}
	}
}

// kittyCanvas replays the viewer's kitty commands for image 1 into a frame:
// a=T replaces the image, a=f,r=1 writes a region into it.
type kittyCanvas struct {
	f *Frame
}

var kittyCmd = regexp.MustCompile("\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\\\")

// apply decodes the kitty commands in b, checking each chunk's size.
func (c *kittyCanvas) apply(t *testing.T, b []byte) {
	t.Helper()
	var keys map[string]string
	var payload []byte
	for _, m := range kittyCmd.FindAllSubmatch(b, -1) {
		kv := map[string]string{}
		for _, p := range strings.Split(string(m[1]), ",") {
			k, v, _ := strings.Cut(p, "=")
			kv[k] = v
		}
		if len(m[2]) > 4096 {
			t.Fatalf("chunk of %d bytes", len(m[2]))
		}
		if kv["a"] == "d" {
			continue
		}
		if keys == nil {
			keys = kv
		} else if len(kv) != 1 {
			t.Fatalf("continuation chunk with keys %v", kv)
		}
		payload = append(payload, m[2]...)
		if kv["m"] == "1" {
			continue
		}
		c.put(t, keys, payload)
		keys, payload = nil, nil
	}
	if keys != nil {
		t.Fatal("unfinished chunked transmission")
	}
}

func (c *kittyCanvas) put(t *testing.T, keys map[string]string, payload []byte) {
	t.Helper()
	num := func(k string) int { n, _ := strconv.Atoi(keys[k]); return n }
	if keys["f"] != "24" || keys["o"] != "z" || keys["i"] != "1" {
		t.Fatalf("unexpected keys %v", keys)
	}
	z, err := base64.StdEncoding.DecodeString(string(payload))
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	rgb, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	w, h := num("s"), num("v")
	if len(rgb) != w*h*3 {
		t.Fatalf("%d bytes for %dx%d", len(rgb), w, h)
	}
	x0, y0 := 0, 0
	switch keys["a"] {
	case "T":
		c.f = &Frame{W: w, H: h, Pix: make([]uint32, w*h)}
	case "f":
		if keys["r"] != "1" || c.f == nil {
			t.Fatalf("frame edit %v before an image", keys)
		}
		x0, y0 = num("x"), num("y")
	default:
		t.Fatalf("action %v", keys)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := (y*w + x) * 3
			c.f.Pix[(y0+y)*c.f.W+x0+x] = uint32(rgb[o])<<16 | uint32(rgb[o+1])<<8 | uint32(rgb[o+2])
		}
	}
}

// TestKittyRegionsRebuildTheFrame: the kitty stream of a frame and of a
// later frame with a changed rectangle, decoded chunk by chunk, rebuilds
// each frame exactly; the second sends only a region, not the screen.
func TestKittyRegionsRebuildTheFrame(t *testing.T) {
	f := testScreen(640, 480)
	r := NewPixelRenderer(GraphicsKitty, 0, 0, 80, 30, 8, 16)
	var c kittyCanvas
	c.apply(t, r.Render(f))
	if c.f == nil || c.f.W != 640 || c.f.H != 480 {
		t.Fatalf("first frame decoded as %+v", c.f)
	}
	if !equalFrames(c.f, f) {
		t.Fatal("first frame differs")
	}
	for y := 200; y < 230; y++ {
		for x := 100; x < 140; x++ {
			f.Pix[y*f.W+x] = 0x123456
		}
	}
	out := r.Render(f)
	if !bytes.Contains(out, []byte("a=f,")) || bytes.Contains(out, []byte("a=T")) {
		t.Errorf("update is not a region edit: %.80q", out)
	}
	c.apply(t, out)
	if !equalFrames(c.f, f) {
		t.Fatal("frame after the region edit differs")
	}
	if out := r.Render(f); len(out) != 0 {
		t.Errorf("unchanged frame sent %d bytes", len(out))
	}
}

func equalFrames(a, b *Frame) bool {
	if a.W != b.W || a.H != b.H {
		return false
	}
	for i := range a.Pix {
		if a.Pix[i] != b.Pix[i] {
			return false
		}
	}
	return true
}

// TestSixelRendererSendsChangedCells: after the first frame only the
// changed cells' region goes out, at the cursor position of its cell, and
// its decoded pixels are the new ones.
func TestSixelRendererSendsChangedCells(t *testing.T) {
	f := testScreen(640, 480)
	r := NewPixelRenderer(GraphicsSixel, 0, 0, 80, 30, 8, 16)
	first := r.Render(f)
	if !bytes.HasPrefix(first, []byte("\x1b[1;1H\x1bP")) {
		t.Fatalf("first frame starts %.40q", first)
	}
	for y := 200; y < 230; y++ {
		for x := 100; x < 140; x++ {
			f.Pix[y*f.W+x] = 0xff0000
		}
	}
	out := r.Render(f)
	// Rows 200..229 are cell rows 12..14 (16 px); columns 100..139 are
	// cells 12..17 (8 px): the region is 48×48 at row 13, column 13.
	if !bytes.HasPrefix(out, []byte("\x1b[13;13H\x1bP0;1;0q\"1;1;48;48")) {
		t.Fatalf("update starts %.60q", out)
	}
	got := FrameOf(decodeSixel(t, out[len("\x1b[13;13H"):]))
	for y := 0; y < 48; y++ {
		for x := 0; x < 48; x++ {
			if e := channelErr(got.At(x, y), f.At(96+x, 192+y)); e > 25 {
				t.Fatalf("region pixel %d,%d is %06x, want %06x", x, y, got.At(x, y), f.At(96+x, 192+y))
			}
		}
	}
}

// TestPixelRendererScalesAndMapsMouse: a 1024×768 screen in 80×24 cells of
// 10×20 px fits 800×600 (the area's width), centred; the corner cells
// reach the screen's corners.
func TestPixelRendererScalesAndMapsMouse(t *testing.T) {
	r := NewPixelRenderer(GraphicsSixel, 0, 0, 80, 23, 10, 20)
	r.Render(testScreen(1024, 768))
	if w, h := r.PictureSize(); w != 613 || h != 460 {
		t.Errorf("picture %dx%d, want 613x460 (460 px of rows, aspect kept)", w, h)
	}
	x0, y0, _ := r.PixelAt(r.offCol, 0)
	x1, y1, _ := r.PixelAt(r.offCol+61, 22)
	if x0 != 0 || y0 != 0 || x1 != 1023 || y1 != 767 {
		t.Errorf("corners map to %d,%d and %d,%d", x0, y0, x1, y1)
	}
	if x, y, _ := r.PixelAt(r.offCol+30, 11); absInt(x-512) > 20 || absInt(y-384) > 20 {
		t.Errorf("middle cell maps to %d,%d", x, y)
	}
}

// TestDetectGraphicsReplies: the terminal's answers choose the mode; typed
// keys mixed in are kept; a terminal that never answers gets half blocks.
func TestDetectGraphicsReplies(t *testing.T) {
	cases := []struct {
		reply string
		want  Graphics
		rest  string
	}{
		{"\x1b_Gi=31;OK\x1b\\\x1b[4;768;1024t\x1b[?62;4;22c", GraphicsKitty, ""},
		{"\x1b_Gi=31;ENOENT:bad\x1b\\\x1b[?63;1;4c", GraphicsSixel, ""},
		{"a\x1bP1+r544e=787465726d2d6b69747479\x1b\\\x1b[?62;22c", GraphicsKitty, "a"},
		{"\x1b[?1;2c", GraphicsBlocks, ""},
	}
	for _, c := range cases {
		in := make(chan []byte, len(c.reply))
		for _, ch := range []byte(c.reply) { // one byte at a time
			in <- []byte{ch}
		}
		var out bytes.Buffer
		caps, rest := detectGraphics(&out, in, detectTimeout)
		if got := caps.choose(); got != c.want || string(rest) != c.rest {
			t.Errorf("%q: %v rest %q, want %v rest %q", c.reply, got, rest, c.want, c.rest)
		}
		if out.String() != graphicsQuery {
			t.Errorf("query %q", out.String())
		}
	}
	caps, _ := detectGraphics(io.Discard, make(chan []byte), 1)
	if caps.choose() != GraphicsBlocks || caps.da1 {
		t.Errorf("silent terminal: %+v", caps)
	}
	caps, _ = detectGraphics(io.Discard, func() chan []byte {
		c := make(chan []byte, 1)
		c <- []byte("\x1b[4;768;1024t\x1b[?62c")
		return c
	}(), detectTimeout)
	if caps.pxW != 1024 || caps.pxH != 768 {
		t.Errorf("CSI 14 t answer read as %dx%d", caps.pxW, caps.pxH)
	}
}

func TestParseGraphics(t *testing.T) {
	for s, want := range map[string]Graphics{"": GraphicsAuto, "sixel": GraphicsSixel, "KITTY": GraphicsKitty, "blocks": GraphicsBlocks} {
		if g, err := ParseGraphics(s); err != nil || g != want {
			t.Errorf("%q: %v %v", s, g, err)
		}
	}
	if _, err := ParseGraphics("ascii"); err == nil || !strings.Contains(err.Error(), "sixel, kitty, blocks") {
		t.Errorf("bad value: %v", err)
	}
}

// TestViewerSixelForwardsInput: with Graphics sixel the viewer draws sixel
// images, and the mouse and keys reach the guest as with half blocks: an
// 800×600 screen in 100×30 cells of 8×16 px is 640×480 px from column 10,
// so the corner cells reach the corners and the middle cell the middle.
func TestViewerSixelForwardsInput(t *testing.T) {
	for _, g := range []Graphics{GraphicsSixel, GraphicsKitty} {
		v, f := startFakeRFB(t, 800, 600, VNCOptions{})
		f.update(rect{x: 1, enc: EncodingPointerTypeChange}, rect{w: 800, h: 600, enc: EncodingRaw, data: rawPixels(randomFrame(800, 600, 9).Pix)})
		waitUpdate(t, v)
		inR, inW := io.Pipe()
		out := &syncBuffer{}
		vw := &Viewer{VNC: v, Title: "test-vm", Size: func() (int, int) { return 100, 31 }, Graphics: g}
		vw.SetStdin(inR)
		vw.SetStdout(out)
		done := make(chan error, 1)
		go func() { done <- vw.Run() }()
		io.WriteString(inW, "\x1b[<0;90;30M\x1b[<32;11;1M\x1b[<0;11;1m\x1b[<65;51;16M")
		type ptr struct {
			b    Buttons
			x, y int
		}
		want := []ptr{
			{ButtonLeft, 799, 599}, {ButtonLeft, 0, 0}, {0, 0, 0},
			{ButtonWheelDown, 405, 310}, {0, 405, 310},
		}
		for _, w := range want {
			m := f.next(5).body
			got := ptr{Buttons(m[0]), int(binary.BigEndian.Uint16(m[1:])), int(binary.BigEndian.Uint16(m[3:]))}
			if got != w {
				t.Errorf("%v: pointer event %+v, want %+v", g, got, w)
			}
		}
		io.WriteString(inW, "a")
		if m := f.next(4).body; m[0] != 1 || binary.BigEndian.Uint32(m[3:]) != 'a' {
			t.Errorf("%v: key event % x, want 'a' down", g, m)
		}
		io.WriteString(inW, "\x1d")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v: viewer returned %v", g, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: viewer did not leave on Ctrl-]", g)
		}
		inW.Close()
		o := out.String()
		mark := map[Graphics]string{GraphicsSixel: "\x1bP0;1;0q\"1;1;640;480", GraphicsKitty: "a=T,i=1,p=1,C=1,q=2,f=24,o=z,s=640,v=480"}[g]
		if !strings.Contains(o, mark) || !strings.Contains(o, "Ctrl-]") || strings.Contains(o, "▀") {
			t.Errorf("%v: output lacks the 640x480 image (%q) or the status line, or has half blocks", g, mark)
		}
		if g == GraphicsKitty && !strings.Contains(o, kittyDelete) {
			t.Errorf("kitty: the image was not deleted on leaving")
		}
	}
}
