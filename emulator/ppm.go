package emulator

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"io"
	"strconv"
)

// Limits on a screendump's size, checked before anything is allocated (the
// guest chooses its display mode): the caps console puts on a VNC
// framebuffer, so whatever a viewer can show a screenshot can hold.
const (
	maxScreenSide   = 16384   // pixels wide or tall
	maxScreenPixels = 1 << 25 // width×height: 32 Mpx, 8K UHD fits
)

// decodePPM decodes a binary PPM (P6) image, the format QEMU's screendump
// writes before QEMU 7.1 (and by default after). Maximum sample values up
// to 65535 are accepted and scaled to 8 bits.
func decodePPM(r io.Reader) (*image.RGBA, error) {
	br := bufio.NewReader(r)
	var fields [4]int
	magic, err := ppmToken(br)
	if err != nil || magic != "P6" {
		return nil, fmt.Errorf("decode ppm: not a binary ppm (magic %q)", magic)
	}
	for i := 1; i < 4; i++ {
		tok, err := ppmToken(br)
		if err != nil {
			return nil, fmt.Errorf("decode ppm: header: %w", err)
		}
		n, err := strconv.Atoi(tok)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("decode ppm: bad header value %q", tok)
		}
		fields[i] = n
	}
	w, h, maxv := fields[1], fields[2], fields[3]
	if maxv > 65535 || w > maxScreenSide || h > maxScreenSide || w*h > maxScreenPixels {
		return nil, fmt.Errorf("decode ppm: %dx%d with maximum %d is out of range", w, h, maxv)
	}
	bps := 1
	if maxv > 255 {
		bps = 2
	}
	row := make([]byte, w*3*bps)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		if _, err := io.ReadFull(br, row); err != nil {
			return nil, fmt.Errorf("decode ppm: row %d: %w", y, err)
		}
		for x := 0; x < w*3; x++ {
			v := int(row[x])
			if bps == 2 {
				v = int(row[2*x])<<8 | int(row[2*x+1])
			}
			img.Pix[y*img.Stride+x/3*4+x%3] = uint8((v*255 + maxv/2) / maxv)
		}
		for x := 0; x < w; x++ {
			img.Pix[y*img.Stride+x*4+3] = 0xff
		}
	}
	return img, nil
}

// ppmToken reads one header token, skipping whitespace and # comments, and
// the single whitespace byte after it.
func ppmToken(br *bufio.Reader) (string, error) {
	var tok []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if len(tok) > 0 && errors.Is(err, io.EOF) {
				return string(tok), nil
			}
			return "", err
		}
		switch {
		case c == '#' && len(tok) == 0:
			if _, err := br.ReadString('\n'); err != nil {
				return "", err
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			if len(tok) > 16 {
				return "", errors.New("header token too long")
			}
			tok = append(tok, c)
		}
	}
}
