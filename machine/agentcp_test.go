package machine

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name, body, link string
	typ              byte
}

func tarOf(t *testing.T, es ...entry) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &b
}

// TestAgentCopyRoundTrip: what writeTar archives, extractTar puts back,
// into a folder or under a new name, like scp -r.
func TestAgentCopyRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "my dir")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a file.txt"), []byte("hello"), 0o600)
	os.WriteFile(filepath.Join(src, "sub", "b"), bytes.Repeat([]byte("x"), 3<<20), 0o644)
	os.Symlink("a file.txt", filepath.Join(src, "link"))
	var b bytes.Buffer
	if err := writeTar(&b, src, "my dir"); err != nil {
		t.Fatal(err)
	}
	into := t.TempDir()
	if err := extractTar(bytes.NewReader(b.Bytes()), into, "my dir"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(into, "my dir", "a file.txt")); string(got) != "hello" {
		t.Errorf("file = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(into, "my dir", "sub", "b")); err != nil || fi.Size() != 3<<20 {
		t.Errorf("big file: %v", err)
	}
	if l, _ := os.Readlink(filepath.Join(into, "my dir", "link")); l != "a file.txt" {
		t.Errorf("symlink = %q", l)
	}
	renamed := filepath.Join(t.TempDir(), "copy")
	if err := extractTar(bytes.NewReader(b.Bytes()), renamed, "my dir"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(renamed, "a file.txt")); string(got) != "hello" {
		t.Errorf("renamed copy: %q", got)
	}
}

// TestAgentCopyHostileArchives: an untrusted guest's archive cannot write
// outside the destination, through a symlink, or under another name.
func TestAgentCopyHostileArchives(t *testing.T) {
	reg := func(name string) entry { return entry{name: name, body: "pwned", typ: tar.TypeReg} }
	cases := map[string][]entry{
		"dotdot":        {{name: "d/", typ: tar.TypeDir}, reg("d/../escape")},
		"absolute":      {reg("/tmp/escape")},
		"other top":     {{name: "d/", typ: tar.TypeDir}, reg("other")},
		"prefix top":    {{name: "d/", typ: tar.TypeDir}, reg("dx/escape")},
		"symlink dir":   {{name: "d/", typ: tar.TypeDir}, {name: "d/l", link: "..", typ: tar.TypeSymlink}, reg("d/l/escape")},
		"symlink abs":   {{name: "d/", typ: tar.TypeDir}, {name: "d/l", link: "/", typ: tar.TypeSymlink}, reg("d/l/tmp/escape")},
		"nested dotdot": {{name: "d/", typ: tar.TypeDir}, reg("d/a/../../escape")},
	}
	for name, es := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "dst")
			os.Mkdir(dst, 0o755)
			err := extractTar(tarOf(t, es...), dst, "d")
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Errorf("err = %v, want ErrUnsafeArchive", err)
			}
			filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
				if d != nil && !d.IsDir() && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); string(b) == "pwned" && !strings.HasPrefix(p, filepath.Join(dst, "d")+"/") {
						t.Errorf("wrote %s outside the destination", p)
					}
				}
				return nil
			})
		})
	}
	// A symlink already in the destination is replaced, never written through.
	dst := t.TempDir()
	outside := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(outside, []byte("safe"), 0o644)
	os.Symlink(outside, filepath.Join(dst, "f"))
	if err := extractTar(tarOf(t, reg("f")), dst, "f"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "safe" {
		t.Errorf("wrote through an existing symlink: %q", b)
	}
	// Garbage and empty archives are errors, not panics.
	if err := extractTar(strings.NewReader(strings.Repeat("garbage", 200)), t.TempDir(), "f"); err == nil {
		t.Error("garbage archive accepted")
	}
	if err := extractTar(strings.NewReader(""), t.TempDir(), "f"); err == nil {
		t.Error("empty archive accepted")
	}
}

func TestTopName(t *testing.T) {
	for in, want := range map[string]string{"a/b/": "b", "my dir": "my dir", "/x/y.txt": "y.txt"} {
		if got, err := topName(in); err != nil || got != want {
			t.Errorf("topName(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"/", ".", "a/..", ""} {
		if _, err := topName(in); err == nil {
			t.Errorf("topName(%q) accepted", in)
		}
	}
}

// TestExtractTarKeepsOwnerModes: modes from the guest never widen what
// lands on the host — files and folders are 0600/0700 at most — and a
// folder already on the host keeps its own mode.
func TestExtractTarKeepsOwnerModes(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o777},
		{Name: "d/run", Typeflag: tar.TypeReg, Mode: 0o4777, Size: 1},
		{Name: "d/data", Typeflag: tar.TypeReg, Mode: 0o666, Size: 1},
		{Name: "d/deep/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	dst := t.TempDir()
	if err := extractTar(bytes.NewReader(b.Bytes()), dst, "d"); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]os.FileMode{"d": 0o700, "d/run": 0o700, "d/data": 0o600, "d/deep": 0o700, "d/deep/f": 0o600} {
		fi, err := os.Stat(filepath.Join(dst, rel))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeSetuid); got != want {
			t.Errorf("%s: mode %v, want %v", rel, got, want)
		}
	}
	// Again into the same place: the host's folder keeps its mode.
	if err := os.Chmod(filepath.Join(dst, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := extractTar(bytes.NewReader(b.Bytes()), dst, "d"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "d")); fi.Mode().Perm() != 0o750 {
		t.Errorf("existing folder: mode %v, want it left at 0750", fi.Mode().Perm())
	}
}
