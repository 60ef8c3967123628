package machine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// isoServer serves one file over HTTP with Range support. It can cut the
// first response after cutAt bytes (a dropped connection) and can ignore
// Range headers (a server without resume).
type isoServer struct {
	data        []byte
	cutAt       int  // > 0: the first full response stops after this many bytes
	ignoreRange bool // answer 200 with the whole file even to a Range request

	mu       sync.Mutex
	requests []string // the Range header of each request ("" = none)
	cut      bool
}

func (s *isoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Header.Get("Range"))
	cutNow := s.cutAt > 0 && !s.cut
	s.cut = s.cut || cutNow
	s.mu.Unlock()
	start := 0
	if rng := r.Header.Get("Range"); rng != "" && !s.ignoreRange {
		v, ok := strings.CutPrefix(rng, "bytes=")
		n, err := strconv.Atoi(strings.TrimSuffix(v, "-"))
		if !ok || err != nil {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if n >= len(s.data) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(s.data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = n
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(s.data)-1, len(s.data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)-n))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
	}
	body := s.data[start:]
	if cutNow {
		w.Write(body[:s.cutAt])
		w.(http.Flusher).Flush()
		// Drop the connection mid-body, as a network failure would.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Write(body)
}

func (s *isoServer) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestDownloadResumesAfterInterruption(t *testing.T) {
	data := randomData(3<<20 + 123)
	srv := &isoServer{data: data, cutAt: 1 << 20}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	lib := &ISOLibrary{Dir: t.TempDir()}
	ctx := context.Background()
	url := ts.URL + "/dists/debian-12.7.0-amd64-netinst.iso"

	var reports []Progress
	opts := GetOptions{SHA256: sumOf(data), Progress: func(p Progress) { reports = append(reports, p) }}
	_, err := lib.Download(ctx, url, opts)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "again to resume") {
		t.Fatalf("first download: err = %v, want an interruption that says how to resume", err)
	}
	part := filepath.Join(lib.Dir, "debian-12.7.0-amd64-netinst.iso.part")
	fi, err := os.Stat(part)
	if err != nil || fi.Size() != 1<<20 {
		t.Fatalf("partial file after the cut: %v (size %d), want %d bytes kept", err, sizeOf(fi), 1<<20)
	}
	if _, err := lib.Get("debian-12.7.0-amd64-netinst.iso"); err == nil {
		t.Error("an interrupted download is listed in the library")
	}

	reports = nil
	e, err := lib.Download(ctx, url, opts)
	if err != nil {
		t.Fatalf("resumed download: %v", err)
	}
	if r := srv.ranges(); len(r) != 2 || r[0] != "" || r[1] != "bytes=1048576-" {
		t.Errorf("requests' Range headers = %q, want none then bytes=1048576-", r)
	}
	got, err := os.ReadFile(e.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs from the served one (err %v)", err)
	}
	if e.SHA256 != sumOf(data) || e.Size != int64(len(data)) || e.Source != url {
		t.Errorf("entry = %+v", e)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf("partial file still there: %v", err)
	}
	// Progress: reported, knows the resumed part and the total, ends at 100%.
	if len(reports) == 0 {
		t.Fatal("no progress reported")
	}
	last := reports[len(reports)-1]
	if last.Done != int64(len(data)) || last.Total != int64(len(data)) || last.Resumed != 1<<20 {
		t.Errorf("last progress = %+v, want done = total = %d, resumed %d", last, len(data), 1<<20)
	}
	for i := 1; i < len(reports); i++ {
		if reports[i].Done < reports[i-1].Done {
			t.Errorf("progress went backwards: %+v then %+v", reports[i-1], reports[i])
		}
	}

	// A second get of the same verified file does not download again.
	if _, err := lib.Download(ctx, url, opts); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.ranges()); n != 2 {
		t.Errorf("a download of a file already in the library made %d requests, want none more", n-2)
	}
	list, err := lib.List()
	if err != nil || len(list) != 1 || list[0].Name != "debian-12.7.0-amd64-netinst.iso" {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}

func TestDownloadWrongChecksumRemovesFile(t *testing.T) {
	data := randomData(512 << 10)
	srv := &isoServer{data: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	lib := &ISOLibrary{Dir: t.TempDir()}
	wrong := sumOf([]byte("something else"))
	var reported bool
	_, err := lib.Download(context.Background(), ts.URL+"/x.iso", GetOptions{SHA256: wrong, Progress: func(Progress) { reported = true }})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), sumOf(data)) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("err = %v, want ErrChecksum naming the real sum and the deletion", err)
	}
	if !reported {
		t.Error("no progress reported")
	}
	ents, _ := os.ReadDir(lib.Dir)
	for _, e := range ents {
		if e.Name() != isoIndexFile && !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s left behind after a checksum mismatch", e.Name())
		}
	}
	if list, _ := lib.List(); len(list) != 0 {
		t.Errorf("library lists %+v after a mismatch", list)
	}
	// The next run starts from zero (no Range), and with the right sum succeeds.
	if _, err := lib.Download(context.Background(), ts.URL+"/x.iso", GetOptions{SHA256: strings.ToUpper(sumOf(data))}); err != nil {
		t.Fatal(err)
	}
	if r := srv.ranges(); len(r) != 2 || r[1] != "" {
		t.Errorf("Range headers = %q, want a fresh second download", r)
	}
}

func TestDownloadServerWithoutRanges(t *testing.T) {
	data := randomData(2 << 20)
	srv := &isoServer{data: data, cutAt: 700 << 10, ignoreRange: true}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	lib := &ISOLibrary{Dir: t.TempDir()}
	opts := GetOptions{SHA256: sumOf(data), Name: "renamed.iso"}
	if _, err := lib.Download(context.Background(), ts.URL+"/dl?id=7", opts); err == nil {
		t.Fatal("cut download succeeded")
	}
	e, err := lib.Download(context.Background(), ts.URL+"/dl?id=7", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(e.Path)
	if !bytes.Equal(got, data) || e.Name != "renamed.iso" {
		t.Errorf("restart after an ignored Range gave a different file (%d bytes) or name %q", len(got), e.Name)
	}
}

func TestDownloadRefusals(t *testing.T) {
	lib := &ISOLibrary{Dir: t.TempDir()}
	ctx := context.Background()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	for _, c := range []struct {
		url  string
		opts GetOptions
		want string
	}{
		{"ftp://example.org/x.iso", GetOptions{}, "not an http(s) URL"},
		{"::", GetOptions{}, "not an http(s) URL"},
		{notFound.URL + "/x.iso", GetOptions{SHA256: "abc"}, "not 64 hex digits"},
		{notFound.URL + "/", GetOptions{}, "iso name"},
		{notFound.URL + "/x.iso", GetOptions{}, "404"},
	} {
		if _, err := lib.Download(ctx, c.url, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Download(%q): err = %v, want it to mention %q", c.url, err, c.want)
		}
	}
}

func TestISOLibraryAddListRemove(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "My Installer.iso")
	if err := WriteSeedISO(src, "x", CloudInit{UserData: []byte("#cloud-config\n")}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(src)
	lib := &ISOLibrary{Dir: filepath.Join(dir, "lib")}
	ctx := context.Background()

	if _, err := lib.Add(ctx, src, AddOptions{}); err == nil || !strings.Contains(err.Error(), "--name") {
		t.Errorf("a name with a space: err = %v, want a hint to use --name", err)
	}
	e, err := lib.Add(ctx, src, AddOptions{Name: "installer.iso", SHA256: sumOf(data)})
	if err != nil {
		t.Fatal(err)
	}
	if e.SHA256 != sumOf(data) || e.Size != int64(len(data)) || e.Source != src {
		t.Errorf("entry = %+v", e)
	}
	if got, _ := os.ReadFile(e.Path); !bytes.Equal(got, data) {
		t.Error("library copy differs")
	}
	if _, err := lib.Add(ctx, src, AddOptions{Name: "installer.iso"}); err == nil || !strings.Contains(err.Error(), "already in the library") {
		t.Errorf("duplicate: err = %v", err)
	}
	if _, err := lib.Add(ctx, src, AddOptions{Name: "bad-sum.iso", SHA256: sumOf(nil)}); !errors.Is(err, ErrChecksum) {
		t.Errorf("wrong sum: err = %v, want ErrChecksum", err)
	}
	linked, err := lib.Add(ctx, src, AddOptions{Name: "linked.iso", Symlink: true})
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(linked.Path); err != nil || target != src || !linked.Linked {
		t.Errorf("linked entry: target %q err %v linked %v", target, err, linked.Linked)
	}
	notISO := filepath.Join(dir, "notes.txt")
	os.WriteFile(notISO, []byte("hello"), 0o644)
	if _, err := lib.Add(ctx, notISO, AddOptions{}); err == nil || !strings.Contains(err.Error(), "not an ISO") {
		t.Errorf("text file: err = %v", err)
	}
	list, err := lib.List()
	if err != nil || len(list) != 2 || list[0].Name != "installer.iso" || list[1].Name != "linked.iso" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := lib.Remove(ctx, "installer.iso"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(lib.Dir, "installer.iso")); !os.IsNotExist(err) {
		t.Error("removed ISO still on disk")
	}
	if err := lib.Remove(ctx, "linked.iso"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src); err != nil {
		t.Error("removing a linked ISO deleted the user's file")
	}
	if err := lib.Remove(ctx, "installer.iso"); err == nil || !strings.Contains(err.Error(), "not in the library") {
		t.Errorf("second remove: err = %v", err)
	}
	if err := lib.Remove(ctx, "../etc/passwd"); err == nil {
		t.Error("a path was accepted as a name")
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][4]int64{
		"bytes 100-199/200": {100, 199, 200, 1},
		"bytes 0-0/*":       {0, 0, -1, 1},
		"bytes */200":       {0, 0, 0, 0},
		"items 1-2/3":       {0, 0, 0, 0},
		"":                  {0, 0, 0, 0},
		"bytes 100-199/150": {0, 0, 0, 0},
		"bytes 5-1/10":      {0, 0, 0, 0},
		"bytes -5-1/10":     {0, 0, 0, 0},
		"bytes 1-5/-10":     {0, 0, 0, 0},
		"bytes +1-5/10":     {0, 0, 0, 0},
	} {
		s, e, n, ok := parseContentRange(in)
		if ok != (want[3] == 1) || (ok && (s != want[0] || e != want[1] || n != want[2])) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v, want %v", in, s, e, n, ok, want)
		}
	}
}

// TestISOLibraryAddReportsProgress: Add's Progress sees the checksum and
// the copy as one job of twice the file's size: increasing values, ending
// at that total, whether the file is hard-linked or copied.
func TestISOLibraryAddReportsProgress(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "big.iso")
	if err := WriteSeedISO(src, "x", CloudInit{UserData: []byte("#cloud-config\n" + strings.Repeat("# pad\n", 200000))}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		noLink bool
	}{{"linked.iso", false}, {"copied.iso", true}} {
		t.Run(c.name, func(t *testing.T) {
			if c.noLink {
				old := linkFile
				linkFile = func(string, string) error { return errors.New("cross-device link") }
				t.Cleanup(func() { linkFile = old })
			}
			lib := &ISOLibrary{Dir: filepath.Join(dir, "lib-"+c.name)}
			var got [][2]float64
			e, err := lib.Add(context.Background(), src, AddOptions{Name: c.name, Progress: func(d, tot float64) {
				got = append(got, [2]float64{d, tot})
			}})
			if err != nil {
				t.Fatal(err)
			}
			want := float64(2 * fi.Size())
			if len(got) < 3 {
				t.Fatalf("progress = %v; want several reports", got)
			}
			for i, p := range got {
				if p[1] != want {
					t.Fatalf("report %d = %v; want total %v (checksum + copy)", i, p, want)
				}
				if i > 0 && p[0] <= got[i-1][0] {
					t.Fatalf("report %d = %v after %v; want increasing", i, p, got[i-1])
				}
			}
			if last := got[len(got)-1]; last[0] != want {
				t.Errorf("last report %v; want it at the total %v", last, want)
			}
			if b, _ := os.ReadFile(e.Path); int64(len(b)) != fi.Size() {
				t.Errorf("%s holds %d bytes, want %d", e.Path, len(b), fi.Size())
			}
			if c.noLink {
				// the copy's own reports cover the second half
				mid := 0
				for _, p := range got {
					if p[0] > float64(fi.Size()) && p[0] < want {
						mid++
					}
				}
				if mid == 0 {
					t.Errorf("progress = %v; want reports during the copy", got)
				}
			}
		})
	}
}
