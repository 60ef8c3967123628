package console

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"vlab/internal/fuzzseed"
)

// Fuzz targets for everything vlab's VNC client decodes from a server:
// the handshake, FramebufferUpdate with every encoding (raw, ZRLE and the
// DesktopSize, pointer-type and extended-key pseudo-encodings), the other
// server messages. Seeds are valid messages; run them all with
// scripts/fuzz.sh. (PPM screendumps are emulator's: FuzzDecodePPM there.)

// updateMsg encodes a FramebufferUpdate body (after the type byte).
func updateMsg(rs ...rect) []byte {
	var b bytes.Buffer
	b.WriteByte(0)
	binary.Write(&b, binary.BigEndian, uint16(len(rs)))
	for _, r := range rs {
		binary.Write(&b, binary.BigEndian, [4]uint16{uint16(r.x), uint16(r.y), uint16(r.w), uint16(r.h)})
		binary.Write(&b, binary.BigEndian, int32(r.enc))
		b.Write(r.data)
	}
	return b.Bytes()
}

// zrleRect is the wire form of a ZRLE rectangle of img (stride w) starting
// a new zlib stream.
func zrleRect(img []uint32, w, x, y, rw, rh int) rect {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(zrleEncode(img, w, x, y, rw, rh))
	zw.Flush()
	data := binary.BigEndian.AppendUint32(nil, uint32(z.Len()))
	return rect{x: x, y: y, w: rw, h: rh, enc: EncodingZRLE, data: append(data, z.Bytes()...)}
}

// updateSeeds are valid updates for a 70×50 screen.
func updateSeeds() [][]byte {
	img := testImage(70, 50, 1)
	return [][]byte{
		updateMsg(rect{x: 1, y: 2, w: 3, h: 2, enc: EncodingRaw, data: rawPixels([]uint32{1, 2, 3, 4, 5, 6})}),
		updateMsg(zrleRect(img, 70, 0, 0, 70, 50)),
		updateMsg(rect{w: 80, h: 60, enc: EncodingDesktopSize}, rect{x: 1, enc: EncodingPointerTypeChange}, rect{enc: EncodingQEMUExtKey}),
		updateMsg(zrleRect(img, 70, 5, 5, 64, 40), rect{w: 1, h: 1, enc: EncodingRaw, data: rawPixels([]uint32{0xffffff})}),
	}
}

func FuzzVNCUpdate(f *testing.F) {
	var seeds [][]any
	for _, s := range updateSeeds() {
		seeds = append(seeds, []any{s})
	}
	// What made the client allocate without bound before it was fixed: a
	// 16384x16384 DesktopSize, and a ZRLE rectangle inflating to 8 MiB.
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 8<<20))
	zw.Flush()
	bomb := rect{w: 64, h: 64, enc: EncodingZRLE, data: append(binary.BigEndian.AppendUint32(nil, uint32(z.Len())), z.Bytes()...)}
	seeds = append(seeds, []any{updateMsg(rect{w: 16384, h: 16384, enc: EncodingDesktopSize})}, []any{updateMsg(bomb)})
	fuzzseed.Add(f, seeds...)
	f.Fuzz(func(t *testing.T, data []byte) {
		v := &VNC{rects: map[Encoding]uint64{}, upd: make(chan struct{}, 1), done: make(chan struct{})}
		v.fb.resize(70, 50)
		_ = v.readUpdate(bytes.NewReader(data))
		if v.fb.W*v.fb.H != len(v.fb.Pix) || checkFramebuffer(v.fb.W, v.fb.H) != nil {
			t.Fatalf("framebuffer %dx%d with %d pixels", v.fb.W, v.fb.H, len(v.fb.Pix))
		}
	})
}

// scriptConn is a net.Conn whose reads come from a script and whose writes
// go nowhere.
type scriptConn struct {
	net.Conn
	r io.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptConn) Close() error                { return nil }

// handshakeMsg is a server's side of a handshake offering security types
// types, with a w×h ServerInit named name.
func handshakeMsg(types []byte, w, h int, name string) []byte {
	var b bytes.Buffer
	b.WriteString("RFB 003.008\n")
	b.WriteByte(byte(len(types)))
	b.Write(types)
	if bytes.IndexByte(types, 2) >= 0 {
		b.Write(make([]byte, 16)) // VNC auth challenge
	}
	b.Write([]byte{0, 0, 0, 0})
	binary.Write(&b, binary.BigEndian, [2]uint16{uint16(w), uint16(h)})
	b.Write([]byte{32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0})
	binary.Write(&b, binary.BigEndian, uint32(len(name)))
	b.WriteString(name)
	return b.Bytes()
}

func FuzzVNCHandshake(f *testing.F) {
	fuzzseed.Add(f,
		[]any{handshakeMsg([]byte{1}, 640, 480, "QEMU (vm1)")},
		[]any{handshakeMsg([]byte{2}, 1024, 768, "secret")},
		[]any{append([]byte("RFB 003.008\n\x00"), 0, 0, 0, 5, 'n', 'o', 'p', 'e', '!')},
		[]any{[]byte("RFB 003.008\n\x01\x01\x00\x00\x00\x01\x00\x00\x00\x03bad")},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &rfbConn{Conn: &scriptConn{r: bytes.NewReader(data)}}
		c.r = bufio.NewReader(c.Conn)
		if err := c.handshake(VNCOptions{Password: "pw"}); err != nil {
			return
		}
		if len(c.replay) < 12+6+24 {
			t.Fatalf("handshake succeeded with a %d-byte replay", len(c.replay))
		}
		init := c.replay[18:]
		w, h := int(binary.BigEndian.Uint16(init)), int(binary.BigEndian.Uint16(init[2:]))
		if checkFramebuffer(w, h) != nil || len(init)-24 > maxDesktopName {
			t.Fatalf("handshake accepted %dx%d, name of %d bytes", w, h, len(init)-24)
		}
	})
}

// FuzzVNCSession runs a whole client session: a valid handshake, then the
// fuzzer's bytes as the server's messages, over an in-memory connection.
// The client must end the session (the server hangs up after the bytes)
// without panicking.
func FuzzVNCSession(f *testing.F) {
	var seeds [][]any
	for _, s := range updateSeeds() {
		seeds = append(seeds, []any{append([]byte{0}, s...)})
	}
	seeds = append(seeds,
		[]any{[]byte{2, 2, 3, 0, 0, 0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}}, // bell, bell, cut text
		// Colour map entries 250..259: panicked go-vnc's reader (index 256 of a 256-entry map).
		[]any{append([]byte{1, 0, 0, 250, 0, 10}, make([]byte, 60)...)},
		[]any{append(append([]byte{3, 0, 0, 0, 0, 0, 0, 2, 'h', 'i', 0}, updateSeeds()[0]...), 150)}, // cut text, update, unknown type
	)
	fuzzseed.Add(f, seeds...)
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, srv := net.Pipe()
		setup := make(chan struct{})
		go func() {
			// The client's handshake answers (14 bytes), SetPixelFormat
			// (20), SetEncodings (24) and its first update request (10).
			io.CopyN(io.Discard, srv, 14+20+24+10)
			close(setup)
			io.Copy(io.Discard, srv)
		}()
		go func() {
			defer srv.Close()
			srv.Write(handshakeMsg([]byte{1}, 70, 50, "fuzz"))
			<-setup
			srv.Write(data)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := NewVNC(ctx, cli, VNCOptions{})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		select {
		case <-v.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end after the server hung up")
		}
		if errors.Is(v.Err(), context.DeadlineExceeded) {
			t.Fatal(v.Err())
		}
		if w, h := v.Size(); checkFramebuffer(w, h) != nil {
			t.Fatalf("framebuffer %dx%d", w, h)
		}
	})
}
