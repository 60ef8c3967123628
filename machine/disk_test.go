package machine

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"vlab/emulator"
)

func TestParseImageInfo(t *testing.T) {
	data := `{"snapshots":[{"vm-clock-nsec":92122604,"name":"s1","date-sec":1795298250,"date-nsec":500707000,
	"vm-clock-sec":8,"id":"1","vm-state-size":95923958}],"virtual-size":67108864,"filename":"d.qcow2",
	"cluster-size":65536,"format":"qcow2","actual-size":96288768,"backing-filename":"base.qcow2",
	"format-specific":{"type":"vmdk","data":{"extents":[{"filename":"r-flat.vmdk"}]}},"dirty-flag":false}`
	info, err := parseImageInfo([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.VirtualSize != 64<<20 || info.BackingFilename != "base.qcow2" ||
		len(info.Snapshots) != 1 || info.Snapshots[0].Name != "s1" || info.Snapshots[0].VMStateSize != 95923958 ||
		info.Snapshots[0].Time().Unix() != 1795298250 || len(info.FormatSpecific.Data.Extents) != 1 {
		t.Errorf("parsed %+v", info)
	}
	if _, err := parseImageInfo([]byte(`{"virtual-size":1}`)); err == nil {
		t.Error("info without a format parsed")
	}
	if _, err := parseImageInfo([]byte(`qemu-img: Could not open`)); err == nil {
		t.Error("garbage parsed")
	}
}

func qimgRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func virtualSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := readImageInfo(context.Background(), "qemu-img", path, "", true)
	if err != nil {
		t.Fatal(err)
	}
	return info.VirtualSize
}

func TestDiskAddResizeRemove(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "disks", false)
	p := s.Paths("disks")

	d, err := s.DiskAdd(ctx, "disks", DiskOptions{Size: 8 * MiB})
	if err != nil {
		t.Fatal(err)
	}
	if d.File != "disk1.qcow2" || d.Format != "qcow2" || virtualSize(t, p.DiskPath(d.File)) != int64(8*MiB) {
		t.Fatalf("added %+v", d)
	}
	spec, _ := s.Load("disks")
	if len(spec.Disks) != 2 || spec.Disks[1] != d {
		t.Fatalf("spec disks = %+v", spec.Disks)
	}
	if _, err := s.DiskAdd(ctx, "disks", DiskOptions{Size: 8 * MiB, Format: "vmdk"}); err == nil {
		t.Error("adding a vmdk disk worked")
	}

	// Grow only, also with a snapshot in the image.
	if _, err := s.SnapshotCreate(ctx, "disks", "before-grow", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DiskResize(ctx, "disks", "hd1", 4*MiB); err == nil || !strings.Contains(err.Error(), "only grow") {
		t.Errorf("shrink: %v; want a refusal", err)
	}
	if err := s.DiskResize(ctx, "disks", "1", 8*MiB); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("same size: %v; want a refusal", err)
	}
	if err := s.DiskResize(ctx, "disks", "disk1.qcow2", 32*MiB); err != nil {
		t.Fatal(err)
	}
	if got := virtualSize(t, p.DiskPath("disk1.qcow2")); got != int64(32*MiB) {
		t.Errorf("after resize: %d bytes", got)
	}
	if spec, _ := s.Load("disks"); spec.Disks[1].Size != 32*MiB {
		t.Errorf("spec size after resize = %s", spec.Disks[1].Size)
	}
	if tr, _ := s.Snapshots(ctx, "disks"); !func() bool { sn, ok := tr.Get("before-grow"); return ok && sn.Restorable }() {
		t.Error("the snapshot did not survive growing the disk")
	}

	if err := s.DiskResize(ctx, "disks", "hd7", 64*MiB); err == nil || !strings.Contains(err.Error(), "0 (disk0.qcow2), 1 (disk1.qcow2)") {
		t.Errorf("unknown disk: %v; want the list of disks", err)
	}
	removed, err := s.DiskRemove(ctx, "disks", "disk1.qcow2", true)
	if err != nil || removed.File != "disk1.qcow2" {
		t.Fatalf("remove: %+v %v", removed, err)
	}
	if _, err := os.Stat(p.DiskPath("disk1.qcow2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed disk file still there: %v", err)
	}
	kept, err := s.DiskRemove(ctx, "disks", "0", false)
	if err != nil || kept.File != "disk0.qcow2" {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.DiskPath("disk0.qcow2")); err != nil {
		t.Errorf("detached disk without --delete-file was deleted: %v", err)
	}
	if spec, _ := s.Load("disks"); len(spec.Disks) != 0 {
		t.Errorf("disks left: %+v", spec.Disks)
	}
}

// patternedRaw makes a 4M raw image with distinct data at 0 and at 1M.
func patternedRaw(t *testing.T, dir string) string {
	t.Helper()
	raw := filepath.Join(dir, "src image.raw")
	qimgRun(t, "create", "-q", "-f", "raw", raw, "4M")
	if out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 90 0 64k", "-c", "write -P 51 1M 64k", raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v %s", err, out)
	}
	return raw
}

func TestDiskImportEveryFormat(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "imp", false)
	dir := t.TempDir()
	raw := patternedRaw(t, dir)
	for i, format := range ImportFormats {
		src := raw
		if format != "raw" {
			src = filepath.Join(dir, "src."+format)
			qimgRun(t, "convert", "-f", "raw", "-O", format, raw, src)
		}
		var mu sync.Mutex
		var calls [][2]float64
		opts := ImportOptions{Progress: func(done, total float64) {
			mu.Lock()
			calls = append(calls, [2]float64{done, total})
			mu.Unlock()
		}}
		if format == "raw" {
			opts.Format = "raw"
		}
		d, err := s.DiskImport(ctx, "imp", src, opts)
		if err != nil {
			t.Fatalf("import %s: %v", format, err)
		}
		size := virtualSize(t, src) // vpc rounds up to its disk geometry
		if d.Format != "qcow2" || int64(d.Size) != size || d.File != "disk"+strconv.Itoa(i+1)+".qcow2" {
			t.Errorf("import %s: disk %+v", format, d)
		}
		dst := s.Paths("imp").DiskPath(d.File)
		if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, dst).CombinedOutput(); err != nil {
			t.Errorf("import %s: content differs: %s", format, out)
		}
		if len(calls) == 0 {
			t.Errorf("import %s: no progress reported", format)
			continue
		}
		last := calls[len(calls)-1]
		if last[0] != last[1] || last[1] != float64(size) {
			t.Errorf("import %s: last progress %v; want done == total == %d", format, last, size)
		}
		for j := 1; j < len(calls); j++ {
			if calls[j][0] < calls[j-1][0] {
				t.Errorf("import %s: progress went back: %v", format, calls)
				break
			}
		}
	}
	if spec, _ := s.Load("imp"); len(spec.Disks) != 1+len(ImportFormats) {
		t.Errorf("spec has %d disks", len(spec.Disks))
	}
}

func TestDiskImportRefusesUnsafeOrUnknownImages(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "refuse", false)
	dir := t.TempDir()
	raw := patternedRaw(t, dir)
	overlay := filepath.Join(dir, "overlay.qcow2")
	qimgRun(t, "create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", overlay)
	cases := []struct {
		path, format, want string
	}{
		{raw, "", "--format raw"},
		{overlay, "", "backing file"},
		{dir, "", "not a regular file"},
		{filepath.Join(dir, "nope.vmdk"), "", "does not exist"},
		{raw, "floppy", "unknown"},
	}
	for _, c := range cases {
		_, err := s.DiskImport(ctx, "refuse", c.path, ImportOptions{Format: c.format})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("import %s (format %q): %v; want a one-line error mentioning %q", c.path, c.format, err, c.want)
		}
	}
	if spec, _ := s.Load("refuse"); len(spec.Disks) != 1 {
		t.Errorf("refused imports changed the disks: %+v", spec.Disks)
	}
	ents, _ := os.ReadDir(s.Paths("refuse").Dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "import") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestDiskConvertRawToQcow2(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	spec := NewSpec("conv", emulator.ArchX86_64)
	spec.Disks = []DiskSpec{{File: "disk0.img", Size: 4 * MiB, Format: "raw"}}
	if err := s.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	p := s.Paths("conv")
	if out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write -P 77 0 64k", p.DiskPath("disk0.img")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	d, err := s.DiskConvert(ctx, "conv", "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != "qcow2" || d.File != "disk0.qcow2" {
		t.Fatalf("converted %+v", d)
	}
	if !holds(t, p.DiskPath(d.File), 77) {
		t.Error("converted disk lost its data")
	}
	if _, err := os.Stat(p.DiskPath("disk0.img")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the raw image in the vm folder was not removed after the switch")
	}
	if _, err := s.SnapshotCreate(ctx, "conv", "now-possible", SnapshotOptions{}); err != nil {
		t.Errorf("snapshot after conversion: %v", err)
	}
}
