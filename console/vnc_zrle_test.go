package console

import (
	"bytes"
	"compress/zlib"
	"math/rand"
	"testing"

	"vlab/internal/fuzzseed"
)

// testImage is a w×h picture with every kind of tile ZRLE has: solid
// areas, two-, four- and sixteen-colour patterns, long runs and a
// full-colour gradient.
func testImage(w, h int, seed int64) []uint32 {
	rng := rand.New(rand.NewSource(seed))
	pal := make([]uint32, 16)
	for i := range pal {
		pal[i] = rng.Uint32() & 0xffffff
	}
	img := make([]uint32, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var c uint32
			switch (x/64 + y/64*3) % 5 {
			case 0:
				c = pal[0]
			case 1:
				c = pal[(x+y)%2]
			case 2:
				c = pal[(x/3+y)%4]
			case 3:
				c = pal[(x*7+y*3)%16]
			default:
				c = uint32(x*255/w)<<16 | uint32(y*255/h)<<8 | uint32((x+y)&0xff)
			}
			img[y*w+x] = c
		}
	}
	return img
}

// zrleEncode is a plain ZRLE encoder for tests: the uncompressed tile data
// of the rw×rh rectangle at x, y of img (stride w), cycling through the
// subencodings that fit each tile.
func zrleEncode(img []uint32, w, x, y, rw, rh int) []byte {
	return zrleEncodeKinds(img, w, x, y, rw, rh, map[string]int{})
}

// zrleEncodeKinds is zrleEncode counting the tiles of each kind it wrote.
func zrleEncodeKinds(img []uint32, w, x, y, rw, rh int, kinds map[string]int) []byte {
	var b bytes.Buffer
	cp := func(c uint32) { b.Write([]byte{byte(c), byte(c >> 8), byte(c >> 16)}) }
	runLen := func(n int) {
		n--
		for n >= 255 {
			b.WriteByte(255)
			n -= 255
		}
		b.WriteByte(byte(n))
	}
	tile := 0
	for ty := 0; ty < rh; ty += 64 {
		th := min(64, rh-ty)
		for tx := 0; tx < rw; tx += 64 {
			tw := min(64, rw-tx)
			var px []uint32
			for j := 0; j < th; j++ {
				px = append(px, img[(y+ty+j)*w+x+tx:][:tw]...)
			}
			var palette []uint32
			index := map[uint32]int{}
			for _, c := range px {
				if _, ok := index[c]; !ok {
					index[c] = len(palette)
					palette = append(palette, c)
				}
			}
			tile++
			switch {
			case len(palette) == 1 && tile%2 == 0:
				kinds["solid"]++
				b.WriteByte(1)
				cp(palette[0])
			case len(palette) <= 16 && tile%3 == 0:
				kinds["packed palette"]++
				b.WriteByte(byte(max(2, len(palette))))
				for _, c := range palette {
					cp(c)
				}
				if len(palette) == 1 {
					cp(palette[0])
				}
				bits := 4
				switch {
				case len(palette) <= 2:
					bits = 1
				case len(palette) <= 4:
					bits = 2
				}
				for j := 0; j < th; j++ {
					var cur byte
					used := 0
					for i := 0; i < tw; i++ {
						cur |= byte(index[px[j*tw+i]]) << (8 - bits - used)
						used += bits
						if used == 8 {
							b.WriteByte(cur)
							cur, used = 0, 0
						}
					}
					if used > 0 {
						b.WriteByte(cur)
					}
				}
			case len(palette) <= 127 && len(palette) >= 2 && tile%3 == 1:
				kinds["palette rle"]++
				b.WriteByte(byte(128 + len(palette)))
				for _, c := range palette {
					cp(c)
				}
				for i := 0; i < len(px); {
					n := 1
					for i+n < len(px) && px[i+n] == px[i] {
						n++
					}
					if n == 1 {
						b.WriteByte(byte(index[px[i]]))
					} else {
						b.WriteByte(byte(128 | index[px[i]]))
						runLen(n)
					}
					i += n
				}
			case tile%3 == 2 || len(palette) == 1:
				kinds["plain rle"]++
				b.WriteByte(128)
				for i := 0; i < len(px); {
					n := 1
					for i+n < len(px) && px[i+n] == px[i] {
						n++
					}
					cp(px[i])
					runLen(n)
					i += n
				}
			default:
				kinds["raw"]++
				b.WriteByte(0)
				for _, c := range px {
					cp(c)
				}
			}
		}
	}
	return b.Bytes()
}

func TestZRLETilesEverySubencoding(t *testing.T) {
	const w, h = 300, 200
	img := testImage(w, h, 7)
	kinds := map[string]int{}
	data := zrleEncodeKinds(img, w, 0, 0, w, h, kinds)
	for _, k := range []string{"solid", "packed palette", "palette rle", "plain rle", "raw"} {
		if kinds[k] == 0 {
			t.Errorf("the test image has no %s tile (kinds %v)", k, kinds)
		}
	}
	fb := &Frame{}
	fb.resize(w, h)
	if err := zrleTiles(data, fb, 0, 0, w, h); err != nil {
		t.Fatal(err)
	}
	for i := range img {
		if fb.Pix[i] != img[i] {
			t.Fatalf("pixel %d,%d = %06x, want %06x", i%w, i/w, fb.Pix[i], img[i])
		}
	}
}

func TestZRLEInflateKeepsStreamAcrossRectangles(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	var d zrleDecoder
	rng := rand.New(rand.NewSource(3))
	// Repetitive data makes deflate refer back into earlier rectangles.
	word := make([]byte, 5000)
	rng.Read(word)
	for i := 0; i < 20; i++ {
		want := bytes.Repeat(word[:1000+rng.Intn(4000)], 1+rng.Intn(12))
		z.Reset()
		zw.Write(want)
		zw.Flush()
		got, err := d.inflate(append([]byte(nil), z.Bytes()...), 1<<20)
		if err != nil {
			t.Fatalf("rectangle %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("rectangle %d: inflated %d bytes, want %d", i, len(got), len(want))
		}
	}
}

func TestZRLERejectsBadData(t *testing.T) {
	fb := &Frame{}
	fb.resize(64, 64)
	for name, data := range map[string][]byte{
		"empty":          nil,
		"unknown sub":    {17},
		"short raw":      {0, 1, 2, 3},
		"short solid":    {1, 1},
		"short palette":  {2, 1, 2, 3},
		"run past tile":  {128, 1, 2, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 10},
		"palette index":  {130, 1, 1, 1, 2, 2, 2, 5},
		"trailing bytes": {1, 9, 9, 9, 0},
	} {
		if err := zrleTiles(data, fb, 0, 0, 64, 64); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var d zrleDecoder
	if _, err := d.inflate([]byte{0x78, 0x00}, 1<<20); err == nil {
		t.Error("bad zlib header accepted")
	}
}

func FuzzZRLETiles(f *testing.F) {
	img := testImage(70, 70, 1)
	fuzzseed.Add(f, []any{zrleEncode(img, 70, 0, 0, 70, 70)}, []any{[]byte{1, 0, 0, 0}}, []any{[]byte{200, 1, 2}})
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &Frame{}
		fb.resize(70, 70)
		_ = zrleTiles(data, fb, 0, 0, 70, 70) // must not panic
	})
}
