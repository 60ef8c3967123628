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
)

// Intent records make multi-step operations on a VM's files crash-consistent.
//
// Before an operation that takes more than one step on the library — disk
// convert, disk import, clone (with the freeze in place of its source and the
// flatten a freeze may do), create and delete — changes anything, it writes
// an intent record, durably (file and folder fsynced), to
// <data>/intents/<vm>.json while it holds the VM's lock. The record says
// what the operation is about to do: the files it will create under
// temporary names, the disk it adds and the one it replaces. The operation
// removes the record when it is over, successful or not.
//
// A vlab killed half-way leaves the record behind. The next vlab settles it:
// Open looks at the intents folder and at the library folder (one directory
// read each), Load at the VM's record (one stat), and for every record whose
// VM lock no live vlab holds, the operation is completed or rolled back:
//
//   - convert: done when machine.toml lists the new disk; then the replaced
//     raw file is removed (roll forward). Otherwise the new disk is removed
//     and the raw file stays (roll back).
//   - import: done when machine.toml lists the new disk; otherwise the new
//     disk is removed.
//   - clone: the clone is rolled back (its folder under a temporary name is
//     removed); a freeze in place of the source whose base was renamed into
//     bases/ is rolled forward (the source's remaining disks are switched to
//     their overlays on that base), one whose base was not is rolled back.
//   - create: the VM folder under its temporary name is removed.
//   - delete: when machine.toml is gone the delete is finished (the renamed
//     folder, the runtime folder and the logs are removed); otherwise it
//     never began.
//
// Settling also removes the temporary files of that VM that vlab itself
// names (.new-<vm>-N, .deleted-<vm>-N, .freeze-*, .flat-*, .*.convert,
// .*.import, bases/.tmp-*, and the temp files of atomic writes), never
// anything else. Snapshot operations keep their intent in snapshots.json
// (Pending), settled by loadSnapshots.
type intent struct {
	Op    string    `json:"op"`
	VM    string    `json:"vm"`
	Since time.Time `json:"since"`
	// Temps are files and folders the operation creates under temporary
	// names (inside the library); settling removes them.
	Temps []string `json:"temps,omitempty"`
	// NewDisk is the disk file (as machine.toml names it) an import or a
	// convert adds; the operation is done when machine.toml lists it.
	NewDisk string `json:"new_disk,omitempty"`
	// OldDisk is the disk file a convert replaces, removed once it is done.
	OldDisk string `json:"old_disk,omitempty"`
	// Base and Tops describe a freeze in place: Base is the bases/<id>
	// folder, Tops maps each new overlay (.freeze-X) to the disk path X it
	// replaces.
	Base string            `json:"base,omitempty"`
	Tops map[string]string `json:"tops,omitempty"`
}

// Intent operations.
const (
	intentConvert = "convert"
	intentImport  = "import"
	intentClone   = "clone"
	intentCreate  = "create"
	intentDelete  = "delete"
	// intentSnapshot flags a snapshot operation; its details are the
	// Pending operation in snapshots.json, settled by loadSnapshots.
	intentSnapshot = "snapshot"
)

const intentsDir = "intents"

func (s *Store) intentPath(name string) string {
	return filepath.Join(s.dirs.Data, intentsDir, name+".json")
}

// beginIntent durably records in before its operation changes anything.
// The caller holds in.VM's lock.
func (s *Store) beginIntent(in *intent) error {
	if in.Since.IsZero() {
		// A record a killed vlab left (this process did not settle it, a
		// long-running TUI say) is settled before it is replaced.
		s.settleIfPendingLocked(in.VM)
	}
	in.Since = time.Now().UTC()
	dir := filepath.Join(s.dirs.Data, intentsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("record intent of %s %q: %w", in.Op, in.VM, err)
	}
	data, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.intentPath(in.VM), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record intent of %s %q: %w", in.Op, in.VM, err)
	}
	return nil
}

// endIntent removes the record of VM name's operation: it is over.
func (s *Store) endIntent(name string) {
	if err := os.Remove(s.intentPath(name)); err == nil {
		_ = syncDir(filepath.Dir(s.intentPath(name)))
	}
}

// settleAll settles every recorded intent and the library's leftovers of
// killed runs whose VM no live vlab holds. Failures are left for a later run.
func (s *Store) settleAll() {
	if ents, err := os.ReadDir(filepath.Join(s.dirs.Data, intentsDir)); err == nil {
		for _, e := range ents {
			if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && ValidateName(name) == nil {
				s.settle(name)
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.dirs.Data, "machines"))
	if err != nil {
		return
	}
	for _, e := range ents {
		if name, ok := leftoverOf(e.Name()); ok {
			s.settle(name)
		}
	}
}

// leftoverOf parses the folder names vlab gives a VM being created
// (.new-<vm>-N) or deleted (.deleted-<vm>-N).
func leftoverOf(file string) (string, bool) {
	for _, pre := range []string{".new-", ".deleted-"} {
		rest, ok := strings.CutPrefix(file, pre)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '-')
		if i <= 0 || i == len(rest)-1 || strings.Trim(rest[i+1:], "0123456789") != "" {
			return "", false
		}
		if name := rest[:i]; ValidateName(name) == nil {
			return name, true
		}
	}
	return "", false
}

// settleIfPending settles VM name when a record of it is pending: one stat
// when nothing is.
func (s *Store) settleIfPending(name string) {
	if _, err := os.Stat(s.intentPath(name)); err == nil {
		s.settle(name)
	}
}

func (s *Store) settleIfPendingLocked(name string) {
	if _, err := os.Stat(s.intentPath(name)); err == nil {
		s.settleLocked(name)
	}
}

// settle completes or rolls back the recorded operation of VM name and
// removes its leftovers, unless a live vlab holds the VM's lock (it is
// working on it, this process included).
func (s *Store) settle(name string) {
	l, err := tryLock(s.Paths(name).Lock)
	if err != nil {
		return
	}
	defer l.unlock()
	if s.settleLocked(name) {
		if _, err := os.Stat(s.Paths(name).Spec); errors.Is(err, fs.ErrNotExist) {
			// No such VM (deleted, or never made): its runtime folder,
			// which only holds the lock file now, goes too.
			os.RemoveAll(s.Paths(name).Run)
		}
	}
}

// settleLocked is settle for a caller holding name's lock. It reports
// whether everything was settled.
func (s *Store) settleLocked(name string) bool {
	p := s.Paths(name)
	var in intent
	data, err := os.ReadFile(s.intentPath(name))
	switch {
	case err == nil:
		if json.Unmarshal(data, &in) != nil || in.VM != name {
			in = intent{} // unreadable: only sweep
		}
	case !errors.Is(err, fs.ErrNotExist):
		return false
	}
	if err := s.settleIntent(context.Background(), p, &in); err != nil {
		return false // keep the record: a later run tries again
	}
	s.sweep(name)
	if data != nil {
		s.endIntent(name)
	}
	return true
}

// settleIntent rolls the operation in forward or back.
func (s *Store) settleIntent(ctx context.Context, p Paths, in *intent) error {
	switch in.Op {
	case intentConvert, intentImport:
		if err := settleDiskSwap(p, in); err != nil {
			return err
		}
	case intentClone:
		if err := settleFreeze(p, in); err != nil {
			return err
		}
	case intentSnapshot:
		if _, err := os.Stat(p.Spec); err != nil {
			break
		}
		sc, err := s.loadSnapshots(ctx, in.VM, true)
		if err != nil {
			return err
		}
		if sc.meta.Pending != nil {
			return fmt.Errorf("snapshot %s %q of vm %q: still running", sc.meta.Pending.Op, sc.meta.Pending.Tag, in.VM)
		}
	case intentDelete:
		if _, err := os.Stat(p.Spec); errors.Is(err, fs.ErrNotExist) {
			os.RemoveAll(p.LogDir)
		}
	}
	for _, t := range in.Temps {
		if insideDir(s.dirs.Data, t) && strings.HasPrefix(filepath.Base(t), ".") {
			os.RemoveAll(t)
		}
	}
	return nil
}

// settleDiskSwap finishes or undoes a disk convert or import: the new disk
// stays if the spec lists it (and a converted original it no longer lists
// goes), else the new disk goes.
func settleDiskSwap(p Paths, in *intent) error {
	if in.NewDisk == "" {
		return nil
	}
	listed, err := specDiskFiles(p, in.VM)
	if err != nil {
		return err
	}
	if listed[in.NewDisk] {
		if in.Op == intentConvert && in.OldDisk != "" && !listed[in.OldDisk] {
			if old := p.DiskPath(in.OldDisk); insideDir(p.Dir, old) {
				os.Remove(old)
			}
		}
	} else if nd := p.DiskPath(in.NewDisk); insideDir(p.Dir, nd) {
		os.Remove(nd)
	}
	_ = syncDir(p.Dir)
	return nil
}

// specDiskFiles returns the disk files VM name's machine.toml lists (none
// when it has no machine.toml).
func specDiskFiles(p Paths, name string) (map[string]bool, error) {
	data, err := os.ReadFile(p.Spec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	spec, err := decodeSpec(name, p.Spec, data)
	if err != nil {
		return nil, err
	}
	files := map[string]bool{}
	for _, d := range spec.Disks {
		files[d.File] = true
	}
	return files, nil
}

// settleFreeze finishes a linked clone's freeze of its source: once the
// frozen base is whole, the source's disks switch to their overlays on it
// and the base is made read-only.
func settleFreeze(p Paths, in *intent) error {
	if in.Base == "" {
		return nil
	}
	if _, err := os.Stat(in.Base); err != nil || !insideDir(p.Dir, in.Base) {
		return nil
	}
	for top, disk := range in.Tops {
		if !insideDir(p.Dir, top) || !insideDir(p.Dir, disk) {
			continue
		}
		if _, err := os.Stat(top); err == nil {
			if err := os.Rename(top, disk); err != nil {
				return err
			}
		}
	}
	ents, _ := os.ReadDir(in.Base)
	for _, e := range ents {
		_ = os.Chmod(filepath.Join(in.Base, e.Name()), 0o444)
	}
	_ = syncDir(p.Dir)
	return nil
}

// sweep removes the temporary files of VM name that vlab itself names. The
// caller holds name's lock.
func (s *Store) sweep(name string) {
	p := s.Paths(name)
	lib := filepath.Dir(p.Dir)
	if ents, err := os.ReadDir(lib); err == nil {
		for _, e := range ents {
			if n, ok := leftoverOf(e.Name()); ok && n == name {
				os.RemoveAll(filepath.Join(lib, e.Name()))
			}
		}
	}
	if ents, err := os.ReadDir(p.Dir); err == nil {
		for _, e := range ents {
			n := e.Name()
			if !strings.HasPrefix(n, ".") || e.IsDir() {
				continue
			}
			if strings.HasPrefix(n, ".freeze-") || strings.HasPrefix(n, ".flat-") ||
				strings.HasSuffix(n, ".convert") || strings.HasSuffix(n, ".import") ||
				strings.HasPrefix(n, "."+specFile+".tmp") || strings.HasPrefix(n, "."+snapshotsFile+".tmp") {
				os.Remove(filepath.Join(p.Dir, n))
			}
		}
	}
	bases := filepath.Join(p.Dir, basesDir)
	if ents, err := os.ReadDir(bases); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				os.RemoveAll(filepath.Join(bases, e.Name()))
			}
		}
	}
}

// insideDir reports whether path lies inside dir (not dir itself).
func insideDir(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && !filepath.IsAbs(rel) && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
