package console

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A hostile VNC server (the guest's, a remote one a viewer connects to)
// must not make vlab's client allocate what the server asks for: every
// case below returns a one-line error and the client's allocations stay
// under allocBound while it handles the message.
const allocBound = 64 << 20

// allocated runs f and returns the bytes the whole program allocated on
// the heap meanwhile (runtime.MemStats.TotalAlloc counts every allocation,
// freed or not).
func allocated(f func()) uint64 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// hostileRFB serves one connection on a unix socket with script and
// returns the socket path.
func hostileRFB(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vnc.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		script(c)
	}()
	return sock
}

// serverInit runs the server side of the handshake up to ServerInit, which
// announces a w×h framebuffer and a desktop name of nameLen bytes of which
// name is sent.
func serverInit(c net.Conn, w, h int, nameLen uint32, name string) error {
	if _, err := io.WriteString(c, "RFB 003.008\n"); err != nil {
		return err
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if _, err := c.Write([]byte{1, 1}); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return err
	}
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil { // shared flag
		return err
	}
	var init bytes.Buffer
	binary.Write(&init, binary.BigEndian, uint16(w))
	binary.Write(&init, binary.BigEndian, uint16(h))
	init.Write([]byte{32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0})
	binary.Write(&init, binary.BigEndian, nameLen)
	init.WriteString(name)
	_, err := c.Write(init.Bytes())
	return err
}

// drain reads what the client sends until the connection closes.
func drain(c net.Conn) { io.Copy(io.Discard, c) }

func dialHostile(t *testing.T, sock string) (*VNC, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return DialVNC(ctx, sock, VNCOptions{})
}

// sessionErr waits for the session to end and returns why.
func sessionErr(t *testing.T, v *VNC) error {
	t.Helper()
	select {
	case <-v.Done():
		return v.Err()
	case <-time.After(10 * time.Second):
		t.Fatal("the session went on after a hostile message")
	}
	return nil
}

func checkOneLine(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line mentioning %q", err, want)
	}
}

// dialAllocated dials the hostile server at sock and returns how many bytes
// the client allocated meanwhile and the dial's error.
func dialAllocated(t *testing.T, sock string) (uint64, error) {
	var err error
	n := allocated(func() {
		var v *VNC
		if v, err = dialHostile(t, sock); err == nil {
			v.Close()
		}
	})
	return n, err
}

func TestVNCRefusesHugeServerInit(t *testing.T) {
	sock := hostileRFB(t, func(c net.Conn) {
		if serverInit(c, 16384, 16384, 4, "huge") == nil {
			drain(c)
		}
	})
	n, err := dialAllocated(t, sock)
	checkOneLine(t, err, "framebuffer 16384x16384")
	if n > allocBound {
		t.Errorf("a 16384x16384 ServerInit made the client allocate %d MiB", n>>20)
	}
}

func TestVNCRefusesHugeDesktopName(t *testing.T) {
	sock := hostileRFB(t, func(c net.Conn) {
		if serverInit(c, 64, 48, 1<<30, "only a few bytes of it") == nil {
			drain(c)
		}
	})
	n, err := dialAllocated(t, sock)
	checkOneLine(t, err, "desktop name")
	if n > allocBound {
		t.Errorf("a 1 GiB desktop name length made the client allocate %d MiB", n>>20)
	}
}

func TestVNCRefusesHugeDesktopSize(t *testing.T) {
	v, f := startFakeRFB(t, 64, 48, VNCOptions{})
	f.next(3)
	var err error
	n := allocated(func() {
		f.update(rect{w: 16384, h: 16384, enc: EncodingDesktopSize})
		err = sessionErr(t, v)
	})
	checkOneLine(t, err, "framebuffer 16384x16384")
	if n > allocBound {
		t.Errorf("a 16384x16384 DesktopSize made the client allocate %d MiB", n>>20)
	}
}

func TestVNCStopsZRLEBomb(t *testing.T) {
	// 128 MiB of zeros compress to about 128 KiB; a 64×64 rectangle holds
	// at most a few KiB of ZRLE tiles.
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 128; i++ {
		zw.Write(zeros)
	}
	zw.Flush()
	data := binary.BigEndian.AppendUint32(nil, uint32(z.Len()))
	data = append(data, z.Bytes()...)
	zeros = nil
	v, f := startFakeRFB(t, 64, 64, VNCOptions{})
	f.next(3)
	var err error
	n := allocated(func() {
		f.update(rect{w: 64, h: 64, enc: EncodingZRLE, data: data})
		err = sessionErr(t, v)
	})
	checkOneLine(t, err, "zrle")
	if n > allocBound {
		t.Errorf("a ZRLE bomb made the client allocate %d MiB", n>>20)
	}
}

// TestVNCCutTextAndColourMapAreHarmless: ServerCutText is skipped without
// holding it and SetColorMapEntries past the 256-entry map does not crash
// the client; the session goes on.
func TestVNCCutTextAndColourMapAreHarmless(t *testing.T) {
	v, f := startFakeRFB(t, 8, 8, VNCOptions{Encodings: []Encoding{EncodingRaw}})
	f.next(3)
	var msg bytes.Buffer
	msg.Write([]byte{1, 0})                           // SetColorMapEntries, padding
	binary.Write(&msg, binary.BigEndian, uint16(250)) // first colour
	binary.Write(&msg, binary.BigEndian, uint16(10))  // 10 colours: 250..259
	msg.Write(make([]byte, 6*10))
	msg.Write([]byte{3, 0, 0, 0}) // ServerCutText, padding
	binary.Write(&msg, binary.BigEndian, uint32(4<<20))
	msg.Write(bytes.Repeat([]byte{'t'}, 4<<20))
	if _, err := f.conn.Write(msg.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.update(rect{w: 1, h: 1, enc: EncodingRaw, data: rawPixels([]uint32{0xabcdef})})
	waitUpdate(t, v)
	if got := v.Snapshot(nil).At(0, 0); got != 0xabcdef {
		t.Errorf("pixel after cut text = %06x", got)
	}
}

func TestVNCRefusesHugeCutText(t *testing.T) {
	v, f := startFakeRFB(t, 8, 8, VNCOptions{})
	f.next(3)
	var err error
	n := allocated(func() {
		if _, err := f.conn.Write([]byte{3, 0, 0, 0, 0x40, 0, 0, 0, 'x'}); err != nil { // 1 GiB
			t.Fatal(err)
		}
		err = sessionErr(t, v)
	})
	checkOneLine(t, err, "cut text")
	if n > allocBound {
		t.Errorf("a 1 GiB cut text length made the client allocate %d MiB", n>>20)
	}
}

func TestVNCUnknownServerMessageEndsSession(t *testing.T) {
	v, f := startFakeRFB(t, 8, 8, VNCOptions{})
	f.next(3)
	if _, err := f.conn.Write([]byte{77}); err != nil {
		t.Fatal(err)
	}
	checkOneLine(t, sessionErr(t, v), "message type 77")
}

// TestVNCPasswordHandshake: with a password the client picks VNC
// authentication, answers the challenge with 16 bytes, and the session
// works after vlab's own handshake hands over to go-vnc.
func TestVNCPasswordHandshake(t *testing.T) {
	got := make(chan []byte, 1)
	sock := hostileRFB(t, func(c net.Conn) {
		io.WriteString(c, "RFB 003.008\n")
		buf := make([]byte, 12)
		io.ReadFull(c, buf)
		c.Write([]byte{2, 1, 2}) // VNC auth or none
		io.ReadFull(c, buf[:1])
		if buf[0] != 2 {
			got <- nil
			return
		}
		challenge := bytes.Repeat([]byte{0x5a}, 16)
		c.Write(challenge)
		resp := make([]byte, 16)
		if _, err := io.ReadFull(c, resp); err != nil {
			got <- nil
			return
		}
		got <- resp
		c.Write([]byte{0, 0, 0, 0})
		io.ReadFull(c, buf[:1])
		var init bytes.Buffer
		binary.Write(&init, binary.BigEndian, [2]uint16{4, 4})
		init.Write([]byte{32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0})
		binary.Write(&init, binary.BigEndian, uint32(2))
		init.WriteString("pw")
		c.Write(init.Bytes())
		// SetPixelFormat, SetEncodings (5 encodings), update request.
		io.ReadFull(c, make([]byte, 20+4+4*5+10))
		var upd bytes.Buffer
		upd.Write(updateMsgFull(rect{w: 1, h: 1, enc: EncodingRaw, data: rawPixels([]uint32{0x123456})}))
		c.Write(upd.Bytes())
		drain(c)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := DialVNC(ctx, sock, VNCOptions{Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if resp := <-got; len(resp) != 16 || bytes.Equal(resp, bytes.Repeat([]byte{0x5a}, 16)) {
		t.Fatalf("challenge response % x", resp)
	}
	waitUpdate(t, v)
	if v.Name() != "pw" || v.Snapshot(nil).At(0, 0) != 0x123456 {
		t.Errorf("name %q, pixel %06x", v.Name(), v.Snapshot(nil).At(0, 0))
	}
}

// updateMsgFull is a FramebufferUpdate with its type byte.
func updateMsgFull(rs ...rect) []byte { return append([]byte{0}, updateMsg(rs...)...) }
