package emulator

import (
	"context"
	"fmt"
)

// The QMP commands vlab sends, typed: each names its command and shapes its
// arguments and answer once, here, so that machine speaks in VM terms
// (pause, list the disks' block nodes, start a snapshot job) and never
// spells a QMP command or its JSON. Errors name the command; a
// *QMPError inside is QEMU's own refusal. `vlab qmp` sends what the user
// types through Execute/ExecuteRaw, untyped on purpose.

// RunState is query-status's answer.
type RunState struct {
	Status  string `json:"status"` // running, paused, prelaunch, shutdown, internal-error, ...
	Running bool   `json:"running"`
}

// QueryStatus asks for the guest's run state.
func (m *Monitor) QueryStatus(ctx context.Context) (RunState, error) {
	var st RunState
	return st, m.command(ctx, "query-status", nil, &st)
}

// Stop pauses the guest's CPUs.
func (m *Monitor) Stop(ctx context.Context) error { return m.command(ctx, "stop", nil, nil) }

// Cont resumes paused guest CPUs.
func (m *Monitor) Cont(ctx context.Context) error { return m.command(ctx, "cont", nil, nil) }

// SystemPowerdown presses the guest's ACPI power button.
func (m *Monitor) SystemPowerdown(ctx context.Context) error {
	return m.command(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit at once, without asking the guest.
func (m *Monitor) Quit(ctx context.Context) error { return m.command(ctx, "quit", nil, nil) }

// SystemReset resets the guest like the reset button.
func (m *Monitor) SystemReset(ctx context.Context) error {
	return m.command(ctx, "system_reset", nil, nil)
}

// BlockDevice is one entry of query-block: a drive and its medium.
type BlockDevice struct {
	Device   string       `json:"device"`
	QDev     string       `json:"qdev"`
	Inserted *BlockMedium `json:"inserted"` // nil: no medium
}

// BlockMedium is the image in a drive: its top block node.
type BlockMedium struct {
	NodeName string `json:"node-name"`
	Driver   string `json:"drv"` // the format driver: qcow2, raw, ...
	ReadOnly bool   `json:"ro"`
	File     string `json:"file"`
}

// QueryBlock lists the guest's drives and the images in them.
func (m *Monitor) QueryBlock(ctx context.Context) ([]BlockDevice, error) {
	var devs []BlockDevice
	return devs, m.command(ctx, "query-block", nil, &devs)
}

// Job is one entry of query-jobs.
type Job struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	Status          string `json:"status"` // created, running, ..., concluded, null
	CurrentProgress int64  `json:"current-progress"`
	TotalProgress   int64  `json:"total-progress"`
	Error           string `json:"error,omitempty"`
}

// QueryJobs lists QEMU's jobs, concluded ones not yet dismissed included.
func (m *Monitor) QueryJobs(ctx context.Context) ([]Job, error) {
	var jobs []Job
	return jobs, m.command(ctx, "query-jobs", nil, &jobs)
}

// FindJob returns the job with id from jobs.
func FindJob(jobs []Job, id string) (Job, bool) {
	for _, j := range jobs {
		if j.ID == id {
			return j, true
		}
	}
	return Job{}, false
}

// JobDismiss removes concluded job id from QEMU's list.
func (m *Monitor) JobDismiss(ctx context.Context, id string) error {
	return m.command(ctx, "job-dismiss", map[string]any{"id": id}, nil)
}

// SnapshotJobOp is one of QEMU's internal-snapshot jobs (QemuImg.Snapshot
// does the same on a stopped VM's images).
type SnapshotJobOp string

// The internal-snapshot jobs (QEMU 6.0+): save the devices' images and the
// machine state under a tag, load them back, delete the tag.
const (
	JobSnapshotSave   SnapshotJobOp = "snapshot-save"
	JobSnapshotLoad   SnapshotJobOp = "snapshot-load"
	JobSnapshotDelete SnapshotJobOp = "snapshot-delete"
)

// SnapshotJob is what a snapshot job works on.
type SnapshotJob struct {
	ID      string   // the job id, for QueryJobs and JobDismiss
	Tag     string   // the snapshot's tag in every image
	VMState string   // the block node that holds the machine state (not for delete)
	Devices []string // the block nodes whose images take part
}

// StartSnapshotJob starts snapshot job op; it runs on in QEMU, and
// QueryJobs tells when it has concluded.
func (m *Monitor) StartSnapshotJob(ctx context.Context, op SnapshotJobOp, j SnapshotJob) error {
	args := map[string]any{"job-id": j.ID, "tag": j.Tag, "devices": j.Devices}
	switch op {
	case JobSnapshotSave, JobSnapshotLoad:
		args["vmstate"] = j.VMState
	case JobSnapshotDelete:
	default:
		return fmt.Errorf("qmp: %q is not a snapshot job", op)
	}
	return m.command(ctx, string(op), args, nil)
}

// Chardev is one entry of query-chardev.
type Chardev struct {
	Label        string `json:"label"`
	Filename     string `json:"filename"`
	FrontendOpen bool   `json:"frontend-open"` // the guest side has it open (a virtio-serial port)
}

// QueryChardev lists the guest's character devices.
func (m *Monitor) QueryChardev(ctx context.Context) ([]Chardev, error) {
	var devs []Chardev
	return devs, m.command(ctx, "query-chardev", nil, &devs)
}

// TraceEventGetState lists the trace events matching pattern (a name or a
// glob) with their state.
func (m *Monitor) TraceEventGetState(ctx context.Context, pattern string) ([]TraceEvent, error) {
	var evs []TraceEvent
	return evs, m.command(ctx, "trace-event-get-state", map[string]any{"name": pattern}, &evs)
}

// TraceEventSetState turns the trace events matching pattern on or off;
// events this QEMU was built without are skipped.
func (m *Monitor) TraceEventSetState(ctx context.Context, pattern string, enable bool) error {
	return m.command(ctx, "trace-event-set-state", map[string]any{"name": pattern, "enable": enable, "ignore-unavailable": true}, nil)
}

// HumanMonitorCommand runs one human monitor (HMP) command line and
// returns what it printed.
func (m *Monitor) HumanMonitorCommand(ctx context.Context, line string) (string, error) {
	var out string
	return out, m.command(ctx, "human-monitor-command", map[string]any{"command-line": line}, &out)
}

// SetVNCPassword sets the password of VNC display id (-vnc ...,id=ID,
// password=on).
func (m *Monitor) SetVNCPassword(ctx context.Context, display, password string) error {
	return m.command(ctx, "set_password", map[string]any{"protocol": "vnc", "password": password, "display": display}, nil)
}

// ChangeCDROM puts the raw image at path into the removable drive of
// device id, read-only; the guest sees a media change.
func (m *Monitor) ChangeCDROM(ctx context.Context, id, path string) error {
	return m.command(ctx, "blockdev-change-medium", map[string]any{"id": id, "filename": path, "format": "raw", "read-only-mode": "read-only"}, nil)
}

// Eject empties the removable drive of device id, even when the guest has
// locked its tray.
func (m *Monitor) Eject(ctx context.Context, id string) error {
	return m.command(ctx, "eject", map[string]any{"id": id, "force": true}, nil)
}

// command is Execute with the command's name in its error.
func (m *Monitor) command(ctx context.Context, cmd string, args, out any) error {
	if err := m.Execute(ctx, cmd, args, out); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}
