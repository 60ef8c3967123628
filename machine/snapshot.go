package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	RAM         bool      `json:"ram"` // RAM and device state saved: restoring resumes the running guest
	// Frozen is how many guest filesystems the guest agent froze while
	// the snapshot was taken (0: none, or no agent answered).
	Frozen  int   `json:"frozen,omitempty"`
	Size    int64 `json:"size"` // bytes of saved RAM/device state (0 for disk-only)
	Current bool  `json:"current"`
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
	case !nameRE().MatchString(tag):
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
	Frozen      int       `json:"frozen,omitempty"` // guest filesystems the agent froze for it
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
func imageSnapshots(ctx context.Context, qimg emulator.QemuImg, imgs []snapshotImage) (map[string][]imageSnapshot, error) {
	out := map[string][]imageSnapshot{}
	for _, im := range imgs {
		if im.Format != "qcow2" {
			continue
		}
		info, err := readImageInfo(ctx, qimg, im.Path, im.Format, true)
		if err != nil {
			return nil, err
		}
		out[im.Key] = info.Snapshots
	}
	return out, nil
}
