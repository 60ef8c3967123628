package machine

import (
	"path/filepath"
	"testing"
)

func TestAbsPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	home := filepath.Join(dir, "home of mine")
	t.Setenv("HOME", home)
	for in, want := range map[string]string{
		"":                 "",
		"vmlinuz":          filepath.Join(dir, "vmlinuz"),
		"./a/../b.iso":     filepath.Join(dir, "b.iso"),
		"/abs/x.iso":       "/abs/x.iso",
		"~/isos/d.iso":     filepath.Join(home, "isos", "d.iso"),
		"~":                home,
		"~other/x":         filepath.Join(dir, "~other", "x"),
		"dir with space/k": filepath.Join(dir, "dir with space", "k"),
	} {
		got, err := AbsPath(in)
		if err != nil || got != want {
			t.Errorf("AbsPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	b := Boot{ISO: "i.iso", Kernel: "k", Initrd: "", DTB: "sub/d.dtb", Append: "console=ttyS0 root=x"}
	if err := AbsBoot(&b); err != nil {
		t.Fatal(err)
	}
	want := Boot{ISO: filepath.Join(dir, "i.iso"), Kernel: filepath.Join(dir, "k"), DTB: filepath.Join(dir, "sub/d.dtb"), Append: "console=ttyS0 root=x"}
	if b != want {
		t.Errorf("AbsBoot = %+v, want %+v", b, want)
	}
}
