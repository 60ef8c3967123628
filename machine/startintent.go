package machine

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"vlab/emulator"
)

// A start is a multi-step operation: the QEMU process exists (it runs in
// its own session and outlives vlab) before vlab has recorded its PID. So
// Start first writes an intent in the runtime dir saying which QEMU it is
// about to launch (its exact argv) and which vlab launches it; then spawns
// QEMU and records it in process.json; then, once QMP answers, removes the
// intent. A vlab killed at any step leaves either no QEMU, or a QEMU the
// next vlab finds from the intent (the pidfile, else the process table;
// same boot, started after the launching vlab, same command line) and
// adopts: it is shown running with its PID, never left invisible.

// startIntentFile is the intent record of a start in progress (runtime dir).
const startIntentFile = "start-intent.json"

// startIntent is what Start writes before it spawns QEMU.
type startIntent struct {
	Record   record            `json:"record"`   // what process.json will hold, without the process
	Argv     []string          `json:"argv"`     // the exact QEMU command line
	Launcher *emulator.Process `json:"launcher"` // the vlab doing the start
}

func intentPath(p Paths) string { return filepath.Join(p.Run, startIntentFile) }

// stopMarker is what Stop writes while it powers a guest down: the vlab
// doing the stop. A marker whose vlab is gone (killed, interrupted) is
// stale and ignored: the VM's state then comes from QEMU itself.
type stopMark struct {
	Stopper *emulator.Process `json:"stopper"`
}

// stopping reports whether a live vlab is stopping the VM now.
func stopping(p Paths) bool {
	var m stopMark
	if readJSON(p.StopMark, &m) != nil || m.Stopper == nil {
		return false // missing, or written by an older vlab: no owner to trust
	}
	return m.Stopper.Check() == emulator.LiveRunning
}

// adoptStart resolves a start intent left without a process record: the
// start is still running in another vlab (starting), or its vlab died and
// the QEMU it spawned is found and recorded (adopted), or there is none and
// the intent is cleaned up. held says the caller holds the VM lock; without
// it the lock is tried, and what needs writing is left for a later call when
// another vlab holds it. It returns the adopted record, or the final status,
// or neither when there is no intent.
func (s *Store) adoptStart(p Paths, held bool) (*record, *Status) {
	var in startIntent
	if err := readJSON(intentPath(p), &in); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// Torn or foreign: an intent is written atomically, so treat it as
			// nothing started, once nobody holds the lock.
			if l, lerr := lockIfFree(p, held); lerr == nil {
				os.Remove(intentPath(p))
				l.unlock()
			}
		}
		return nil, nil
	}
	if in.Launcher != nil && in.Launcher.Check() == emulator.LiveRunning {
		return nil, &Status{State: StateStarting, StartedAt: in.Record.StartedAt}
	}
	var notBefore uint64
	if in.Launcher != nil {
		notBefore = in.Launcher.StartTicks
	}
	proc := emulator.Find(p.Pidfile, in.Argv, notBefore)
	l, lerr := lockIfFree(p, held)
	if lerr == nil {
		defer l.unlock()
	}
	if proc == nil {
		if lerr == nil {
			s.cleanRuntime(p)
		}
		return nil, &Status{State: StateStopped}
	}
	rec := in.Record
	proc.StartedAt = in.Record.StartedAt
	rec.Process = *proc
	if lerr == nil {
		if writeRecord(p.Process, rec) == nil {
			os.Remove(intentPath(p))
		}
	}
	return &rec, nil
}

// lockIfFree takes the VM lock unless held says the caller has it (then it
// returns a no-op lock).
func lockIfFree(p Paths, held bool) (*fileLock, error) {
	if held {
		return &fileLock{}, nil
	}
	return tryLock(p.Lock)
}

// cleanupContext is for the steps after an operation's point of no return
// (recording what was done, removing markers): they run to the end even when
// the user interrupted vlab (ctx cancelled), bounded by d.
func cleanupContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// settleIntent removes the intent of a start whose QEMU was recorded but
// whose vlab died before it finished (the record is the truth now).
func settleIntent(p Paths, held bool) {
	var in startIntent
	if readJSON(intentPath(p), &in) != nil || (in.Launcher != nil && in.Launcher.Check() == emulator.LiveRunning) {
		return
	}
	if l, err := lockIfFree(p, held); err == nil {
		os.Remove(intentPath(p))
		l.unlock()
	}
}
