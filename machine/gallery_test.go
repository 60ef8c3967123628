package machine

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestBuiltinGalleryParses(t *testing.T) {
	g, err := ParseGallery(builtinGallery)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"debian-12", "ubuntu-24.04", "fedora-41", "alpine-3.20", "freebsd-14"} {
		if _, err := g.Find(id, "x86_64"); err != nil {
			t.Errorf("built-in gallery: %v", err)
		}
	}
}

func TestGalleryUnknownIDListsCloseMatches(t *testing.T) {
	g, err := ParseGallery(builtinGallery)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"debian-13": "debian-12", "ubuntu-2404": "ubuntu-24.04", "fedora-14": "fedora-41"} {
		_, err := g.Find(id, "x86_64")
		if err == nil || !strings.Contains(err.Error(), "did you mean") || !strings.Contains(err.Error(), want) {
			t.Errorf("Find(%q): err = %v, want a suggestion of %s", id, err, want)
		}
	}
	_, err = g.Find("fedora-41", "ppc")
	if err == nil || !strings.Contains(err.Error(), "--arch x86_64") {
		t.Errorf("Find on a missing arch: err = %v, want the arches it has", err)
	}
}

func TestParseGalleryRefusesBadEntries(t *testing.T) {
	for _, bad := range []string{
		"[[image]]\nid = \"x\"\narch = \"x86_64\"\nkind = \"cloud\"\nurl = \"http://h/x.img\"\nprofile = \"debian\"\n",                                                   // no checksum
		"[[image]]\nid = \"x\"\narch = \"x86_64\"\nkind = \"cloud\"\nurl = \"file:///etc/shadow\"\nsha256 = \"" + strings.Repeat("a", 64) + "\"\nprofile = \"debian\"\n", // not http
		"[[image]]\nid = \"x\"\narch = \"x86_64\"\nkind = \"disk\"\nurl = \"http://h/x.img\"\nsha256 = \"" + strings.Repeat("a", 64) + "\"\nprofile = \"debian\"\n",      // kind
		"[[image]]\nid = \"x\"\narch = \"x86_64\"\nkind = \"cloud\"\nurl = \"http://h/x.img\"\nsha256 = \"" + strings.Repeat("a", 64) + "\"\nprofile = \"nosuch\"\n",     // profile
		"[[image]]\nid = \"x\"\nnosuchkey = 1\n",
	} {
		if _, err := ParseGallery([]byte(bad)); err == nil {
			t.Errorf("ParseGallery accepted %q", bad)
		}
	}
}

func TestSumFor(t *testing.T) {
	a, b := strings.Repeat("ab", 32), strings.Repeat("cd", 64)
	list := "# comment\n" + a + "  other.iso\n" + a[:62] + "ef *dir/want.iso\nSHA512 (fed.qcow2) = " + b + "\n"
	if got, err := SumFor([]byte(list), "want.iso"); err != nil || got != a[:62]+"ef" {
		t.Errorf("GNU line: %q, %v", got, err)
	}
	if got, err := SumFor([]byte(list), "fed.qcow2"); err != nil || got != b {
		t.Errorf("BSD line: %q, %v", got, err)
	}
	if _, err := SumFor([]byte(list), "missing.iso"); err == nil {
		t.Error("a file the list does not name got a checksum")
	}
}

// flakyServer serves a file that is corrupted in its first `bad` responses.
type flakyServer struct {
	data []byte
	bad  int
	mu   sync.Mutex
	n    int
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	corrupt := s.n <= s.bad
	s.mu.Unlock()
	body := s.data
	if corrupt {
		body = bytes.Clone(s.data)
		body[len(body)/2] ^= 0xff
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}

func galleryWith(t *testing.T, s *Store, e GalleryEntry) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gallery.toml")
	body := fmt.Sprintf("[[image]]\nid = %q\ntitle = \"t\"\narch = %q\nkind = %q\nurl = %q\nprofile = %q\n", e.ID, e.Arch, e.Kind, e.URL, e.Profile)
	if e.SHA256 != "" {
		body += fmt.Sprintf("sha256 = %q\n", e.SHA256)
	}
	if e.Sums != "" {
		body += fmt.Sprintf("sums = %q\n", e.Sums)
	}
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(GalleryEnv, p)
}

func TestGalleryCorruptDownloadIsRetriedThenRefused(t *testing.T) {
	data := randomData(300 << 10)
	ctx := context.Background()
	for _, tc := range []struct {
		bad     int
		wantErr bool
	}{{bad: 1}, {bad: 5, wantErr: true}} {
		srv := &flakyServer{data: data, bad: tc.bad}
		ts := httptest.NewServer(srv)
		s := emptyStore(t)
		galleryWith(t, s, GalleryEntry{ID: "tiny-1", Arch: "x86_64", Kind: KindCloud, URL: ts.URL + "/tiny.qcow2", SHA256: sumOf(data), Profile: "debian"})
		g, err := s.Gallery()
		if err != nil {
			t.Fatal(err)
		}
		e, err := g.Find("tiny-1", "x86_64")
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.FetchGallery(ctx, e, FetchOptions{})
		imgs := filepath.Join(s.dirs.Cache, imagesDirName)
		if tc.wantErr {
			if !errors.Is(err, ErrChecksum) {
				t.Errorf("always-corrupt server: err = %v, want a checksum error", err)
			}
			ents, _ := os.ReadDir(imgs)
			for _, en := range ents {
				if strings.HasPrefix(en.Name(), "tiny-1") {
					t.Errorf("a refused download left %s", en.Name())
				}
			}
			if srv.n != 2 {
				t.Errorf("server saw %d requests, want 2 (one retry)", srv.n)
			}
		} else {
			if err != nil {
				t.Fatalf("corrupt once: %v, want the retry to succeed", err)
			}
			b, _ := os.ReadFile(got)
			if !bytes.Equal(b, data) {
				t.Error("fetched file differs from the served one")
			}
		}
		ts.Close()
	}
}

func TestGalleryInterruptedDownloadResumesAndSHA512Sums(t *testing.T) {
	data := randomData(2<<20 + 7)
	srv := &isoServer{data: data, cutAt: 1 << 20}
	sum := sha512.Sum512(data)
	mux := http.NewServeMux()
	mux.Handle("/img/", srv)
	mux.HandleFunc("/SHA512SUMS", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s  other.qcow2\n%s  cloud.qcow2\n", strings.Repeat("0", 128), hex.EncodeToString(sum[:]))
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	s := emptyStore(t)
	galleryWith(t, s, GalleryEntry{ID: "deb", Arch: "x86_64", Kind: KindCloud, URL: ts.URL + "/img/cloud.qcow2", Sums: ts.URL + "/SHA512SUMS", Profile: "debian"})
	g, err := s.Gallery()
	if err != nil {
		t.Fatal(err)
	}
	e, _ := g.Find("deb", "x86_64")
	ctx := context.Background()
	if _, err := s.FetchGallery(ctx, e, FetchOptions{}); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("cut download: err = %v, want an interruption", err)
	}
	got, err := s.FetchGallery(ctx, e, FetchOptions{})
	if err != nil {
		t.Fatalf("resumed: %v", err)
	}
	if r := srv.ranges(); len(r) != 2 || r[1] != "bytes=1048576-" {
		t.Errorf("Range headers = %q, want the second request to resume at 1048576", r)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Error("resumed file differs from the served one")
	}
	// Cached: no more requests.
	if _, err := s.FetchGallery(ctx, e, FetchOptions{}); err != nil || len(srv.ranges()) != 2 {
		t.Errorf("cached fetch: %v, %d requests", err, len(srv.ranges()))
	}
}

func TestGalleryUpdateKeepsACheckedCopy(t *testing.T) {
	good := "[[image]]\nid = \"new-1\"\ntitle = \"n\"\narch = \"x86_64\"\nkind = \"iso\"\nurl = \"http://mirror.invalid/n.iso\"\nsha256 = \"" + strings.Repeat("a", 64) + "\"\nprofile = \"debian\"\n"
	body := good
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	defer ts.Close()
	s := emptyStore(t)
	t.Setenv(GalleryEnv, "")
	if _, err := s.UpdateGallery(context.Background(), ts.URL+"/g.toml", nil); err != nil {
		t.Fatal(err)
	}
	g, err := s.Gallery()
	if err != nil || len(g.Entries) != 1 || g.Entries[0].ID != "new-1" {
		t.Fatalf("gallery after update = %+v, %v", g, err)
	}
	if fi, err := os.Stat(filepath.Join(s.dirs.Config, galleryFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved gallery: %v %v, want mode 0600", fi, err)
	}
	body = "not toml ["
	if _, err := s.UpdateGallery(context.Background(), ts.URL+"/g.toml", nil); err == nil {
		t.Error("a broken gallery was accepted")
	}
	if g, err := s.Gallery(); err != nil || g.Entries[0].ID != "new-1" {
		t.Errorf("a refused update changed the gallery: %+v %v", g, err)
	}
}

// TestResolveImageDottedGalleryID: an id with dots (ubuntu-24.04) is a
// gallery id, not a file name; a missing file with an image extension
// says so.
func TestResolveImageDottedGalleryID(t *testing.T) {
	data := randomData(64 << 10)
	ts := httptest.NewServer(&flakyServer{data: data})
	defer ts.Close()
	s := emptyStore(t)
	galleryWith(t, s, GalleryEntry{ID: "distro-24.04", Arch: "x86_64", Kind: KindCloud, URL: ts.URL + "/d.qcow2", SHA256: sumOf(data), Profile: "debian"})
	got, e, err := s.ResolveImage(context.Background(), "distro-24.04", "x86_64", "", FetchOptions{})
	if err != nil || e == nil || e.ID != "distro-24.04" {
		t.Fatalf("ResolveImage(distro-24.04) = %q, %+v, %v: want the gallery entry", got, e, err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Error("fetched file differs from the served one")
	}
	_, _, err = s.ResolveImage(context.Background(), "distro-24.10", "x86_64", "", FetchOptions{})
	if !errors.Is(err, ErrNoGalleryEntry) || !strings.Contains(err.Error(), "distro-24.04") {
		t.Errorf("unknown dotted id: %v, want a gallery miss naming distro-24.04", err)
	}
	_, _, err = s.ResolveImage(context.Background(), "missing.qcow2", "x86_64", "", FetchOptions{})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing.qcow2: %v, want no such file", err)
	}
}
