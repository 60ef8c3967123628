package console

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fixture"
)

// requireQEMUBin fails (CI) or skips (locally) when bin is missing.
func requireQEMUBin(t *testing.T, bin string) string {
	t.Helper()
	return fixture.Program(t, bin)
}

// startQEMU runs a diskless x86 QEMU, paused, with a VGA display on a VNC
// unix socket: SeaBIOS draws its text screen once it runs.
func startQEMU(t *testing.T) (vncSock string, mon *emulator.Monitor) {
	t.Helper()
	bin := requireQEMUBin(t, "qemu-system-x86_64")
	dir, err := os.MkdirTemp("", "vlab-vnc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	vncSock = filepath.Join(dir, "vnc.sock")
	qmpSock := filepath.Join(dir, "qmp.sock")
	cmd := exec.Command(bin, "-machine", "pc", "-accel", "tcg", "-m", "64", "-nodefaults", "-vga", "std",
		"-display", "none", "-vnc", "unix:"+vncSock, "-qmp", "unix:"+qmpSock+",server=on,wait=off", "-S")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, e1 := os.Stat(vncSock)
		_, e2 := os.Stat(qmpSock)
		if e1 == nil && e2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("qemu did not open its sockets")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mon, err = emulator.Dial(ctx, qmpSock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	return vncSock, mon
}

// waitFrame waits for updates until cond holds for the session's frame.
func waitFrame(t *testing.T, v *VNC, what string, cond func(*Frame) bool) *Frame {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		f := v.Snapshot(nil)
		if cond(f) {
			return f
		}
		select {
		case <-v.Updates():
		case <-v.Done():
			t.Fatalf("waiting for %s: session ended: %v", what, v.Err())
		case <-deadline:
			t.Fatalf("timed out waiting for %s (screen %dx%d)", what, f.W, f.H)
		}
	}
}

func lit(f *Frame) int {
	n := 0
	for _, p := range f.Pix {
		if p != 0 {
			n++
		}
	}
	return n
}

// TestVNCAgainstQEMU checks the client against QEMU's VNC server: the
// DesktopSize change when the firmware sets its text mode, and that the
// ZRLE and raw decoders and QEMU's own screendump agree pixel for pixel.
func TestVNCAgainstQEMU(t *testing.T) {
	sock, mon := startQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	zr, err := DialVNC(ctx, sock, VNCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	w0, h0 := zr.Size()
	if err := mon.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	// SeaBIOS switches to 80x25 text mode: 720x400 pixels.
	waitFrame(t, zr, "the 720x400 text mode with text on it", func(f *Frame) bool {
		return f.W == 720 && f.H == 400 && lit(f) > 2000
	})
	if w0 == 720 && h0 == 400 {
		t.Logf("the screen was already 720x400 before the firmware ran: DesktopSize not exercised")
	} else if zr.Stats().Rects[EncodingDesktopSize] == 0 {
		t.Errorf("size went from %dx%d to 720x400 without a DesktopSize rectangle", w0, h0)
	}
	// Freeze the guest (that stops the text cursor's blinking too) and
	// compare what each way of looking at the screen sees.
	time.Sleep(time.Second) // let the firmware finish a line; not required
	if err := mon.Execute(ctx, "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	// A full refresh: every pixel again (QEMU may split it over several
	// updates).
	n := zr.Stats().Pixels
	if err := zr.Refresh(); err != nil {
		t.Fatal(err)
	}
	waitFrame(t, zr, "a full refresh", func(f *Frame) bool { return zr.Stats().Pixels >= n+uint64(f.W*f.H) })

	raw, err := DialVNC(ctx, sock, VNCOptions{Encodings: []Encoding{EncodingRaw}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	waitFrame(t, raw, "the raw session's whole first screen", func(f *Frame) bool {
		return f.W == 720 && raw.Stats().Pixels >= uint64(f.W*f.H)
	})
	rf := raw.Snapshot(nil) // the frame as of the last update counted
	zf := zr.Snapshot(nil)

	shot := filepath.Join(t.TempDir(), "shot.png")
	if err := mon.Execute(ctx, "screendump", map[string]any{"filename": shot, "format": "png"}, nil); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(fh)
	fh.Close()
	if err != nil {
		t.Fatal(err)
	}
	sf := FrameOf(img)
	if sf.W != zf.W || sf.H != zf.H || rf.W != zf.W || rf.H != zf.H {
		t.Fatalf("sizes: zrle %dx%d raw %dx%d screendump %dx%d", zf.W, zf.H, rf.W, rf.H, sf.W, sf.H)
	}
	for i := range zf.Pix {
		if zf.Pix[i] != rf.Pix[i] || zf.Pix[i] != sf.Pix[i] {
			t.Fatalf("pixel %d,%d: zrle %06x raw %06x screendump %06x", i%zf.W, i/zf.W, zf.Pix[i], rf.Pix[i], sf.Pix[i])
		}
	}
	zs, rs := zr.Stats(), raw.Stats()
	if zs.Rects[EncodingZRLE] == 0 || zs.Rects[EncodingRaw] != 0 || rs.Rects[EncodingRaw] == 0 || rs.Rects[EncodingZRLE] != 0 {
		t.Errorf("encodings used: zrle session %v, raw session %v", zs.Rects, rs.Rects)
	}
	t.Logf("bytes received: zrle session %d (two full screens and more), raw session %d (one full screen)", zs.Bytes, rs.Bytes)
	// A PS/2-only machine has a relative pointer, and QEMU says so.
	if m := zr.PointerMode(); m != PointerRelative {
		t.Errorf("pointer mode %v on a machine without a tablet, want relative", m)
	}
}
