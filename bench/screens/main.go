// Command screens measures the built-in viewer's full-resolution renderers
// (sixel, kitty) against the half-block renderer: frames per second and
// bytes written per frame for a 1024×768 framebuffer drawn into 128×48
// cells of 8×16 pixels (so sixel and kitty draw it 1:1 at 1024×768). Three
// screens: a colour field that changes everywhere every frame (the worst
// case: every pixel, hundreds of colours), VGA-like text that scrolls by one
// line per frame, and a blinking text cursor. It prints a Markdown table
// for bench/RESULTS.md.
//
// Usage: go run ./bench/screens [-frames 60]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"vlab/console"
)

const (
	fbW, fbH     = 1024, 768
	cols, rows   = 128, 48
	cellW, cellH = 8, 16
)

func main() {
	frames := flag.Int("frames", 60, "frames per measurement")
	flag.Parse()
	screens := []struct {
		name string
		gen  func(*console.Frame, int)
	}{
		{"full change (colour field)", field},
		{"text scrolling a line per frame", text},
		{"cursor blink", cursor},
	}
	fmt.Println("| screen | renderer | frames/s | ms/frame | bytes/frame |")
	fmt.Println("|---|---|---|---|---|")
	for _, s := range screens {
		for _, mode := range []console.Graphics{console.GraphicsBlocks, console.GraphicsSixel, console.GraphicsKitty} {
			fps, ms, bytes := measure(*frames, mode, s.gen)
			fmt.Printf("| %s | %s | %.1f | %.2f | %.0f |\n", s.name, mode, fps, ms, bytes)
		}
	}
	fmt.Fprintf(os.Stderr, "%s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().Format("2006-01-02"))
}

type renderer interface{ Render(*console.Frame) []byte }

// measure renders frames (precomputed, cycling through 8) after a first
// full frame and returns frames/s, ms/frame and bytes/frame.
func measure(frames int, mode console.Graphics, gen func(*console.Frame, int)) (float64, float64, float64) {
	fs := make([]*console.Frame, 8)
	for i := range fs {
		fs[i] = &console.Frame{W: fbW, H: fbH, Pix: make([]uint32, fbW*fbH)}
		gen(fs[i], i)
	}
	var r renderer = console.NewRenderer(0, 0, cols, rows)
	if mode != console.GraphicsBlocks {
		r = console.NewPixelRenderer(mode, 0, 0, cols, rows, cellW, cellH)
	}
	r.Render(fs[0])
	total := 0
	t0 := time.Now()
	for i := 1; i <= frames; i++ {
		total += len(r.Render(fs[i%len(fs)]))
	}
	el := time.Since(t0)
	return float64(frames) / el.Seconds(), el.Seconds() * 1000 / float64(frames), float64(total) / float64(frames)
}

// field is frame i of a moving colour field: every pixel changes.
func field(f *console.Frame, i int) {
	for y := 0; y < f.H; y++ {
		for x := 0; x < f.W; x++ {
			r := uint32(x+3*i) & 0xff
			g := uint32(y+5*i) & 0xff
			b := uint32(x^y+7*i) & 0xff
			f.Pix[y*f.W+x] = r<<16 | g<<8 | b
		}
	}
}

// text is light grey glyph-like strokes on black in 8×16 cells, scrolled
// up by i lines.
func text(f *console.Frame, i int) {
	for y := 0; y < f.H; y++ {
		line := y/16 + i
		for x := 0; x < f.W; x++ {
			col := x / 8
			on := (col*7+line*13)%5 != 0 && (x%8+y%16*3+col+line)%4 == 0 && y%16 < 13 && x%8 < 7
			var p uint32
			if on {
				p = 0xaaaaaa
			}
			f.Pix[y*f.W+x] = p
		}
	}
}

// cursor is a black screen with a 9×16 block on in odd frames.
func cursor(f *console.Frame, i int) {
	clear(f.Pix)
	if i%2 == 1 {
		for y := 400; y < 416; y++ {
			for x := 500; x < 509; x++ {
				f.Pix[y*f.W+x] = 0xaaaaaa
			}
		}
	}
}
