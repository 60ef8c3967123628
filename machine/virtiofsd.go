package machine

// Shared folders at start. A share of kind virtiofs is served by a
// virtiofsd vlab starts just before QEMU, one per share, listening on
// vfs-N.sock in the VM's 0700 runtime dir; QEMU connects to it as a
// vhost-user client. The daemon quits when QEMU's connection closes, and
// vlab stops it whenever it cleans up a run (it is recorded with the
// sandbox helpers, sandbox.go). A share of kind 9p is served by QEMU
// itself (emulator/share.go).
//
// Which daemon: QEMU 7.2's C virtiofsd (/usr/lib/qemu/virtiofsd) needs
// root: its sandbox (mount, pid and net namespaces, pivot_root into the
// shared folder) takes CAP_SYS_ADMIN. The Rust virtiofsd of newer hosts
// sandboxes itself without root. An auto share ("kind" unset) uses
// virtiofs where such a daemon can run and 9p otherwise; a share that asks
// for virtiofs where none can run fails the start with the reason.
//
// Read-only: the Rust daemon has --readonly. The C daemon has no such
// option, so vlab starts it through `vlab share virtiofsd-ro` (ReadOnlyExec
// below), which binds the folder read-only onto itself in a private mount
// namespace and then executes the daemon: the daemon's whole view of the
// folder is read-only, whatever the guest asks.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"vlab/emulator"
)

// virtiofsdPaths are where distributions install virtiofsd, after PATH.
var virtiofsdPaths = []string{"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"}

// virtiofsd is the daemon found on this host.
type virtiofsd struct{ emulator.Virtiofsd }

var (
	vfsOnce  sync.Once
	vfsFound virtiofsd
	vfsErr   error
)

// findVirtiofsd looks the daemon up once per process and asks it which
// flavour it is.
func findVirtiofsd() (virtiofsd, error) {
	vfsOnce.Do(func() {
		cands := virtiofsdPaths
		if p, err := exec.LookPath("virtiofsd"); err == nil {
			cands = append([]string{p}, cands...)
		}
		for _, c := range cands {
			if fi, err := os.Stat(c); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			out, _ := exec.CommandContext(ctx, c, "--help").CombinedOutput()
			cancel()
			help := string(out)
			vfsFound = virtiofsd{emulator.Virtiofsd{Path: c, Rust: strings.Contains(help, "--shared-dir"), ReadOnly: strings.Contains(help, "--readonly")}}
			return
		}
		vfsErr = errors.New("virtiofsd is not installed: install qemu-system-common (QEMU's) or virtiofsd, or use a 9p share (,9p)")
	})
	return vfsFound, vfsErr
}

// usable reports why the daemon cannot serve shares for this user, or nil.
func (v virtiofsd) usable() error {
	if !v.Rust && os.Geteuid() != 0 {
		return fmt.Errorf("%s (QEMU's virtiofsd) needs root for its sandbox: run vlab as root, install the Rust virtiofsd, or use a 9p share (,9p)", v.Path)
	}
	return nil
}

// argv is the daemon's command line for one share; self is vlab's own
// executable, which wraps a daemon that cannot refuse writes itself for a
// read-only share (a read-only bind in a private mount namespace).
func (v virtiofsd) argv(self string, sh Share, sock string) []string {
	a, wrap := v.Argv(sh.HostDir, sock, sh.ReadOnly)
	if wrap {
		return append([]string{self, "share", "virtiofsd-ro", sh.HostDir, "--"}, a...)
	}
	return a
}

// shareSocket is where the virtiofsd of share i listens.
func (p Paths) shareSocket(i int) string { return filepath.Join(p.Run, "vfs-"+strconv.Itoa(i)+".sock") }

// shareLog is the log of the virtiofsd of share tag.
func (p Paths) shareLog(tag string) string {
	return filepath.Join(p.LogDir, "virtiofsd-"+tag+".log")
}

// resolveShares gives each share of spec its kind for this start and
// returns QEMU's view of them. It runs no daemon (`vlab cmdline` uses it).
func (s *Store) resolveShares(spec *Spec) ([]emulator.Share, error) {
	if len(spec.Shares) == 0 {
		return nil, nil
	}
	p := s.Paths(spec.Name)
	var out []emulator.Share
	for i, sh := range spec.Shares {
		if err := sh.CheckFolder(); err != nil {
			return nil, fmt.Errorf("%w, or stop sharing it: `vlab edit %s --unshare %s`", err, spec.Name, sh.Tag)
		}
		kind := sh.Kind
		if kind != Share9P {
			v, err := findVirtiofsd()
			if err == nil {
				err = v.usable()
			}
			switch {
			case err == nil:
				kind = ShareVirtiofs
			case kind == ShareVirtiofs:
				return nil, fmt.Errorf("share %s: %w", sh.Tag, err)
			default:
				kind = Share9P
			}
		}
		es := emulator.Share{Kind: kind, Tag: sh.Tag, ReadOnly: sh.ReadOnly, Mount: sh.GuestPath()}
		if kind == ShareVirtiofs {
			es.Socket = p.shareSocket(i)
		} else {
			es.Dir = sh.HostDir
		}
		out = append(out, es)
	}
	return out, nil
}

// startShares starts a virtiofsd for each virtiofs share of cfg and waits
// until each listens; the processes join run's record, so every clean-up
// of the run stops them.
func (r *sandboxRun) startShares(ctx context.Context, spec *Spec, shares []emulator.Share) error {
	if !slices.ContainsFunc(shares, func(es emulator.Share) bool { return es.Kind == ShareVirtiofs }) {
		return nil
	}
	v, err := findVirtiofsd()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("shares: find vlab's own executable: %w", err)
	}
	p := r.s.Paths(spec.Name)
	for i, es := range shares {
		if es.Kind != ShareVirtiofs {
			continue
		}
		os.Remove(es.Socket)
		logPath := p.shareLog(es.Tag)
		logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("share %s: open virtiofsd log: %w", es.Tag, err)
		}
		err = r.spawn(ctx, "share "+es.Tag, "share-"+es.Tag, "virtiofsd", v.argv(self, spec.Shares[i], es.Socket), logf, es.Socket, logPath)
		logf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ReadOnlyExec makes dir read-only in a private mount namespace of this
// process and then executes argv in its place (`vlab share virtiofsd-ro`).
// It needs CAP_SYS_ADMIN, as QEMU's virtiofsd itself does; on success it
// does not return.
func ReadOnlyExec(dir string, argv []string) error {
	if !filepath.IsAbs(dir) || len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return errors.New("read-only exec: want an absolute folder and an absolute program")
	}
	// Namespaces belong to the thread: unshare and exec on the same one.
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return fmt.Errorf("read-only %s: new mount namespace: %w (needs root)", dir, err)
	}
	// Nothing done here may reach the host's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("read-only %s: make mounts private: %w", dir, err)
	}
	// Not recursive: folders mounted below dir show as their empty mount
	// points, never as writable file systems.
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("read-only %s: bind: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("read-only %s: remount read-only: %w", dir, err)
	}
	if err := syscall.Exec(argv[0], argv, os.Environ()); err != nil {
		return fmt.Errorf("read-only %s: exec %s: %w", dir, argv[0], err)
	}
	return nil
}

// ShareView is one share of a VM as `vlab share list` shows it.
type ShareView struct {
	Share
	Uses  string `json:"uses,omitempty"`  // the kind the next start uses ("" when it cannot start)
	Error string `json:"error,omitempty"` // why it cannot, when it cannot
	Mount string `json:"mount_command"`   // the guest command that mounts it
}

// ShareViews returns VM name's shares with the kind each gets at the next
// start and the command that mounts it in a Linux guest.
func (s *Store) ShareViews(name string) ([]ShareView, error) {
	spec, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	var out []ShareView
	for i, sh := range spec.Shares {
		v := ShareView{Share: sh}
		one := *spec
		one.Shares = spec.Shares[i : i+1]
		if es, err := s.resolveShares(&one); err != nil {
			v.Error = err.Error()
		} else {
			v.Uses = es[0].Kind
		}
		v.Mount = MountCommand(sh, v.Uses)
		out = append(out, v)
	}
	return out, nil
}

// MountCommand is the shell command that mounts sh in a Linux guest when
// it is served as kind ("" tries virtiofs, then 9p).
func MountCommand(sh Share, kind string) string {
	vfsOpts, p9Opts := "", "trans=virtio,version=9p2000.L,msize=262144"
	if sh.ReadOnly {
		vfsOpts, p9Opts = "-o ro ", p9Opts+",ro"
	}
	vfs := fmt.Sprintf("sudo mount -t virtiofs %s%s %s", vfsOpts, sh.Tag, sh.GuestPath())
	p9 := fmt.Sprintf("sudo mount -t 9p -o %s %s %s", p9Opts, sh.Tag, sh.GuestPath())
	switch kind {
	case ShareVirtiofs:
		return vfs
	case Share9P:
		return p9
	}
	return vfs + " || " + p9
}

// errLiveShares is why a running VM with shared folders has no live
// snapshot: QEMU marks vhost-user-fs unmigratable, and a mounted 9p share
// blocks migration too (QEMU 7.2: "State blocked by non-migratable
// device ... vhost-user-fs").
func errLiveShares(name string) error {
	return fmt.Errorf("a running vm with shared folders cannot be saved live (QEMU cannot save a share's state): stop it for a disk-only snapshot (`vlab stop %s`), or remove the shares (`vlab edit %s --unshare TAG`)", name, name)
}
