package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"vlab/emulator"
)

// A recorded run lives in the VM's folder under runs/<id>/: the spec it was
// recorded with (replays rebuild the same command line from it through the
// validator, never from a stored argv), QEMU's replay log, overlays of the
// VM's disks that the run wrote to and the image holding the start snapshot.
const (
	runsDir       = "runs"
	runSpecFile   = "machine.toml"
	runLogFile    = "replay.bin"
	runInfoFile   = "run.json"
	runSnapshotID = "rr-start"    // the snapshot replay starts from (rrsnapshot)
	runStateFile  = "state.qcow2" // holds that snapshot's VM state
	// runStateSize is the state image's virtual size; the VM state is
	// kept past it, so it only has to be non-zero.
	runStateSize Size = 1 << 20
)

// ErrNoRun is returned for a recorded run id that does not exist.
var ErrNoRun = errors.New("no such recorded run")

// Run is one recorded run of a VM.
type Run struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	LogBytes int64     `json:"log_bytes"` // size of the replay log
	Disks    int       `json:"disks"`     // disk overlays
	Dir      string    `json:"dir"`
}

// runInfo is run.json.
type runInfo struct {
	Time  time.Time `json:"time"`
	Disks int       `json:"disks"`
}

func (s *Store) runDir(name, id string) string {
	return filepath.Join(s.Paths(name).Dir, runsDir, id)
}

// checkRunID refuses an id that is not a plain run folder name.
func checkRunID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\") || id == "." || id == ".." || strings.IndexFunc(id, func(r rune) bool { return r < ' ' }) >= 0 {
		return fmt.Errorf("run %q: not a run id: see `vlab replay NAME --list`", id)
	}
	return nil
}

// recordConfig makes cfg record this run: a new run folder, the spec copied
// into it, the disks behind overlays in it, single-threaded TCG and -icount
// rr=record. It refuses what replay cannot reproduce.
func (s *Store) recordConfig(ctx context.Context, name string, host *emulator.Host, cfg *emulator.Config) error {
	if cfg.Accel.Accel == emulator.AccelKVM {
		return errors.New("--record needs TCG: KVM runs instructions QEMU cannot count; use --record --accel tcg")
	}
	cfg.Accel.MultiThread = false
	cfg.Instrument.Replay = emulator.Replay{Mode: emulator.ReplayRecord, File: "-"}
	if err := emulator.CheckReplay(*cfg); err != nil {
		return fmt.Errorf("--record: %w", err)
	}
	p := s.Paths(name)
	id := time.Now().UTC().Format("20060102-150405")
	dir := s.runDir(name, id)
	if err := mkdirPrivate(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := os.Mkdir(dir, privateDirMode); err != nil {
		return fmt.Errorf("record: %w (one recording a second)", err)
	}
	data, err := os.ReadFile(p.Spec)
	if err == nil {
		err = writeFileAtomic(filepath.Join(dir, runSpecFile), data, privateFileMode)
	}
	if err == nil {
		err = s.runDisks(ctx, dir, host, cfg, true)
	}
	if err == nil {
		err = writeJSON(filepath.Join(dir, runInfoFile), runInfo{Time: time.Now(), Disks: len(cfg.Disks)})
	}
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("record: %w", err)
	}
	cfg.Instrument.Replay.File = filepath.Join(dir, runLogFile)
	if err := touchPrivate(cfg.Instrument.Replay.File); err != nil { // QEMU would create it with the umask's mode
		os.RemoveAll(dir)
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// runDisks points cfg's writable disks at the run's overlays (hdN.qcow2),
// creating them when create, and makes the run start from a snapshot
// (rrsnapshot, its VM state in the run's state.qcow2) so replays can seek,
// which reverse debugging needs.
func (s *Store) runDisks(ctx context.Context, dir string, host *emulator.Host, cfg *emulator.Config, create bool) error {
	var disks []emulator.Disk
	for i, d := range cfg.Disks {
		if d.ReadOnly {
			return fmt.Errorf("read-only disk %s: record/replay needs writable disks (blkreplay)", d.Path)
		}
		overlay := filepath.Join(dir, fmt.Sprintf("hd%d.qcow2", i))
		if create {
			if err := createOverlay(ctx, host.QemuImg, d.Path, d.Format, overlay); err != nil {
				return err
			}
		} else if _, err := os.Stat(overlay); err != nil {
			return fmt.Errorf("run overlay: %w", err)
		}
		d.Path, d.Format = overlay, "qcow2"
		disks = append(disks, d)
	}
	cfg.Disks = disks
	state := filepath.Join(dir, runStateFile)
	if create {
		if err := CreateDisk(ctx, host.QemuImg, state, "qcow2", runStateSize); err != nil {
			return err
		}
	} else if _, err := os.Stat(state); err != nil {
		return fmt.Errorf("run state image: %w", err)
	}
	cfg.Instrument.Replay.Snapshot, cfg.Instrument.Replay.State = runSnapshotID, state
	return nil
}

// replayConfig rebuilds cfg from the spec run id was recorded with and
// makes it replay that run.
func (s *Store) replayConfig(ctx context.Context, name string, host *emulator.Host, cfg *emulator.Config, id string) error {
	if err := checkRunID(id); err != nil {
		return err
	}
	dir := s.runDir(name, id)
	data, err := os.ReadFile(filepath.Join(dir, runSpecFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replay %q: %w: see `vlab replay %s --list`", id, ErrNoRun, name)
	}
	if err != nil {
		return fmt.Errorf("replay %q: %w", id, err)
	}
	spec, err := decodeSpec(name, filepath.Join(dir, runSpecFile), data)
	if err != nil {
		return fmt.Errorf("replay %q: %w", id, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, runLogFile)); err != nil || fi.Size() == 0 {
		return fmt.Errorf("replay %q: the recording is empty or missing (did its start fail?): delete it with `vlab replay %s --rm %s`", id, name, id)
	}
	keep := cfg.Paths
	c, err := s.config(spec, host, emulator.AccelTCG)
	if err != nil {
		return fmt.Errorf("replay %q: %w", id, err)
	}
	c.Paths = keep
	c.GDB = false
	c.Accel.MultiThread = false
	c.StartPaused = cfg.StartPaused
	c.Instrument.Replay = emulator.Replay{Mode: emulator.ReplayPlay, File: filepath.Join(dir, runLogFile)}
	if err := s.runDisks(ctx, dir, host, &c, false); err != nil {
		return fmt.Errorf("replay %q: %w", id, err)
	}
	if err := emulator.CheckReplay(c); err != nil {
		return fmt.Errorf("replay %q: %w", id, err)
	}
	*cfg = c
	return nil
}

// Runs lists VM name's recorded runs, oldest first.
func (s *Store) Runs(name string) ([]Run, error) {
	if _, err := s.Load(name); err != nil {
		return nil, err
	}
	root := filepath.Join(s.Paths(name).Dir, runsDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list runs of vm %q: %w", name, err)
	}
	var runs []Run
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue // .rm-<id>: a removal a crash interrupted
		}
		dir := filepath.Join(root, e.Name())
		r := Run{ID: e.Name(), Dir: dir}
		var info runInfo
		if readJSON(filepath.Join(dir, runInfoFile), &info) == nil {
			r.Time, r.Disks = info.Time, info.Disks
		}
		if fi, err := os.Stat(filepath.Join(dir, runLogFile)); err == nil {
			r.LogBytes = fi.Size()
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
	return runs, nil
}

// LatestRun returns the id of VM name's newest recorded run.
func (s *Store) LatestRun(name string) (string, error) {
	runs, err := s.Runs(name)
	if err != nil {
		return "", err
	}
	if len(runs) == 0 {
		return "", fmt.Errorf("replay vm %q: %w: record one with `vlab start %s --record`", name, ErrNoRun, name)
	}
	return runs[len(runs)-1].ID, nil
}

// RemoveRun deletes recorded run id of VM name. A run the VM is replaying
// or recording now is refused.
func (s *Store) RemoveRun(ctx context.Context, name, id string) error {
	if err := checkRunID(id); err != nil {
		return err
	}
	dir := s.runDir(name, id)
	if _, err := os.Stat(filepath.Join(dir, runInfoFile)); err != nil {
		if _, serr := os.Stat(dir); serr != nil {
			return fmt.Errorf("remove run %q of vm %q: %w: see `vlab replay %s --list`", id, name, ErrNoRun, name)
		}
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return err
	}
	if st.State.Active() {
		return fmt.Errorf("remove run %q of vm %q: %w: its recordings may be in use; `vlab stop %s` first", id, name, ErrRunning, name)
	}
	// Rename first, so a crash midway leaves no half-deleted run in the list.
	trash := filepath.Join(filepath.Dir(dir), ".rm-"+id)
	if err := renameDurable(dir, trash); err != nil {
		return fmt.Errorf("remove run %q of vm %q: %w", id, name, err)
	}
	return os.RemoveAll(trash)
}
