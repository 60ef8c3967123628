package machine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fixture"
)

func TestValidateTag(t *testing.T) {
	for _, ok := range []string{"s1", "before-upgrade", "v1.2_rc", "A", "1a"} {
		if err := ValidateTag(ok); err != nil {
			t.Errorf("ValidateTag(%q) = %v", ok, err)
		}
	}
	bad := map[string]string{
		"": "empty", "12": "only digits", "-x": "invalid", "a b": "invalid", "a/b": "invalid",
		"..": "invalid", "x\n": "invalid", strings.Repeat("a", 65): "at most",
	}
	for in, want := range bad {
		err := ValidateTag(in)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ValidateTag(%q) = %v; want a one-line error mentioning %q", in, err, want)
		}
	}
}

var (
	t0    = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	disk0 = snapshotImage{Key: "disk0.qcow2", Path: "/vm/disk0.qcow2", Format: "qcow2"}
	vars  = snapshotImage{Key: efiVarsFile, Path: "/vm/" + efiVarsFile, Format: "qcow2"}
)

func isnap(name string, sec int64, ram int64) imageSnapshot {
	return imageSnapshot{Name: name, DateSec: t0.Unix() + sec, VMStateSize: ram}
}

func rec(tag, parent string, files ...string) snapshotRecord {
	return snapshotRecord{Tag: tag, Parent: parent, Files: files, Time: t0}
}

func tags(tr Tree) []string {
	var out []string
	for _, s := range tr.Snapshots {
		out = append(out, s.Tag+"<"+s.Parent)
	}
	return out
}

func TestReconcileDropsSnapshotsDeletedOutsideAndReparents(t *testing.T) {
	m := snapshotMeta{Current: "s2", Snapshots: []snapshotRecord{
		rec("s1", "", "disk0.qcow2"), rec("s2", "s1", "disk0.qcow2"), rec("s3", "s2", "disk0.qcow2"), rec("s4", "s3", "disk0.qcow2"),
	}}
	// s2 and s3 were deleted with qemu-img behind vlab's back.
	found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 0), isnap("s4", 4, 0)}}
	out, tr := reconcile(m, []snapshotImage{disk0}, found, jobUnknown)
	if got, want := tags(tr), []string{"s1<", "s4<s1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tree = %v; want %v", got, want)
	}
	if out.Current != "s1" || tr.Current != "s1" {
		t.Errorf("current = %q/%q; want s1 (the deleted current's surviving ancestor)", out.Current, tr.Current)
	}
	if s, _ := tr.Get("s1"); !s.Current || !s.Restorable {
		t.Errorf("s1 = %+v; want current and restorable", s)
	}
	if _, ok := tr.Get("s2"); ok {
		t.Error("s2, deleted from the disk, is still shown")
	}
}

func TestReconcilePartialSnapshotIsNotRestorable(t *testing.T) {
	m := snapshotMeta{Current: "s1", Snapshots: []snapshotRecord{rec("s1", "", "disk0.qcow2", efiVarsFile)}}
	found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 1000)}, efiVarsFile: nil}
	_, tr := reconcile(m, []snapshotImage{disk0, vars}, found, jobUnknown)
	s, ok := tr.Get("s1")
	if !ok || s.Restorable || !reflect.DeepEqual(s.Missing, []string{efiVarsFile}) {
		t.Fatalf("s1 = %+v; want shown, not restorable, missing the vars", s)
	}
	if !s.RAM || s.Size != 1000 {
		t.Errorf("s1 RAM %v size %d; want RAM state of 1000 bytes", s.RAM, s.Size)
	}
}

func TestReconcileAdoptsExternalSnapshots(t *testing.T) {
	found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("by-hand", 5, 0)}}
	out, tr := reconcile(snapshotMeta{}, []snapshotImage{disk0}, found, jobUnknown)
	s, ok := tr.Get("by-hand")
	if !ok || !s.External || !s.Restorable || s.Parent != "" || !s.Time.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("adopted = %+v (ok %v); want an external restorable root with the image's date", s, ok)
	}
	if len(out.Snapshots) != 1 || out.Current != "" {
		t.Errorf("meta = %+v; want it recorded, current untouched", out)
	}
}

func TestReconcileSettlesPendingCreate(t *testing.T) {
	base := snapshotMeta{Current: "s1", Snapshots: []snapshotRecord{rec("s1", "", "disk0.qcow2", efiVarsFile)},
		Pending: &pendingOp{Op: opCreate, Tag: "s2", Parent: "s1", Description: "mid-kill", Job: "vlab-save-1", Since: t0}}
	imgs := []snapshotImage{disk0, vars}

	t.Run("job finished in qemu", func(t *testing.T) {
		found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 0), isnap("s2", 2, 77)}, efiVarsFile: {isnap("s1", 1, 0), isnap("s2", 2, 0)}}
		out, tr := reconcile(base, imgs, found, jobSucceeded)
		s, ok := tr.Get("s2")
		if !ok || s.Parent != "s1" || s.Description != "mid-kill" || !s.Restorable || !s.RAM {
			t.Fatalf("s2 = %+v; want it recorded under s1, restorable, with RAM", s)
		}
		if out.Pending != nil || out.Current != "s2" {
			t.Errorf("pending %v current %q; want settled, current s2", out.Pending, out.Current)
		}
	})
	t.Run("job never ran", func(t *testing.T) {
		found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 0)}, efiVarsFile: {isnap("s1", 1, 0)}}
		out, tr := reconcile(base, imgs, found, jobUnknown)
		if _, ok := tr.Get("s2"); ok || out.Pending != nil || out.Current != "s1" {
			t.Fatalf("tree %v pending %v current %q; want no s2, settled, current s1", tags(tr), out.Pending, out.Current)
		}
	})
	t.Run("job half done", func(t *testing.T) {
		found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 0), isnap("s2", 2, 77)}, efiVarsFile: {isnap("s1", 1, 0)}}
		out, tr := reconcile(base, imgs, found, jobUnknown)
		s, ok := tr.Get("s2")
		if !ok || s.Restorable || !reflect.DeepEqual(s.Missing, []string{efiVarsFile}) {
			t.Fatalf("s2 = %+v; want shown as not restorable, missing the vars", s)
		}
		if out.Current != "s1" {
			t.Errorf("current = %q; a partial snapshot must not become current", out.Current)
		}
	})
	t.Run("job still running", func(t *testing.T) {
		found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 0)}, efiVarsFile: {isnap("s1", 1, 0)}}
		out, tr := reconcile(base, imgs, found, jobRunning)
		s, ok := tr.Get("s2")
		if !ok || !s.Pending || s.Restorable || s.Parent != "s1" {
			t.Fatalf("s2 = %+v; want a pending, not restorable node under s1", s)
		}
		if out.Pending == nil {
			t.Error("pending operation dropped while its job runs")
		}
	})
}

func TestReconcileSettlesPendingRestore(t *testing.T) {
	m := snapshotMeta{Current: "s2", Snapshots: []snapshotRecord{rec("s1", "", "disk0.qcow2"), rec("s2", "s1", "disk0.qcow2")},
		Pending: &pendingOp{Op: opRestore, Tag: "s1", Job: "j"}}
	found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 9), isnap("s2", 2, 9)}}
	if out, _ := reconcile(m, []snapshotImage{disk0}, found, jobSucceeded); out.Current != "s1" || out.Pending != nil {
		t.Errorf("after a finished restore: current %q pending %v; want s1, nil", out.Current, out.Pending)
	}
	if out, _ := reconcile(m, []snapshotImage{disk0}, found, jobFailed); out.Current != "s2" || out.Pending != nil {
		t.Errorf("after a failed restore: current %q pending %v; want s2, nil", out.Current, out.Pending)
	}
}

func TestReconcileIgnoresRemovedDisks(t *testing.T) {
	// s1 covered disk0 and disk1; disk1 was removed from the vm since.
	m := snapshotMeta{Snapshots: []snapshotRecord{rec("s1", "", "disk0.qcow2", "disk1.qcow2")}}
	found := map[string][]imageSnapshot{"disk0.qcow2": {isnap("s1", 1, 0)}}
	_, tr := reconcile(m, []snapshotImage{disk0}, found, jobUnknown)
	if s, _ := tr.Get("s1"); !s.Restorable || !reflect.DeepEqual(s.Files, []string{"disk0.qcow2"}) {
		t.Errorf("s1 = %+v; want restorable on disk0 alone", s)
	}
}

func TestTreeOrderAndChildren(t *testing.T) {
	in := []Snapshot{
		{Tag: "c", Parent: "a", Time: t0.Add(3)}, {Tag: "a", Time: t0}, {Tag: "b", Parent: "a", Time: t0.Add(2)},
		{Tag: "d", Parent: "b", Time: t0.Add(4)}, {Tag: "z", Time: t0.Add(1)},
	}
	tr := Tree{Snapshots: depthFirst(in)}
	if got, want := tags(tr), []string{"a<", "b<a", "d<b", "c<a", "z<"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order = %v; want %v", got, want)
	}
	if kids := tr.Children("a"); len(kids) != 2 || kids[0].Tag != "b" || kids[1].Tag != "c" {
		t.Errorf("Children(a) = %v", kids)
	}
	if tr.Depth("d") != 2 || tr.Depth("a") != 0 {
		t.Errorf("Depth(d) = %d, Depth(a) = %d", tr.Depth("d"), tr.Depth("a"))
	}
}

// --- against real qemu-img ---

// needQemuImg skips (or fails in CI) without qemu-img and qemu-io.
func needQemuImg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"qemu-img", "qemu-io", "qemu-system-x86_64"} {
		fixture.Program(t, bin)
	}
}

// snapTestStore opens a store under a temp dir whose path has spaces.
func snapTestStore(t *testing.T) *Store {
	t.Helper()
	needQemuImg(t)
	return emptyStore(t)
}

// createDiskVM defines a stopped x86_64 VM with one 16M qcow2 disk
// (and UEFI vars when uefi).
func createDiskVM(t *testing.T, s *Store, name string, uefi bool) {
	t.Helper()
	spec := NewSpec(name, emulator.ArchX86_64)
	spec.Display = emulator.DisplayNone
	spec.Disks = []DiskSpec{{File: "disk0.qcow2", Size: 16 * MiB, Format: "qcow2"}}
	if uefi {
		h, err := s.Host(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if h.Firmware.OVMFVars == "" {
			fixture.Need(t, "OVMF vars template missing: run make deps")
		}
		spec.Firmware = emulator.FirmwareUEFI
	}
	if err := s.Create(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
}

// qio runs qemu-io commands on an image and returns the output.
func qio(t *testing.T, path string, cmds ...string) string {
	t.Helper()
	args := []string{"-f", "qcow2"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", append(args, path)...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io %v %s: %v\n%s", cmds, path, err, out)
	}
	return string(out)
}

// holds reports whether the first 64k of the image are filled with pattern.
func holds(t *testing.T, path string, pattern byte) bool {
	t.Helper()
	return holdsAt(t, path, strconv.Itoa(int(pattern)), "0")
}

// holdsAt reports whether 64k at offset (in qemu-io syntax) hold pattern.
func holdsAt(t *testing.T, path string, pattern, offset string) bool {
	t.Helper()
	// qemu-io exits 1 when the pattern does not match: read its output.
	out, _ := exec.Command("qemu-io", "-f", "qcow2", "-c", "read -P "+pattern+" "+offset+" 64k", path).CombinedOutput()
	if !strings.Contains(string(out), "read 65536/65536 bytes") {
		t.Fatalf("qemu-io read %s: %s", path, out)
	}
	return !strings.Contains(string(out), "Pattern verification failed")
}

func TestOfflineSnapshotTreeWithUEFI(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "uefi-vm", true)
	p := s.Paths("uefi-vm")
	disk := p.DiskPath("disk0.qcow2")

	qio(t, disk, "write -P 65 0 64k") // 'A'
	s1, err := s.SnapshotCreate(ctx, "uefi-vm", "s1", SnapshotOptions{Description: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if s1.RAM || !s1.Restorable || !reflect.DeepEqual(s1.Files, []string{"disk0.qcow2", efiVarsFile}) {
		t.Errorf("s1 = %+v; want disk-only, restorable, on the disk and the UEFI vars", s1)
	}
	qio(t, disk, "write -P 66 0 64k") // 'B'
	if _, err := s.SnapshotCreate(ctx, "uefi-vm", "s2", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SnapshotCreate(ctx, "uefi-vm", "s2", SnapshotOptions{}); !errors.Is(err, ErrSnapshotExists) {
		t.Errorf("second s2: %v; want ErrSnapshotExists", err)
	}
	if err := s.SnapshotRestore(ctx, "uefi-vm", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if !holds(t, disk, 'A') {
		t.Fatal("after restoring s1 the disk does not hold A")
	}
	if _, err := s.SnapshotCreate(ctx, "uefi-vm", "s3", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Snapshots(ctx, "uefi-vm")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tags(tr), []string{"s1<", "s2<s1", "s3<s1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tree = %v; want s2 and s3 as branches under s1", got)
	}
	if tr.Current != "s3" {
		t.Errorf("current = %q; want s3", tr.Current)
	}
	// Delete s1: s2 and s3 become roots and still restore.
	if err := s.SnapshotDelete(ctx, "uefi-vm", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, _ = s.Snapshots(ctx, "uefi-vm")
	if got, want := tags(tr), []string{"s2<", "s3<"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after deleting s1: tree = %v; want %v", got, want)
	}
	if err := s.SnapshotRestore(ctx, "uefi-vm", "s2", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if !holds(t, disk, 'B') {
		t.Error("after restoring s2 the disk does not hold B")
	}
	if err := s.SnapshotRestore(ctx, "uefi-vm", "s3", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if !holds(t, disk, 'A') {
		t.Error("after restoring s3 the disk does not hold A")
	}
	// The vars were snapshotted too.
	out, _ := exec.Command("qemu-img", "snapshot", "-l", p.EFIVars).CombinedOutput()
	if !strings.Contains(string(out), "s2") || !strings.Contains(string(out), "s3") || strings.Contains(string(out), "s1 ") {
		t.Errorf("uefi vars snapshots:\n%s\nwant s2 and s3, not s1", out)
	}
	if err := s.SnapshotRestore(ctx, "uefi-vm", "nope", SnapshotOptions{}); !errors.Is(err, ErrSnapshotNotFound) {
		t.Errorf("restore of a missing tag: %v", err)
	}
}

func TestSnapshotDeletedOutsideVlabIsNotRestorable(t *testing.T) {
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "outside", true)
	p := s.Paths("outside")
	for _, tag := range []string{"keep", "gone", "half"} {
		if _, err := s.SnapshotCreate(ctx, "outside", tag, SnapshotOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]string{
		{"snapshot", "-d", "gone", p.DiskPath("disk0.qcow2")}, {"snapshot", "-d", "gone", p.EFIVars},
		{"snapshot", "-d", "half", p.EFIVars},
		{"snapshot", "-c", "by-hand", p.DiskPath("disk0.qcow2")},
	} {
		if out, err := exec.Command("qemu-img", c...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v %s", c, err, out)
		}
	}
	tr, err := s.Snapshots(ctx, "outside")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Get("gone"); ok {
		t.Error("a snapshot deleted from every image is still listed")
	}
	if h, _ := tr.Get("half"); h.Restorable {
		t.Errorf("half = %+v; want not restorable", h)
	}
	if err := s.SnapshotRestore(ctx, "outside", "half", SnapshotOptions{}); err == nil || !strings.Contains(err.Error(), efiVarsFile) {
		t.Errorf("restore of half: %v; want a refusal naming %s", err, efiVarsFile)
	}
	// Made by hand on the disk alone: it covers what holds it.
	if bh, _ := tr.Get("by-hand"); !bh.External || !bh.Restorable || !reflect.DeepEqual(bh.Files, []string{"disk0.qcow2"}) {
		t.Errorf("by-hand = %+v; want external, restorable on disk0", bh)
	}
	// The repaired tree was written back.
	var m snapshotMeta
	data, _ := os.ReadFile(filepath.Join(p.Dir, snapshotsFile))
	if err := json.Unmarshal(data, &m); err != nil || hasRecord(m.Snapshots, "gone") || !hasRecord(m.Snapshots, "by-hand") {
		t.Errorf("snapshots.json = %s (%v); want gone dropped and by-hand recorded", data, err)
	}
}

func TestSnapshotOfRawDiskIsRefused(t *testing.T) {
	s := snapTestStore(t)
	spec := NewSpec("rawvm", emulator.ArchX86_64)
	spec.Disks = []DiskSpec{{File: "disk0.img", Size: 8 * MiB, Format: "raw"}}
	if err := s.Create(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	_, err := s.SnapshotCreate(context.Background(), "rawvm", "s1", SnapshotOptions{})
	if err == nil || !strings.Contains(err.Error(), "vlab disk convert rawvm disk0.img") {
		t.Fatalf("snapshot of a raw disk: %v; want a refusal naming `vlab disk convert`", err)
	}
	if _, err := os.Stat(filepath.Join(s.Paths("rawvm").Dir, snapshotsFile)); err == nil {
		data, _ := os.ReadFile(filepath.Join(s.Paths("rawvm").Dir, snapshotsFile))
		if strings.Contains(string(data), "pending") {
			t.Errorf("a refused snapshot left a pending operation: %s", data)
		}
	}
}

func TestPendingCreateOfKilledVlabIsSettled(t *testing.T) {
	// A vlab killed after recording its intent and after qemu-img made the
	// snapshot: the next vlab adopts it with the recorded parent.
	s := snapTestStore(t)
	ctx := context.Background()
	createDiskVM(t, s, "killed", false)
	p := s.Paths("killed")
	if _, err := s.SnapshotCreate(ctx, "killed", "s1", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := readMeta(p)
	if err != nil {
		t.Fatal(err)
	}
	m.Pending = &pendingOp{Op: opCreate, Tag: "s2", Parent: "s1", Description: "interrupted", Since: time.Now()}
	if err := writeMeta(p, m); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "snapshot", "-c", "s2", p.DiskPath("disk0.qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	tr, err := s.Snapshots(ctx, "killed")
	if err != nil {
		t.Fatal(err)
	}
	s2, ok := tr.Get("s2")
	if !ok || s2.Parent != "s1" || s2.Description != "interrupted" || !s2.Restorable || s2.External || tr.Current != "s2" {
		t.Fatalf("s2 = %+v current %q; want the interrupted snapshot settled under s1 and current", s2, tr.Current)
	}
	if m, _ := readMeta(p); m.Pending != nil {
		t.Errorf("pending operation not cleared: %+v", m.Pending)
	}
}

// --- QMP job handling against a scripted monitor ---

// fakeMonitor serves QMP on a unix socket: answer decides each command's
// reply (a "return" value, or an error description) and the events sent
// right after it. It records the commands it saw.
type fakeMonitor struct {
	path   string
	answer func(cmd string, args json.RawMessage) (ret any, errDesc string, events []string)
	mu     sync.Mutex
	seen   []string
}

func startFakeMonitor(t *testing.T, answer func(cmd string, args json.RawMessage) (any, string, []string)) *fakeMonitor {
	t.Helper()
	dir, err := os.MkdirTemp("", "vlab-qmp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fm := &fakeMonitor{path: filepath.Join(dir, "qmp.sock"), answer: answer}
	l, err := net.Listen("unix", fm.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go fm.serve(c)
		}
	}()
	return fm
}

func (fm *fakeMonitor) serve(c net.Conn) {
	defer c.Close()
	fmt.Fprintln(c, `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}`)
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        json.RawMessage `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &req) != nil {
			return
		}
		fm.mu.Lock()
		fm.seen = append(fm.seen, req.Execute)
		fm.mu.Unlock()
		var ret any = map[string]any{}
		var desc string
		var events []string
		if req.Execute != "qmp_capabilities" {
			ret, desc, events = fm.answer(req.Execute, req.Arguments)
		}
		id := req.ID
		if id == nil {
			id = json.RawMessage("null")
		}
		if desc != "" {
			fmt.Fprintf(c, `{"error": {"class": "GenericError", "desc": %q}, "id": %s}`+"\n", desc, id)
		} else {
			b, _ := json.Marshal(ret)
			fmt.Fprintf(c, `{"return": %s, "id": %s}`+"\n", b, id)
		}
		for _, ev := range events {
			fmt.Fprintf(c, `{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "JOB_STATUS_CHANGE", "data": {"status": %q, "id": "j1"}}`+"\n", ev)
		}
	}
}

func (fm *fakeMonitor) commands() []string {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return append([]string(nil), fm.seen...)
}

// jobScript answers a snapshot job that runs for `polls` query-jobs and
// concludes with jobErr.
func jobScript(polls int, jobErr string) func(string, json.RawMessage) (any, string, []string) {
	var mu sync.Mutex
	n := 0
	return func(cmd string, args json.RawMessage) (any, string, []string) {
		mu.Lock()
		defer mu.Unlock()
		switch cmd {
		case "snapshot-save", "snapshot-load", "snapshot-delete":
			return map[string]any{}, "", []string{"created", "running"}
		case "query-jobs":
			n++
			j := map[string]any{"id": "j1", "type": "snapshot-save", "status": "running", "current-progress": n, "total-progress": polls}
			if n >= polls {
				j["status"] = "concluded"
				if jobErr != "" {
					j["error"] = jobErr
				}
			}
			return []any{j}, "", nil
		case "job-dismiss":
			return map[string]any{}, "", []string{"null"}
		}
		return nil, "The command " + cmd + " has not been found", nil
	}
}

func TestRunJobWaitsAndLeavesTheConcludedJob(t *testing.T) {
	fm := startFakeMonitor(t, jobScript(3, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mon, err := emulator.Dial(ctx, fm.path)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	var progress [][2]float64
	err = runJob(ctx, mon, emulator.JobSnapshotSave, emulator.SnapshotJob{ID: "j1", Tag: "t"}, func(d, tot float64) {
		progress = append(progress, [2]float64{d, tot})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fm.commands(), " "); got != "qmp_capabilities snapshot-save query-jobs query-jobs query-jobs" {
		// No job-dismiss: the caller dismisses once it recorded the outcome.
		t.Errorf("commands = %s", got)
	}
	if want := [][2]float64{{0, 1}, {1, 3}, {2, 3}, {3, 3}}; !slices.Equal(progress, want) {
		t.Errorf("progress = %v; want %v (started, then QEMU's figures)", progress, want)
	}
}

func TestRunJobSurfacesTheJobsError(t *testing.T) {
	const qemuErr = "Device 'pflash1' is writable but does not support snapshots"
	fm := startFakeMonitor(t, jobScript(2, qemuErr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mon, err := emulator.Dial(ctx, fm.path)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	err = runJob(ctx, mon, emulator.JobSnapshotSave, emulator.SnapshotJob{ID: "j1"}, nil)
	if err == nil || !strings.Contains(err.Error(), qemuErr) || !strings.Contains(err.Error(), "snapshot-save") {
		t.Fatalf("runJob = %v; want the job's own error", err)
	}
	if cmds := fm.commands(); slices.Contains(cmds, "job-dismiss") {
		t.Errorf("the failed job was dismissed before its outcome was recorded: %v", cmds)
	}
}

func TestRunJobLeavesAJobRunningWhenCancelled(t *testing.T) {
	fm := startFakeMonitor(t, jobScript(1<<30, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mon, err := emulator.Dial(ctx, fm.path)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	jctx, jcancel := context.WithCancel(ctx)
	go func() {
		for len(fm.commands()) < 4 {
			time.Sleep(10 * time.Millisecond)
		}
		jcancel()
	}()
	err = runJob(jctx, mon, emulator.JobSnapshotSave, emulator.SnapshotJob{ID: "j1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("runJob = %v; want it to say the job still runs", err)
	}
	for _, c := range fm.commands() {
		if c == "job-dismiss" {
			t.Error("a running job was dismissed")
		}
	}
}

func TestLiveNodesMapsImagesAndSkipsReadOnlyMedia(t *testing.T) {
	blocks := `[
	{"device": "", "qdev": "/machine/unattached/device[25]", "inserted": {"node-name": "fwcode", "drv": "raw", "ro": true, "file": "/usr/share/OVMF/OVMF_CODE_4M.fd"}},
	{"device": "", "qdev": "/machine/unattached/device[26]", "inserted": {"node-name": "efivars", "drv": "qcow2", "ro": false, "file": "/vm/efivars.qcow2"}},
	{"device": "", "qdev": "hd0-dev", "inserted": {"node-name": "hd0", "drv": "qcow2", "ro": false, "file": "/vm/disk0.qcow2"}},
	{"device": "", "qdev": "cd0", "inserted": {"node-name": "cd0", "drv": "raw", "ro": true, "file": "/isos/debian.iso"}},
	{"device": "", "qdev": "cd1"}]`
	extra := `{"device": "", "qdev": "x", "inserted": {"node-name": "stray", "drv": "qcow2", "ro": false, "file": "/elsewhere/x.qcow2"}}`
	for _, c := range []struct {
		reply, wantErr string
	}{{blocks, ""}, {strings.TrimSuffix(blocks, "]") + "," + extra + "]", "stray"}} {
		fm := startFakeMonitor(t, func(cmd string, _ json.RawMessage) (any, string, []string) {
			return json.RawMessage(c.reply), "", nil
		})
		ctx := context.Background()
		mon, err := emulator.Dial(ctx, fm.path)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := liveNodes(ctx, mon, &snapshotCtx{imgs: []snapshotImage{disk0, vars}})
		mon.Close()
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("stray writable node: %v; want an error naming it", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"disk0.qcow2": "hd0", efiVarsFile: "efivars"}; !reflect.DeepEqual(nodes, want) {
			t.Errorf("nodes = %v; want %v", nodes, want)
		}
	}
}
