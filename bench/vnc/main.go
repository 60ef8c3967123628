// Command vnc measures vlab's built-in VNC viewer: frames per second and
// bytes written to the terminal per frame for a 1024×768 framebuffer that
// changes everywhere every frame, rendered into 160×48 cells, through the
// whole client path (RFB socket → decoder → framebuffer copy → half-block
// renderer); the same for a screen where only a text cursor's worth
// changes; and, with QEMU installed, the bytes on the wire of one full
// screen from QEMU in ZRLE against raw. Results go to bench/RESULTS.md.
//
// Usage: go run ./bench/vnc [-frames 300] [-out bench/RESULTS.md]
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"vlab/bench/results"
	"vlab/console"
	"vlab/emulator"
)

const (
	fbW, fbH     = 1024, 768
	cols, rows   = 160, 48
	targetFPS    = 30
	cursorW      = 9  // one VGA text glyph
	cursorH      = 16 // ...
	qemuWaitTime = 60 * time.Second
)

func main() {
	frames := flag.Int("frames", 300, "frames per measurement")
	out := flag.String("out", "bench/RESULTS.md", "results file")
	flag.Parse()
	if err := run(*frames, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench vnc:", err)
		os.Exit(1)
	}
}

// pattern fills f with frame i of a moving colour field in which every
// terminal cell changes from one frame to the next.
func pattern(f *console.Frame, i int) {
	for y := 0; y < f.H; y++ {
		for x := 0; x < f.W; x++ {
			r := uint32(x+3*i) & 0xff
			g := uint32(y+5*i) & 0xff
			b := uint32(x^y+7*i) & 0xff
			f.Pix[y*f.W+x] = r<<16 | g<<8 | b
		}
	}
}

// cursor toggles a glyph-sized block, as a blinking cursor or one typed
// character does.
func cursor(f *console.Frame, i int) {
	var c uint32
	if i%2 == 1 {
		c = 0xaaaaaa
	}
	for y := 400; y < 400+cursorH; y++ {
		for x := 500; x < 500+cursorW; x++ {
			f.Pix[y*f.W+x] = c
		}
	}
}

type measure struct {
	frames  int
	elapsed time.Duration
	bytes   int
	changed int // frames whose output was not empty
}

func (m measure) fps() float64        { return float64(m.frames) / m.elapsed.Seconds() }
func (m measure) perFrame() float64   { return float64(m.bytes) / float64(m.frames) }
func (m measure) msPerFrame() float64 { return m.elapsed.Seconds() * 1000 / float64(m.frames) }

// renderOnly times the renderer alone on precomputed frames.
func renderOnly(frames int, gen func(*console.Frame, int)) measure {
	fs := make([]*console.Frame, 8)
	for i := range fs {
		fs[i] = &console.Frame{W: fbW, H: fbH, Pix: make([]uint32, fbW*fbH)}
		pattern(fs[i], 0)
		gen(fs[i], i)
	}
	r := console.NewRenderer(0, 0, cols, rows)
	r.Render(fs[0]) // the first frame draws everything
	var m measure
	t0 := time.Now()
	for i := 1; i <= frames; i++ {
		out := r.Render(fs[i%len(fs)])
		m.bytes += len(out)
		if len(out) > 0 {
			m.changed++
		}
	}
	m.elapsed, m.frames = time.Since(t0), frames
	return m
}

// pipeline streams frames from an in-process RFB server (raw encoding over
// a unix socket, one frame per update request, as fast as the client asks)
// through a real console.VNC session and renders each update the way the
// viewer does.
func pipeline(frames int, gen func(*console.Frame, int)) (measure, error) {
	dir, err := os.MkdirTemp("", "vlab-bench-vnc")
	if err != nil {
		return measure{}, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "vnc.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return measure{}, err
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() { srvErr <- serve(ln, frames+1, gen) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	v, err := console.DialVNC(ctx, sock, console.VNCOptions{Encodings: []console.Encoding{console.EncodingRaw}})
	cancel()
	if err != nil {
		return measure{}, err
	}
	defer v.Close()
	r := console.NewRenderer(0, 0, cols, rows)
	var fr *console.Frame
	var m measure
	var t0 time.Time
	for rendered := 0; ; {
		select {
		case <-v.Updates():
		case <-v.Done():
			if err := <-srvErr; err != nil {
				return m, err
			}
			m.elapsed = time.Since(t0)
			m.frames = rendered
			return m, nil
		case <-time.After(30 * time.Second):
			return m, errors.New("no update for 30 s")
		}
		fr = v.Snapshot(fr)
		out := r.Render(fr)
		if t0.IsZero() {
			t0 = time.Now() // the first frame draws everything: not counted
			continue
		}
		rendered++
		m.bytes += len(out)
		if len(out) > 0 {
			m.changed++
		}
	}
}

// serve is a minimal RFB server: no authentication, 32-bit pixels, raw
// rectangles of the whole screen, frame i for the i-th update request. It
// closes the connection after n frames.
func serve(ln net.Listener, n int, gen func(*console.Frame, int)) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriterSize(c, 1<<20)
	io.WriteString(c, "RFB 003.008\n")
	buf := make([]byte, 12)
	if _, err := io.ReadFull(br, buf); err != nil {
		return err
	}
	c.Write([]byte{1, 1})
	if _, err := io.ReadFull(br, buf[:1]); err != nil {
		return err
	}
	c.Write([]byte{0, 0, 0, 0})
	if _, err := io.ReadFull(br, buf[:1]); err != nil { // shared flag
		return err
	}
	init := binary.BigEndian.AppendUint16(nil, fbW)
	init = binary.BigEndian.AppendUint16(init, fbH)
	init = append(init, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0)
	init = binary.BigEndian.AppendUint32(init, 5)
	c.Write(append(init, "bench"...))
	f := &console.Frame{W: fbW, H: fbH, Pix: make([]uint32, fbW*fbH)}
	pattern(f, 0)
	pix := make([]byte, 4*fbW*fbH)
	sent := 0
	for {
		var t [1]byte
		if _, err := io.ReadFull(br, t[:]); err != nil {
			return nil
		}
		switch t[0] {
		case 0:
			_, err = io.ReadFull(br, make([]byte, 19))
		case 2:
			hdr := make([]byte, 3)
			if _, err = io.ReadFull(br, hdr); err == nil {
				_, err = io.ReadFull(br, make([]byte, 4*int(binary.BigEndian.Uint16(hdr[1:]))))
			}
		case 3:
			if _, err = io.ReadFull(br, make([]byte, 9)); err != nil {
				return err
			}
			if sent == n {
				return nil
			}
			gen(f, sent)
			sent++
			for i, p := range f.Pix {
				binary.LittleEndian.PutUint32(pix[4*i:], p)
			}
			hdr := []byte{0, 0, 0, 1, 0, 0, 0, 0}
			hdr = binary.BigEndian.AppendUint16(hdr, fbW)
			hdr = binary.BigEndian.AppendUint16(hdr, fbH)
			hdr = append(hdr, 0, 0, 0, 0) // raw
			bw.Write(hdr)
			bw.Write(pix)
			err = bw.Flush()
		default:
			return fmt.Errorf("client message type %d", t[0])
		}
		if err != nil {
			return err
		}
	}
}

// qemuWire measures one full screen of QEMU's firmware text screen in
// ZRLE and in raw: bytes on the wire and decode time.
func qemuWire() (string, error) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "vlab-bench-qemu")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	vsock, qsock := filepath.Join(dir, "vnc.sock"), filepath.Join(dir, "qmp.sock")
	cmd := exec.Command(bin, "-machine", "pc", "-accel", "tcg", "-m", "64", "-nodefaults", "-vga", "std",
		"-display", "none", "-vnc", "unix:"+vsock, "-qmp", "unix:"+qsock+",server=on,wait=off")
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), qemuWaitTime)
	defer cancel()
	for {
		if _, err := os.Stat(qsock); err == nil {
			break
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	mon, err := emulator.Dial(ctx, qsock)
	if err != nil {
		return "", err
	}
	defer mon.Close()
	// Let SeaBIOS draw its screen, then freeze it.
	time.Sleep(4 * time.Second)
	if err := mon.Execute(ctx, "stop", nil, nil); err != nil {
		return "", err
	}
	var rowsOut []string
	for _, enc := range []console.Encoding{console.EncodingRaw, console.EncodingZRLE} {
		t0 := time.Now()
		v, err := console.DialVNC(ctx, vsock, console.VNCOptions{Encodings: []console.Encoding{enc}})
		if err != nil {
			return "", err
		}
		for {
			w, h := v.Size()
			if st := v.Stats(); st.Pixels >= uint64(w*h) {
				break
			}
			select {
			case <-v.Updates():
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		d := time.Since(t0)
		st := v.Stats()
		w, h := v.Size()
		v.Close()
		rowsOut = append(rowsOut, fmt.Sprintf("| %s | %dx%d | %d | %.2f |", enc, w, h, st.Bytes, float64(d.Microseconds())/1000))
	}
	return strings.Join(rowsOut, "\n"), nil
}

func run(frames int, out string) error {
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	full := renderOnly(frames, pattern)
	cur := renderOnly(frames, cursor)
	fullP, err := pipeline(frames, pattern)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	curP, err := pipeline(frames, func(f *console.Frame, i int) { cursor(f, i) })
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	row := func(what string, m measure) string {
		return fmt.Sprintf("| %s | %d | %.1f | %.2f ms | %.0f | %d |", what, m.frames, m.fps(), m.msPerFrame(), m.perFrame(), m.changed)
	}
	wire, werr := qemuWire()
	if werr != nil {
		wire = "| (not measured: " + werr.Error() + ") | | | |"
	}
	body := fmt.Sprintf(`A %dx%d framebuffer rendered into %dx%d terminal cells (half blocks, 24-bit colour; the 4:3
picture fills 128x48 of them), measured with `+"`go run ./bench/vnc`"+`. "Full change" is a moving colour
field in which every cell changes every frame; "cursor" changes one 9x16 glyph per frame (the
rest of the screen stays). Renderer: frames already in memory. Whole client: an in-process RFB
server streams raw 1024x768 updates over a unix socket as fast as vlab's VNC session asks for
them; each update is decoded, copied out of the session and rendered, as the viewer does (the
first, full frame is not counted; updates that arrive while a frame renders coalesce, and a
cursor that blinked twice meanwhile leaves nothing to draw). Bytes are what the viewer writes to
the terminal.

| path | frames | frames/s | time/frame | bytes/frame | frames with output |
|---|---|---|---|---|---|
%s
%s
%s
%s

Target: at least %d frames/s (QEMU itself sends at most ~33 updates/s) and only changed cells redrawn:
a full change rewrites all 6144 picture cells, the cursor only the few cells it covers.

One full screen of QEMU's VGA text console (SeaBIOS, paused) as received by vlab's VNC session,
connect to the whole screen received:

| encoding | screen | bytes received | ms to the whole screen |
|---|---|---|---|
%s

Machine: %s; load average before the run %s (other work on the machine slows every row alike).
`, fbW, fbH, cols, rows,
		row("renderer, full change", full), row("renderer, cursor", cur),
		row("whole client, full change", fullP), row("whole client, cursor", curP),
		targetFPS, wire, results.Machine(), load)
	fmt.Print(body)
	return results.Write(out, "VNC viewer", body)
}
