package machine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"vlab/emulator"
)

// jobOutcome is what QEMU says about a pending operation's job.
type jobOutcome int

const (
	jobUnknown   jobOutcome = iota // no QEMU, or the job is gone
	jobRunning                     // still running: leave the pending operation alone
	jobSucceeded                   // concluded without error
	jobFailed                      // concluded with an error
)

// reconcile merges the recorded tree with the snapshots the images really
// hold. Snapshots gone from every image they covered are dropped (their
// children move up to the dropped one's parent); ones missing from some
// images stay but are not restorable; snapshots only the images know about
// are adopted as external roots. A pending operation whose job is not
// running is settled from what the images show. It returns the new metadata
// and the tree to show.
func reconcile(m snapshotMeta, imgs []snapshotImage, found map[string][]imageSnapshot, outcome jobOutcome) (snapshotMeta, Tree) {
	onDisk, order := scanSnapshots(imgs, found)
	current := qcow2Keys(imgs)
	out := snapshotMeta{Version: metaVersion, Current: m.Current}
	pendingTag := settlePending(&m, &out, imgs, onDisk, current, outcome)

	// Drop what no image holds any more, re-parenting children.
	parentOf := map[string]string{}
	alive := map[string]bool{}
	for _, r := range m.Snapshots {
		parentOf[r.Tag] = r.Parent
		if onDisk[r.Tag] != nil || r.Tag == pendingTag {
			alive[r.Tag] = true
		}
	}
	survivor := func(tag string) string {
		for i := 0; tag != "" && !alive[tag] && i <= len(parentOf); i++ {
			tag = parentOf[tag]
		}
		if !alive[tag] {
			return ""
		}
		return tag
	}
	known := map[string]bool{}
	for _, r := range m.Snapshots {
		if !alive[r.Tag] || known[r.Tag] {
			continue
		}
		known[r.Tag] = true
		r.Parent = survivor(r.Parent)
		if w := onDisk[r.Tag]; w != nil {
			r.RAM, r.Size = w.vmstate != "", w.size
			if w.vmstate != "" {
				r.VMState = w.vmstate
			}
		}
		out.Snapshots = append(out.Snapshots, r)
	}
	out.Current = survivor(out.Current)

	// Adopt snapshots made outside vlab (qemu-img snapshot -c by hand).
	for _, tag := range order {
		if known[tag] || tag == pendingTag {
			continue
		}
		w := onDisk[tag]
		known[tag] = true
		out.Snapshots = append(out.Snapshots, snapshotRecord{
			Tag: tag, Time: w.when, RAM: w.vmstate != "", Size: w.size, Files: w.files, VMState: w.vmstate, External: true,
		})
	}

	tree := snapshotView(out, imgs, onDisk, current, pendingTag, known, survivor)
	tree.Snapshots = depthFirst(tree.Snapshots)
	return out, tree
}

// snapOnDisk is where the images hold one snapshot tag.
type snapOnDisk struct {
	files   []string
	vmstate string
	size    int64
	when    time.Time
}

// scanSnapshots indexes the snapshots the images hold by tag, with the tags
// in image order (the order external snapshots are adopted in).
func scanSnapshots(imgs []snapshotImage, found map[string][]imageSnapshot) (map[string]*snapOnDisk, []string) {
	onDisk := map[string]*snapOnDisk{}
	var order []string // tags in image order, for adoption
	for _, im := range imgs {
		for _, sn := range found[im.Key] {
			w := onDisk[sn.Name]
			if w == nil {
				w = &snapOnDisk{when: sn.Time()}
				onDisk[sn.Name] = w
				order = append(order, sn.Name)
			}
			w.files = append(w.files, im.Key)
			if sn.VMStateSize > 0 {
				w.vmstate, w.size = im.Key, w.size+sn.VMStateSize
			}
		}
	}
	return onDisk, order
}

// qcow2Keys is the set of images that can hold internal snapshots.
func qcow2Keys(imgs []snapshotImage) map[string]bool {
	current := map[string]bool{}
	for _, im := range imgs {
		if im.Format == "qcow2" {
			current[im.Key] = true
		}
	}

	return current
}

// settlePending settles m's pending operation into out from what the images
// show, unless its job still runs; m gains the record of a create that
// finished. It returns the tag of an operation still in flight.
func settlePending(m, out *snapshotMeta, imgs []snapshotImage, onDisk map[string]*snapOnDisk, current map[string]bool, outcome jobOutcome) string {
	pendingTag := ""
	if pd := m.Pending; pd != nil {
		if outcome == jobRunning {
			out.Pending = pd
			pendingTag = pd.Tag
		} else {
			switch pd.Op {
			case opCreate:
				if w := onDisk[pd.Tag]; w != nil && !hasRecord(m.Snapshots, pd.Tag) {
					// It was meant to cover every image: one lacking it
					// shows as missing.
					var files []string
					for _, im := range imgs {
						if current[im.Key] {
							files = append(files, im.Key)
						}
					}
					m.Snapshots = append(m.Snapshots, snapshotRecord{
						Tag: pd.Tag, Parent: pd.Parent, Description: pd.Description, Time: w.when,
						RAM: w.vmstate != "", Size: w.size, Files: files, VMState: w.vmstate,
					})
					if len(w.files) == len(files) && outcome != jobFailed {
						out.Current = pd.Tag
					}
				}
			case opRestore:
				// An offline restore is re-applied by settleOffline before
				// this runs. A live one happened only if its job says so:
				// a job QEMU does not know was never sent (vlab dismisses
				// a job only after recording its outcome).
				applied := outcome == jobSucceeded || (pd.Job == "" && outcome != jobFailed)
				if applied && onDisk[pd.Tag] != nil {
					out.Current = pd.Tag
				}
			}
		}
	}
	return pendingTag
}

// snapshotView is the tree shown for metadata out: which images each
// snapshot covers, which it misses, and whether it can be restored.
func snapshotView(out snapshotMeta, imgs []snapshotImage, onDisk map[string]*snapOnDisk, current map[string]bool, pendingTag string, known map[string]bool, survivor func(string) string) Tree {
	tree := Tree{Current: out.Current}
	for _, r := range out.Snapshots {
		sn := Snapshot{
			Tag: r.Tag, Parent: r.Parent, Description: r.Description, Time: r.Time, RAM: r.RAM, Size: r.Size, Frozen: r.Frozen,
			Current: r.Tag == out.Current, External: r.External, Pending: r.Tag == pendingTag,
		}
		covers := r.Files
		if len(covers) == 0 {
			for _, im := range imgs {
				if current[im.Key] {
					covers = append(covers, im.Key)
				}
			}
		}
		has := map[string]bool{}
		if w := onDisk[r.Tag]; w != nil {
			for _, f := range w.files {
				has[f] = true
			}
		}
		for _, f := range covers {
			if !current[f] {
				continue // that disk was removed from the vm: nothing to restore there
			}
			if has[f] {
				sn.Files = append(sn.Files, f)
			} else {
				sn.Missing = append(sn.Missing, f)
			}
		}
		sn.Restorable = len(sn.Missing) == 0 && len(sn.Files) > 0 && !sn.Pending
		if sn.Files == nil {
			sn.Files = []string{}
		}
		tree.Snapshots = append(tree.Snapshots, sn)
	}
	if pd := out.Pending; pd != nil && pd.Op == opCreate && !known[pd.Tag] {
		// A snapshot being taken right now.
		tree.Snapshots = append(tree.Snapshots, Snapshot{Tag: pd.Tag, Parent: survivor(pd.Parent), Description: pd.Description,
			Time: pd.Since, Pending: true, Files: []string{}})
	}
	return tree
}

func hasRecord(rs []snapshotRecord, tag string) bool {
	for _, r := range rs {
		if r.Tag == tag {
			return true
		}
	}
	return false
}

// depthFirst orders snapshots parents first, siblings by time then tag.
func depthFirst(in []Snapshot) []Snapshot {
	byParent := map[string][]Snapshot{}
	tags := map[string]bool{}
	for _, s := range in {
		tags[s.Tag] = true
	}
	for _, s := range in {
		p := s.Parent
		if !tags[p] {
			p = ""
		}
		byParent[p] = append(byParent[p], s)
	}
	for _, kids := range byParent {
		sort.SliceStable(kids, func(i, j int) bool {
			if !kids[i].Time.Equal(kids[j].Time) {
				return kids[i].Time.Before(kids[j].Time)
			}
			return kids[i].Tag < kids[j].Tag
		})
	}
	out := make([]Snapshot, 0, len(in))
	seen := map[string]bool{}
	var walk func(p string)
	walk = func(p string) {
		for _, s := range byParent[p] {
			if seen[s.Tag] {
				continue
			}
			seen[s.Tag] = true
			out = append(out, s)
			walk(s.Tag)
		}
	}
	walk("")
	return out
}

// snapshotCtx is what every snapshot operation gathers first.
type snapshotCtx struct {
	spec  *Spec
	p     Paths
	imgs  []snapshotImage
	qimg  emulator.QemuImg
	state Status
	meta  snapshotMeta
	tree  Tree
}

// load reconciles the tree of VM name. With write set (the caller holds the
// VM lock) a changed tree is saved.
func (s *Store) loadSnapshots(ctx context.Context, name string, write bool) (*snapshotCtx, error) {
	spec, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	sc := &snapshotCtx{spec: spec, p: s.Paths(name)}
	sc.imgs = s.snapshotImages(spec)
	if sc.qimg, err = s.qemuImg(ctx); err != nil {
		return nil, fmt.Errorf("snapshots of vm %q: %w", name, err)
	}
	if sc.state, err = s.Status(ctx, name); err != nil {
		return nil, err
	}
	old, err := readMeta(sc.p)
	if err != nil {
		return nil, err
	}
	found, err := imageSnapshots(ctx, sc.qimg, sc.imgs)
	if err != nil {
		return nil, fmt.Errorf("snapshots of vm %q: %w", name, err)
	}
	if write && old.Pending != nil && old.Pending.Job == "" && !sc.state.State.Active() {
		// An offline operation a killed vlab left half-done.
		if err := settleOffline(ctx, sc.qimg, sc.imgs, old, found); err != nil {
			return nil, fmt.Errorf("snapshots of vm %q: finish the interrupted %s of snapshot %q: %w", name, old.Pending.Op, old.Pending.Tag, err)
		}
		if found, err = imageSnapshots(ctx, sc.qimg, sc.imgs); err != nil {
			return nil, fmt.Errorf("snapshots of vm %q: %w", name, err)
		}
	}
	outcome := jobUnknown
	if old.Pending != nil {
		if !write {
			outcome = jobRunning // whoever holds the lock is working on it
		} else if old.Pending.Job != "" && sc.state.State.Active() {
			outcome = s.settleJob(ctx, name, old.Pending.Job)
		}
	}
	sc.meta, sc.tree = reconcile(old, sc.imgs, found, outcome)
	if write && !metaEqual(old, sc.meta) {
		if err := writeMeta(sc.p, sc.meta); err != nil {
			return nil, fmt.Errorf("snapshots of vm %q: %w", name, err)
		}
	}
	return sc, nil
}

// settleOffline finishes or undoes, on the images, the offline (qemu-img)
// operation m.Pending that a killed vlab left half-done, so that reconcile
// then records what the images hold: a create that reached every image is
// kept and one that did not is removed from the images it reached; a
// restore is applied again to every image (qemu-img snapshot -a is
// idempotent) so that no disk is left at another moment than the rest; a
// delete is finished.
func settleOffline(ctx context.Context, qimg emulator.QemuImg, imgs []snapshotImage, m snapshotMeta, found map[string][]imageSnapshot) error {
	pd := m.Pending
	var holders []snapshotImage
	qcow := 0
	for _, im := range imgs {
		if im.Format != "qcow2" {
			continue
		}
		qcow++
		if slices.ContainsFunc(found[im.Key], func(sn imageSnapshot) bool { return sn.Name == pd.Tag }) {
			holders = append(holders, im)
		}
	}
	var op emulator.SnapshotOp
	switch pd.Op {
	case opCreate:
		if len(holders) == qcow {
			return nil // it reached every image: reconcile keeps it
		}
		op = emulator.SnapshotDelete
	case opRestore:
		if len(holders) < qcow {
			return fmt.Errorf("images lack it: restore another snapshot")
		}
		op = emulator.SnapshotApply
	case opDelete:
		op = emulator.SnapshotDelete
	default:
		return nil
	}
	for _, im := range holders {
		if err := qimg.Snapshot(ctx, op, pd.Tag, im.Path); err != nil {
			return fmt.Errorf("qemu-img snapshot %s: %w", im.Key, err)
		}
	}
	return nil
}

func metaEqual(a, b snapshotMeta) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// settleJob asks the running QEMU about the job of an operation a killed
// vlab left pending, and dismisses it once it has concluded.
func (s *Store) settleJob(ctx context.Context, name, id string) jobOutcome {
	qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
	defer cancel()
	mon, err := s.Monitor(qctx, name)
	if err != nil {
		return jobUnknown
	}
	defer mon.Close()
	jobs, err := mon.QueryJobs(qctx)
	if err != nil {
		return jobUnknown
	}
	j, ok := emulator.FindJob(jobs, id)
	switch {
	case !ok:
		return jobUnknown
	case j.Status != "concluded" && j.Status != "null":
		return jobRunning
	}
	_ = mon.JobDismiss(qctx, id)
	if j.Error != "" {
		return jobFailed
	}
	return jobSucceeded
}

// Snapshots returns the snapshot tree of VM name, reconciled with what its
// images hold. It never waits for another vlab's snapshot job: while one
// runs, the tree is shown as recorded, with that snapshot pending.
func (s *Store) Snapshots(ctx context.Context, name string) (Tree, error) {
	if err := ValidateName(name); err != nil {
		return Tree{}, err
	}
	p := s.Paths(name)
	if _, err := os.Stat(p.Spec); err != nil {
		return Tree{}, fmt.Errorf("vm %q: %w: see `vlab list` for the vms you have", name, ErrNotFound)
	}
	l, err := tryLock(p.Lock)
	write := err == nil
	if write {
		defer l.unlock()
	}
	sc, err := s.loadSnapshots(ctx, name, write)
	if err != nil {
		return Tree{}, err
	}
	return sc.tree, nil
}

// lockSnapshots takes VM name's lock and reconciles its tree; it refuses
// while a killed vlab's job still runs in QEMU.
func (s *Store) lockSnapshots(ctx context.Context, name, op string) (*snapshotCtx, *fileLock, error) {
	if err := ValidateName(name); err != nil {
		return nil, nil, err
	}
	p := s.Paths(name)
	if _, err := os.Stat(p.Spec); err != nil {
		return nil, nil, fmt.Errorf("%s: vm %q: %w: see `vlab list` for the vms you have", op, name, ErrNotFound)
	}
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return nil, nil, fmt.Errorf("%s of vm %q: %w", op, name, err)
	}
	sc, err := s.loadSnapshots(ctx, name, true)
	if err != nil {
		l.unlock()
		return nil, nil, err
	}
	if sc.meta.Pending != nil {
		l.unlock()
		return nil, nil, fmt.Errorf("%s of vm %q: %w in qemu (%s %s): wait for it and retry", op, name, ErrSnapshotBusy, sc.meta.Pending.Op, sc.meta.Pending.Tag)
	}
	switch st := sc.state; {
	case st.Disposable:
		l.unlock()
		return nil, nil, fmt.Errorf("%s of vm %q: it runs disposable (its disks are throwaway overlays): stop it and start it without --disposable", op, name)
	case st.State == StateRunning, st.State == StatePaused, st.State == StateStopped, st.State == StateCrashed:
	default:
		l.unlock()
		return nil, nil, fmt.Errorf("%s of vm %q: it is %s: wait until it runs or is stopped (`vlab stop --force %s` ends it)", op, name, st.State, name)
	}
	return sc, l, nil
}

// live reports whether the VM has a QEMU to run the operation in.
func (sc *snapshotCtx) live() bool {
	return sc.state.State == StateRunning || sc.state.State == StatePaused
}

// jobID names a QMP job after the operation and the moment.
func jobID(op string) string { return fmt.Sprintf("vlab-%s-%d", op, time.Now().UnixNano()) }
