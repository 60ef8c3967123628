package emulator

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// TestTypedQMPRealQEMU sends every typed command to a real QEMU (a pc
// machine with a qcow2 disk, a CD drive, a chardev and a password-protected
// VNC display) and checks what QEMU did: the wire names and argument shapes
// here are QEMU 7.2's, not a fake's.
func TestTypedQMPRealQEMU(t *testing.T) {
	dir := shortDir(t)
	disk, iso := filepath.Join(dir, "d.qcow2"), filepath.Join(dir, "cd.iso")
	if out, err := exec.Command(fixture.Program(t, "qemu-img"), "create", "-q", "-f", "qcow2", disk, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	if err := os.WriteFile(iso, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "qmp.sock")
	startRealQEMU(t, "-machine", "pc", "-accel", "tcg", "-m", "64M",
		"-qmp", "unix:"+sock+",server=on,wait=off",
		"-blockdev", "driver=file,node-name=d0-file,filename="+disk, "-blockdev", "driver=qcow2,node-name=d0,file=d0-file",
		"-device", "ide-hd,drive=d0,bus=ide.0",
		"-device", "ide-cd,id=cd0,bus=ide.1",
		"-chardev", "socket,id=ch0,path="+filepath.Join(dir, "ch.sock")+",server=on,wait=off",
		"-vnc", "unix:"+filepath.Join(dir, "vnc.sock")+",password=on,id="+VNCExternalID)
	ctx := testCtx(t)
	m := dialWhenUp(t, ctx, func(ctx context.Context) (*Monitor, error) { return Dial(ctx, sock) })

	if st, err := m.QueryStatus(ctx); err != nil || !st.Running || st.Status != "running" {
		t.Fatalf("QueryStatus = %+v, %v; want running", st, err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.QueryStatus(ctx); st.Running || st.Status != "paused" {
		t.Errorf("after Stop: %+v, want paused", st)
	}
	if err := m.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.QueryStatus(ctx); !st.Running {
		t.Errorf("after Cont: %+v, want running", st)
	}
	if err := m.SystemReset(ctx); err != nil {
		t.Fatal(err)
	}

	medium := func(id string) *BlockMedium {
		t.Helper()
		devs, err := m.QueryBlock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			if d.QDev == id || strings.HasSuffix(d.QDev, "/"+id) {
				return d.Inserted
			}
		}
		t.Fatalf("QueryBlock has no device %s: %+v", id, devs)
		return nil
	}
	if hd := medium("/machine/peripheral-anon/device[0]"); hd == nil || hd.NodeName != "d0" || hd.Driver != "qcow2" || hd.ReadOnly || hd.File != disk {
		t.Errorf("disk medium = %+v, want node d0, qcow2, writable, %s", hd, disk)
	}
	if cd := medium("cd0"); cd != nil {
		t.Errorf("empty CD drive has %+v", cd)
	}
	if err := m.ChangeCDROM(ctx, "cd0", iso); err != nil {
		t.Fatal(err)
	}
	if cd := medium("cd0"); cd == nil || cd.File != iso || !cd.ReadOnly || cd.Driver != "raw" {
		t.Errorf("after ChangeCDROM: %+v, want %s read-only raw", cd, iso)
	}
	if err := m.Eject(ctx, "cd0"); err != nil {
		t.Fatal(err)
	}
	if cd := medium("cd0"); cd != nil {
		t.Errorf("after Eject: %+v", cd)
	}

	devs, err := m.QueryChardev(ctx)
	if err != nil || !slices.ContainsFunc(devs, func(c Chardev) bool { return c.Label == "ch0" }) {
		t.Errorf("QueryChardev = %+v, %v; want ch0", devs, err)
	}
	evs, err := m.TraceEventGetState(ctx, "qmp_job_*")
	i := slices.IndexFunc(evs, func(e TraceEvent) bool { return e.State == "disabled" })
	if err != nil || i < 0 {
		t.Fatalf("TraceEventGetState = %+v, %v; want a disabled qmp_job_* event", evs, err)
	}
	name := evs[i].Name
	if err := m.TraceEventSetState(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.TraceEventGetState(ctx, name); len(again) != 1 || again[0].State != "enabled" {
		t.Errorf("after TraceEventSetState: %+v, want %s enabled", again, name)
	}
	if out, err := m.HumanMonitorCommand(ctx, "info status"); err != nil || !strings.Contains(out, "VM status: running") {
		t.Errorf("HumanMonitorCommand = %q, %v", out, err)
	}
	if err := m.SetVNCPassword(ctx, VNCExternalID, "s3cret"); err != nil {
		t.Errorf("SetVNCPassword: %v", err)
	}
	var qe *QMPError
	if err := m.SetVNCPassword(ctx, "nosuch", "x"); !errors.As(err, &qe) || !strings.Contains(err.Error(), "set_password") {
		t.Errorf("SetVNCPassword on no display = %v, want QEMU's refusal naming the command", err)
	}

	// A snapshot job, as vlab's live snapshots run it.
	job := SnapshotJob{ID: "j1", Tag: "t1", VMState: "d0", Devices: []string{"d0"}}
	if err := m.StartSnapshotJob(ctx, JobSnapshotSave, job); err != nil {
		t.Fatal(err)
	}
	var j Job
	for {
		jobs, err := m.QueryJobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		if j, ok = FindJob(jobs, "j1"); !ok {
			t.Fatalf("QueryJobs lost job j1: %+v", jobs)
		}
		if j.Status == "concluded" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if j.Error != "" || j.Type != "snapshot-save" {
		t.Errorf("job = %+v, want a concluded snapshot-save without error", j)
	}
	if err := m.JobDismiss(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := m.QueryJobs(ctx); len(jobs) != 0 {
		t.Errorf("jobs after JobDismiss: %+v", jobs)
	}
	if err := m.StartSnapshotJob(ctx, SnapshotJobOp("snapshot-frobnicate"), job); err == nil {
		t.Error("StartSnapshotJob took an op that is not a snapshot job")
	}
	if out, err := exec.Command("qemu-img", "snapshot", "-U", "-l", disk).CombinedOutput(); err != nil || !strings.Contains(string(out), "t1") {
		t.Errorf("the image lacks snapshot t1: %v\n%s", err, out)
	}
}
