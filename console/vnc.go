package console

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	vnc "github.com/mitchellh/go-vnc"
)

// Encoding is an RFB encoding number, as sent in SetEncodings.
type Encoding int32

// The encodings vlab's VNC client understands. The negative ones are
// pseudo-encodings: they announce client features, carry no pixels.
const (
	EncodingRaw  Encoding = 0
	EncodingZRLE Encoding = 16
	// EncodingDesktopSize lets the server announce a new framebuffer size
	// (the guest changed resolution).
	EncodingDesktopSize Encoding = -223
	// EncodingPointerTypeChange is QEMU's pointer-motion-change
	// pseudo-encoding: the server says whether the guest's current pointer
	// device is absolute (a tablet) or relative (a PS/2 mouse).
	EncodingPointerTypeChange Encoding = -257
	// EncodingQEMUExtKey announces support for QEMU's extended key event,
	// which carries the XT scancode beside the keysym.
	EncodingQEMUExtKey Encoding = -258
)

// String names the encoding as RFC 6143 and QEMU do.
func (e Encoding) String() string {
	switch e {
	case EncodingRaw:
		return "raw"
	case EncodingZRLE:
		return "zrle"
	case EncodingDesktopSize:
		return "desktop-size"
	case EncodingPointerTypeChange:
		return "qemu-pointer-motion-change"
	case EncodingQEMUExtKey:
		return "qemu-extended-key-event"
	}
	return fmt.Sprintf("encoding(%d)", int32(e))
}

// Buttons is the RFB pointer button mask.
type Buttons uint8

// Pointer buttons. The wheel is buttons 4 (up) and 5 (down), pressed and
// released once per notch.
const (
	ButtonLeft      Buttons = 1 << 0
	ButtonMiddle    Buttons = 1 << 1
	ButtonRight     Buttons = 1 << 2
	ButtonWheelUp   Buttons = 1 << 3
	ButtonWheelDown Buttons = 1 << 4
)

// PointerMode is whether the guest's current pointer device is absolute.
type PointerMode int

// Pointer modes, as QEMU reports them.
const (
	PointerUnknown  PointerMode = iota // the server did not say (not QEMU)
	PointerAbsolute                    // a tablet: the guest pointer lands where sent
	PointerRelative                    // a PS/2 or USB mouse: only movements reach the guest
)

// String returns "absolute", "relative" or "unknown".
func (m PointerMode) String() string {
	switch m {
	case PointerAbsolute:
		return "absolute"
	case PointerRelative:
		return "relative"
	}
	return "unknown"
}

// Frame is a picture of the guest's screen: W×H pixels, row-major, each
// 0x00RRGGBB.
type Frame struct {
	W, H int
	Pix  []uint32
}

// At returns the pixel at x, y as 0x00RRGGBB.
func (f *Frame) At(x, y int) uint32 { return f.Pix[y*f.W+x] }

// Image converts the frame to an image (for PNG encoding and comparison).
func (f *Frame) Image() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, f.W, f.H))
	for i, p := range f.Pix {
		o := i * 4
		img.Pix[o] = uint8(p >> 16)
		img.Pix[o+1] = uint8(p >> 8)
		img.Pix[o+2] = uint8(p)
		img.Pix[o+3] = 0xff
	}
	return img
}

// FrameOf converts any image into a Frame.
func FrameOf(img image.Image) *Frame {
	b := img.Bounds()
	f := &Frame{W: b.Dx(), H: b.Dy(), Pix: make([]uint32, b.Dx()*b.Dy())}
	for y := 0; y < f.H; y++ {
		for x := 0; x < f.W; x++ {
			c := color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
			f.Pix[y*f.W+x] = uint32(c.R)<<16 | uint32(c.G)<<8 | uint32(c.B)
		}
	}
	return f
}

// resize makes the frame w×h, black.
func (f *Frame) resize(w, h int) {
	f.W, f.H = w, h
	if cap(f.Pix) >= w*h {
		f.Pix = f.Pix[:w*h]
		clear(f.Pix)
		return
	}
	f.Pix = make([]uint32, w*h)
}

// VNCOptions configure a VNC session.
type VNCOptions struct {
	// Password is the VNC password, for servers that ask for one ("" offers
	// only the None security type).
	Password string
	// Encodings lists the pixel encodings to offer, most preferred first;
	// nil means ZRLE then raw. Raw is always understood.
	Encodings []Encoding
	// Exclusive asks the server to drop every other client. vlab never sets
	// it: QEMU's default share policy would disconnect other viewers.
	Exclusive bool
}

// Stats counts what a session received.
type Stats struct {
	Bytes   uint64              // bytes read from the server
	Updates uint64              // framebuffer updates applied
	Rects   map[Encoding]uint64 // rectangles by encoding
	Pixels  uint64              // pixels decoded (sum of rectangle areas)
}

// VNC is a shared session with a VNC server (QEMU's, over its unix socket
// or a TCP endpoint): it keeps a copy of the framebuffer up to date and sends
// keyboard and pointer input. Methods are safe for concurrent use.
//
// It is built on github.com/mitchellh/go-vnc, which does the RFB handshake,
// VNC authentication and the client messages; vlab plugs in its own
// FramebufferUpdate reader (go-vnc's raw decoder reads one pixel per
// syscall and it has no ZRLE, DesktopSize or QEMU extensions), a buffered,
// byte-counting connection, and QEMU's extended key event message.
type VNC struct {
	conn   *rfbConn
	client *vnc.ClientConn
	name   string

	wmu sync.Mutex // serialises client messages on the wire

	mu       sync.RWMutex
	fb       Frame
	mode     PointerMode
	extKey   bool
	needFull bool
	lastX    int
	lastY    int
	rects    map[Encoding]uint64
	pixels   uint64
	updates  uint64

	enc    []Encoding
	zrle   zrleDecoder
	rowBuf []byte

	upd       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error
}

// DialVNC connects to a VNC unix socket (the VM's Paths.VNC) and starts a
// shared session. ctx bounds the connection and handshake only.
func DialVNC(ctx context.Context, sock string, opts VNCOptions) (*VNC, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("vnc connect %s: %w", sock, err)
	}
	v, err := NewVNC(ctx, c, opts)
	if err != nil {
		return nil, fmt.Errorf("vnc connect %s: %w", sock, err)
	}
	return v, nil
}

// NewVNC runs the RFB handshake on an open connection and starts a shared
// session. It takes ownership of c.
func NewVNC(ctx context.Context, c net.Conn, opts VNCOptions) (*VNC, error) {
	v := &VNC{
		conn:  &rfbConn{Conn: c, r: bufio.NewReaderSize(c, 256<<10)},
		upd:   make(chan struct{}, 1),
		done:  make(chan struct{}),
		rects: make(map[Encoding]uint64),
		lastX: -1,
		lastY: -1,
	}
	v.conn.onErr = v.fail
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	var client *vnc.ClientConn
	err := v.conn.handshake(opts)
	if err == nil {
		client, err = vnc.Client(v.conn, &vnc.ClientConfig{
			Exclusive:      opts.Exclusive,
			ServerMessages: v.serverMessages(),
		})
	}
	if !stop() || ctx.Err() != nil {
		c.Close()
		return nil, fmt.Errorf("rfb handshake: %w", ctx.Err())
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("rfb handshake: %w", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("rfb handshake: %w", err)
	}
	v.client = client
	v.name = client.DesktopName
	v.mu.Lock()
	v.fb.resize(int(client.FrameBufferWidth), int(client.FrameBufferHeight))
	v.mu.Unlock()

	v.enc = opts.Encodings
	if v.enc == nil {
		v.enc = []Encoding{EncodingZRLE, EncodingRaw}
	}
	encs := make([]vnc.Encoding, 0, len(v.enc)+3)
	for _, e := range v.enc {
		encs = append(encs, encodingID(e))
	}
	encs = append(encs, encodingID(EncodingDesktopSize), encodingID(EncodingPointerTypeChange), encodingID(EncodingQEMUExtKey))
	err = v.send(func() error {
		// 32 bits per pixel, 24-bit depth, little endian, 8 bits per channel
		// at 16/8/0: a pixel read as a little-endian uint32 is 0x00RRGGBB, and
		// ZRLE's compressed pixels are 3 bytes.
		if err := client.SetPixelFormat(&vnc.PixelFormat{
			BPP: 32, Depth: 24, TrueColor: true,
			RedMax: 255, GreenMax: 255, BlueMax: 255,
			RedShift: 16, GreenShift: 8, BlueShift: 0,
		}); err != nil {
			return err
		}
		if err := client.SetEncodings(encs); err != nil {
			return err
		}
		return client.FramebufferUpdateRequest(false, 0, 0, client.FrameBufferWidth, client.FrameBufferHeight)
	})
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("rfb setup: %w", err)
	}
	return v, nil
}

// encodingID is a go-vnc Encoding that only carries a number for
// SetEncodings; vlab's own update reader does the decoding.
type encodingID Encoding

func (e encodingID) Type() int32 { return int32(e) }

func (e encodingID) Read(*vnc.ClientConn, *vnc.Rectangle, io.Reader) (vnc.Encoding, error) {
	return nil, fmt.Errorf("encoding %v is decoded by vlab's update reader", Encoding(e))
}

// send runs one go-vnc client call with the wire to itself.
func (v *VNC) send(f func() error) error {
	select {
	case <-v.done:
		return v.Err()
	default:
	}
	v.wmu.Lock()
	defer v.wmu.Unlock()
	if err := f(); err != nil {
		v.fail(err)
		return fmt.Errorf("vnc send: %w", err)
	}
	return nil
}

// fail records why the session ended and ends it.
func (v *VNC) fail(err error) {
	v.errMu.Lock()
	if v.err == nil {
		v.err = err
	}
	v.errMu.Unlock()
	v.closeOnce.Do(func() {
		close(v.done)
		v.conn.Conn.Close()
	})
}

// Close ends the session. The guest and QEMU are not affected.
func (v *VNC) Close() error {
	v.fail(net.ErrClosed)
	return nil
}

// Done is closed when the session has ended (Close, server gone, protocol
// error).
func (v *VNC) Done() <-chan struct{} { return v.done }

// Err returns why the session ended: nil while it runs, net.ErrClosed after
// Close.
func (v *VNC) Err() error {
	select {
	case <-v.done:
	default:
		return nil
	}
	v.errMu.Lock()
	defer v.errMu.Unlock()
	return v.err
}

// Name returns the desktop name the server announced (QEMU: the VM's -name).
func (v *VNC) Name() string { return v.name }

// Updates receives a value after framebuffer updates have been applied;
// several updates between two receives coalesce into one value.
func (v *VNC) Updates() <-chan struct{} { return v.upd }

// Size returns the framebuffer size in pixels.
func (v *VNC) Size() (w, h int) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.fb.W, v.fb.H
}

// PointerMode returns whether the guest's pointer is absolute, as QEMU
// last reported.
func (v *VNC) PointerMode() PointerMode {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.mode
}

// ExtendedKeys says whether the server accepted QEMU's extended key events.
func (v *VNC) ExtendedKeys() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.extKey
}

// Stats returns what the session has received so far.
func (v *VNC) Stats() Stats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := Stats{Bytes: v.conn.rx.Load(), Updates: v.updates, Pixels: v.pixels, Rects: make(map[Encoding]uint64, len(v.rects))}
	for k, n := range v.rects {
		s.Rects[k] = n
	}
	return s
}

// Snapshot copies the current framebuffer into dst (reusing its memory)
// and returns it; dst may be nil.
func (v *VNC) Snapshot(dst *Frame) *Frame {
	if dst == nil {
		dst = &Frame{}
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	dst.W, dst.H = v.fb.W, v.fb.H
	if cap(dst.Pix) < len(v.fb.Pix) {
		dst.Pix = make([]uint32, len(v.fb.Pix))
	}
	dst.Pix = dst.Pix[:len(v.fb.Pix)]
	copy(dst.Pix, v.fb.Pix)
	return dst
}

// Refresh asks the server for the whole screen again.
func (v *VNC) Refresh() error {
	w, h := v.Size()
	return v.send(func() error { return v.client.FramebufferUpdateRequest(false, 0, 0, uint16(w), uint16(h)) })
}

// Pointer moves the pointer to framebuffer pixel x, y (clamped to the
// screen) with the given buttons held. With an absolute guest pointer (a
// tablet) the guest's pointer lands exactly there; with a relative one QEMU
// receives the movement since the last call.
func (v *VNC) Pointer(x, y int, b Buttons) error {
	v.mu.Lock()
	x = max(0, min(x, v.fb.W-1))
	y = max(0, min(y, v.fb.H-1))
	px, py := x, y
	if v.mode == PointerRelative {
		// QEMU reads a relative client's coordinates as deltas from 0x7fff.
		dx, dy := 0, 0
		if v.lastX >= 0 {
			dx, dy = x-v.lastX, y-v.lastY
		}
		px, py = 0x7fff+dx, 0x7fff+dy
	}
	v.lastX, v.lastY = x, y
	v.mu.Unlock()
	return v.send(func() error { return v.client.PointerEvent(vnc.ButtonMask(b), uint16(px), uint16(py)) })
}

// Key presses (down) or releases a key given by its X keysym.
func (v *VNC) Key(keysym uint32, down bool) error {
	return v.send(func() error { return v.client.KeyEvent(keysym, down) })
}

// KeyCode presses or releases a key given by keysym and XT scancode
// (QEMU's "qnum": 0xe0-prefixed codes have the high bit set, e.g. Delete
// is 0xd3). QEMU uses the scancode as is, whatever its keymap; servers
// without the extension get the keysym.
func (v *VNC) KeyCode(keysym, scancode uint32, down bool) error {
	if !v.ExtendedKeys() {
		return v.Key(keysym, down)
	}
	var msg [12]byte
	msg[0] = 255 // QEMU client message
	msg[1] = 0   // extended key event
	if down {
		binary.BigEndian.PutUint16(msg[2:], 1)
	}
	binary.BigEndian.PutUint32(msg[4:], keysym)
	binary.BigEndian.PutUint32(msg[8:], scancode)
	return v.send(func() error {
		_, err := v.conn.Write(msg[:])
		return err
	})
}

// Keysyms and XT scancodes of the keys vlab presses on its own.
const (
	KeysymControlL = 0xffe3
	KeysymAltL     = 0xffe9
	KeysymShiftL   = 0xffe1
	KeysymDelete   = 0xffff

	scanControlL = 0x1d
	scanAltL     = 0x38
	scanShiftL   = 0x2a
	scanDelete   = 0xd3
)

// CtrlAltDel sends Ctrl-Alt-Del (by scancode where QEMU allows, so no
// keymap can get in the way).
func (v *VNC) CtrlAltDel() error {
	seq := []struct {
		sym, scan uint32
		down      bool
	}{
		{KeysymControlL, scanControlL, true}, {KeysymAltL, scanAltL, true}, {KeysymDelete, scanDelete, true},
		{KeysymDelete, scanDelete, false}, {KeysymAltL, scanAltL, false}, {KeysymControlL, scanControlL, false},
	}
	for _, k := range seq {
		if err := v.KeyCode(k.sym, k.scan, k.down); err != nil {
			return err
		}
	}
	return nil
}

// rfbConn is the connection go-vnc reads and writes: reads are buffered
// (go-vnc reads field by field) and counted, and the first read error ends
// the session.
type rfbConn struct {
	net.Conn
	r     *bufio.Reader
	rx    atomic.Uint64
	onErr func(error)

	// After vlab's own bounded handshake, go-vnc runs its handshake
	// against replay, and its answers (swallow bytes) go nowhere.
	replay  []byte
	swallow int
}

func (c *rfbConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	n, err := c.r.Read(p)
	c.rx.Add(uint64(n))
	if err != nil && c.onErr != nil {
		c.onErr(err)
	}
	return n, err
}

func (c *rfbConn) Write(p []byte) (int, error) {
	if c.swallow > 0 {
		k := min(c.swallow, len(p))
		c.swallow -= k
		if k == len(p) {
			return k, nil
		}
		n, err := c.Conn.Write(p[k:])
		return k + n, err
	}
	return c.Conn.Write(p)
}

// updateReader replaces go-vnc's FramebufferUpdate message (type 0): it
// decodes rectangles straight into the session's framebuffer.
type updateReader struct{ v *VNC }

func (*updateReader) Type() uint8 { return 0 }

// updateDone is what updateReader hands back to go-vnc (which discards it).
type updateDone struct{}

func (*updateDone) Type() uint8 { return 0 }

func (*updateDone) Read(*vnc.ClientConn, io.Reader) (vnc.ServerMessage, error) {
	return nil, errors.New("updateDone is not read from the wire")
}

func (u *updateReader) Read(c *vnc.ClientConn, r io.Reader) (vnc.ServerMessage, error) {
	v := u.v
	if err := v.readUpdate(r); err != nil {
		v.fail(fmt.Errorf("vnc framebuffer update: %w", err))
		return nil, err
	}
	select {
	case v.upd <- struct{}{}:
	default:
	}
	v.mu.Lock()
	full := v.needFull
	v.needFull = false
	w, h := v.fb.W, v.fb.H
	v.mu.Unlock()
	err := v.send(func() error { return c.FramebufferUpdateRequest(!full, 0, 0, uint16(w), uint16(h)) })
	return &updateDone{}, err
}

// readUpdate reads one FramebufferUpdate (after its type byte). Only this
// goroutine writes the framebuffer, so it reads it without the lock and
// takes the lock to write, never while waiting on the network.
func (v *VNC) readUpdate(r io.Reader) error {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(hdr[1:]))
	for i := 0; i < n; i++ {
		var rh [12]byte
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			return err
		}
		x := int(binary.BigEndian.Uint16(rh[0:]))
		y := int(binary.BigEndian.Uint16(rh[2:]))
		w := int(binary.BigEndian.Uint16(rh[4:]))
		h := int(binary.BigEndian.Uint16(rh[6:]))
		enc := Encoding(int32(binary.BigEndian.Uint32(rh[8:])))
		if enc == EncodingDesktopSize {
			if err := checkFramebuffer(w, h); err != nil {
				return err
			}
		}
		v.mu.Lock()
		v.rects[enc]++
		switch enc {
		case EncodingDesktopSize:
			v.fb.resize(w, h)
			v.needFull = true
		case EncodingPointerTypeChange:
			v.mode = PointerRelative
			if x != 0 {
				v.mode = PointerAbsolute
			}
		case EncodingQEMUExtKey:
			v.extKey = true
		}
		v.mu.Unlock()
		switch enc {
		case EncodingDesktopSize, EncodingPointerTypeChange, EncodingQEMUExtKey:
			continue
		}
		if x+w > v.fb.W || y+h > v.fb.H {
			return fmt.Errorf("%v rectangle %dx%d+%d+%d outside the %dx%d screen", enc, w, h, x, y, v.fb.W, v.fb.H)
		}
		var err error
		switch enc {
		case EncodingRaw:
			err = v.readRaw(r, x, y, w, h)
		case EncodingZRLE:
			err = v.zrle.decode(r, v, x, y, w, h)
		default:
			err = fmt.Errorf("server sent %v, which was not offered", enc)
		}
		if err != nil {
			return err
		}
		v.mu.Lock()
		v.pixels += uint64(w * h)
		v.mu.Unlock()
	}
	v.mu.Lock()
	v.updates++
	v.mu.Unlock()
	return nil
}

// readRaw reads a raw rectangle into the framebuffer, a band of rows at a
// time.
func (v *VNC) readRaw(r io.Reader, x, y, w, h int) error {
	rows := max(1, min(h, (64<<10)/(w*4+1)))
	if cap(v.rowBuf) < rows*w*4 {
		v.rowBuf = make([]byte, rows*w*4)
	}
	for j := 0; j < h; j += rows {
		n := min(rows, h-j)
		buf := v.rowBuf[:n*w*4]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		v.mu.Lock()
		for k := 0; k < n; k++ {
			dst := v.fb.Pix[(y+j+k)*v.fb.W+x:][:w]
			src := buf[k*w*4:]
			for i := range dst {
				dst[i] = binary.LittleEndian.Uint32(src[i*4:]) & 0xffffff
			}
		}
		v.mu.Unlock()
	}
	return nil
}
