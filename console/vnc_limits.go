package console

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"

	vnc "github.com/mitchellh/go-vnc"
)

// Limits on what a VNC server may make the client hold. A server is not
// trusted (a guest's, or a remote one a viewer connects to): everything it
// announces is checked against these before anything is allocated.
const (
	// MaxFramebufferSide is the widest or tallest framebuffer vlab's client
	// accepts, in pixels.
	MaxFramebufferSide = 16384
	// MaxFramebufferPixels caps width×height: 32 Mpx (an 8K UHD screen,
	// 7680×4320, fits), 128 MiB of frame.
	MaxFramebufferPixels = 1 << 25
	// maxDesktopName bounds the desktop name in ServerInit.
	maxDesktopName = 4096
	// maxReason bounds the reason text of a refused handshake.
	maxReason = 4096
	// maxCutText bounds a ServerCutText message. The text is skipped, never
	// held (vlab does not share the clipboard), so the bound only stops a
	// server from tying the client up reading gigabytes.
	maxCutText = 64 << 20
)

// checkFramebuffer refuses a framebuffer size beyond the limits.
func checkFramebuffer(w, h int) error {
	if w > MaxFramebufferSide || h > MaxFramebufferSide || w*h > MaxFramebufferPixels {
		return fmt.Errorf("server framebuffer %dx%d is larger than vlab's limit (%d pixels, at most %d on a side)", w, h, MaxFramebufferPixels, MaxFramebufferSide)
	}
	return nil
}

// handshake runs the RFB 3.8 handshake up to ServerInit with every length
// bounded (go-vnc's own allocates whatever the server announces), then
// queues for go-vnc a replay of a handshake without security carrying the
// same ServerInit, so go-vnc's client (its messages and main loop) starts
// on a connection that is already past the handshake.
func (c *rfbConn) handshake(opts VNCOptions) error {
	var ver [12]byte
	if _, err := io.ReadFull(c, ver[:]); err != nil {
		return fmt.Errorf("read protocol version: %w", err)
	}
	if !bytes.HasPrefix(ver[:], []byte("RFB 003.")) || ver[11] != '\n' {
		return fmt.Errorf("server is not a VNC server (greeting %q)", ver[:])
	}
	if minor, err := strconv.Atoi(string(ver[8:11])); err != nil || minor < 8 {
		return fmt.Errorf("server speaks RFB %q; vlab needs 3.8 or later", bytes.TrimSpace(ver[:]))
	}
	if _, err := c.Write([]byte("RFB 003.008\n")); err != nil {
		return err
	}
	var n [1]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return fmt.Errorf("read security types: %w", err)
	}
	if n[0] == 0 {
		return fmt.Errorf("server refused the connection: %s", c.reason())
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(c, types); err != nil {
		return fmt.Errorf("read security types: %w", err)
	}
	var auth vnc.ClientAuth
	if opts.Password != "" && bytes.IndexByte(types, 2) >= 0 {
		auth = &vnc.PasswordAuth{Password: opts.Password}
	} else if bytes.IndexByte(types, 1) >= 0 {
		auth = new(vnc.ClientAuthNone)
	} else {
		return fmt.Errorf("server offers security types %v, none vlab speaks (1 none, 2 VNC password with a password)", types)
	}
	if _, err := c.Write([]byte{auth.SecurityType()}); err != nil {
		return err
	}
	if err := auth.Handshake(c); err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	var res [4]byte
	if _, err := io.ReadFull(c, res[:]); err != nil {
		return fmt.Errorf("read security result: %w", err)
	}
	if binary.BigEndian.Uint32(res[:]) != 0 {
		return fmt.Errorf("authentication failed: %s", c.reason())
	}
	shared := byte(1)
	if opts.Exclusive {
		shared = 0
	}
	if _, err := c.Write([]byte{shared}); err != nil {
		return err
	}
	var init [24]byte // width, height, pixel format, name length
	if _, err := io.ReadFull(c, init[:]); err != nil {
		return fmt.Errorf("read server init: %w", err)
	}
	w, h := int(binary.BigEndian.Uint16(init[0:])), int(binary.BigEndian.Uint16(init[2:]))
	if err := checkFramebuffer(w, h); err != nil {
		return err
	}
	nameLen := binary.BigEndian.Uint32(init[20:])
	if nameLen > maxDesktopName {
		return fmt.Errorf("server announces a desktop name of %d bytes (at most %d)", nameLen, maxDesktopName)
	}
	name := make([]byte, nameLen)
	if _, err := io.ReadFull(c, name); err != nil {
		return fmt.Errorf("read desktop name: %w", err)
	}
	var replay bytes.Buffer
	replay.WriteString("RFB 003.008\n")
	replay.Write([]byte{1, 1, 0, 0, 0, 0}) // security type None, result OK
	replay.Write(init[:])
	replay.Write(name)
	c.replay = replay.Bytes()
	// go-vnc answers: its version (12 bytes), the type (1), the shared flag (1).
	c.swallow = 12 + 1 + 1
	return nil
}

// reason reads the length-prefixed reason a server gives for refusing,
// bounded and made printable on one line.
func (c *rfbConn) reason() string {
	var l [4]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return "no reason given"
	}
	n := binary.BigEndian.Uint32(l[:])
	b := make([]byte, min(n, maxReason))
	k, _ := io.ReadFull(c, b)
	return strconv.Quote(string(b[:k]))
}

// cutTextReader skips ServerCutText (type 3) without holding the text.
type cutTextReader struct{ v *VNC }

func (*cutTextReader) Type() uint8 { return 3 }

func (u *cutTextReader) Read(_ *vnc.ClientConn, r io.Reader) (vnc.ServerMessage, error) {
	var hdr [7]byte // padding, length
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[3:])
	if n > maxCutText {
		err := fmt.Errorf("vnc: server sent cut text of %d bytes (at most %d)", n, maxCutText)
		u.v.fail(err)
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
		return nil, err
	}
	return &updateDone{}, nil
}

// colourMapReader skips SetColorMapEntries (type 1): vlab asks for true
// colour, and go-vnc's own reader indexes its 256-entry map with whatever
// the server sends.
type colourMapReader struct{}

func (*colourMapReader) Type() uint8 { return 1 }

func (*colourMapReader) Read(_ *vnc.ClientConn, r io.Reader) (vnc.ServerMessage, error) {
	var hdr [5]byte // padding, first colour, number of colours
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.CopyN(io.Discard, r, 6*n); err != nil {
		return nil, err
	}
	return &updateDone{}, nil
}

// unknownReader ends the session on a server message type vlab never asked
// for (go-vnc's loop would stop reading silently, leaving the session
// hanging).
type unknownReader struct {
	v   *VNC
	typ uint8
}

func (u *unknownReader) Type() uint8 { return u.typ }

func (u *unknownReader) Read(*vnc.ClientConn, io.Reader) (vnc.ServerMessage, error) {
	err := fmt.Errorf("vnc: server sent unknown message type %d", u.typ)
	u.v.fail(err)
	return nil, err
}

// serverMessages are the readers vlab gives go-vnc for every message type.
func (v *VNC) serverMessages() []vnc.ServerMessage {
	msgs := []vnc.ServerMessage{&updateReader{v: v}, &colourMapReader{}, new(vnc.BellMessage), &cutTextReader{v: v}}
	for t := 4; t < 256; t++ {
		msgs = append(msgs, &unknownReader{v: v, typ: uint8(t)})
	}
	return msgs
}
