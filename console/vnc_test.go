package console

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeRFB is the server side of one RFB connection, scripted by a test.
type fakeRFB struct {
	t      *testing.T
	conn   net.Conn
	shared byte
	msgs   chan clientMsg
}

// clientMsg is one message the client sent.
type clientMsg struct {
	typ  byte
	body []byte // everything after the type byte
}

// startFakeRFB listens on a unix socket, dials it with DialVNC and runs the
// server side of the handshake: no authentication, a w×h framebuffer.
func startFakeRFB(t *testing.T, w, h int, opts VNCOptions) (*VNC, *fakeRFB) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vnc.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := make(chan *fakeRFB, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srv <- nil
			return
		}
		f := &fakeRFB{t: t, conn: c, msgs: make(chan clientMsg, 256)}
		if err := f.handshake(w, h); err != nil {
			t.Errorf("fake rfb handshake: %v", err)
			c.Close()
			srv <- nil
			return
		}
		srv <- f
		f.readLoop()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := DialVNC(ctx, sock, opts)
	if err != nil {
		t.Fatal(err)
	}
	f := <-srv
	if f == nil {
		t.Fatal("fake rfb server failed")
	}
	t.Cleanup(func() { v.Close(); f.conn.Close() })
	return v, f
}

func (f *fakeRFB) handshake(w, h int) error {
	c := f.conn
	if _, err := io.WriteString(c, "RFB 003.008\n"); err != nil {
		return err
	}
	ver := make([]byte, 12)
	if _, err := io.ReadFull(c, ver); err != nil {
		return err
	}
	if _, err := c.Write([]byte{1, 1}); err != nil { // one security type: None
		return err
	}
	var one [1]byte
	if _, err := io.ReadFull(c, one[:]); err != nil || one[0] != 1 {
		return errors.New("client did not choose None")
	}
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, one[:]); err != nil {
		return err
	}
	f.shared = one[0]
	var init bytes.Buffer
	binary.Write(&init, binary.BigEndian, uint16(w))
	binary.Write(&init, binary.BigEndian, uint16(h))
	// 32 bpp, depth 24, little endian, true colour, 255/255/255, 16/8/0.
	init.Write([]byte{32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0})
	binary.Write(&init, binary.BigEndian, uint32(4))
	init.WriteString("fake")
	_, err := c.Write(init.Bytes())
	return err
}

func (f *fakeRFB) readLoop() {
	defer close(f.msgs)
	c := f.conn
	for {
		var typ [1]byte
		if _, err := io.ReadFull(c, typ[:]); err != nil {
			return
		}
		var n int
		switch typ[0] {
		case 0:
			n = 19
		case 2:
			var hdr [3]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			cnt := int(binary.BigEndian.Uint16(hdr[1:]))
			body := make([]byte, 4*cnt)
			if _, err := io.ReadFull(c, body); err != nil {
				return
			}
			f.msgs <- clientMsg{typ: 2, body: append(hdr[:], body...)}
			continue
		case 3:
			n = 9
		case 4:
			n = 7
		case 5:
			n = 5
		case 255:
			n = 11
		default:
			f.t.Errorf("fake rfb: unexpected client message type %d", typ[0])
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		f.msgs <- clientMsg{typ: typ[0], body: body}
	}
}

// next returns the next client message of type want, skipping pixel
// format, encodings and update request messages of other types.
func (f *fakeRFB) next(want byte) clientMsg {
	f.t.Helper()
	for {
		select {
		case m, ok := <-f.msgs:
			if !ok {
				f.t.Fatalf("client connection ended waiting for message type %d", want)
			}
			if m.typ != want && (m.typ == 0 || m.typ == 2 || m.typ == 3) {
				continue // setup and update requests the test does not look at
			}
			if m.typ != want {
				f.t.Fatalf("client sent message type %d, want %d", m.typ, want)
			}
			return m
		case <-time.After(10 * time.Second):
			f.t.Fatalf("no client message type %d", want)
		}
	}
}

// rect is one rectangle header plus its payload.
type rect struct {
	x, y, w, h int
	enc        Encoding
	data       []byte
}

// update sends a FramebufferUpdate with the given rectangles.
func (f *fakeRFB) update(rs ...rect) {
	f.t.Helper()
	var b bytes.Buffer
	b.Write([]byte{0, 0})
	binary.Write(&b, binary.BigEndian, uint16(len(rs)))
	for _, r := range rs {
		binary.Write(&b, binary.BigEndian, uint16(r.x))
		binary.Write(&b, binary.BigEndian, uint16(r.y))
		binary.Write(&b, binary.BigEndian, uint16(r.w))
		binary.Write(&b, binary.BigEndian, uint16(r.h))
		binary.Write(&b, binary.BigEndian, int32(r.enc))
		b.Write(r.data)
	}
	if _, err := f.conn.Write(b.Bytes()); err != nil {
		f.t.Fatal(err)
	}
}

// waitUpdate waits for the client to apply an update.
func waitUpdate(t *testing.T, v *VNC) {
	t.Helper()
	select {
	case <-v.Updates():
	case <-v.Done():
		t.Fatalf("session ended: %v", v.Err())
	case <-time.After(10 * time.Second):
		t.Fatal("no update applied")
	}
}

func rawPixels(pix []uint32) []byte {
	b := make([]byte, 4*len(pix))
	for i, p := range pix {
		binary.LittleEndian.PutUint32(b[4*i:], p)
	}
	return b
}

func TestVNCSetupAsksForSharedSessionAndFormat(t *testing.T) {
	v, f := startFakeRFB(t, 64, 48, VNCOptions{})
	if f.shared != 1 {
		t.Errorf("ClientInit shared flag = %d, want 1 (QEMU drops other viewers for an exclusive client)", f.shared)
	}
	pf := f.next(0).body
	// pad(3) bpp depth big-endian true-colour rmax(2) gmax(2) bmax(2) shifts(3)
	want := []byte{0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0}
	if !bytes.Equal(pf[:16], want) {
		t.Errorf("SetPixelFormat = % x, want % x", pf[:16], want)
	}
	enc := f.next(2).body
	var got []Encoding
	for i := 3; i+4 <= len(enc); i += 4 {
		got = append(got, Encoding(int32(binary.BigEndian.Uint32(enc[i:]))))
	}
	wantEnc := []Encoding{EncodingZRLE, EncodingRaw, EncodingDesktopSize, EncodingPointerTypeChange, EncodingQEMUExtKey}
	if len(got) != len(wantEnc) {
		t.Fatalf("SetEncodings = %v, want %v", got, wantEnc)
	}
	for i := range got {
		if got[i] != wantEnc[i] {
			t.Fatalf("SetEncodings = %v, want %v", got, wantEnc)
		}
	}
	req := f.next(3).body
	if req[0] != 0 || binary.BigEndian.Uint16(req[5:]) != 64 || binary.BigEndian.Uint16(req[7:]) != 48 {
		t.Errorf("first update request = % x, want a full non-incremental 64x48 request", req)
	}
	if v.Name() != "fake" {
		t.Errorf("desktop name %q", v.Name())
	}
	if w, h := v.Size(); w != 64 || h != 48 {
		t.Errorf("size %dx%d", w, h)
	}
}

func TestVNCRawUpdateThenIncrementalRequest(t *testing.T) {
	v, f := startFakeRFB(t, 8, 6, VNCOptions{Encodings: []Encoding{EncodingRaw}})
	f.next(3)
	pix := []uint32{0x112233, 0x445566, 0x778899, 0xaabbcc, 0xddeeff, 0x010203}
	f.update(rect{x: 5, y: 3, w: 3, h: 2, enc: EncodingRaw, data: rawPixels(pix)})
	waitUpdate(t, v)
	fr := v.Snapshot(nil)
	for j := 0; j < 2; j++ {
		for i := 0; i < 3; i++ {
			if got := fr.At(5+i, 3+j); got != pix[j*3+i] {
				t.Errorf("pixel %d,%d = %06x, want %06x", 5+i, 3+j, got, pix[j*3+i])
			}
		}
	}
	if fr.At(0, 0) != 0 {
		t.Errorf("untouched pixel = %06x", fr.At(0, 0))
	}
	req := f.next(3).body
	if req[0] != 1 {
		t.Errorf("request after an update is not incremental: % x", req)
	}
	st := v.Stats()
	if st.Updates != 1 || st.Rects[EncodingRaw] != 1 || st.Pixels != 6 || st.Bytes == 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestVNCDesktopSizeResizesAndRequestsAll(t *testing.T) {
	v, f := startFakeRFB(t, 640, 480, VNCOptions{})
	f.next(3)
	f.update(rect{w: 720, h: 400, enc: EncodingDesktopSize})
	waitUpdate(t, v)
	if w, h := v.Size(); w != 720 || h != 400 {
		t.Fatalf("size after DesktopSize = %dx%d, want 720x400", w, h)
	}
	if fr := v.Snapshot(nil); len(fr.Pix) != 720*400 {
		t.Fatalf("frame has %d pixels", len(fr.Pix))
	}
	req := f.next(3).body
	if req[0] != 0 || binary.BigEndian.Uint16(req[5:]) != 720 || binary.BigEndian.Uint16(req[7:]) != 400 {
		t.Errorf("request after a resize = % x, want a full non-incremental 720x400 one", req)
	}
}

func TestVNCRejectsRectangleOutsideScreen(t *testing.T) {
	v, f := startFakeRFB(t, 10, 10, VNCOptions{})
	f.next(3)
	f.update(rect{x: 8, y: 0, w: 4, h: 1, enc: EncodingRaw, data: make([]byte, 16)})
	select {
	case <-v.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session survived a rectangle outside the screen")
	}
	if v.Err() == nil {
		t.Fatal("no error")
	}
}

func TestVNCPointerAbsoluteAndRelative(t *testing.T) {
	v, f := startFakeRFB(t, 100, 50, VNCOptions{})
	f.update(rect{x: 1, enc: EncodingPointerTypeChange})
	waitUpdate(t, v)
	if m := v.PointerMode(); m != PointerAbsolute {
		t.Fatalf("pointer mode %v, want absolute", m)
	}
	ptr := func() (Buttons, int, int) {
		b := f.next(5).body
		return Buttons(b[0]), int(binary.BigEndian.Uint16(b[1:])), int(binary.BigEndian.Uint16(b[3:]))
	}
	cases := []struct {
		x, y   int
		b      Buttons
		wx, wy int
	}{
		{0, 0, ButtonLeft, 0, 0},
		{99, 49, 0, 99, 49},
		{500, -7, ButtonRight | ButtonWheelDown, 99, 0}, // clamped to the screen
	}
	for _, c := range cases {
		if err := v.Pointer(c.x, c.y, c.b); err != nil {
			t.Fatal(err)
		}
		b, x, y := ptr()
		if b != c.b || x != c.wx || y != c.wy {
			t.Errorf("Pointer(%d,%d,%d) sent %d,%d buttons %d; want %d,%d buttons %d", c.x, c.y, c.b, x, y, b, c.wx, c.wy, c.b)
		}
	}
	// A PS/2 guest: QEMU reads coordinates as movements from 0x7fff.
	f.update(rect{x: 0, enc: EncodingPointerTypeChange})
	waitUpdate(t, v)
	if m := v.PointerMode(); m != PointerRelative {
		t.Fatalf("pointer mode %v, want relative", m)
	}
	v.Pointer(90, 40, 0)
	if _, x, y := ptr(); x != 0x7fff-9 || y != 0x7fff+40 {
		t.Errorf("relative move from 99,0 to 90,40 sent %#x,%#x", x, y)
	}
}

func TestVNCKeysAndExtendedKeys(t *testing.T) {
	v, f := startFakeRFB(t, 10, 10, VNCOptions{})
	// Before QEMU acknowledges extended keys, KeyCode falls back to keysyms.
	if err := v.KeyCode(KeysymDelete, 0xd3, true); err != nil {
		t.Fatal(err)
	}
	k := f.next(4).body
	if k[0] != 1 || binary.BigEndian.Uint32(k[3:]) != KeysymDelete {
		t.Errorf("key event % x", k)
	}
	f.update(rect{enc: EncodingQEMUExtKey})
	waitUpdate(t, v)
	if !v.ExtendedKeys() {
		t.Fatal("extended keys not noted")
	}
	if err := v.CtrlAltDel(); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		down      uint16
		sym, scan uint32
	}{
		{1, KeysymControlL, 0x1d}, {1, KeysymAltL, 0x38}, {1, KeysymDelete, 0xd3},
		{0, KeysymDelete, 0xd3}, {0, KeysymAltL, 0x38}, {0, KeysymControlL, 0x1d},
	}
	for _, w := range want {
		m := f.next(255).body
		if m[0] != 0 || binary.BigEndian.Uint16(m[1:]) != w.down || binary.BigEndian.Uint32(m[3:]) != w.sym || binary.BigEndian.Uint32(m[7:]) != w.scan {
			t.Errorf("extended key event % x, want down=%d keysym=%#x scancode=%#x", m, w.down, w.sym, w.scan)
		}
	}
	// Type presses Shift for shifted characters: QEMU would type "4" for a
	// bare "$".
	if err := v.Type("a$"); err != nil {
		t.Fatal(err)
	}
	wantKeys := []struct {
		down bool
		sym  uint32
	}{{true, 'a'}, {false, 'a'}, {true, KeysymShiftL}, {true, '$'}, {false, '$'}, {false, KeysymShiftL}}
	for _, w := range wantKeys {
		k := f.next(4).body
		if (k[0] == 1) != w.down || binary.BigEndian.Uint32(k[3:]) != w.sym {
			t.Errorf("key event % x, want down=%v keysym=%#x", k, w.down, w.sym)
		}
	}
}

func TestVNCServerGoneEndsSession(t *testing.T) {
	v, f := startFakeRFB(t, 10, 10, VNCOptions{})
	f.conn.Close()
	select {
	case <-v.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end when the server went away")
	}
	if v.Err() == nil {
		t.Error("Err is nil after the server went away")
	}
	if err := v.Pointer(1, 1, 0); err == nil {
		t.Error("Pointer on an ended session succeeded")
	}
}

func TestVNCHandshakeHonoursContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(30 * time.Second) // never greets
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := DialVNC(ctx, sock, VNCOptions{}); err == nil {
		t.Fatal("DialVNC succeeded against a server that never greets")
	}
}

func TestVNCZRLEAcrossRectangles(t *testing.T) {
	const w, h = 200, 140
	v, f := startFakeRFB(t, w, h, VNCOptions{})
	f.next(3)
	img := testImage(w, h, 1)
	var zbuf bytes.Buffer
	zw := zlib.NewWriter(&zbuf)
	// Two rectangles from one zlib stream, each ending in a sync flush, as
	// QEMU sends them; the second one's tiles refer back into the first's
	// output through the shared window.
	send := func(x, y, rw, rh int) {
		zbuf.Reset()
		if _, err := zw.Write(zrleEncode(img, w, x, y, rw, rh)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
		data := binary.BigEndian.AppendUint32(nil, uint32(zbuf.Len()))
		f.update(rect{x: x, y: y, w: rw, h: rh, enc: EncodingZRLE, data: append(data, zbuf.Bytes()...)})
		waitUpdate(t, v)
	}
	send(0, 0, w, 70)
	send(0, 70, w, 70)
	send(30, 20, 130, 100) // partial tiles at both edges, same pixels again
	fr := v.Snapshot(nil)
	for i := range img {
		if fr.Pix[i] != img[i] {
			t.Fatalf("pixel %d,%d = %06x, want %06x", i%w, i/w, fr.Pix[i], img[i])
		}
	}
	if n := v.Stats().Rects[EncodingZRLE]; n != 3 {
		t.Errorf("%d zrle rectangles counted", n)
	}
}
