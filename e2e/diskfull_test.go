package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// The disk-full test of issue 12: the library lives on a small tmpfs, and
// `vlab disk import`, `vlab create` and `vlab snapshot create` run out of
// space. Each must fail with one line naming the problem and the fix, exit
// non-zero and leave nothing half-written: no new VM folder, no partial
// disk, machine.toml and snapshots.json unchanged, the existing VM's data
// intact and the VM still booting (on the still full file system).
func TestDiskFull(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-io")
	fixture.Program(t, "mount")
	if os.Geteuid() != 0 {
		if os.Getenv("VLAB_REQUIRE_E2E") != "" {
			t.Fatal("the disk-full test mounts a tmpfs: run it as root")
		}
		t.Skip("the disk-full test mounts a tmpfs: run it as root")
	}
	e := newEnv(t)
	data := filepath.Join(e.home, "data dir")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		e.stopAll()
		unmountTmpfs(t, data)
	})

	e.createGuest("keep", guests["x86_64"], []string{"vlab.poweroff=1"}, "--display", "none", "--net", "none", "--disk", "16M")
	keep := e.show("keep")
	disk := keep.Disks[0].Path
	writeImageMark(t, disk, "qcow2", "mark-K")
	e.ok("snapshot", "create", "keep", "s0")
	spec := filepath.Join(keep.Dir, "machine.toml")
	meta := filepath.Join(keep.Dir, "snapshots.json")
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	specBefore, metaBefore := read(spec), read(meta)
	files := func() []string {
		var out []string
		filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() != "filler" {
				rel, _ := filepath.Rel(data, p)
				out = append(out, rel)
			}
			return nil
		})
		return out
	}
	filesBefore := files()

	// fill leaves about free bytes free on the tmpfs.
	filler := filepath.Join(data, "filler")
	fill := func(free int64) {
		t.Helper()
		os.Remove(filler)
		var st syscall.Statfs_t
		if err := syscall.Statfs(data, &st); err != nil {
			t.Fatal(err)
		}
		avail := int64(st.Bavail) * st.Bsize
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if avail > free {
			if err := syscall.Fallocate(int(f.Fd()), 0, 0, avail-free); err != nil {
				t.Fatalf("fallocate %d: %v", avail-free, err)
			}
		}
	}
	unchanged := func(what string) {
		t.Helper()
		if got := files(); !slices.Equal(got, filesBefore) {
			t.Errorf("after a failed %s the library holds %v, want %v", what, got, filesBefore)
		}
		if !bytes.Equal(read(spec), specBefore) {
			t.Errorf("a failed %s changed machine.toml:\n%s", what, read(spec))
		}
		if !bytes.Equal(read(meta), metaBefore) {
			t.Errorf("a failed %s changed snapshots.json:\n%s", what, read(meta))
		}
		if got := imageMark(t, disk, "qcow2"); got != "mark-K" {
			t.Errorf("after a failed %s the disk reads %q, want mark-K", what, got)
		}
		if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", disk).CombinedOutput(); err != nil {
			t.Errorf("after a failed %s qemu-img check: %v: %s", what, err, out)
		}
		if tr := e.tree("keep"); len(tr.Snapshots) != 1 || tr.Current != "s0" {
			t.Errorf("after a failed %s the snapshot list is %+v, want only s0, current", what, tr)
		}
	}
	wants := []string{"no space left on device", "free some space"}
	// fail is e.fail, less the progress lines a copy prints on stderr.
	fail := func(wants []string, args ...string) {
		t.Helper()
		out, errs, code := e.run(args...)
		if code == 0 {
			t.Fatalf("vlab %q succeeded, want an error\nstdout: %s", args, out)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(errs, "\n"), "\n") {
			if !strings.HasPrefix(l, "converting ") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "vlab: ") {
			t.Fatalf("vlab %q: want exactly one error line, got %q", args, errs)
		}
		for _, w := range wants {
			if !strings.Contains(lines[0], w) {
				t.Errorf("vlab %q: error %q does not mention %q", args, lines[0], w)
			}
		}
		t.Logf("vlab %s: %s", strings.Join(args, " "), lines[0])
	}

	// Import: a 4 MiB image into 1 MiB.
	img := filepath.Join(t.TempDir(), "big.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 4M", img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	fill(1 << 20)
	fail(append(wants, "needed"), "disk", "import", "keep", img)
	unchanged("disk import")
	if d := e.show("keep").Disks; len(d) != 1 {
		t.Errorf("a failed import left disks %+v", d)
	}

	// Create: a qcow2 disk needs more than 64 KiB of metadata.
	fill(64 << 10)
	fail(wants, "create", "new", "--disk", "16M", "--display", "none", "--net", "none")
	unchanged("create")
	if _, _, code := e.run("show", "new"); code == 0 {
		t.Error("a failed create left vm new")
	}

	// Snapshot create on a full file system. (With a few KiB free it
	// succeeds: qemu-img reuses clusters its image already holds.)
	fill(0)
	fail(wants, "snapshot", "create", "keep", "s1")
	unchanged("snapshot create")
	if tags := imageTags(t, disk); !slices.Equal(tags, []string{"s0"}) {
		t.Errorf("a failed snapshot left the image with snapshots %v, want [s0]", tags)
	}

	// The existing VM still boots with its data, the file system still full.
	e.ok("start", "keep")
	e.waitSerial("keep", "VLAB-DISK-READ mark-K")
}

// unmountTmpfs unmounts the test's tmpfs. A process that is still exiting
// (a killed qemu-img on a loaded host) can keep it busy for a moment, so it
// retries for a while; a holder that stays is named in the failure (it would
// be a process vlab left behind), and the mount is detached lazily so the
// temp dir can still be removed.
func unmountTmpfs(t *testing.T, dir string) {
	t.Helper()
	var out []byte
	var err error
	for i := 0; i < 60; i++ {
		if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	holders := processesUsing(dir)
	exec.Command("umount", "-l", dir).Run()
	t.Errorf("umount %s: %v: %s; still held by: %s", dir, err, out, strings.Join(holders, "; "))
}

// processesUsing lists "pid cmdline" of processes with a cwd or an open file
// under dir.
func processesUsing(dir string) []string {
	var found []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		links := []string{filepath.Join(p, "cwd")}
		fds, _ := filepath.Glob(filepath.Join(p, "fd", "*"))
		links = append(links, fds...)
		for _, l := range links {
			if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, dir) {
				cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
				found = append(found, filepath.Base(p)+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
				break
			}
		}
	}
	return found
}
