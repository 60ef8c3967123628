package emulator

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every qemu-img command line vlab runs, as qemu-img gets it.
func TestQemuImgArgv(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []string
		want string
	}{
		{"create", ImgCreate{Path: "/l/d.qcow2", Size: 1 << 30}.argv(), "create -q -f qcow2 /l/d.qcow2 1073741824"},
		{"create raw", ImgCreate{Path: "/l/d.img", Format: "raw", Size: 512}.argv(), "create -q -f raw /l/d.img 512"},
		{"overlay", ImgCreate{Path: "/o.qcow2", Backing: "/b.img", BackingFormat: "raw"}.argv(), "create -q -f qcow2 -b /b.img -F raw /o.qcow2"},
		{"unsafe overlay", ImgCreate{Path: "t.qcow2", Size: 5, Backing: "../b/d.qcow2", BackingFormat: "qcow2", Unsafe: true}.argv(),
			"create -q -f qcow2 -u -b ../b/d.qcow2 -F qcow2 t.qcow2 5"},
		{"info", infoArgv(ImgSource{Path: "/d.qcow2", Format: "qcow2"}, false), "info --output=json -f qcow2 /d.qcow2"},
		{"info shared probing", infoArgv(ImgSource{Path: "/d"}, true), "info --output=json -U /d"},
		{"info opts", infoArgv(ImgSource{Opts: FileImageOpts("qcow2", "/a,b.qcow2") + NoDataFile}, false),
			"info --output=json --image-opts driver=qcow2,file.driver=file,file.filename=/a,,b.qcow2,data-file.driver=null-co"},
		{"map", mapArgv("/d.qcow2", "qcow2"), "map --output=json -f qcow2 /d.qcow2"},
		{"resize", resizeArgv("/d.qcow2", "qcow2", 2<<30), "resize -q -f qcow2 /d.qcow2 2147483648"},
		{"rebase", rebaseArgv("/t.qcow2", "../b.qcow2"), "rebase -u -f qcow2 -b ../b.qcow2 -F qcow2 /t.qcow2"},
		{"snapshot create", snapshotArgv(SnapshotCreate, "s1", "/d.qcow2"), "snapshot -c s1 /d.qcow2"},
		{"snapshot apply", snapshotArgv(SnapshotApply, "s1", "/d.qcow2"), "snapshot -a s1 /d.qcow2"},
		{"snapshot delete", snapshotArgv(SnapshotDelete, "s1", "/d.qcow2"), "snapshot -d s1 /d.qcow2"},
		{"convert", ImgConvert{Src: ImgSource{Path: "/s.vmdk", Format: "vmdk"}, Dst: "/d.qcow2", DstFormat: "qcow2"}.argv(),
			"convert -p -O qcow2 -f vmdk /s.vmdk /d.qcow2"},
		{"convert a snapshot", ImgConvert{Src: ImgSource{Path: "/s.qcow2", Format: "qcow2"}, Dst: "/d.vmdk", DstFormat: "vmdk",
			Extra: []string{"-l", "snapshot.name=s1", "-o", "subformat=streamOptimized"}}.argv(),
			"convert -p -O vmdk -l snapshot.name=s1 -o subformat=streamOptimized -f qcow2 /s.qcow2 /d.vmdk"},
		{"convert a slice", ImgConvert{Src: ImgSource{Opts: SliceImageOpts("vmdk", "/x.ova", 1536, 4096)}, Dst: "/d", DstFormat: "qcow2"}.argv(),
			"convert -p -O qcow2 --image-opts driver=vmdk,file.driver=raw,file.offset=1536,file.size=4096,file.file.driver=file,file.file.filename=/x.ova /d"},
	} {
		if got := strings.Join(c.got, " "); got != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.name, got, c.want)
		}
	}
}

func TestScanProgress(t *testing.T) {
	// What qemu-img convert -p writes to a pipe, with an error after it.
	out := "    (0.00/100%)\r    (4.00/100%)\r    (12.50/100%)\r    (100.00/100%)\r\nqemu-img: error while writing at byte 0: No space left on device\n"
	var got []float64
	rest := scanProgress(strings.NewReader(out), func(p float64) { got = append(got, p) })
	if want := []float64{0, 4, 12.5, 100}; !reflect.DeepEqual(got, want) {
		t.Errorf("percentages = %v; want %v", got, want)
	}
	if !strings.Contains(rest, "No space left on device") {
		t.Errorf("other text = %q; want the error line", rest)
	}
}

// The runner against the real qemu-img: an image made, grown, snapshotted,
// copied with progress, and a failure that says what qemu-img said.
func TestQemuImgRuns(t *testing.T) {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("VLAB_REQUIRE_E2E") != "" {
			t.Fatal("qemu-img not installed: run scripts/deps.sh")
		}
		t.Skip("qemu-img not installed")
	}
	q, ctx, dir := QemuImg(bin), context.Background(), t.TempDir()
	d := filepath.Join(dir, "d.qcow2")
	if err := q.Create(ctx, ImgCreate{Path: d, Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := q.Resize(ctx, d, "qcow2", 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := q.Snapshot(ctx, SnapshotCreate, "s1", d); err != nil {
		t.Fatal(err)
	}
	info, err := q.Info(ctx, ImgSource{Opts: FileImageOpts("qcow2", d) + NoDataFile}, false)
	if err != nil || !strings.Contains(string(info), `"virtual-size": 2097152`) || !strings.Contains(string(info), `"s1"`) {
		t.Fatalf("info: %v\n%s", err, info)
	}
	var pcts []float64
	dst := filepath.Join(dir, "c.raw")
	if err := q.Convert(ctx, ImgConvert{Src: ImgSource{Path: d, Format: "qcow2"}, Dst: dst, DstFormat: "raw"}, func(p float64) { pcts = append(pcts, p) }); err != nil {
		t.Fatal(err)
	}
	if len(pcts) == 0 || pcts[len(pcts)-1] != 100 {
		t.Errorf("progress %v, want it to end at 100", pcts)
	}
	err = q.Snapshot(ctx, SnapshotApply, "nosuch", d)
	var ie *ImgError
	if !errors.As(err, &ie) || ie.Cmd != "snapshot" || !strings.Contains(err.Error(), "nosuch") || strings.Contains(err.Error(), "\n") {
		t.Errorf("applying a missing snapshot: %v, want one line naming it", err)
	}
	if err := QemuImg("").Create(ctx, ImgCreate{Path: d}); !errors.Is(err, ErrNoQemuImg) {
		t.Errorf("no qemu-img: %v", err)
	}
}
