package machine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"vlab/emulator"
)

// SnapshotCreate takes snapshot tag of VM name: live (RAM, devices and
// disks, through a QMP snapshot-save job) when it runs, disks only (qemu-img
// snapshot) when it is stopped. The new snapshot's parent is the current
// one, and it becomes current.
func (s *Store) SnapshotCreate(ctx context.Context, name, tag string, opts SnapshotOptions) (_ Snapshot, err error) {
	defer func() {
		err = noSpace(fmt.Sprintf("create snapshot %q of vm %q", tag, name), err, s.Paths(name).Dir, 0)
	}()
	if err := ValidateTag(tag); err != nil {
		return Snapshot{}, err
	}
	sc, l, err := s.lockSnapshots(ctx, name, "create snapshot")
	if err != nil {
		return Snapshot{}, err
	}
	defer l.unlock()
	if _, ok := sc.tree.Get(tag); ok {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w: pick another tag or delete it first", tag, name, ErrSnapshotExists)
	}
	if err := checkSnapshottable(name, sc.imgs); err != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q: %w", tag, err)
	}
	if sc.live() && len(sc.spec.Shares) > 0 {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, errLiveShares(name))
	}
	pending := &pendingOp{Op: opCreate, Tag: tag, Parent: sc.meta.Current, Description: opts.Description, Since: time.Now().UTC()}
	if sc.live() {
		pending.Job = jobID("save")
	}
	if err := s.beginIntent(&intent{Op: intentSnapshot, VM: name}); err != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, err)
	}
	defer s.endIntent(name)
	sc.meta.Pending = pending
	if err := writeMeta(sc.p, sc.meta); err != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, err)
	}
	faultPoint("snapshot-create:pending")
	var opErr error
	frozen := 0
	if sc.live() {
		// With a guest agent, the guest's filesystems are frozen for the
		// save (agent.go), so the disks hold what the guest wrote.
		frozen, opErr = s.freezeDuring(ctx, name, func() error {
			return s.liveSave(ctx, sc, tag, pending.Job, opts.Progress)
		})
	} else {
		opErr = offlineCreate(ctx, sc, tag)
	}
	faultPoint("snapshot-create:taken")
	if opErr != nil && ctx.Err() != nil && pending.Job != "" {
		// The job may still finish inside QEMU: leave it pending for the
		// next vlab to settle.
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, opErr)
	}
	return s.settleCreate(ctx, sc, tag, pending.Job, frozen, opErr)
}

// settleCreate records a snapshot create from what the images now hold:
// the new snapshot becomes current when the operation (opErr) succeeded; a
// partial one a failed job left never does. A live job is dismissed once
// the outcome is recorded.
func (s *Store) settleCreate(ctx context.Context, sc *snapshotCtx, tag, job string, frozen int, opErr error) (Snapshot, error) {
	name := sc.spec.Name
	found, ferr := imageSnapshots(context.WithoutCancel(ctx), sc.qimg, sc.imgs)
	if ferr != nil {
		return Snapshot{}, errors.Join(opErr, ferr)
	}
	outcome := jobSucceeded
	if opErr != nil {
		outcome = jobFailed
	}
	meta, tree := reconcile(sc.meta, sc.imgs, found, outcome)
	if frozen > 0 {
		for i := range meta.Snapshots {
			if meta.Snapshots[i].Tag == tag {
				meta.Snapshots[i].Frozen = frozen
			}
		}
	}
	if opErr != nil {
		// A failed job may have left a partial snapshot behind: do not let
		// it become current.
		meta.Current = sc.meta.Current
	}
	if err := writeMeta(sc.p, meta); err != nil {
		return Snapshot{}, errors.Join(opErr, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, err))
	}
	if job != "" {
		s.dismissJobOf(ctx, name, job)
	}
	if opErr != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, opErr)
	}
	sn, ok := tree.Get(tag)
	sn.Frozen = frozen
	if !ok {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: qemu reported success but no image holds it", tag, name)
	}
	return sn, nil
}

// offlineCreate runs qemu-img snapshot -c on every image; on a failure it
// removes the tag from the images that got it.
func offlineCreate(ctx context.Context, sc *snapshotCtx, tag string) error {
	for i, im := range sc.imgs {
		if err := sc.qimg.Snapshot(ctx, emulator.SnapshotCreate, tag, im.Path); err != nil {
			for _, done := range sc.imgs[:i] {
				_ = sc.qimg.Snapshot(context.WithoutCancel(ctx), emulator.SnapshotDelete, tag, done.Path)
			}
			return fmt.Errorf("qemu-img snapshot %s: %w", im.Key, err)
		}
		faultPoint("snapshot-create:took-" + filepath.Base(im.Key))
	}
	return nil
}

// liveNodes maps the VM's qcow2 images to the block nodes of the running
// QEMU. Every writable node must be one of the VM's images; read-only media
// (ISOs, firmware code) are left out.
func liveNodes(ctx context.Context, mon *emulator.Monitor, sc *snapshotCtx) (map[string]string, error) {
	blocks, err := mon.QueryBlock(ctx)
	if err != nil {
		return nil, err
	}
	byPath := map[string]string{}
	for _, im := range sc.imgs {
		byPath[cleanPath(im.Path)] = im.Key
	}
	nodes := map[string]string{} // image key -> node name
	for _, b := range blocks {
		in := b.Inserted
		if in == nil || in.ReadOnly {
			continue
		}
		key, ok := byPath[cleanPath(in.File)]
		if !ok {
			return nil, fmt.Errorf("writable block node %s (%s) is not one of the vm's disks: detach it first", in.NodeName, in.File)
		}
		if in.Driver == "qcow2" && in.NodeName != "" {
			nodes[key] = in.NodeName
		}
	}
	return nodes, nil
}

func cleanPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// liveSave runs a snapshot-save job covering every writable qcow2 node; the
// RAM state goes to the first disk (the UEFI vars only when there is none).
func (s *Store) liveSave(ctx context.Context, sc *snapshotCtx, tag, id string, progress ProgressFunc) error {
	mon, err := s.Monitor(ctx, sc.spec.Name)
	if err != nil {
		return err
	}
	defer mon.Close()
	nodes, err := liveNodes(ctx, mon, sc)
	if err != nil {
		return err
	}
	var devices []string
	vmstate := ""
	for _, im := range sc.imgs {
		n, ok := nodes[im.Key]
		if !ok {
			return fmt.Errorf("disk %s is not attached to the running vm: restart it to attach it", im.Key)
		}
		devices = append(devices, n)
		if vmstate == "" && im.Key != efiVarsFile {
			vmstate = n
		}
	}
	if vmstate == "" {
		vmstate = devices[0]
	}
	return runJob(ctx, mon, emulator.JobSnapshotSave, emulator.SnapshotJob{ID: id, Tag: tag, VMState: vmstate, Devices: devices}, progress)
}

// dismissJob removes the concluded job id from QEMU once its outcome is
// recorded. A failure only leaves a concluded job in QEMU's list.
func dismissJob(ctx context.Context, mon *emulator.Monitor, id string) {
	_ = mon.JobDismiss(context.WithoutCancel(ctx), id)
}

// dismissJobOf is dismissJob on a new connection to VM name's QEMU.
func (s *Store) dismissJobOf(ctx context.Context, name, id string) {
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), qmpTimeout)
	defer cancel()
	if mon, err := s.Monitor(qctx, name); err == nil {
		dismissJob(qctx, mon, id)
		mon.Close()
	}
}

// jobPoll is how often a running job's progress is asked for (events wake
// the wait earlier).
const jobPoll = 200 * time.Millisecond

// runJob starts a QMP job command and waits until it concludes, reporting
// its progress: 0 of 1 once QEMU has accepted the job (QEMU 7.2 runs a
// snapshot job in its main loop, answering nothing, so its own report
// comes only at the end), then QEMU's figures; it returns the job's own
// error. When ctx ends first the job is left running in QEMU. A concluded
// job is left in QEMU too: the caller dismisses it (dismissJob) only once
// it has recorded the outcome, so a vlab killed in between leaves the next
// one the answer (settleJob) instead of a job that is gone, which could
// mean "never ran" as well as "done".
func runJob(ctx context.Context, mon *emulator.Monitor, op emulator.SnapshotJobOp, job emulator.SnapshotJob, progress ProgressFunc) error {
	cmd, id := string(op), job.ID
	if err := mon.StartSnapshotJob(ctx, op, job); err != nil {
		return err
	}
	faultPoint("job:sent-" + cmd) // the job runs in QEMU; vlab may die while it does
	if progress != nil {
		progress(0, 1) // started: a display can show it is waiting
	}
	tick := time.NewTicker(jobPoll)
	defer tick.Stop()
	for {
		jobs, err := mon.QueryJobs(ctx)
		if err != nil {
			return fmt.Errorf("%s: wait for job %s: %w", cmd, id, err)
		}
		j, ok := emulator.FindJob(jobs, id)
		if !ok {
			return fmt.Errorf("%s: job %s vanished before vlab saw it conclude", cmd, id)
		}
		if progress != nil && j.TotalProgress > 0 {
			progress(float64(j.CurrentProgress), float64(j.TotalProgress))
		}
		if j.Status == "concluded" {
			if j.Error != "" {
				return fmt.Errorf("%s: %s", cmd, j.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: job %s still running in qemu: %w", cmd, id, ctx.Err())
		case <-mon.Done():
			return fmt.Errorf("%s: %w", cmd, mon.Err())
		case <-tick.C:
		case ev, ok := <-mon.Events():
			if !ok {
				return fmt.Errorf("%s: %w", cmd, emulator.ErrMonitorClosed)
			}
			_ = ev // any event (JOB_STATUS_CHANGE above all) is a reason to look again
		}
	}
}
