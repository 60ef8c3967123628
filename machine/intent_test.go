package machine

import (
	"os"
	"testing"

	"vlab/emulator"
)

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

// A convert or import killed before its end is settled from machine.toml:
// a new disk it lists stays (and a converted original it no longer lists
// goes); a new disk it does not list goes, the original stays.
func TestSettleDiskSwap(t *testing.T) {
	for _, c := range []struct {
		name    string
		op      string
		listed  string // the disk machine.toml names
		keepNew bool
		keepOld bool
	}{
		{"convert done", intentConvert, "disk0.qcow2", true, false},
		{"convert not done", intentConvert, "disk0.raw", false, true},
		{"import not done", intentImport, "disk0.raw", false, true},
		{"import done", intentImport, "disk0.qcow2", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := NewSpec("vm", emulator.ArchX86_64)
			spec.Disks = []DiskSpec{{File: c.listed, Size: MiB, Format: "qcow2"}}
			s := testStore(t, spec)
			p := s.Paths("vm")
			for _, f := range []string{"disk0.raw", "disk0.qcow2"} {
				if err := os.WriteFile(p.DiskPath(f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := settleDiskSwap(p, &intent{Op: c.op, VM: "vm", NewDisk: "disk0.qcow2", OldDisk: "disk0.raw"}); err != nil {
				t.Fatal(err)
			}
			for f, want := range map[string]bool{"disk0.qcow2": c.keepNew, "disk0.raw": c.keepOld} {
				if _, err := os.Stat(p.DiskPath(f)); (err == nil) != want {
					t.Errorf("%s there = %v, want %v", f, err == nil, want)
				}
			}
		})
	}
}
