package emulator

import (
	"bytes"
	"image"
	"strings"
	"testing"

	"vlab/internal/fuzzseed"
)

// rgb returns img's pixel at x, y as 0xRRGGBB.
func rgb(img *image.RGBA, x, y int) uint32 {
	p := img.Pix[y*img.Stride+4*x:]
	return uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2])
}

func TestDecodePPM(t *testing.T) {
	data := append([]byte("P6\n# made by hand\n3 2\n255\n"),
		255, 0, 0, 0, 255, 0, 0, 0, 255,
		1, 2, 3, 4, 5, 6, 7, 8, 9)
	img, err := decodePPM(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 3 || b.Dy() != 2 {
		t.Fatalf("size %dx%d", b.Dx(), b.Dy())
	}
	want := []uint32{0xff0000, 0x00ff00, 0x0000ff, 0x010203, 0x040506, 0x070809}
	for i, p := range want {
		if got := rgb(img, i%3, i/3); got != p {
			t.Errorf("pixel %d = %06x, want %06x", i, got, p)
		}
		if a := img.Pix[(i/3)*img.Stride+4*(i%3)+3]; a != 0xff {
			t.Errorf("pixel %d alpha = %02x, want ff", i, a)
		}
	}
	// 16-bit samples scale to 8 bits.
	img, err = decodePPM(bytes.NewReader(append([]byte("P6 1 1 65535\n"), 0xff, 0xff, 0x80, 0x00, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if p := rgb(img, 0, 0); p != 0xff8000 {
		t.Errorf("16-bit pixel = %06x, want ff8000", p)
	}
	for _, bad := range []string{"", "P5\n1 1\n255\n\x00", "P6\n2 2\n255\n\x00\x00", "P6\n-1 1\n255\n", "P6\n1 1\n70000\n",
		"P6\n16385 1\n255\n", "P6\n8192 8192\n255\n"} {
		if _, err := decodePPM(strings.NewReader(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzDecodePPM(f *testing.F) {
	fuzzseed.Add(f,
		[]any{[]byte("P6\n2 1\n255\n\xff\x00\x00\x00\xff\x00")},
		[]any{[]byte("P6 # comment\n1 1 65535 \x12\x34\x56\x78\x9a\xbc")},
		// 32768x32768 was accepted: a 4 GiB image allocated before reading a row.
		[]any{[]byte("P6\n32768 32768\n255\n\x00")},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decodePPM(bytes.NewReader(data))
		if err == nil && len(img.Pix) != 4*img.Rect.Dx()*img.Rect.Dy() {
			t.Fatalf("image %v with %d bytes", img.Rect, len(img.Pix))
		}
	})
}
