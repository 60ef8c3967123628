package machine

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"

	"vlab/emulator"
)

// Change says that something about VM Name changed (its state, its
// definition); Name is "" when the set of VMs itself changed.
type Change struct {
	Name  string
	Event string // the QMP event behind the change, if any (STOP, RESUME, SHUTDOWN...)
}

// Watch streams changes without polling: file notifications on the library
// and runtime folders (a VM created, started or stopped by another vlab) and
// the QMP events of every running VM (paused, resumed, reset, powered off
// from inside the guest). The channel closes when ctx ends.
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
	out := make(chan Change, 64)
	wt := &watcher{s: s, fs: w, out: out, monitors: map[string]context.CancelFunc{}}
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

// handle maps one file event to a Change.
func (w *watcher) handle(ctx context.Context, ev fsnotify.Event) {
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	switch {
	case dir == filepath.Join(w.s.dirs.Data, "machines"):
		if ValidateName(base) == nil {
			if ev.Has(fsnotify.Create) {
				_ = w.fs.Add(ev.Name)
			}
			w.send(ctx, Change{})
		}
	case filepath.Dir(dir) == filepath.Join(w.s.dirs.Data, "machines"):
		if base == specFile {
			w.send(ctx, Change{Name: filepath.Base(dir)})
		}
	case dir == w.s.dirs.Runtime:
		if ev.Has(fsnotify.Create) {
			_ = w.fs.Add(ev.Name)
			w.follow(ctx, base)
		}
	case filepath.Dir(dir) == w.s.dirs.Runtime:
		name := filepath.Base(dir)
		if base == procFile || base == stopMarker {
			if base == procFile && (ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Write)) {
				w.follow(ctx, name)
			}
			w.send(ctx, Change{Name: name})
		}
	}
}

// follow starts following the QMP events of VM name if it runs and is not
// followed yet; it also watches the VM's runtime folder.
func (w *watcher) follow(ctx context.Context, name string) {
	p := w.s.Paths(name)
	if filepath.Dir(p.Run) == w.s.dirs.Runtime {
		_ = os.MkdirAll(p.Run, 0o700)
		_ = w.fs.Add(p.Run)
	}
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
		mon, err := emulator.DialAny(mctx, p.QMP)
		if err != nil {
			return
		}
		defer mon.Close()
		for {
			select {
			case <-mctx.Done():
				return
			case ev, ok := <-mon.Events():
				if !ok {
					// QEMU went away (power-off from inside the guest, a
					// crash, a kill): tell the screen.
					w.send(ctx, Change{Name: name, Event: "EXIT"})
					return
				}
				w.send(ctx, Change{Name: name, Event: ev.Name})
			}
		}
	}()
}

func (w *watcher) send(ctx context.Context, c Change) {
	select {
	case w.out <- c:
	case <-ctx.Done():
	default:
		// The consumer is behind: it re-reads everything on the next change
		// anyway, so dropping a duplicate loses nothing.
	}
}
