package machine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"vlab/emulator"
)

// SnapshotRestore reverts VM name to snapshot tag, which becomes current.
// A running VM is reverted live (snapshot-load) and keeps running from the
// snapshot's moment; a snapshot with RAM state restored on a stopped VM
// starts it straight into that moment; a disk-only snapshot is restored
// with qemu-img on a stopped VM.
func (s *Store) SnapshotRestore(ctx context.Context, name, tag string, opts SnapshotOptions) error {
	sc, l, err := s.lockSnapshots(ctx, name, "restore snapshot")
	if err != nil {
		return err
	}
	sn, err := restorable(sc, name, tag)
	if err != nil {
		l.unlock()
		return err
	}
	switch {
	case sc.live() && !sn.RAM:
		l.unlock()
		return fmt.Errorf("restore snapshot %q of vm %q: it has no RAM state (taken while stopped): stop the vm first with `vlab stop %s`", tag, name, name)
	case !sc.live() && !sn.RAM:
		defer l.unlock()
		return s.offlineRestore(ctx, sc, sn)
	case sc.live():
		defer l.unlock()
		if err := s.liveRestore(ctx, sc, sn, opts.Progress, false); err != nil {
			return err
		}
		if sn.Frozen > 0 {
			s.thawAfterRestore(ctx, name) // agent.go: it was saved frozen
		}
		return nil
	}
	// A live snapshot of a stopped VM: start it paused, load, continue.
	// Start takes the VM lock itself.
	l.unlock()
	if err := s.Start(ctx, name, StartOptions{Paused: true}); err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", tag, name, err)
	}
	sc, l, err = s.lockSnapshots(ctx, name, "restore snapshot")
	if err == nil {
		if sn, err = restorable(sc, name, tag); err == nil {
			err = s.liveRestore(ctx, sc, sn, opts.Progress, true)
		}
		l.unlock()
	}
	if err != nil {
		// It was stopped before: leave it stopped, not paused half-loaded.
		if _, serr := s.Stop(context.WithoutCancel(ctx), name, StopOptions{Force: true}); serr != nil {
			err = errors.Join(err, serr)
		}
		return err
	}
	if sn.Frozen > 0 {
		s.thawAfterRestore(ctx, name) // agent.go: it was saved frozen
	}
	return nil
}

func restorable(sc *snapshotCtx, name, tag string) (Snapshot, error) {
	sn, ok := sc.tree.Get(tag)
	if !ok {
		return Snapshot{}, fmt.Errorf("restore snapshot %q of vm %q: %w: see `vlab snapshot list %s`", tag, name, ErrSnapshotNotFound, name)
	}
	if !sn.Restorable {
		return Snapshot{}, fmt.Errorf("restore snapshot %q of vm %q: images %s no longer hold it: delete it with `vlab snapshot delete %s %s`", tag, name, strings.Join(sn.Missing, ", "), name, tag)
	}
	if ValidateTag(tag) != nil {
		return Snapshot{}, fmt.Errorf("restore snapshot %q of vm %q: its tag is not one vlab can address safely (made outside vlab): restore it with qemu-img", tag, name)
	}
	return sn, nil
}

// offlineRestore applies a snapshot to every image it covers with qemu-img.
func (s *Store) offlineRestore(ctx context.Context, sc *snapshotCtx, sn Snapshot) error {
	name := sc.spec.Name
	if err := s.beginIntent(&intent{Op: intentSnapshot, VM: name}); err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, err)
	}
	defer s.endIntent(name)
	sc.meta.Pending = &pendingOp{Op: opRestore, Tag: sn.Tag, Since: time.Now().UTC()}
	if err := writeMeta(sc.p, sc.meta); err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, err)
	}
	faultPoint("snapshot-restore:pending")
	var opErr error
	for _, im := range sc.imgs {
		if !slices.Contains(sn.Files, im.Key) {
			continue
		}
		if err := sc.qimg.Snapshot(ctx, emulator.SnapshotApply, sn.Tag, im.Path); err != nil {
			opErr = fmt.Errorf("restore snapshot %q of vm %q: qemu-img snapshot %s: %w", sn.Tag, name, im.Key, err)
			break
		}
		faultPoint("snapshot-restore:applied-" + filepath.Base(im.Key))
	}
	return s.finishOp(ctx, sc, sn.Tag, opErr)
}

// finishOp settles the pending operation after it ran and saves the tree.
func (s *Store) finishOp(ctx context.Context, sc *snapshotCtx, tag string, opErr error) error {
	found, err := imageSnapshots(context.WithoutCancel(ctx), sc.qimg, sc.imgs)
	if err != nil {
		return errors.Join(opErr, err)
	}
	outcome := jobSucceeded
	if opErr != nil {
		outcome = jobFailed
	}
	meta, _ := reconcile(sc.meta, sc.imgs, found, outcome)
	if err := writeMeta(sc.p, meta); err != nil {
		return errors.Join(opErr, fmt.Errorf("save snapshot tree of vm %q: %w", sc.spec.Name, err))
	}
	return opErr
}

// liveRestore runs snapshot-load on the running VM and continues the guest
// if it was running (or was started for this restore).
func (s *Store) liveRestore(ctx context.Context, sc *snapshotCtx, sn Snapshot, progress ProgressFunc, started bool) error {
	name := sc.spec.Name
	mon, err := s.Monitor(ctx, name)
	if err != nil {
		return fmt.Errorf("restore snapshot %q: %w", sn.Tag, err)
	}
	defer mon.Close()
	qs, err := mon.QueryStatus(ctx)
	if err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, err)
	}
	nodes, err := liveNodes(ctx, mon, sc)
	if err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, err)
	}
	var devices []string
	vmstate := ""
	rec := recordOf(sc.meta, sn.Tag)
	for _, im := range sc.imgs {
		if !slices.Contains(sn.Files, im.Key) {
			continue
		}
		n, ok := nodes[im.Key]
		if !ok {
			return fmt.Errorf("restore snapshot %q of vm %q: disk %s is not attached to the running vm: restart it", sn.Tag, name, im.Key)
		}
		devices = append(devices, n)
		if im.Key == rec.VMState {
			vmstate = n
		}
	}
	if vmstate == "" {
		return fmt.Errorf("restore snapshot %q of vm %q: no image holds its RAM state", sn.Tag, name)
	}
	id := jobID("load")
	if err := s.beginIntent(&intent{Op: intentSnapshot, VM: name}); err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, err)
	}
	defer s.endIntent(name)
	sc.meta.Pending = &pendingOp{Op: opRestore, Tag: sn.Tag, Job: id, Since: time.Now().UTC()}
	if err := writeMeta(sc.p, sc.meta); err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, err)
	}
	faultPoint("snapshot-restore:pending")
	opErr := runJob(ctx, mon, emulator.JobSnapshotLoad, emulator.SnapshotJob{ID: id, Tag: sn.Tag, VMState: vmstate, Devices: devices}, progress)
	if opErr != nil && ctx.Err() != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, opErr)
	}
	faultPoint("snapshot-restore:loaded")
	if opErr == nil && (qs.Running || started) {
		if err := mon.Cont(ctx); err != nil {
			opErr = fmt.Errorf("continue after loading: %w", err)
		}
	}
	if opErr != nil {
		opErr = fmt.Errorf("restore snapshot %q of vm %q: %w (the vm is left paused)", sn.Tag, name, opErr)
	}
	err = s.finishOp(ctx, sc, sn.Tag, opErr)
	dismissJob(ctx, mon, id) // only now: the outcome is recorded
	return err
}

func recordOf(m snapshotMeta, tag string) snapshotRecord {
	for _, r := range m.Snapshots {
		if r.Tag == tag {
			return r
		}
	}
	return snapshotRecord{}
}

// SnapshotDelete deletes snapshot tag of VM name from every image holding
// it (live with a snapshot-delete job while it runs). Its children move up
// to its parent; when it was current, its parent becomes current.
func (s *Store) SnapshotDelete(ctx context.Context, name, tag string, opts SnapshotOptions) error {
	sc, l, err := s.lockSnapshots(ctx, name, "delete snapshot")
	if err != nil {
		return err
	}
	defer l.unlock()
	sn, ok := sc.tree.Get(tag)
	if !ok {
		return fmt.Errorf("delete snapshot %q of vm %q: %w: see `vlab snapshot list %s`", tag, name, ErrSnapshotNotFound, name)
	}
	if ValidateTag(tag) != nil {
		return fmt.Errorf("delete snapshot %q of vm %q: its tag is not one vlab can address safely (made outside vlab): delete it with qemu-img", tag, name)
	}
	pending := &pendingOp{Op: opDelete, Tag: tag, Since: time.Now().UTC()}
	if err := s.beginIntent(&intent{Op: intentSnapshot, VM: name}); err != nil {
		return fmt.Errorf("delete snapshot %q of vm %q: %w", tag, name, err)
	}
	defer s.endIntent(name)
	var opErr error
	if sc.live() {
		pending.Job = jobID("delete")
		sc.meta.Pending = pending
		if err := writeMeta(sc.p, sc.meta); err != nil {
			return fmt.Errorf("delete snapshot %q of vm %q: %w", tag, name, err)
		}
		faultPoint("snapshot-delete:pending")
		opErr = s.liveDelete(ctx, sc, sn, pending.Job, opts.Progress)
		if opErr != nil && ctx.Err() != nil {
			return fmt.Errorf("delete snapshot %q of vm %q: %w", tag, name, opErr)
		}
	} else {
		sc.meta.Pending = pending
		if err := writeMeta(sc.p, sc.meta); err != nil {
			return fmt.Errorf("delete snapshot %q of vm %q: %w", tag, name, err)
		}
		faultPoint("snapshot-delete:pending")
		for _, im := range sc.imgs {
			if !slices.Contains(sn.Files, im.Key) {
				continue
			}
			if err := sc.qimg.Snapshot(ctx, emulator.SnapshotDelete, tag, im.Path); err != nil {
				opErr = fmt.Errorf("qemu-img snapshot %s: %w", im.Key, err)
				break
			}
			faultPoint("snapshot-delete:deleted-" + filepath.Base(im.Key))
		}
	}
	if opErr != nil {
		opErr = fmt.Errorf("delete snapshot %q of vm %q: %w", tag, name, opErr)
	}
	err = s.finishOp(ctx, sc, tag, opErr)
	if pending.Job != "" {
		s.dismissJobOf(ctx, name, pending.Job) // only now: the outcome is recorded
	}
	return err
}

func (s *Store) liveDelete(ctx context.Context, sc *snapshotCtx, sn Snapshot, id string, progress ProgressFunc) error {
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
	for _, im := range sc.imgs {
		if n, ok := nodes[im.Key]; ok && slices.Contains(sn.Files, im.Key) {
			devices = append(devices, n)
		}
	}
	if len(devices) == 0 {
		return nil
	}
	return runJob(ctx, mon, emulator.JobSnapshotDelete, emulator.SnapshotJob{ID: id, Tag: sn.Tag, Devices: devices}, progress)
}
