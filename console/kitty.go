package console

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"strconv"
)

// The kitty graphics protocol keeps images in the terminal by id. The
// viewer uses one image (kittyImageID) for the whole screen: a new layout
// (first frame, resize) transmits and places it whole (a=T); after that a
// changed region is written into the image's root frame in place (a=f,r=1
// with x,y: "edit frame 1"), so the terminal redraws only that part and the
// placement never moves. Re-sending the whole frame for every change would
// cost 2.3 MB of RGB (3 MB base64) per update at 1024×768; separate images
// per region would pile up in the terminal's image memory.
//
// Pixels go as 24-bit RGB (f=24) compressed with zlib (o=z), base64 in
// chunks of at most kittyChunk bytes (the protocol's limit is 4096), every
// command quiet (q=2) so that the terminal sends nothing back to the input.
const (
	kittyImageID = 1
	kittyChunk   = 4096
)

// kittyDelete removes the viewer's image and frees its data.
const kittyDelete = "\x1b_Ga=d,d=I,i=1,q=2\x1b\\"

// kittyEncoder encodes regions for the kitty protocol, reusing buffers.
type kittyEncoder struct {
	rgb []byte
	z   bytes.Buffer
	zw  *zlib.Writer
	b64 []byte
}

// image appends the commands that replace the viewer's image with the
// w×h pixels at pix (rows stride apart) and place it at the cursor without
// moving the cursor (C=1).
func (k *kittyEncoder) image(b []byte, pix []uint32, stride, w, h int) []byte {
	b = append(b, kittyDelete...)
	head := "a=T,i=1,p=1,C=1,q=2,f=24,o=z,s=" + strconv.Itoa(w) + ",v=" + strconv.Itoa(h)
	return k.chunks(b, head, pix, stride, w, h)
}

// edit appends the commands that write the w×h pixels at pix into the
// image at x, y.
func (k *kittyEncoder) edit(b []byte, pix []uint32, stride, x, y, w, h int) []byte {
	head := "a=f,i=1,r=1,q=2,f=24,o=z,x=" + strconv.Itoa(x) + ",y=" + strconv.Itoa(y) +
		",s=" + strconv.Itoa(w) + ",v=" + strconv.Itoa(h)
	return k.chunks(b, head, pix, stride, w, h)
}

// chunks appends the pixels as zlib-compressed RGB, base64, in commands of
// at most kittyChunk payload bytes; the first carries head.
func (k *kittyEncoder) chunks(b []byte, head string, pix []uint32, stride, w, h int) []byte {
	k.rgb = k.rgb[:0]
	for y := 0; y < h; y++ {
		for _, p := range pix[y*stride : y*stride+w] {
			k.rgb = append(k.rgb, byte(p>>16), byte(p>>8), byte(p))
		}
	}
	k.z.Reset()
	if k.zw == nil {
		k.zw, _ = zlib.NewWriterLevel(&k.z, zlib.BestSpeed)
	} else {
		k.zw.Reset(&k.z)
	}
	k.zw.Write(k.rgb)
	k.zw.Close()
	n := base64.StdEncoding.EncodedLen(k.z.Len())
	if cap(k.b64) < n {
		k.b64 = make([]byte, n)
	}
	k.b64 = k.b64[:n]
	base64.StdEncoding.Encode(k.b64, k.z.Bytes())
	data := k.b64
	first := true
	for first || len(data) > 0 {
		part := data[:min(len(data), kittyChunk)]
		data = data[len(part):]
		more := "0"
		if len(data) > 0 {
			more = "1"
		}
		b = append(b, "\x1b_G"...)
		if first {
			b = append(b, head...)
			b = append(b, ',')
		}
		b = append(b, "m="...)
		b = append(b, more...)
		b = append(b, ';')
		b = append(b, part...)
		b = append(b, "\x1b\\"...)
		first = false
	}
	return b
}
