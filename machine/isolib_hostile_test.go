package machine

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawHTTP answers every request with the bytes head + body written straight
// to the connection, so a test can send headers and bodies a well-behaved
// server never would (Content-Length smaller than the body, a Content-Range
// that does not add up). endless keeps sending body after that.
func rawHTTP(t *testing.T, head string, body []byte, endless bool) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString(head + "\r\n")
		buf.Write(body)
		if endless {
			chunk := bytes.Repeat([]byte{'x'}, 64<<10)
			for {
				if _, err := buf.Write(chunk); err != nil {
					return
				}
			}
		}
		buf.Flush()
	}))
}

// TestDownloadHostileServer: a server whose headers lie gets a one-line
// error, no panic, a Progress that never runs past its total (the progress
// bar's arithmetic), and the part file an earlier run left is still the
// bytes it was.
func TestDownloadHostileServer(t *testing.T) {
	data := randomData(300)
	have := 100 // bytes an earlier run left in name.part
	for _, c := range []struct {
		name    string
		head    string
		body    []byte
		endless bool
		max     int64
		want    string
	}{
		{"total smaller than the range", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-299/150\r\nContent-Length: 200\r\n", data[100:], false, 0, "content-range"},
		{"negative total", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-299/-300\r\nContent-Length: 200\r\n", data[100:], false, 0, "content-range"},
		{"negative start", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes -100-299/300\r\nContent-Length: 200\r\n", data[100:], false, 0, "content-range"},
		{"wrong start", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 50-299/300\r\nContent-Length: 250\r\n", data[50:], false, 0, "wrong offset"},
		{"end before start", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-20/300\r\nContent-Length: 200\r\n", data[100:], false, 0, "content-range"},
		{"short range", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-149/300\r\nContent-Length: 50\r\n", data[100:150], false, 0, "content-range"},
		{"length disagrees with range", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-299/300\r\nContent-Length: 20\r\n", data[100:120], false, 0, "content-length"},
		{"no length, more than the range", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-299/300\r\nConnection: close\r\n", append(append([]byte{}, data[100:]...), make([]byte, 5000)...), false, 0, "more than"},
		{"unknown total, endless", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-*/*\r\nConnection: close\r\n", nil, true, 1 << 20, "content-range"},
		{"unknown total star, endless", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-299/*\r\nConnection: close\r\n", nil, true, 1 << 20, "larger than"},
		{"200 too big", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n", nil, false, 1 << 20, "larger than"},
		{"200 endless", "HTTP/1.1 200 OK\r\nConnection: close\r\n", nil, true, 1 << 20, "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := rawHTTP(t, c.head, c.body, c.endless)
			defer ts.Close()
			lib := &ISOLibrary{Dir: t.TempDir()}
			if err := lib.ensure(); err != nil {
				t.Fatal(err)
			}
			part := filepath.Join(lib.Dir, "x.iso"+partSuffix)
			if !strings.HasPrefix(c.head, "HTTP/1.1 200") {
				if err := os.WriteFile(part, data[:have], 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var bad []Progress
			opts := GetOptions{SHA256: sumOf(data), MaxSize: c.max, Progress: func(p Progress) {
				if p.Total >= 0 && (p.Done > p.Total || p.Done < 0) || p.Resumed > p.Done {
					bad = append(bad, p)
				}
			}}
			_, err := lib.Download(context.Background(), ts.URL+"/x.iso", opts)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line mentioning %q", err, c.want)
			}
			if len(bad) > 0 {
				t.Errorf("progress ran past its total: %+v", bad)
			}
			got, _ := os.ReadFile(part)
			if strings.HasPrefix(c.head, "HTTP/1.1 200") {
				if len(got) > 0 {
					t.Errorf("a refused download left %d bytes in %s", len(got), part)
				}
				return
			}
			if !bytes.Equal(got, data[:len(got)]) || len(got) < have {
				t.Errorf("the part file is %d bytes and no longer a prefix of the file (had %d good bytes)", len(got), have)
			}
		})
	}
}

// TestDownloadHostileServerRawHeaderSanity checks the raw server itself
// answers a plain client, so the cases above fail for vlab's reasons.
func TestDownloadHostileServerRawHeaderSanity(t *testing.T) {
	ts := rawHTTP(t, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", []byte("abc"), false)
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if resp.StatusCode != 200 || b != "abc" {
		t.Fatalf("raw server: %d %q", resp.StatusCode, b)
	}
}
