package console

import (
	"bytes"
	"strings"
	"testing"
)

func TestDecodePPM(t *testing.T) {
	data := append([]byte("P6\n# made by hand\n3 2\n255\n"),
		255, 0, 0, 0, 255, 0, 0, 0, 255,
		1, 2, 3, 4, 5, 6, 7, 8, 9)
	img, err := DecodePPM(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	f := FrameOf(img)
	want := []uint32{0xff0000, 0x00ff00, 0x0000ff, 0x010203, 0x040506, 0x070809}
	if f.W != 3 || f.H != 2 {
		t.Fatalf("size %dx%d", f.W, f.H)
	}
	for i, p := range want {
		if f.Pix[i] != p {
			t.Errorf("pixel %d = %06x, want %06x", i, f.Pix[i], p)
		}
	}
	// 16-bit samples scale to 8 bits.
	img, err = DecodePPM(bytes.NewReader(append([]byte("P6 1 1 65535\n"), 0xff, 0xff, 0x80, 0x00, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if p := FrameOf(img).Pix[0]; p != 0xff8000 {
		t.Errorf("16-bit pixel = %06x, want ff8000", p)
	}
	for _, bad := range []string{"", "P5\n1 1\n255\n\x00", "P6\n2 2\n255\n\x00\x00", "P6\n-1 1\n255\n", "P6\n1 1\n70000\n"} {
		if _, err := DecodePPM(strings.NewReader(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}
