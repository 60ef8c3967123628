package machine

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"vlab/emulator"
)

// Change says that something about VM Name changed: its definition, its
// runtime folder, or its state (Event names the QMP event behind it). A
// screen re-reads only VM Name; Name is never empty.
type Change struct {
	Name  string
	Event string // the QMP event (STOP, RESUME, SHUTDOWN...), EventExit, or "" for a file change
}

// EventExit is Change.Event when a followed QEMU process has ended (a
// power-off from inside the guest, a crash, a kill): its QMP socket closed
// and the process is gone.
const EventExit = "EXIT"

// EventFollowing is Change.Event when the watcher has subscribed to a
// running VM's QMP events: from here on no state change is missed, and
// one that happened before is seen by re-reading the VM.
const EventFollowing = "FOLLOWING"

// Watch streams changes without polling: file notifications on the library
// and runtime folders (a VM created, edited, deleted, started or stopped by
// another vlab) and one long-lived QMP event subscription per running VM
// (paused, resumed, reset, powered off from inside the guest, exited). The
// channel closes when ctx ends.
func (s *Store) Watch(ctx context.Context) (<-chan Change, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	machines := filepath.Join(s.dirs.Data, "machines")
	for _, d := range []string{machines, s.dirs.Runtime} {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, err
		}
	}
	out := make(chan Change, 256)
	wt := &watcher{s: s, fs: w, out: out, monitors: map[string]context.CancelFunc{}, runs: map[string]string{}, parents: map[string]bool{s.dirs.Runtime: true}}
	go wt.run(ctx)
	return out, nil
}

type watcher struct {
	s   *Store
	fs  *fsnotify.Watcher
	out chan Change

	mu       sync.Mutex
	monitors map[string]context.CancelFunc // running VMs whose QMP events we follow
	wg       sync.WaitGroup

	// runs maps each known VM's runtime folder to its name, and parents
	// are the watched folders those sit in: the runtime dir and, for a
	// runtime dir too deep for socket paths, the short per-user folder
	// where runtime folders are named by a hash (layout.go). Only run uses
	// them.
	runs    map[string]string
	parents map[string]bool
}

// know starts watching VM name's folder and (the parent of) its runtime
// folder.
func (w *watcher) know(name string) {
	_ = w.fs.Add(filepath.Join(w.s.dirs.Data, "machines", name))
	run := w.s.Paths(name).Run
	w.runs[run] = name
	_ = w.fs.Add(run) // when it exists already; else its Create is seen below
	if parent := filepath.Dir(run); !w.parents[parent] {
		// The per-user temp folder is created and checked as start does
		// (never watched when another user owns it or can enter it).
		if ensurePrivateDir(parent) == nil && w.fs.Add(parent) == nil {
			w.parents[parent] = true
		}
	}
}

func (w *watcher) run(ctx context.Context) {
	defer func() {
		w.fs.Close()
		w.mu.Lock()
		for _, cancel := range w.monitors {
			cancel()
		}
		w.mu.Unlock()
		w.wg.Wait()
		close(w.out)
	}()
	names, _ := w.s.Names()
	for _, n := range names {
		w.know(n)
		w.follow(ctx, n)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.handle(ctx, ev)
		case _, ok := <-w.fs.Errors:
			if !ok {
				return
			}
		}
	}
}

// handle maps one file event to a Change of the VM it concerns.
func (w *watcher) handle(ctx context.Context, ev fsnotify.Event) {
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	machines := filepath.Join(w.s.dirs.Data, "machines")
	switch {
	case dir == machines:
		// A VM folder appeared or went (create, clone, delete, rename).
		if ValidateName(base) == nil {
			if ev.Has(fsnotify.Create) {
				w.know(base)
			}
			w.send(ctx, Change{Name: base})
		}
	case filepath.Dir(dir) == machines:
		if base == specFile {
			w.send(ctx, Change{Name: filepath.Base(dir)})
		}
	case w.runs[ev.Name] != "":
		// A runtime folder appeared or went (a start, a stop's cleanup).
		name := w.runs[ev.Name]
		if ev.Has(fsnotify.Create) {
			_ = w.fs.Add(ev.Name)
			w.follow(ctx, name)
		}
		w.send(ctx, Change{Name: name})
	case w.runs[dir] != "":
		name := w.runs[dir]
		switch {
		case base == procFile || base == stopMarker:
			if base == procFile && !ev.Has(fsnotify.Remove) {
				w.follow(ctx, name)
			}
			w.send(ctx, Change{Name: name})
		case strings.HasPrefix(base, "qmp") && ev.Has(fsnotify.Create):
			// QEMU opened its monitor: follow it (the record may have come
			// first, when no socket answered yet).
			w.follow(ctx, name)
		}
	}
}

// follow starts following the QMP events of VM name if it runs and is not
// followed yet; it also watches the VM's runtime folder.
func (w *watcher) follow(ctx context.Context, name string) {
	p := w.s.Paths(name)
	_ = w.fs.Add(p.Run)
	var rec record
	if readJSON(p.Process, &rec) != nil || rec.Check() != emulator.LiveRunning {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.monitors[name]; ok {
		return
	}
	mctx, cancel := context.WithCancel(ctx)
	w.monitors[name] = cancel
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() {
			w.mu.Lock()
			delete(w.monitors, name)
			w.mu.Unlock()
			cancel()
		}()
		w.subscribe(mctx, name, p, rec)
	}()
}

// subscribe holds one QMP monitor of a running VM and turns its events into
// Changes until QEMU ends or ctx does.
func (w *watcher) subscribe(ctx context.Context, name string, p Paths, rec record) {
	mon := w.dial(ctx, p, rec)
	if mon == nil {
		return
	}
	defer mon.Close()
	// The VM may have changed state between the screen's read and now.
	w.send(ctx, Change{Name: name, Event: EventFollowing})
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-mon.Events():
			if !ok {
				// The socket closed: QEMU is ending. Tell the screen once the
				// process is gone, so that its re-read sees the end.
				waitExit(ctx, &rec.Process)
				w.send(ctx, Change{Name: name, Event: EventExit})
				return
			}
			w.send(ctx, Change{Name: name, Event: ev.Name})
		}
	}
}

// dial connects to one of the VM's monitors. A QEMU that was just spawned
// may not listen yet: dial retries while the process lives, for at most
// startGrace (the time after which Status calls it unresponsive).
func (w *watcher) dial(ctx context.Context, p Paths, rec record) *emulator.Monitor {
	deadline := time.Now().Add(startGrace)
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		mon, err := emulator.DialAny(ctx, p.QMP)
		if err == nil {
			return mon
		}
		if ctx.Err() != nil || time.Now().After(deadline) || rec.Check() != emulator.LiveRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// waitExit waits (briefly) until proc has ended: QEMU closes its monitors
// a moment before its process is gone.
func waitExit(ctx context.Context, proc *emulator.Process) {
	deadline := time.Now().Add(5 * time.Second)
	for proc.Check() == emulator.LiveRunning && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (w *watcher) send(ctx context.Context, c Change) {
	select {
	case w.out <- c:
	case <-ctx.Done():
	}
}
