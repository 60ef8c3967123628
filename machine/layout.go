package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/adrg/xdg"
)

// Dirs are vlab's base directories, each already ending in "vlab".
type Dirs struct {
	Config  string // $XDG_CONFIG_HOME/vlab
	Data    string // $XDG_DATA_HOME/vlab (machines/<name>/ lives here)
	Runtime string // $XDG_RUNTIME_DIR/vlab (sockets, process records; mode 0700)
	State   string // $XDG_STATE_HOME/vlab (logs)
	Cache   string // $XDG_CACHE_HOME/vlab (probe cache, downloads)
}

// DefaultDirs returns the XDG directories of the current user, re-reading
// the XDG_* variables.
func DefaultDirs() Dirs {
	xdg.Reload()
	runtime := xdg.RuntimeDir
	return Dirs{
		Config:  filepath.Join(xdg.ConfigHome, "vlab"),
		Data:    filepath.Join(xdg.DataHome, "vlab"),
		Runtime: filepath.Join(runtime, "vlab"),
		State:   filepath.Join(xdg.StateHome, "vlab"),
		Cache:   filepath.Join(xdg.CacheHome, "vlab"),
	}
}

// configFile is the user's settings file in Dirs.Config (viewer = "...").
const configFile = "config.toml"

// Names of the files vlab keeps per VM. They are the only place these names
// are spelled.
const (
	specFile    = "machine.toml"
	lockFile    = "vm.lock"
	efiVarsFile = "efivars.qcow2"
	procFile    = "process.json"
	pidFile     = "qemu.pid"
	vncSock     = "vnc.sock"
	serialSock  = "serial.sock"
	gdbSock     = "gdb.sock"
	agentSock   = "qga.sock" // guest agent channel
	agentLock   = "qga.lock" // held by the one vlab talking to the agent
	vncPassFile = "vnc-ext.pass"
	qemuLogFile = "qemu.log"
	serialLog   = "serial.log"
	stopMarker  = "powerdown"
	exitFile    = "last-exit.json"
	// snapshotsFile is the snapshot tree (parents, current, descriptions).
	snapshotsFile = "snapshots.json"
	// basesDir holds the frozen images linked clones of this VM are
	// overlays on (bases/<id>/hdN.qcow2).
	basesDir = "bases"
	// QMPSockets is how many QMP monitors each VM gets: QEMU serves one
	// client per monitor, and the TUI, a CLI command, `vlab qmp` and a second
	// TUI must be able to talk to one VM at the same time.
	QMPSockets = 4
)

// invalidName is the folder name PathsFor uses for a name ValidateName
// rejects: no VM can be called that.
const invalidName = ".invalid-name"

// maxSockPath is the longest unix socket path the kernel accepts (108 bytes
// including the terminating NUL).
const maxSockPath = 107

// Paths are every file of one VM.
type Paths struct {
	Dir       string // library folder: machine.toml, disks, UEFI vars
	Spec      string
	Lock      string // per-VM lock, in the runtime dir so locking never writes to the library
	EFIVars   string
	Run       string // runtime folder (0700): sockets, pidfile, process record
	Process   string
	Pidfile   string
	QMP       []string
	VNC       string
	Serial    string
	GDB       string // gdb stub socket (when the spec asks for one)
	Agent     string // guest agent channel socket (when the spec asks for one)
	AgentLock string
	VNCPass   string // one-time password the open `vlab vnc --external` endpoints share (0600)
	StopMark  string
	LastExit  string
	LogDir    string
	QEMULog   string
	SerialLog string
}

// PathsFor lays out the files of VM name. When the runtime folder is so deep
// that socket paths would pass the kernel's 107-byte limit, sockets go to a
// short per-user folder under the system temp dir named by a hash.
func (d Dirs) PathsFor(name string) Paths {
	if ValidateName(name) != nil {
		// Never join an invalid name (x/../other) into a path: it lands
		// on a folder no VM can have. Entry points reject it with a
		// clear error before they get here.
		name = invalidName
	}
	dir := filepath.Join(d.Data, "machines", name)
	run := filepath.Join(d.Runtime, name)
	if len(filepath.Join(run, "qmp0.sock.lock")) > maxSockPath {
		sum := sha256.Sum256([]byte(run))
		run = filepath.Join(tempRunRoot(), hex.EncodeToString(sum[:8]))
	}
	logs := filepath.Join(d.State, name)
	p := Paths{
		Dir:       dir,
		Spec:      filepath.Join(dir, specFile),
		Lock:      filepath.Join(run, lockFile),
		EFIVars:   filepath.Join(dir, efiVarsFile),
		Run:       run,
		Process:   filepath.Join(run, procFile),
		Pidfile:   filepath.Join(run, pidFile),
		VNC:       filepath.Join(run, vncSock),
		Serial:    filepath.Join(run, serialSock),
		GDB:       filepath.Join(run, gdbSock),
		Agent:     filepath.Join(run, agentSock),
		AgentLock: filepath.Join(run, agentLock),
		VNCPass:   filepath.Join(run, vncPassFile),
		StopMark:  filepath.Join(run, stopMarker),
		LastExit:  filepath.Join(run, exitFile),
		LogDir:    logs,
		QEMULog:   filepath.Join(logs, qemuLogFile),
		SerialLog: filepath.Join(logs, serialLog),
	}
	for i := 0; i < QMPSockets; i++ {
		p.QMP = append(p.QMP, filepath.Join(run, fmt.Sprintf("qmp%d.sock", i)))
	}
	return p
}

// DiskPath resolves a disk file name against the VM folder.
func (p Paths) DiskPath(file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(p.Dir, file)
}

// tempRunRoot is the per-user folder under the system temp dir that holds
// runtime dirs when XDG_RUNTIME_DIR is unset or too deep for socket paths.
// Other local users can create names there first, so it is checked like the
// runtime dirs themselves.
func tempRunRoot() string {
	return filepath.Join(os.TempDir(), "vlab-"+strconv.Itoa(os.Getuid()))
}

// ensurePrivateDir creates dir mode 0700 (parents as needed) or checks the
// one that exists: it must be a real directory (not a symlink), owned by
// us, with no access for group or others. Sockets inside it are how QEMU is
// controlled, so a folder another local user made first, or can enter, is
// refused rather than used. A dir under the shared temp dir has its
// per-user root checked the same way first.
func ensurePrivateDir(dir string) error {
	root := tempRunRoot()
	if rel, err := filepath.Rel(root, dir); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		if err := ensurePrivateDir(root); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create runtime dir %s: %w", dir, err)
	}
	created := true
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		created = false
	} else if err != nil {
		return fmt.Errorf("create runtime dir %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check runtime dir %s: %w", dir, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("runtime dir %s is a symlink, which another user may have planted: remove it", dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("runtime dir %s is not a directory: remove it", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("runtime dir %s belongs to uid %d, not you: remove it or set XDG_RUNTIME_DIR", dir, st.Uid)
	}
	if !created && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("runtime dir %s is open to other users (mode %04o): remove it (vlab makes it again, mode 0700)", dir, fi.Mode().Perm())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make runtime dir %s private: %w", dir, err)
		}
	}
	return nil
}
