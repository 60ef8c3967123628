package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// The fault-injection test of issue 12: every multi-step disk and metadata
// operation is killed with SIGKILL at each of its steps (VLAB_FAULT, see
// machine/fault.go), and the next vlab must show a consistent state: the
// operation happened fully or not at all, as reported; no disk is lost or
// half-replaced (qemu-img check is clean, every disk holds its data); no
// leftover of the killed run survives the next vlab; and the VM still boots
// with its data (once per operation, from a world killed half-way).
//
// Data is written and read with qemu-io/qemu-img on the stopped VM's
// images, which proves the same as a guest would and costs no boot.

const faultVM = "f"

// faultWorld is one fresh library with VM f stopped and marked.
type faultWorld struct {
	e    *env
	dir  string // f's folder
	data string // the library: $XDG_DATA_HOME/vlab
	ext  string // a folder outside the library (images to import)
}

// faultOp is one operation under test.
type faultOp struct {
	name string
	// setup makes the world the operation starts from.
	setup func(t *testing.T) *faultWorld
	// args are the vlab command line of the operation.
	args func(w *faultWorld) []string
	// check verifies, after the next vlab ran, that the operation happened
	// fully or not at all; it returns the VM to boot and the mark its first
	// disk must show.
	check func(w *faultWorld, t *testing.T) (boot, mark string)
}

func newFaultWorld(t *testing.T, disks ...string) *faultWorld {
	e := newEnv(t)
	e.createGuest(faultVM, guests["x86_64"], []string{"vlab.poweroff=1"}, "--display", "none", "--net", "none")
	for _, d := range disks { // "qcow2" or "raw"
		e.ok("disk", "add", faultVM, "16M", "--format", d)
	}
	w := &faultWorld{e: e, dir: e.show(faultVM).Dir, ext: t.TempDir()}
	w.data = filepath.Dir(filepath.Dir(w.dir))
	return w
}

// disk returns the path and format of VM vm's disk i.
func (w *faultWorld) disk(vm string, i int) (string, string) {
	w.e.t.Helper()
	d := w.e.show(vm).Disks
	if i >= len(d) {
		w.e.t.Fatalf("vm %s has %d disks, want disk %d: %+v", vm, len(d), i, d)
	}
	return d[i].Path, d[i].Format
}

// writeImageMark writes mark as the first line of the image at path.
func writeImageMark(t *testing.T, path, format, mark string) {
	t.Helper()
	sector := make([]byte, 512)
	copy(sector, mark+"\n")
	src := filepath.Join(t.TempDir(), "mark")
	if err := os.WriteFile(src, sector, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-io", "-f", format, "-c", "write -s "+src+" 0 512", path).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io write %s: %v: %s", path, err, out)
	}
}

// imageMark reads the first line of what a guest sees on the image at path
// (through its backing chain).
func imageMark(t *testing.T, path, format string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sector")
	if b, err := exec.Command("qemu-img", "dd", "-f", format, "-O", "raw", "bs=512", "count=1", "if="+path, "of="+out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img dd %s: %v: %s", path, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	return string(bytes.TrimRight(line, "\x00"))
}

// checkImage fails unless qemu-img check finds the qcow2 image at path clean.
func checkImage(t *testing.T, path, format string) {
	t.Helper()
	if format != "qcow2" {
		return
	}
	if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", path).CombinedOutput(); err != nil {
		t.Errorf("qemu-img check %s: %v: %s", path, err, out)
	}
}

// vmNames lists the VMs `vlab list` shows.
func (w *faultWorld) vmNames() []string {
	var vms []struct{ Name string }
	if err := json.Unmarshal([]byte(w.e.ok("list", "--json")), &vms); err != nil {
		w.e.t.Fatalf("list --json: %v", err)
	}
	var names []string
	for _, v := range vms {
		names = append(names, v.Name)
	}
	return names
}

var leftoverRE = regexp.MustCompile(`^\.(new-|deleted-|freeze-|flat-|tmp-)|\.(convert|import)$|\.tmp`)

// leftovers lists what killed runs left in the library: vlab's temporary
// names, intent records, and disk files of a VM that its machine.toml does
// not name.
func (w *faultWorld) leftovers(t *testing.T) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(w.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(w.data, path)
		if leftoverRE.MatchString(d.Name()) {
			found = append(found, rel)
		}
		if filepath.Dir(rel) == "intents" {
			found = append(found, rel)
		}
		return nil
	})
	for _, vm := range w.vmNames() {
		s := w.e.show(vm)
		named := map[string]bool{}
		for _, d := range s.Disks {
			named[filepath.Clean(d.Path)] = true
		}
		files, _ := filepath.Glob(filepath.Join(s.Dir, "disk*"))
		for _, f := range files {
			if !named[filepath.Clean(f)] {
				found = append(found, "unnamed disk "+f)
			}
		}
	}
	return found
}

// runFault runs vlab with extra environment variables.
func (w *faultWorld) runFault(env []string, args ...string) (string, int) {
	cmd := exec.Command(vlabBin, args...)
	cmd.Env = append(slices.Clone(w.e.vars), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.e.t.Fatalf("run vlab %v: %v", args, err)
	}
	return string(out), code
}

// snapshotWorld: f with two qcow2 disks marked A, snapshot s1 of that,
// then both marked B and snapshot s2 (current).
func snapshotWorld(t *testing.T) *faultWorld {
	w := newFaultWorld(t, "qcow2", "qcow2")
	w.markAll("mark-A")
	w.e.ok("snapshot", "create", faultVM, "s1")
	w.markAll("mark-B")
	w.e.ok("snapshot", "create", faultVM, "s2")
	return w
}

func (w *faultWorld) markAll(mark string) {
	for i := range w.e.show(faultVM).Disks {
		p, f := w.disk(faultVM, i)
		writeImageMark(w.e.t, p, f, mark)
	}
}

// marks returns the mark of every disk of vm.
func (w *faultWorld) marks(t *testing.T, vm string) []string {
	var out []string
	for i := range w.e.show(vm).Disks {
		p, f := w.disk(vm, i)
		checkImage(t, p, f)
		out = append(out, imageMark(t, p, f))
	}
	return out
}

func allEqual(ms []string, want string) bool {
	for _, m := range ms {
		if m != want {
			return false
		}
	}
	return len(ms) > 0
}

func faultOps() []faultOp {
	return []faultOp{
		{
			name:  "snapshot-create",
			setup: snapshotWorld,
			args:  func(w *faultWorld) []string { return []string{"snapshot", "create", faultVM, "s3"} },
			check: func(w *faultWorld, t *testing.T) (string, string) {
				tr := w.e.tree(faultVM)
				sn, has := tr.get("s3")
				for i := range w.e.show(faultVM).Disks {
					p, _ := w.disk(faultVM, i)
					if tags := imageTags(t, p); slices.Contains(tags, "s3") != has {
						t.Errorf("disk %d holds snapshots %v but the list says s3 exists=%v: half-taken", i, tags, has)
					}
				}
				if has && (!sn.Restorable || tr.Current != "s3") {
					t.Errorf("s3 is listed but not whole: %+v (current %q)", sn, tr.Current)
				}
				if !has && tr.Current != "s2" {
					t.Errorf("s3 was not taken but current is %q, want s2", tr.Current)
				}
				if m := w.marks(t, faultVM); !allEqual(m, "mark-B") {
					t.Errorf("disks read %v, want mark-B everywhere", m)
				}
				return faultVM, "mark-B"
			},
		},
		{
			name:  "snapshot-restore",
			setup: snapshotWorld,
			args:  func(w *faultWorld) []string { return []string{"snapshot", "restore", faultVM, "s1", "--yes"} },
			check: func(w *faultWorld, t *testing.T) (string, string) {
				tr := w.e.tree(faultVM)
				m := w.marks(t, faultVM)
				want := map[string]string{"s1": "mark-A", "s2": "mark-B"}[tr.Current]
				if want == "" || !allEqual(m, want) {
					t.Errorf("current snapshot is %q but the disks read %v: restored half-way or reported wrongly", tr.Current, m)
				}
				for _, tag := range []string{"s1", "s2"} {
					if sn, ok := tr.get(tag); !ok || !sn.Restorable {
						t.Errorf("snapshot %s after the kill: %+v (listed %v)", tag, sn, ok)
					}
				}
				return faultVM, want
			},
		},
		{
			name:  "snapshot-delete",
			setup: snapshotWorld,
			args:  func(w *faultWorld) []string { return []string{"snapshot", "delete", faultVM, "s1", "--yes"} },
			check: func(w *faultWorld, t *testing.T) (string, string) {
				_, has := w.e.tree(faultVM).get("s1")
				for i := range w.e.show(faultVM).Disks {
					p, _ := w.disk(faultVM, i)
					if tags := imageTags(t, p); slices.Contains(tags, "s1") != has {
						t.Errorf("disk %d holds snapshots %v but the list says s1 exists=%v: half-deleted", i, tags, has)
					}
				}
				if m := w.marks(t, faultVM); !allEqual(m, "mark-B") {
					t.Errorf("disks read %v, want mark-B everywhere", m)
				}
				return faultVM, "mark-B"
			},
		},
		liveCreateOp(),
		liveRestoreOp(),
		cloneOp("clone-linked", "--linked"),
		flattenOp(),
		cloneOp("clone-full"),
		{
			name: "disk-convert",
			setup: func(t *testing.T) *faultWorld {
				w := newFaultWorld(t, "raw")
				w.markAll("mark-R")
				return w
			},
			args: func(w *faultWorld) []string { return []string{"disk", "convert", faultVM, "hd0"} },
			check: func(w *faultWorld, t *testing.T) (string, string) {
				d := w.e.show(faultVM).Disks
				if len(d) != 1 {
					t.Fatalf("disks after the kill: %+v, want one", d)
				}
				if _, err := os.Stat(d[0].Path); err != nil {
					t.Errorf("the disk the spec names is gone: %v", err)
				}
				if m := w.marks(t, faultVM); !allEqual(m, "mark-R") {
					t.Errorf("disk reads %v, want mark-R (%s)", m, d[0].Format)
				}
				return faultVM, "mark-R"
			},
		},
		{
			name: "disk-import",
			setup: func(t *testing.T) *faultWorld {
				w := newFaultWorld(t, "qcow2")
				w.markAll("mark-A")
				img := filepath.Join(w.ext, "in.qcow2")
				if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "16M").CombinedOutput(); err != nil {
					t.Fatalf("qemu-img create: %v: %s", err, out)
				}
				writeImageMark(t, img, "qcow2", "mark-I")
				return w
			},
			args: func(w *faultWorld) []string {
				return []string{"disk", "import", faultVM, filepath.Join(w.ext, "in.qcow2")}
			},
			check: func(w *faultWorld, t *testing.T) (string, string) {
				m := w.marks(t, faultVM)
				if !slices.Equal(m, []string{"mark-A"}) && !slices.Equal(m, []string{"mark-A", "mark-I"}) {
					t.Errorf("disks read %v, want [mark-A] (not imported) or [mark-A mark-I]", m)
				}
				if got := imageMark(t, filepath.Join(w.ext, "in.qcow2"), "qcow2"); got != "mark-I" {
					t.Errorf("the imported image now reads %q, want it untouched", got)
				}
				return faultVM, "mark-A"
			},
		},
		{
			name: "delete",
			setup: func(t *testing.T) *faultWorld {
				w := newFaultWorld(t, "qcow2")
				w.markAll("mark-A")
				return w
			},
			args: func(w *faultWorld) []string { return []string{"delete", faultVM, "--yes"} },
			check: func(w *faultWorld, t *testing.T) (string, string) {
				if !slices.Contains(w.vmNames(), faultVM) {
					if _, err := os.Stat(w.dir); err == nil {
						t.Errorf("f is not listed but its folder %s is still there", w.dir)
					}
					return "", ""
				}
				if m := w.marks(t, faultVM); !allEqual(m, "mark-A") {
					t.Errorf("f is listed but its disks read %v, want mark-A", m)
				}
				return faultVM, "mark-A"
			},
		},
	}
}

func cloneOp(name string, flags ...string) faultOp {
	return faultOp{
		name: name,
		setup: func(t *testing.T) *faultWorld {
			w := newFaultWorld(t, "qcow2", "qcow2")
			w.markAll("mark-A")
			return w
		},
		args: func(w *faultWorld) []string { return append([]string{"clone", faultVM, "c"}, flags...) },
		check: func(w *faultWorld, t *testing.T) (string, string) {
			if m := w.marks(t, faultVM); !allEqual(m, "mark-A") || len(m) != 2 {
				t.Errorf("the source's disks read %v, want mark-A on both", m)
			}
			if !slices.Contains(w.vmNames(), "c") {
				return faultVM, "mark-A"
			}
			if m := w.marks(t, "c"); !allEqual(m, "mark-A") || len(m) != 2 {
				t.Errorf("the clone is listed but its disks read %v, want mark-A on both", m)
			}
			return "c", "mark-A"
		},
	}
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-io")
	fixture.Program(t, "qemu-img")
	for _, op := range faultOps() {
		t.Run(op.name, func(t *testing.T) {
			t.Parallel() // mostly waits for fsync and qemu-img
			// Learn the steps.
			w := op.setup(t)
			trace := filepath.Join(t.TempDir(), "trace")
			if out, code := w.runFault([]string{"VLAB_FAULT_TRACE=" + trace}, op.args(w)...); code != 0 {
				t.Fatalf("vlab %v: exit %d: %s", op.args(w), code, out)
			}
			data, _ := os.ReadFile(trace)
			steps := strings.Fields(string(data))
			if len(steps) < 2 {
				t.Fatalf("vlab %v reached steps %q: want the operation's steps traced", op.args(w), steps)
			}
			op.check(w, t)
			if l := w.leftovers(t); len(l) > 0 {
				t.Errorf("a finished %s left %v", op.name, l)
			}
			t.Logf("%s steps: %v", op.name, steps)

			var bootWorld *faultWorld
			var bootVM, bootMark string
			for i, step := range steps {
				w := op.setup(t)
				out, code := w.runFault([]string{"VLAB_FAULT=" + step}, op.args(w)...)
				if code != -1 {
					t.Fatalf("step %s: vlab was not killed (exit %d): %s", step, code, out)
				}
				// The next vlab settles what the killed one left.
				w.e.ok("list", "--json")
				if slices.Contains(w.vmNames(), faultVM) {
					w.e.ok("snapshot", "list", faultVM, "--json")
				}
				func() {
					t.Helper()
					before := t.Failed()
					vm, mark := op.check(w, t)
					if l := w.leftovers(t); len(l) > 0 {
						t.Errorf("killed at %s, the next vlab left %v", step, l)
					}
					if t.Failed() && !before {
						t.Errorf("^ killed at step %s", step)
					}
					if i == len(steps)/2 {
						bootWorld, bootVM, bootMark = w, vm, mark
					}
				}()
			}
			// The VM still boots with its data, from a world killed half-way.
			if bootVM != "" {
				bootWorld.e.ok("start", bootVM)
				bootWorld.e.waitSerial(bootVM, "VLAB-DISK-READ "+bootMark)
			}
		})
	}
}

// liveWorld: f with two qcow2 disks marked A and a live snapshot s1 of
// that (RAM and disks; the guest is started paused, so it is still at
// the reset vector and writes nothing), then marked B (written while
// stopped) and live snapshot s2 (current), and f left running paused.
func liveWorld(t *testing.T) *faultWorld {
	w := newFaultWorld(t, "qcow2", "qcow2")
	w.markAll("mark-A")
	w.e.ok("start", "--paused", faultVM)
	w.e.ok("snapshot", "create", faultVM, "s1")
	w.e.ok("stop", "--force", faultVM)
	w.markAll("mark-B")
	w.e.ok("start", "--paused", faultVM)
	w.e.ok("snapshot", "create", faultVM, "s2")
	return w
}

// settleLive waits until no snapshot job of f is pending (a job vlab
// started may run on in QEMU after vlab was killed; the next vlab sees it
// finish), then stops f so its images can be read.
func (w *faultWorld) settleLive(t *testing.T) treeJSON {
	t.Helper()
	var tr treeJSON
	for i := 0; ; i++ {
		tr = w.e.tree(faultVM)
		pending := false
		for _, sn := range tr.Snapshots {
			pending = pending || sn.Pending
		}
		if !pending {
			break
		}
		if i == 300 {
			t.Fatalf("a snapshot of f stays pending: %+v", tr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.e.ok("stop", "--force", faultVM)
	return w.e.tree(faultVM)
}

func liveCreateOp() faultOp {
	return faultOp{
		name:  "snapshot-create-live",
		setup: liveWorld,
		args:  func(w *faultWorld) []string { return []string{"snapshot", "create", faultVM, "s3"} },
		check: func(w *faultWorld, t *testing.T) (string, string) {
			tr := w.settleLive(t)
			sn, has := tr.get("s3")
			for i := range w.e.show(faultVM).Disks {
				p, _ := w.disk(faultVM, i)
				if tags := imageTags(t, p); slices.Contains(tags, "s3") != has {
					t.Errorf("disk %d holds snapshots %v but the list says s3 exists=%v: half-taken", i, tags, has)
				}
			}
			if has && (!sn.Restorable || !sn.RAM || tr.Current != "s3") {
				t.Errorf("s3 is listed but not a whole live snapshot: %+v (current %q)", sn, tr.Current)
			}
			if !has && tr.Current != "s2" {
				t.Errorf("s3 was not taken but current is %q, want s2", tr.Current)
			}
			if m := w.marks(t, faultVM); !allEqual(m, "mark-B") {
				t.Errorf("disks read %v, want mark-B everywhere", m)
			}
			return faultVM, "mark-B"
		},
	}
}

func liveRestoreOp() faultOp {
	return faultOp{
		name:  "snapshot-restore-live",
		setup: liveWorld,
		args:  func(w *faultWorld) []string { return []string{"snapshot", "restore", faultVM, "s1", "--yes"} },
		check: func(w *faultWorld, t *testing.T) (string, string) {
			tr := w.settleLive(t)
			m := w.marks(t, faultVM)
			want := map[string]string{"s1": "mark-A", "s2": "mark-B"}[tr.Current]
			if want == "" || !allEqual(m, want) {
				t.Errorf("current snapshot is %q but the disks read %v: restored half-way or reported wrongly", tr.Current, m)
			}
			for _, tag := range []string{"s1", "s2"} {
				if sn, ok := tr.get(tag); !ok || !sn.Restorable || !sn.RAM {
					t.Errorf("live snapshot %s after the kill: %+v (listed %v)", tag, sn, ok)
				}
			}
			return faultVM, want
		},
	}
}

// flattenOp: f's disk sits on a chain of as many bases as vlab allows
// (one linked clone after each change), so the next linked clone first
// flattens f's disk into a plain image and then freezes it anew.
func flattenOp() faultOp {
	op := cloneOp("clone-linked-flatten", "--linked")
	op.setup = func(t *testing.T) *faultWorld {
		w := newFaultWorld(t, "qcow2", "qcow2")
		for k := 1; k <= 8; k++ { // machine.maxBaseChain
			w.markAll(fmt.Sprintf("mark-%d", k))
			w.e.ok("clone", faultVM, fmt.Sprintf("c%d", k), "--linked")
		}
		w.markAll("mark-A")
		return w
	}
	check := op.check
	op.check = func(w *faultWorld, t *testing.T) (string, string) {
		for k := 1; k <= 8; k++ { // the earlier clones keep what they were cloned from
			vm := fmt.Sprintf("c%d", k)
			if m := w.marks(t, vm); !allEqual(m, fmt.Sprintf("mark-%d", k)) || len(m) != 2 {
				t.Errorf("the earlier clone %s reads %v, want mark-%d on both disks", vm, m, k)
			}
		}
		return check(w, t)
	}
	return op
}
