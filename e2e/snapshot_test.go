package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fixture"
)

// The snapshot, clone and disposable tests of issue 5. Guests are the x86_64
// fixture (SeaBIOS or OVMF, direct kernel boot); the guest's shell on its
// serial console is how a test writes markers to /dev/vda mid-run.

// The commands typed into the guest. Their output differs from their echo
// (the "" inside the marker), so the echo never matches. A write reports
// what the disk holds afterwards, read past the guest's caches, so only a
// write that landed answers with its mark.
func writeDisk(mark string) string {
	return fmt.Sprintf(`printf '%%s\n' %s | dd of=/dev/vda bs=512 count=1 conv=sync,notrunc 2>/dev/null && sync; %s`, mark, readBack("wrote"))
}

func readBack(key string) string {
	return `echo 3 >/proc/sys/vm/drop_caches; echo "VLAB-T:""` + key + `=$(dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | tr -d '\000' | head -n 1)"`
}

var readDiskCmd = readBack("disk")

var (
	reDisk  = regexp.MustCompile(`VLAB-T:disk=([^\r\n]*)\r?\n`)
	reCount = regexp.MustCompile(`VLAB-COUNT (\d+)`)
)

// writeMark writes mark to the first sector of the guest's disk and waits
// until the guest reads it back from there.
func (e *env) writeMark(name, mark string) {
	e.t.Helper()
	e.shell(name, writeDisk(mark), regexp.MustCompile(`VLAB-T:wrote=`+regexp.QuoteMeta(mark)+`\r?\n`))
}

// diskMark reads the first line of /dev/vda inside the running guest,
// bypassing its page cache.
func (e *env) diskMark(name string) string {
	e.t.Helper()
	return strings.TrimSpace(e.shell(name, readDiskCmd, reDisk)[1])
}

// counts returns the VLAB-COUNT values in the serial log at path after
// byte from.
func counts(log string, from int) []int {
	data, _ := os.ReadFile(log)
	if from > len(data) {
		return nil
	}
	var out []int
	for _, m := range reCount.FindAllStringSubmatch(string(data[from:]), -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// lastCount is the last value the guest's counter printed so far, 0 before
// the first.
func (e *env) lastCount(name string) int {
	c := counts(e.show(name).SerialLog, 0)
	if len(c) == 0 {
		return 0
	}
	return c[len(c)-1]
}

// waitCount waits until the guest's counter reaches at least n.
func (e *env) waitCount(name string, n int) {
	e.t.Helper()
	log := e.show(name).SerialLog // the same path for the whole run
	waitFor(e.t, fmt.Sprintf("%s to count to %d", name, n), 3*time.Minute, func() bool {
		c := counts(log, 0)
		return len(c) > 0 && c[len(c)-1] >= n
	})
}

// restoreAndCheckCounter restores tag on the running (or stopped) VM and
// checks the guest continues counting from the snapshot's moment: after the
// restore it counts within [lo, hi] again, below what it had counted to.
func (e *env) restoreAndCheckCounter(name, tag string, lo, hi int) {
	e.t.Helper()
	f := e.show(name)
	from := 0
	if f.State == "running" {
		data, _ := os.ReadFile(f.SerialLog)
		from = len(data)
	}
	out := e.ok("snapshot", "restore", name, tag, "--yes")
	if !strings.Contains(out, "running from the snapshot's moment") {
		e.t.Errorf("restore output %q does not say the guest runs from the snapshot", out)
	}
	if st := e.state(name); st != "running" {
		e.t.Fatalf("after restoring %s: state %s, want running", tag, st)
	}
	// Counts printed just before the load may follow from; the first one
	// back in the snapshot's range is where the restored guest went on.
	var got []int
	deadline := time.Now().Add(90 * time.Second)
	for {
		got = counts(f.SerialLog, from)
		for _, c := range got {
			if c <= hi {
				if c < lo {
					e.t.Errorf("after restoring %s the guest counted %d; want %d..%d (continuing from the snapshot)", tag, c, lo, hi)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after restoring %s the guest counted %v; want it back at %d..%d (the snapshot's moment)", tag, got, lo, hi)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type snapJSON struct {
	Tag        string   `json:"tag"`
	Parent     string   `json:"parent"`
	RAM        bool     `json:"ram"`
	Size       int64    `json:"size"`
	Current    bool     `json:"current"`
	Restorable bool     `json:"restorable"`
	Files      []string `json:"files"`
	Pending    bool     `json:"pending"`
}

type treeJSON struct {
	Current   string     `json:"current"`
	Snapshots []snapJSON `json:"snapshots"`
}

func (e *env) tree(name string) treeJSON {
	e.t.Helper()
	var tr treeJSON
	if err := json.Unmarshal([]byte(e.ok("snapshot", "list", name, "--json")), &tr); err != nil {
		e.t.Fatalf("snapshot list --json: %v", err)
	}
	return tr
}

func (tr treeJSON) get(tag string) (snapJSON, bool) {
	for _, s := range tr.Snapshots {
		if s.Tag == tag {
			return s, true
		}
	}
	return snapJSON{}, false
}

// imageTags lists the internal snapshots qemu-img sees in an image.
func imageTags(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "-U", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info struct {
		Snapshots []struct{ Name string } `json:"snapshots"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, s := range info.Snapshots {
		tags = append(tags, s.Name)
	}
	sort.Strings(tags)
	return tags
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// contentSum is the SHA-256 of what a guest sees on the disk image at
// path (its whole backing chain, read as raw).
func contentSum(t *testing.T, path string) string {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "content.raw")
	if out, err := exec.Command("qemu-img", "convert", "-U", "-O", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert %s: %v: %s", path, err, out)
	}
	defer os.Remove(raw)
	return sha(t, raw)
}

// Must show 1: live snapshot and restore bring back the disk and the RAM
// state; an offline snapshot brings back the disk.
func TestSnapshotLiveAndOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "snap-live"
	e.createGuest(name, guests["x86_64"], []string{"vlab.counter=1"}, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", name)
	e.waitCount(name, 2)
	e.writeMark(name, "mark-A")

	before := e.lastCount(name)
	out := e.ok("snapshot", "create", name, "live-A", "--description", "disk holds A")
	if !strings.Contains(out, "live") {
		t.Errorf("snapshot of a running vm is not live: %q", out)
	}
	after := e.lastCount(name)
	e.writeMark(name, "mark-B")
	if got := e.diskMark(name); got != "mark-B" {
		t.Fatalf("before restore the disk reads %q, want mark-B", got)
	}
	e.waitCount(name, after+5)
	e.restoreAndCheckCounter(name, "live-A", before, after+2)
	if got := e.diskMark(name); got != "mark-A" {
		t.Errorf("after restoring live-A the disk reads %q, want mark-A", got)
	}
	sn, _ := e.tree(name).get("live-A")
	if !sn.RAM || sn.Size == 0 || !sn.Current || !sn.Restorable {
		t.Errorf("live-A in the list: %+v; want RAM state, current, restorable", sn)
	}

	// Offline: the stopped vm's disks only.
	e.ok("stop", name)
	out = e.ok("snapshot", "create", name, "off-A")
	if !strings.Contains(out, "disks only") {
		t.Errorf("snapshot of a stopped vm: %q; want disks only", out)
	}
	e.ok("start", name)
	e.waitSerial(name, "VLAB-DISK-READ mark-A")
	e.writeMark(name, "mark-C")
	e.ok("stop", name)
	out = e.ok("snapshot", "restore", name, "off-A", "--yes")
	if !strings.Contains(out, "disks reverted") {
		t.Errorf("offline restore output %q", out)
	}
	if st := e.state(name); st != "stopped" {
		t.Errorf("after an offline restore: state %s, want stopped", st)
	}
	e.ok("start", name)
	e.waitSerial(name, "VLAB-DISK-READ mark-A")
	if sn, _ := e.tree(name).get("off-A"); sn.RAM || !sn.Current || sn.Parent != "live-A" {
		t.Errorf("off-A in the list: %+v; want disk-only, current, child of live-A", sn)
	}
	// A disk-only snapshot cannot be loaded into a running guest.
	e.fail([]string{"no RAM state", "vlab stop"}, "snapshot", "restore", name, "off-A", "--yes")
	e.ok("stop", "--force", name)
}

// Must show 2: the same live snapshot on a UEFI guest (OVMF with its
// variable store as qcow2), and restoring it on the stopped VM starts the
// guest straight into that moment.
func TestSnapshotLiveUEFI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "snap-uefi"
	e.createGuest(name, guests["x86_64"], []string{"vlab.counter=1"}, "--display", "none", "--net", "none", "--disk", "32M", "--firmware", "uefi")
	e.ok("start", name)
	e.waitCount(name, 2)
	e.writeMark(name, "uefi-A")
	before := e.lastCount(name)
	e.ok("snapshot", "create", name, "u1")
	after := e.lastCount(name)
	e.writeMark(name, "uefi-B")
	e.waitCount(name, after+5)
	e.restoreAndCheckCounter(name, "u1", before, after+2)
	if got := e.diskMark(name); got != "uefi-A" {
		t.Errorf("after restoring u1 the disk reads %q, want uefi-A", got)
	}
	f := e.show(name)
	vars := filepath.Join(f.Dir, "efivars.qcow2")
	sn, _ := e.tree(name).get("u1")
	if !sn.RAM || strings.Join(sn.Files, ",") != "disk0.qcow2,efivars.qcow2" {
		t.Errorf("u1 = %+v; want RAM state on the disk and the UEFI vars", sn)
	}
	if tags := imageTags(t, vars); strings.Join(tags, ",") != "u1" {
		t.Errorf("UEFI vars hold snapshots %v, want [u1]", tags)
	}

	// Restore the live snapshot of the stopped vm.
	e.ok("stop", name)
	e.restoreAndCheckCounter(name, "u1", before, after+2)
	if got := e.diskMark(name); got != "uefi-A" {
		t.Errorf("after restoring u1 into the stopped vm the disk reads %q, want uefi-A", got)
	}
	e.ok("stop", "--force", name)
}

// Must show 3: the tree. s1, s2; restore s1; s3 branches from s1; deleting
// s1 leaves s2 and s3 restorable.
func TestSnapshotTree(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "snap-tree"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", name)
	e.writeMark(name, "tree-1")
	e.ok("snapshot", "create", name, "s1")
	e.writeMark(name, "tree-2")
	e.ok("snapshot", "create", name, "s2")
	e.ok("snapshot", "restore", name, "s1", "--yes")
	if got := e.diskMark(name); got != "tree-1" {
		t.Fatalf("after restoring s1: disk %q", got)
	}
	e.writeMark(name, "tree-3")
	e.ok("snapshot", "create", name, "s3")

	tr := e.tree(name)
	s2, _ := tr.get("s2")
	s3, _ := tr.get("s3")
	if s3.Parent != "s1" || s2.Parent != "s1" || tr.Current != "s3" || !s3.Current {
		t.Fatalf("tree %+v; want s2 and s3 both children of s1 (two branches), s3 current", tr)
	}
	list := e.ok("snapshot", "list", name)
	if !regexp.MustCompile(`├─ s2`).MatchString(list) || !regexp.MustCompile(`\*.*└─ s3`).MatchString(list) {
		t.Errorf("tree drawing:\n%s", list)
	}

	e.ok("snapshot", "delete", name, "s1", "--yes")
	tr = e.tree(name)
	s2, ok2 := tr.get("s2")
	s3, ok3 := tr.get("s3")
	if _, ok := tr.get("s1"); ok || !ok2 || !ok3 || s2.Parent != "" || s3.Parent != "" || !s2.Restorable || !s3.Restorable {
		t.Fatalf("after deleting s1: %+v; want s2 and s3 as restorable roots", tr)
	}
	disk := e.show(name).Disks[0].Path
	if tags := imageTags(t, disk); strings.Join(tags, ",") != "s2,s3" {
		t.Errorf("disk holds %v after deleting s1", tags)
	}
	e.ok("snapshot", "restore", name, "s2", "--yes")
	if got := e.diskMark(name); got != "tree-2" {
		t.Errorf("after restoring s2: disk %q, want tree-2", got)
	}
	e.ok("snapshot", "restore", name, "s3", "--yes")
	if got := e.diskMark(name); got != "tree-3" {
		t.Errorf("after restoring s3: disk %q, want tree-3", got)
	}
	e.fail([]string{"s1", "no such snapshot"}, "snapshot", "restore", name, "s1", "--yes")
	e.ok("stop", "--force", name)
}

// Must show 4: a linked clone boots, its writes leave the source's disk
// unchanged, and the source cannot be deleted while the clone exists.
func TestLinkedCloneBootsAndProtectsSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createGuest("src", guests["x86_64"], nil, "--display", "none", "--net", "none", "--disk", "32M")
	// The source is stopped the way a user stops it (ACPI power-down: the
	// guest syncs and powers off) before it is cloned.
	e.ok("start", "src")
	e.writeMark("src", "from-src")
	e.ok("stop", "src")
	srcDisk := e.show("src").Disks[0].Path
	sum := contentSum(t, srcDisk)

	out := e.ok("clone", "src", "thin", "--linked")
	if !strings.Contains(out, "linked") {
		t.Errorf("clone output %q", out)
	}
	e.ok("start", "thin")
	e.waitSerial("thin", "VLAB-DISK-READ from-src")
	e.writeMark("thin", "from-clone")
	e.ok("stop", "thin")
	if contentSum(t, srcDisk) != sum {
		t.Fatal("the linked clone's writes changed the source disk")
	}
	e.ok("start", "thin")
	e.waitSerial("thin", "VLAB-DISK-READ from-clone")
	e.ok("stop", "--force", "thin")

	line := e.fail([]string{"src", "thin", "linked clone"}, "delete", "src", "--yes")
	_ = line
	if _, err := os.Stat(srcDisk); err != nil {
		t.Fatalf("refused delete removed the source disk: %v", err)
	}
	// The source keeps working, and its own runs leave the clone alone.
	e.ok("start", "src")
	e.waitSerial("src", "VLAB-DISK-READ from-src")
	e.writeMark("src", "src-again")
	// A forced stop (QMP quit) keeps what the guest wrote.
	e.ok("stop", "--force", "src")
	e.ok("start", "src")
	e.waitSerial("src", "VLAB-DISK-READ src-again")
	e.ok("stop", "--force", "src")
	e.ok("start", "thin")
	e.waitSerial("thin", "VLAB-DISK-READ from-clone")
	e.ok("stop", "--force", "thin")
	e.ok("delete", "thin", "--yes")
	e.ok("delete", "src", "--yes")
}

// Must show 5: a disposable run leaves the disk byte-identical.
func TestDisposableRunLeavesDiskIdentical(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "throwaway"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", name)
	e.writeMark(name, "kept")
	e.ok("stop", name)
	disk := e.show(name).Disks[0].Path
	sum := sha(t, disk)

	e.ok("start", "--disposable", name)
	e.waitSerial(name, "VLAB-DISK-READ kept")
	e.writeMark(name, "thrown-away")
	if got := e.diskMark(name); got != "thrown-away" {
		t.Fatalf("disposable guest reads %q after its write", got)
	}
	e.fail([]string{"disposable"}, "snapshot", "create", name, "nope")
	e.ok("stop", name)
	if sha(t, disk) != sum {
		t.Fatal("the disposable run changed the disk")
	}
	if _, err := os.Stat(filepath.Join(e.show(name).Dir, "disposable")); err == nil {
		t.Error("the disposable overlays were left behind")
	}
	e.ok("start", name)
	e.waitSerial(name, "VLAB-DISK-READ kept")
	e.ok("stop", "--force", name)
}

// Must show 6: vlab killed with SIGKILL in the middle of a live snapshot
// job; the next vlab shows exactly the snapshots the disk really holds, the
// interrupted one settled under its recorded parent.
func TestKilledDuringSnapshotJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "killed"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", name)
	e.writeMark(name, "k0")
	e.ok("snapshot", "create", name, "k0")
	f := e.show(name)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mon, err := emulator.DialAny(ctx, f.QMPSockets)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	type job struct{ ID, Status string }
	jobs := func() []job {
		var js []job
		if err := mon.Execute(ctx, "query-jobs", nil, &js); err != nil {
			t.Fatalf("query-jobs: %v", err)
		}
		return js
	}

	cmd := exec.Command(vlabBin, "snapshot", "create", name, "big")
	cmd.Env = e.vars
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// QEMU runs the save in its main loop, so it answers no command (vlab's
	// query-jobs included) until the save is done, but it writes events as
	// they happen: kill vlab when the job starts running.
	var seen job
	timeout := time.After(time.Minute)
	for seen.ID == "" {
		select {
		case ev := <-mon.Events():
			var d struct{ ID, Status string }
			if ev.Name == "JOB_STATUS_CHANGE" && json.Unmarshal(ev.Data, &d) == nil && strings.HasPrefix(d.ID, "vlab-save-") && d.Status == "running" {
				seen = job{ID: d.ID, Status: d.Status}
			}
		case <-timeout:
			t.Fatal("the snapshot job never started in qemu")
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	// vlab dismisses its job once it has seen it conclude: the job still
	// being there proves vlab died before finishing the snapshot.
	var atKill []job
	for _, j := range jobs() {
		if j.ID == seen.ID {
			atKill = append(atKill, j)
		}
	}
	if len(atKill) == 0 {
		t.Fatalf("job %s gone right after the kill: vlab finished before it was killed", seen.ID)
	}
	t.Logf("killed vlab while job %s was %s", seen.ID, atKill[0].Status)
	var meta struct {
		Pending *struct{ Op, Tag string } `json:"pending"`
	}
	data, _ := os.ReadFile(filepath.Join(f.Dir, "snapshots.json"))
	if err := json.Unmarshal(data, &meta); err != nil || meta.Pending == nil || meta.Pending.Tag != "big" {
		t.Fatalf("snapshots.json right after the kill: %s (%v); want the create of big recorded as pending", data, err)
	}
	waitFor(t, "the orphaned job to conclude in qemu", 2*time.Minute, func() bool {
		for _, j := range jobs() {
			if j.ID == seen.ID {
				return j.Status == "concluded"
			}
		}
		return true
	})

	tr := e.tree(name)
	var listed []string
	for _, s := range tr.Snapshots {
		if !s.Restorable || s.Pending {
			t.Errorf("after the kill: %+v is not settled", s)
		}
		listed = append(listed, s.Tag)
	}
	sort.Strings(listed)
	disk := f.Disks[0].Path
	if onDisk := imageTags(t, disk); strings.Join(listed, ",") != strings.Join(onDisk, ",") {
		t.Fatalf("vlab lists %v, the disk holds %v", listed, onDisk)
	}
	big, ok := tr.get("big")
	if !ok || big.Parent != "k0" || tr.Current != "big" || !big.RAM {
		t.Errorf("interrupted snapshot: %+v (current %q); want it settled under k0 as current, with RAM", big, tr.Current)
	}
	for _, j := range jobs() {
		if j.ID == seen.ID {
			t.Errorf("the next vlab left the orphaned job %s undismissed", j.ID)
		}
	}
	mon.Close()
	// It restores like any other.
	e.writeMark(name, "k1")
	e.ok("snapshot", "restore", name, "big", "--yes")
	if got := e.diskMark(name); got != "k0" {
		t.Errorf("after restoring big: disk %q, want k0", got)
	}
	e.ok("stop", "--force", name)
}

// Bad input to the snapshot, clone and disk commands gets one clear line and
// changes nothing.
func TestSnapshotCloneDiskBadInput(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "bad", "--disk", "16M", "--display", "none", "--net", "none")
	dir := t.TempDir()
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"snapshot", "create", "bad", "a b"}, []string{"invalid"}},
		{[]string{"snapshot", "create", "bad", "12"}, []string{"only digits"}},
		{[]string{"snapshot", "create", "bad", strings.Repeat("t", 65)}, []string{"at most 64"}},
		{[]string{"snapshot", "create", "ghost", "s1"}, []string{"ghost", "no such vm"}},
		{[]string{"snapshot", "create", "bad"}, []string{"NAME TAG"}},
		{[]string{"snapshot", "restore", "bad", "nope", "--yes"}, []string{"nope", "no such snapshot"}},
		{[]string{"snapshot", "delete", "bad", "nope", "--yes"}, []string{"nope", "no such snapshot"}},
		{[]string{"clone", "bad", "bad"}, []string{"already exists"}},
		{[]string{"clone", "bad", "../evil"}, []string{"invalid"}},
		{[]string{"clone", "bad", "c2", "--snapshot", "nope"}, []string{"no such snapshot"}},
		{[]string{"disk", "add", "bad", "--", "-1G"}, []string{"positive"}},
		{[]string{"disk", "add", "bad", "0G"}, []string{"positive"}},
		{[]string{"disk", "add", "bad", "1Q"}, []string{"unknown unit"}},
		{[]string{"disk", "resize", "bad", "hd0", "+1G"}, []string{"new total"}},
		{[]string{"disk", "resize", "bad", "hd0", "8M"}, []string{"only grow"}},
		{[]string{"disk", "resize", "bad", "hd9", "1G"}, []string{"no disk", "0 (disk0.qcow2)"}},
		{[]string{"disk", "import", "bad", filepath.Join(dir, "nope.vmdk")}, []string{"does not exist"}},
		{[]string{"disk", "import", "bad", dir}, []string{"not a regular file"}},
		{[]string{"disk", "rm", "bad", "hd9"}, []string{"no disk"}},
		{[]string{"disk", "convert", "bad", "hd0"}, []string{"qcow2 already"}},
	} {
		e.fail(c.wants, c.args...)
	}
	var vms []struct{ Name string }
	if err := json.Unmarshal([]byte(e.ok("list", "--json")), &vms); err != nil || len(vms) != 1 {
		t.Errorf("vms after bad input: %+v (%v); want only bad", vms, err)
	}
	if tr := e.tree("bad"); len(tr.Snapshots) != 0 {
		t.Errorf("bad input made snapshots: %+v", tr)
	}
	if d := e.show("bad").Disks; len(d) != 1 {
		t.Errorf("bad input changed the disks: %+v", d)
	}
}
