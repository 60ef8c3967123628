// Command portable measures the throughput of `vlab export` and `vlab
// import` (MB/s of disk data: the disk's virtual size over the wall-clock
// time, MB = 10^6 bytes) against plain `qemu-img convert` of the same disk,
// side by side in one run, and records both and their ratio in
// bench/RESULTS.md. The goal is vlab within 10 % of qemu-img.
//
// The bench VM's disk is 512 MiB of virtual data laid out as a raw file
// converted to qcow2 (qemu-io writing one pattern would make the whole disk
// compress to nothing, which flatters the deflate of streamOptimized):
// 192 MiB of pseudo-random bytes (incompressible), 192 MiB of a repeated
// text block (compresses well but not to zero), then 128 MiB of zeros (a
// hole both tools skip).
//
// Each round, alternating the order:
//   - export: `vlab export bench OUT.ova` against `qemu-img convert -f qcow2
//     -O vmdk -o subformat=streamOptimized DISK OUT.vmdk`, the conversion
//     export runs (portable/export.go); export then hashes the VMDK
//     (SHA256 manifest) and builds the tar around it (portable/ovapack.go:
//     the archive's head inserted in front of the VMDK's data, no copy).
//   - import: `vlab import OUT.ova --name copy` against `qemu-img convert
//     -f vmdk -O qcow2 OUT.vmdk OUT.qcow2`, the conversion import runs
//     (portable/import.go, machine/portable.go: it reads the VMDK in place
//     inside the OVA); import hashes the OVA against the manifest beside
//     the conversion (portable/import.go), and syncs the new disk. The imported VM is deleted
//     (`vlab delete copy --yes`) after each round.
//
// Every timed step starts after a sync(2), untimed: qemu-img leaves its
// output in the page cache, and the next step must not pay for writing it.
// Both imports read files in the page cache: the OVA and the VMDK are read
// once, untimed, before each (export's packing drops the OVA from it).
//
// Build vlab first, then run (the fixture kernel is not needed):
//
//	go build -o bin/vlab ./cmd/vlab
//	go run ./bench/portable [-n 5] [-vlab bin/vlab] [-out bench/RESULTS.md]
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vlab/bench/results"
)

const diskSize = 512 << 20

func main() {
	n := flag.Int("n", 5, "rounds (each exports and imports both ways)")
	vlab := flag.String("vlab", "bin/vlab", "vlab binary")
	out := flag.String("out", "bench/RESULTS.md", "results file")
	flag.Parse()
	if err := run(*n, *vlab, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench portable:", err)
		os.Exit(1)
	}
}

type world struct {
	vlab string
	home string
	env  []string
}

func (w world) cmd(args ...string) ([]byte, error) {
	c := exec.Command(w.vlab, args...)
	c.Env = w.env
	out, err := c.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("vlab %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// newWorld makes a library of its own for the vlab binary at path.
func newWorld(path string) (world, func(), error) {
	vlab, err := filepath.Abs(path)
	if err != nil {
		return world{}, nil, err
	}
	if _, err := os.Stat(vlab); err != nil {
		return world{}, nil, fmt.Errorf("%w: build it first: go build -o bin/vlab ./cmd/vlab", err)
	}
	home, err := os.MkdirTemp("", "vlab bench")
	if err != nil {
		return world{}, nil, err
	}
	done := func() { os.RemoveAll(home) }
	w := world{vlab: vlab, home: home, env: append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_STATE_HOME="+filepath.Join(home, "state"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_RUNTIME_DIR="+filepath.Join(home, "run"))}
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	return w, done, nil
}

// fillDisk writes the bench disk's data as a raw file at path (see the
// package comment) and returns it.
func fillDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'v', 'l', 'a', 'b'})
	buf := make([]byte, 1<<20)
	for range 192 {
		rng.Read(buf)
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	line := "vlab portable bench: compressible text, line after line. 0123456789\n"
	block := []byte(strings.Repeat(line, 1<<20/len(line)+1))[:1<<20]
	for range 192 {
		if _, err := f.Write(block); err != nil {
			return err
		}
	}
	if err := f.Truncate(diskSize); err != nil {
		return err
	}
	return f.Close()
}

func qemuImg(args ...string) error {
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// warm reads files into the page cache.
func warm(files ...string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// timed times f from a quiet disk: what earlier steps left dirty in the
// page cache (qemu-img convert writes without flushing) is written back
// first, untimed, so no step pays for another's writeback.
func timed(f func() error) (time.Duration, error) {
	unix.Sync()
	return clock(f)
}

// clock times f as it is, dirty pages and all.
func clock(f func() error) (time.Duration, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0), err
}

func run(n int, vlab, out string) error {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return err
	}
	w, done, err := newWorld(vlab)
	if err != nil {
		return err
	}
	defer done()
	work := filepath.Join(w.home, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	if _, err := w.cmd("create", "bench", "--memory", "256M", "--disk", "512M", "--net", "none", "--display", "none"); err != nil {
		return err
	}
	var show struct {
		Disks []struct{ Path string } `json:"disks"`
	}
	data, err := w.cmd("show", "bench", "--json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &show); err != nil || len(show.Disks) != 1 {
		return fmt.Errorf("show bench: %v: %s", err, data)
	}
	disk := show.Disks[0].Path
	raw := filepath.Join(work, "fill.raw")
	if err := fillDisk(raw); err != nil {
		return err
	}
	// The VM is stopped and never started: its disk is replaced in place.
	if err := os.Remove(disk); err != nil {
		return err
	}
	if err := qemuImg("convert", "-f", "raw", "-O", "qcow2", raw, disk); err != nil {
		return err
	}
	os.Remove(raw)

	ova := filepath.Join(work, "bench.ova")
	vmdk := filepath.Join(work, "bench.vmdk")
	qcow := filepath.Join(work, "back.qcow2")
	var vex, qex, vim, qim []time.Duration
	var ovaSize, vmdkSize int64
	exportVlab := func() error {
		os.Remove(ova)
		_, err := w.cmd("export", "bench", ova)
		return err
	}
	exportQemu := func() error {
		os.Remove(vmdk)
		return qemuImg("convert", "-p", "-O", "vmdk", "-o", "subformat=streamOptimized", "-f", "qcow2", disk, vmdk)
	}
	importVlab := func() error {
		_, err := w.cmd("import", ova, "--name", "copy")
		return err
	}
	importQemu := func() error {
		os.Remove(qcow)
		return qemuImg("convert", "-p", "-O", "qcow2", "-f", "vmdk", vmdk, qcow)
	}
	// Warm both paths once (page cache, vlab's host probe).
	for _, f := range []func() error{exportVlab, exportQemu, importVlab, importQemu} {
		if err := f(); err != nil {
			return err
		}
	}
	if _, err := w.cmd("delete", "copy", "--yes"); err != nil {
		return err
	}
	for i := range n {
		pairs := [][2]func() error{{exportVlab, exportQemu}, {importVlab, importQemu}}
		res := [][2]*[]time.Duration{{&vex, &qex}, {&vim, &qim}}
		for j, p := range pairs {
			order := []int{0, 1}
			if i%2 == 1 {
				order = []int{1, 0}
			}
			for _, k := range order {
				if j == 1 {
					// Export's packing inserts the archive's head in front
					// of the VMDK (fallocate INSERT_RANGE), which drops the
					// OVA from the page cache: both imports read warm files.
					if err := warm(ova, vmdk); err != nil {
						return err
					}
				}
				d, err := timed(p[k])
				if err != nil {
					return err
				}
				*res[j][k] = append(*res[j][k], d)
			}
		}
		if _, err := w.cmd("delete", "copy", "--yes"); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "round %d: export vlab %v qemu-img %v; import vlab %v qemu-img %v\n",
			i+1, vex[i].Round(time.Millisecond), qex[i].Round(time.Millisecond), vim[i].Round(time.Millisecond), qim[i].Round(time.Millisecond))
	}
	if fi, err := os.Stat(ova); err == nil {
		ovaSize = fi.Size()
	}
	if fi, err := os.Stat(vmdk); err == nil {
		vmdkSize = fi.Size()
	}
	// Where the extra time goes: vlab's steps besides the conversion, each
	// timed alone (median of 3) on the same files, as vlab does them.
	bd, err := breakdown(work, ova, vmdk)
	if err != nil {
		return err
	}

	row := func(what string, v, q []time.Duration) (string, bool) {
		mv, mq := median(v), median(q)
		ratio := float64(mv) / float64(mq)
		ok := ratio <= 1.10
		verdict := "yes"
		if !ok {
			verdict = "**no**"
		}
		return fmt.Sprintf("| %s | %s (%s MB/s) | %s (%s MB/s) | %.2f | %s |\n", what,
			secs(mv), mbps(mv), secs(mq), mbps(mq), ratio, verdict), ok
	}
	exRow, exOK := row("export", vex, qex)
	imRow, imOK := row("import", vim, qim)
	verdict := "Both are within 10 % of qemu-img."
	switch {
	case !exOK && !imOK:
		verdict = "**Goal missed for both export and import.**"
	case !exOK:
		verdict = "**Goal missed for export**; import is within 10 %."
	case !imOK:
		verdict = "**Goal missed for import**; export is within 10 %."
	}
	body := fmt.Sprintf(`Throughput of `+"`vlab export`"+` and `+"`vlab import`"+` against plain `+"`qemu-img convert`"+` of the same
disk, in MB/s of disk data (the 512 MiB virtual size over the wall-clock time, MB = 10^6 bytes).
The disk: a qcow2 holding 192 MiB of pseudo-random bytes, 192 MiB of repeated text and 128 MiB of
zeros. Export is timed against `+"`qemu-img convert -f qcow2 -O vmdk -o subformat=streamOptimized`"+`
(the conversion export runs), import of the resulting OVA against `+"`qemu-img convert -f vmdk -O qcow2`"+`
of the VMDK (the conversion import runs); the vlab times are whole CLI processes. Medians of %d rounds,
the order alternating each round, the imported VM deleted between rounds, page cache warm, measured
with `+"`go run ./bench/portable`"+`. Goal: vlab within 10 %%.

| step | vlab | qemu-img convert | ratio (time) | within 10 %% |
|---|---|---|---|---|
%s%s
%s The VMDK is %.0f MB, the OVA %.0f MB.

Where the difference goes, each step timed alone (median of 3) on the same files in this run:

| step | time |
|---|---|
| SHA256 of the VMDK in Go (export's manifest pass, a second read of the VMDK) | %s |
| the archive's head inserted in front of the VMDK (fallocate INSERT_RANGE, no copy) + fsync (export's packing) | %s |
| SHA256 of the OVA in Go (import's manifest check, run beside the conversion) | %s |
| qemu-img convert of the VMDK read in place inside the OVA (import's --image-opts, raw offset) | %s |
| qemu-img convert of the plain VMDK (the baseline above) | %s |
| fsync of the new qcow2 right after a plain conversion (what import's durability costs without write-behind; not in the baseline) | %s |

Export takes %s than its conversion alone; its hash pass and packing, timed alone, add up to %s.
Import takes %s than its conversion alone: it hashes the OVA beside the conversion and makes the
new disk durable, but it hands the disk to the kernel's writeback while qemu-img fills it
(sync_file_range every 50 ms, machine/writebehind.go), so its closing fsync waits for the last pages
only, not for the whole disk as in the fsync row. A ratio below 1 is within the spread, not a faster
conversion (vlab runs the same qemu-img convert): the baseline's own import times ranged %s to %s in
this run. Every timed step starts after an untimed sync(2), so none pays for another's dirty pages,
and both imports read files in the page cache (export's packing drops the OVA from it, so both files
are read once, untimed, before each import). qemu-img convert itself does no hash, no copy and no fsync.

Machine: %s (2 cores shared with other jobs).
`, n, exRow, imRow, verdict, float64(vmdkSize)/1e6, float64(ovaSize)/1e6,
		secs(bd.hashVMDK), secs(bd.tar), secs(bd.hashOVA), secs(bd.convertInOVA), secs(bd.convertPlain), secs(bd.fsync),
		moreOrLess(median(vex)-median(qex)), secs(bd.hashVMDK+bd.tar), moreOrLess(median(vim)-median(qim)),
		secs(slices.Min(qim)), secs(slices.Max(qim)), results.Machine())
	fmt.Print(body)
	return results.Write(out, "Portable: import and export throughput", body)
}

// moreOrLess says d as "0.12 s more" or "0.06 s less".
func moreOrLess(d time.Duration) string {
	if d < 0 {
		return secs(-d) + " less"
	}
	return secs(d) + " more"
}

type steps struct {
	hashVMDK, tar, hashOVA, convertInOVA, convertPlain, fsync time.Duration
}

// breakdown times, each alone and median of 3, the steps vlab adds around
// the conversion, on the files of the last round.
func breakdown(work, ova, vmdk string) (steps, error) {
	var st steps
	off, size, err := memberAt(ova, filepath.Ext(vmdk))
	if err != nil {
		return st, err
	}
	dst := filepath.Join(work, "step.qcow2")
	opts := "driver=vmdk,file.driver=raw,file.offset=" + strconv.FormatInt(off, 10) + ",file.size=" + strconv.FormatInt(size, 10) +
		",file.file.driver=file,file.file.filename=" + strings.ReplaceAll(ova, ",", ",,")
	tarPath := filepath.Join(work, "step.vmdk")
	for _, m := range []struct {
		d *time.Duration
		f func() error
	}{
		{&st.hashVMDK, func() error { return hashFile(vmdk) }},
		{&st.tar, func() error { return insertSync(tarPath) }},
		{&st.hashOVA, func() error { return hashFile(ova) }},
		{&st.convertInOVA, func() error {
			os.Remove(dst)
			return qemuImg("convert", "-p", "-O", "qcow2", "--image-opts", opts, dst)
		}},
		{&st.convertPlain, func() error {
			os.Remove(dst)
			return qemuImg("convert", "-p", "-O", "qcow2", "-f", "vmdk", vmdk, dst)
		}},
		{&st.fsync, func() error {
			// The qcow2 just written is in the page cache, dirty: time its
			// fsync, then write it again for the next try.
			f, err := os.Open(dst)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Sync()
		}},
	} {
		var ds []time.Duration
		for range 3 {
			if m.d == &st.fsync {
				os.Remove(dst)
				if err := qemuImg("convert", "-O", "qcow2", "-f", "vmdk", vmdk, dst); err != nil {
					return st, err
				}
			}
			if m.d == &st.tar { // a VMDK just written, dirty, as export packs it
				if err := copyFile(tarPath, vmdk); err != nil {
					return st, err
				}
			}
			time := timed
			if m.d == &st.fsync || m.d == &st.tar {
				time = clock // these steps are about writing dirty pages back
			}
			d, err := time(m.f)
			if err != nil {
				return st, err
			}
			ds = append(ds, d)
		}
		*m.d = median(ds)
	}
	os.Remove(dst)
	os.Remove(tarPath)
	return st, nil
}

// memberAt returns the offset and size of the first member of the tar at
// path whose name ends in ext.
func memberAt(path, ext string) (int64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cr := &countReader{r: f}
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: no %s member: %v", path, ext, err)
		}
		if strings.HasSuffix(hdr.Name, ext) {
			return cr.n, hdr.Size, nil
		}
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// hashFile reads path through SHA256, as vlab's manifest code does.
func hashFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(sha256.New(), f)
	return err
}

// insertSync inserts one 4 KiB block in front of the file's data and
// syncs it, as export packs the OVA around its first VMDK.
func insertSync(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_INSERT_RANGE, 0, 4096); err != nil {
		return fmt.Errorf("insert a range into %s: %w", path, err)
	}
	return f.Sync()
}

// copyFile copies src to a new file at path, left dirty in the page cache
// like a VMDK qemu-img has just written.
func copyFile(path, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	_, err = io.Copy(out, in)
	return err
}

func median(ds []time.Duration) time.Duration {
	return slices.Sorted(slices.Values(ds))[len(ds)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mbps(d time.Duration) string { return fmt.Sprintf("%.0f", float64(diskSize)/1e6/d.Seconds()) }
