package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"vlab/emulator"
)

// Errors snapshot callers branch on.
var (
	ErrSnapshotNotFound = errors.New("no such snapshot")
	ErrSnapshotExists   = errors.New("snapshot already exists")
	// ErrSnapshotBusy means a snapshot job of a vlab that was killed is still
	// running inside QEMU.
	ErrSnapshotBusy = errors.New("a snapshot job is still running")
)

// Snapshot is one node of a VM's snapshot tree.
type Snapshot struct {
	Tag         string    `json:"tag"`
	Parent      string    `json:"parent,omitempty"` // "" for a root
	Description string    `json:"description,omitempty"`
	Time        time.Time `json:"time"`
	RAM         bool      `json:"ram"`  // RAM and device state saved: restoring resumes the running guest
	Size        int64     `json:"size"` // bytes of saved RAM/device state (0 for disk-only)
	Current     bool      `json:"current"`
	// Restorable is false when an image the snapshot covers no longer holds
	// it (deleted outside vlab, or a job that was interrupted).
	Restorable bool     `json:"restorable"`
	Missing    []string `json:"missing,omitempty"`  // images lacking it
	Files      []string `json:"files"`              // images holding it, relative to the VM folder
	External   bool     `json:"external,omitempty"` // found in the images, not made by vlab
	Pending    bool     `json:"pending,omitempty"`  // a job on it is running right now
}

// Tree is a VM's snapshots: each records its parent, and Current is the
// snapshot the VM's present state descends from (the last one taken or
// restored). A snapshot taken after restoring an older one starts a branch.
type Tree struct {
	Current   string     `json:"current,omitempty"`
	Snapshots []Snapshot `json:"snapshots"` // depth-first: parents before children, siblings oldest first
}

// Get returns the snapshot tagged tag.
func (t Tree) Get(tag string) (Snapshot, bool) {
	for _, s := range t.Snapshots {
		if s.Tag == tag {
			return s, true
		}
	}
	return Snapshot{}, false
}

// Children returns the snapshots whose parent is tag ("" = the roots), oldest first.
func (t Tree) Children(tag string) []Snapshot {
	var out []Snapshot
	for _, s := range t.Snapshots {
		if s.Parent == tag {
			out = append(out, s)
		}
	}
	return out
}

// Depth returns how many ancestors the snapshot tagged tag has.
func (t Tree) Depth(tag string) int {
	d := 0
	for s, ok := t.Get(tag); ok && s.Parent != "" && d <= len(t.Snapshots); s, ok = t.Get(s.Parent) {
		d++
	}
	return d
}

// SnapshotOptions tune a snapshot operation.
type SnapshotOptions struct {
	Description string       // create only
	Progress    ProgressFunc // QEMU's job progress (0..total), when a job runs
}

// MaxTagLen bounds snapshot tags.
const MaxTagLen = 64

// ValidateTag checks a snapshot tag: letters, digits, '.', '_' and '-',
// starting with a letter or digit and not only digits (QEMU would take an
// all-digit tag for a snapshot id).
func ValidateTag(tag string) error {
	switch {
	case tag == "":
		return errors.New("snapshot tag is empty: use e.g. before-upgrade")
	case len(tag) > MaxTagLen:
		return fmt.Errorf("snapshot tag is %d bytes long: use at most %d", len(tag), MaxTagLen)
	case !nameRE.MatchString(tag):
		return fmt.Errorf("snapshot tag %q is invalid: use letters, digits, '.', '_' or '-', e.g. before-upgrade", printable(tag))
	case strings.Trim(tag, "0123456789") == "":
		return fmt.Errorf("snapshot tag %q is only digits (QEMU reads it as a snapshot id): add a letter, e.g. s%s", tag, tag)
	}
	return nil
}

// snapshotMeta is snapshots.json.
type snapshotMeta struct {
	Version   int              `json:"version"`
	Current   string           `json:"current,omitempty"`
	Snapshots []snapshotRecord `json:"snapshots"`
	// Pending is the operation in flight: written before a job starts and
	// cleared when it ends, so the next vlab can settle it when this one was
	// killed half-way.
	Pending *pendingOp `json:"pending,omitempty"`
}

type snapshotRecord struct {
	Tag         string    `json:"tag"`
	Parent      string    `json:"parent,omitempty"`
	Description string    `json:"description,omitempty"`
	Time        time.Time `json:"time"`
	RAM         bool      `json:"ram"`
	Size        int64     `json:"size"`
	Files       []string  `json:"files"`             // images it was taken on (keys, see snapshotImage)
	VMState     string    `json:"vmstate,omitempty"` // image holding the RAM state
	External    bool      `json:"external,omitempty"`
}

// Pending operations.
const (
	opCreate  = "create"
	opRestore = "restore"
	opDelete  = "delete"
)

type pendingOp struct {
	Op          string    `json:"op"`
	Tag         string    `json:"tag"`
	Job         string    `json:"job,omitempty"` // QMP job id of a live operation
	Parent      string    `json:"parent,omitempty"`
	Description string    `json:"description,omitempty"`
	Since       time.Time `json:"since"`
}

const metaVersion = 1

func metaPath(p Paths) string { return filepath.Join(p.Dir, snapshotsFile) }

func readMeta(p Paths) (snapshotMeta, error) {
	var m snapshotMeta
	data, err := os.ReadFile(metaPath(p))
	if errors.Is(err, fs.ErrNotExist) {
		return snapshotMeta{Version: metaVersion}, nil
	}
	if err != nil {
		return m, fmt.Errorf("read snapshot tree: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("read snapshot tree %s: corrupt (%v): delete the file and vlab rebuilds it from the disks", metaPath(p), err)
	}
	if m.Version > metaVersion {
		return m, fmt.Errorf("read snapshot tree %s: version %d is newer than this vlab understands: upgrade vlab", metaPath(p), m.Version)
	}
	m.Version = metaVersion
	return m, nil
}

func writeMeta(p Paths, m snapshotMeta) error {
	m.Version = metaVersion
	if m.Snapshots == nil {
		m.Snapshots = []snapshotRecord{}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(metaPath(p), append(data, '\n'), 0o600)
}

// snapshotImage is one image a snapshot covers: every writable disk and the
// UEFI variable store. Key names it in snapshots.json (relative to the VM
// folder when inside it).
type snapshotImage struct {
	Key    string
	Path   string
	Format string
}

// snapshotImages lists the images of spec that snapshots cover, in node
// order (hd0, hd1, ..., then the UEFI vars).
func (s *Store) snapshotImages(spec *Spec) []snapshotImage {
	p := s.Paths(spec.Name)
	var out []snapshotImage
	for _, d := range spec.Disks {
		if d.ReadOnly {
			continue // never written (the cloud-init seed): nothing to snapshot
		}
		out = append(out, snapshotImage{Key: d.File, Path: p.DiskPath(d.File), Format: diskFormat(d)})
	}
	if needsEFIVars(spec) {
		if _, err := os.Stat(p.EFIVars); err == nil {
			out = append(out, snapshotImage{Key: efiVarsFile, Path: p.EFIVars, Format: "qcow2"})
		}
	}
	return out
}

// checkSnapshottable fails when an image cannot hold internal snapshots.
func checkSnapshottable(name string, imgs []snapshotImage) error {
	if len(imgs) == 0 {
		return fmt.Errorf("vm %q has no disk to keep snapshots in: add one with `vlab disk add %s 1G`", name, name)
	}
	for _, im := range imgs {
		if im.Format != "qcow2" {
			return fmt.Errorf("disk %s of vm %q is %s, which cannot hold snapshots: convert it with `vlab disk convert %s %s`", im.Key, name, im.Format, name, im.Key)
		}
	}
	return nil
}

// imageSnapshots reads the internal snapshots of every qcow2 image (with -U:
// a running QEMU may hold them).
func imageSnapshots(ctx context.Context, qemuImg string, imgs []snapshotImage) (map[string][]imageSnapshot, error) {
	out := map[string][]imageSnapshot{}
	for _, im := range imgs {
		if im.Format != "qcow2" {
			continue
		}
		info, err := readImageInfo(ctx, qemuImg, im.Path, im.Format, true)
		if err != nil {
			return nil, err
		}
		out[im.Key] = info.Snapshots
	}
	return out, nil
}

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
	type where struct {
		files   []string
		vmstate string
		size    int64
		when    time.Time
	}
	onDisk := map[string]*where{}
	var order []string // tags in image order, for adoption
	for _, im := range imgs {
		for _, sn := range found[im.Key] {
			w := onDisk[sn.Name]
			if w == nil {
				w = &where{when: sn.Time()}
				onDisk[sn.Name] = w
				order = append(order, sn.Name)
			}
			w.files = append(w.files, im.Key)
			if sn.VMStateSize > 0 {
				w.vmstate, w.size = im.Key, w.size+sn.VMStateSize
			}
		}
	}
	current := map[string]bool{}
	for _, im := range imgs {
		if im.Format == "qcow2" {
			current[im.Key] = true
		}
	}

	out := snapshotMeta{Version: metaVersion, Current: m.Current}
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
				if outcome != jobFailed && onDisk[pd.Tag] != nil {
					out.Current = pd.Tag
				}
			}
		}
	}

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

	// The view.
	tree := Tree{Current: out.Current}
	for _, r := range out.Snapshots {
		sn := Snapshot{
			Tag: r.Tag, Parent: r.Parent, Description: r.Description, Time: r.Time, RAM: r.RAM, Size: r.Size,
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
	tree.Snapshots = depthFirst(tree.Snapshots)
	return out, tree
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
	qimg  string
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
func settleOffline(ctx context.Context, qimg string, imgs []snapshotImage, m snapshotMeta, found map[string][]imageSnapshot) error {
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
	var flag string
	switch pd.Op {
	case opCreate:
		if len(holders) == qcow {
			return nil // it reached every image: reconcile keeps it
		}
		flag = "-d"
	case opRestore:
		if len(holders) < qcow {
			return fmt.Errorf("images lack it: restore another snapshot")
		}
		flag = "-a"
	case opDelete:
		flag = "-d"
	default:
		return nil
	}
	for _, im := range holders {
		if out, err := runCmd(ctx, qimg, "snapshot", flag, pd.Tag, im.Path); err != nil {
			return fmt.Errorf("qemu-img snapshot %s: %s", im.Key, oneLine(strings.TrimSpace(out)))
		}
	}
	return nil
}

func metaEqual(a, b snapshotMeta) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// qmpJob is one entry of query-jobs.
type qmpJob struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	Status          string `json:"status"`
	CurrentProgress int64  `json:"current-progress"`
	TotalProgress   int64  `json:"total-progress"`
	Error           string `json:"error,omitempty"`
}

func findJob(jobs []qmpJob, id string) (qmpJob, bool) {
	for _, j := range jobs {
		if j.ID == id {
			return j, true
		}
	}
	return qmpJob{}, false
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
	var jobs []qmpJob
	if err := mon.Execute(qctx, "query-jobs", nil, &jobs); err != nil {
		return jobUnknown
	}
	j, ok := findJob(jobs, id)
	switch {
	case !ok:
		return jobUnknown
	case j.Status != "concluded" && j.Status != "null":
		return jobRunning
	}
	_ = mon.Execute(qctx, "job-dismiss", map[string]any{"id": id}, nil)
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
	if sc.live() {
		opErr = s.liveSave(ctx, sc, tag, pending.Job, opts.Progress)
	} else {
		opErr = offlineCreate(ctx, sc, tag)
	}
	faultPoint("snapshot-create:taken")
	if opErr != nil && ctx.Err() != nil && pending.Job != "" {
		// The job may still finish inside QEMU: leave it pending for the
		// next vlab to settle.
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, opErr)
	}
	// Settle from what the images now hold.
	found, ferr := imageSnapshots(context.WithoutCancel(ctx), sc.qimg, sc.imgs)
	if ferr != nil {
		return Snapshot{}, errors.Join(opErr, ferr)
	}
	outcome := jobSucceeded
	if opErr != nil {
		outcome = jobFailed
	}
	meta, tree := reconcile(sc.meta, sc.imgs, found, outcome)
	if opErr != nil {
		// A failed job may have left a partial snapshot behind: do not let
		// it become current.
		meta.Current = sc.meta.Current
	}
	if err := writeMeta(sc.p, meta); err != nil {
		return Snapshot{}, errors.Join(opErr, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, err))
	}
	if opErr != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: %w", tag, name, opErr)
	}
	sn, ok := tree.Get(tag)
	if !ok {
		return Snapshot{}, fmt.Errorf("create snapshot %q of vm %q: qemu reported success but no image holds it", tag, name)
	}
	return sn, nil
}

// offlineCreate runs qemu-img snapshot -c on every image; on a failure it
// removes the tag from the images that got it.
func offlineCreate(ctx context.Context, sc *snapshotCtx, tag string) error {
	for i, im := range sc.imgs {
		if out, err := runCmd(ctx, sc.qimg, "snapshot", "-c", tag, im.Path); err != nil {
			for _, done := range sc.imgs[:i] {
				_, _ = runCmd(context.WithoutCancel(ctx), sc.qimg, "snapshot", "-d", tag, done.Path)
			}
			return fmt.Errorf("qemu-img snapshot %s: %s", im.Key, oneLine(strings.TrimSpace(out)))
		}
		faultPoint("snapshot-create:took-" + filepath.Base(im.Key))
	}
	return nil
}

// blockNode is one block device of a running VM (query-block).
type blockNode struct {
	Device string `json:"device"`
	QDev   string `json:"qdev"`
	Insert *struct {
		NodeName string `json:"node-name"`
		Drv      string `json:"drv"`
		RO       bool   `json:"ro"`
		File     string `json:"file"`
	} `json:"inserted"`
}

// liveNodes maps the VM's qcow2 images to the block nodes of the running
// QEMU. Every writable node must be one of the VM's images; read-only media
// (ISOs, firmware code) are left out.
func liveNodes(ctx context.Context, mon *emulator.Monitor, sc *snapshotCtx) (map[string]string, error) {
	var blocks []blockNode
	if err := mon.Execute(ctx, "query-block", nil, &blocks); err != nil {
		return nil, fmt.Errorf("query-block: %w", err)
	}
	byPath := map[string]string{}
	for _, im := range sc.imgs {
		byPath[cleanPath(im.Path)] = im.Key
	}
	nodes := map[string]string{} // image key -> node name
	for _, b := range blocks {
		in := b.Insert
		if in == nil || in.RO {
			continue
		}
		key, ok := byPath[cleanPath(in.File)]
		if !ok {
			return nil, fmt.Errorf("writable block node %s (%s) is not one of the vm's disks: detach it first", in.NodeName, in.File)
		}
		if in.Drv == "qcow2" && in.NodeName != "" {
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
	return runJob(ctx, mon, "snapshot-save", map[string]any{"job-id": id, "tag": tag, "vmstate": vmstate, "devices": devices}, id, progress)
}

// jobPoll is how often a running job's progress is asked for (events wake
// the wait earlier).
const jobPoll = 200 * time.Millisecond

// runJob starts a QMP job command and waits until it concludes, reporting
// its progress; it dismisses the job and returns the job's own error. When
// ctx ends first the job is left running in QEMU.
func runJob(ctx context.Context, mon *emulator.Monitor, cmd string, args map[string]any, id string, progress ProgressFunc) error {
	if err := mon.Execute(ctx, cmd, args, nil); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	tick := time.NewTicker(jobPoll)
	defer tick.Stop()
	for {
		var jobs []qmpJob
		if err := mon.Execute(ctx, "query-jobs", nil, &jobs); err != nil {
			return fmt.Errorf("%s: wait for job %s: %w", cmd, id, err)
		}
		j, ok := findJob(jobs, id)
		if !ok {
			return fmt.Errorf("%s: job %s vanished before vlab saw it conclude", cmd, id)
		}
		if progress != nil && j.TotalProgress > 0 {
			progress(float64(j.CurrentProgress), float64(j.TotalProgress))
		}
		if j.Status == "concluded" {
			_ = mon.Execute(context.WithoutCancel(ctx), "job-dismiss", map[string]any{"id": id}, nil)
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
		return s.liveRestore(ctx, sc, sn, opts.Progress, false)
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
		if out, err := runCmd(ctx, sc.qimg, "snapshot", "-a", sn.Tag, im.Path); err != nil {
			opErr = fmt.Errorf("restore snapshot %q of vm %q: qemu-img snapshot %s: %s", sn.Tag, name, im.Key, oneLine(strings.TrimSpace(out)))
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
	var qs struct {
		Running bool `json:"running"`
	}
	if err := mon.Execute(ctx, "query-status", nil, &qs); err != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: query-status: %w", sn.Tag, name, err)
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
	opErr := runJob(ctx, mon, "snapshot-load", map[string]any{"job-id": id, "tag": sn.Tag, "vmstate": vmstate, "devices": devices}, id, progress)
	if opErr != nil && ctx.Err() != nil {
		return fmt.Errorf("restore snapshot %q of vm %q: %w", sn.Tag, name, opErr)
	}
	faultPoint("snapshot-restore:loaded")
	if opErr == nil && (qs.Running || started) {
		if err := mon.Execute(ctx, "cont", nil, nil); err != nil {
			opErr = fmt.Errorf("continue after loading: %w", err)
		}
	}
	if opErr != nil {
		opErr = fmt.Errorf("restore snapshot %q of vm %q: %w (the vm is left paused)", sn.Tag, name, opErr)
	}
	return s.finishOp(ctx, sc, sn.Tag, opErr)
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
			if out, err := runCmd(ctx, sc.qimg, "snapshot", "-d", tag, im.Path); err != nil {
				opErr = fmt.Errorf("qemu-img snapshot %s: %s", im.Key, oneLine(strings.TrimSpace(out)))
				break
			}
			faultPoint("snapshot-delete:deleted-" + filepath.Base(im.Key))
		}
	}
	if opErr != nil {
		opErr = fmt.Errorf("delete snapshot %q of vm %q: %w", tag, name, opErr)
	}
	return s.finishOp(ctx, sc, tag, opErr)
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
	return runJob(ctx, mon, "snapshot-delete", map[string]any{"job-id": id, "tag": sn.Tag, "devices": devices}, id, progress)
}
