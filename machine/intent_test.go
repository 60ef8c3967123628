package machine

import "testing"

func TestLeftoverOf(t *testing.T) {
	for _, c := range []struct {
		file, name string
		ok         bool
	}{
		{".new-web-123456", "web", true},
		{".new-my-vm-42", "my-vm", true},
		{".deleted-web-1733300000000000000", "web", true},
		{".new-web-", "", false},
		{".new-web-12a", "", false},
		{".new--12", "", false},
		{"web", "", false},
		{".tmp-1", "", false},
		{".deleted-../x-1", "", false},
	} {
		name, ok := leftoverOf(c.file)
		if name != c.name || ok != c.ok {
			t.Errorf("leftoverOf(%q) = %q, %v; want %q, %v", c.file, name, ok, c.name, c.ok)
		}
	}
}

func TestInsideDir(t *testing.T) {
	for _, c := range []struct {
		dir, path string
		want      bool
	}{
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/b/.x/y", true},
		{"/a/b", "/a/b", false},
		{"/a/b", "/a/bc", false},
		{"/a/b", "/a/b/../c", false},
		{"/a/b", "/a/b/..x", true},
	} {
		if got := insideDir(c.dir, c.path); got != c.want {
			t.Errorf("insideDir(%q, %q) = %v, want %v", c.dir, c.path, got, c.want)
		}
	}
}
