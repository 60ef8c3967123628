package console

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Graphics is how the built-in viewer draws the guest's screen.
type Graphics int

const (
	// GraphicsAuto asks the terminal what it can draw (see DetectGraphics).
	GraphicsAuto Graphics = iota
	// GraphicsBlocks draws half-block cells in 24-bit colour (Renderer).
	GraphicsBlocks
	// GraphicsSixel draws the screen at full resolution as sixel images.
	GraphicsSixel
	// GraphicsKitty draws it with the kitty graphics protocol.
	GraphicsKitty
)

// GraphicsEnv is the environment variable that overrides detection
// (sixel, kitty or blocks), as the viewer's --graphics flag does.
const GraphicsEnv = "VLAB_GRAPHICS"

func (g Graphics) String() string {
	switch g {
	case GraphicsBlocks:
		return "blocks"
	case GraphicsSixel:
		return "sixel"
	case GraphicsKitty:
		return "kitty"
	}
	return "auto"
}

// ParseGraphics parses a --graphics value: auto (or empty), sixel, kitty
// or blocks.
func ParseGraphics(s string) (Graphics, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return GraphicsAuto, nil
	case "blocks":
		return GraphicsBlocks, nil
	case "sixel":
		return GraphicsSixel, nil
	case "kitty":
		return GraphicsKitty, nil
	}
	return GraphicsAuto, fmt.Errorf("graphics %q: use sixel, kitty, blocks or auto", s)
}

// GraphicsFromEnv returns the mode VLAB_GRAPHICS asks for (GraphicsAuto
// when it is unset).
func GraphicsFromEnv() (Graphics, error) {
	g, err := ParseGraphics(os.Getenv(GraphicsEnv))
	if err != nil {
		return g, fmt.Errorf("%s: %w", GraphicsEnv, err)
	}
	return g, nil
}

// graphicsQuery is what the viewer asks the terminal, in this order: the
// kitty graphics query (a 1×1 image that is checked, never stored), the
// terminal's name through XTGETTCAP (a hint only), its text area size in
// pixels (CSI 14 t) and, last, its primary device attributes (DA1). Every
// terminal answers DA1, and terminals answer in order, so the DA1 answer
// ends the conversation: nothing the terminal still says after it belongs
// to the query.
var graphicsQuery = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\" +
	"\x1bP+q" + hex.EncodeToString([]byte("TN")) + "\x1b\\" +
	"\x1b[14t" +
	"\x1b[c"

// detectTimeout is how long the viewer waits for the terminal's answers;
// a terminal that does not answer DA1 in time gets half blocks.
const detectTimeout = 700 * time.Millisecond

// termCaps is what the terminal said about itself.
type termCaps struct {
	sixel, kitty bool
	name         string // XTGETTCAP TN, when answered
	pxW, pxH     int    // text area in pixels (CSI 14 t), when answered
	da1          bool   // the DA1 answer arrived
}

// choose picks the best mode the terminal has: kitty (lossless) before
// sixel (a 256-colour palette), then half blocks. A terminal calling
// itself kitty counts as kitty even if its graphics answer was lost.
func (c termCaps) choose() Graphics {
	switch {
	case c.kitty || strings.Contains(c.name, "kitty"):
		return GraphicsKitty
	case c.sixel:
		return GraphicsSixel
	}
	return GraphicsBlocks
}

// parseReplies takes the terminal's answers to graphicsQuery out of b.
// It returns what they said, whether the DA1 answer (the last) has come,
// and the bytes that are no answer (keys typed meanwhile).
func parseReplies(b []byte, c *termCaps) (rest []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0x1b)
		if i < 0 {
			return append(rest, b...)
		}
		rest = append(rest, b[:i]...)
		b = b[i:]
		if len(b) < 2 {
			return append(rest, b...)
		}
		switch b[1] {
		case '_', 'P': // APC (kitty) or DCS (XTGETTCAP): up to ST
			end := bytes.Index(b, []byte("\x1b\\"))
			if end < 0 {
				return append(rest, b...)
			}
			body := string(b[2:end])
			b = b[end+2:]
			switch {
			case strings.HasPrefix(body, "Gi=31;"):
				c.kitty = c.kitty || strings.HasPrefix(body[len("Gi=31;"):], "OK")
			case strings.HasPrefix(body, "1+r"):
				if _, v, ok := strings.Cut(body[3:], "="); ok {
					if name, err := hex.DecodeString(v); err == nil {
						c.name = string(name)
					}
				}
			}
		case '[':
			j := 2
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
				j++
			}
			if j == len(b) {
				return append(rest, b...)
			}
			params, final := string(b[2:j]), b[j]
			switch {
			case final == 'c' && strings.HasPrefix(params, "?"):
				c.da1 = true
				for _, p := range strings.Split(params[1:], ";") {
					if p == "4" {
						c.sixel = true
					}
				}
			case final == 't' && strings.HasPrefix(params, "4;"):
				f := strings.Split(params, ";")
				if len(f) == 3 {
					c.pxH, _ = strconv.Atoi(f[1])
					c.pxW, _ = strconv.Atoi(f[2])
				}
			default:
				rest = append(rest, b[:j+1]...)
			}
			b = b[j+1:]
		default:
			rest = append(rest, b[:2]...)
			b = b[2:]
		}
	}
	return rest
}

// detectGraphics asks the terminal (out) and reads its answers from in
// until DA1 answers or timeout passes. It returns what the terminal said
// and the input that was no answer.
func detectGraphics(out interface{ Write([]byte) (int, error) }, in <-chan []byte, timeout time.Duration) (termCaps, []byte) {
	var c termCaps
	if _, err := out.Write([]byte(graphicsQuery)); err != nil {
		return c, nil
	}
	deadline := time.After(timeout)
	var buf []byte
	for !c.da1 {
		select {
		case b, ok := <-in:
			if !ok {
				return c, buf
			}
			buf = append(buf, b...)
			c2 := c
			rest := parseReplies(buf, &c2)
			if c2.da1 {
				return c2, rest
			}
		case <-deadline:
			rest := parseReplies(buf, &c)
			return c, rest
		}
	}
	return c, buf
}
