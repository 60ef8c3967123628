package machine

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
)

// Errors callers branch on.
var (
	ErrNotFound   = errors.New("no such vm")
	ErrExists     = errors.New("vm already exists")
	ErrRunning    = errors.New("vm is running")
	ErrNotRunning = errors.New("vm is not running")
	ErrProtected  = errors.New("vm is protected")
)

// Store is the library of VMs of one user: machine.toml and disks under the
// data dir, sockets and process records under the runtime dir, logs under
// the state dir.
type Store struct {
	dirs Dirs

	hostOnce sync.Mutex
	host     *emulator.Host
}

// Open returns the Store over dirs, creating the base directories.
func Open(dirs Dirs) (*Store, error) {
	for _, d := range []string{dirs.Data, filepath.Join(dirs.Data, "machines"), dirs.State, dirs.Cache} {
		if err := mkdirPrivate(d); err != nil {
			return nil, fmt.Errorf("open library: %w", err)
		}
	}
	if err := ensurePrivateDir(dirs.Runtime); err != nil {
		if os.Getenv("XDG_RUNTIME_DIR") != "" {
			return nil, err
		}
		// No session runtime dir (e.g. a root shell without logind): use a
		// private folder under the system temp dir instead.
		dirs.Runtime = filepath.Join(tempRunRoot(), "run")
		if err := ensurePrivateDir(dirs.Runtime); err != nil {
			return nil, err
		}
	}
	s := &Store{dirs: dirs}
	s.settleAll()
	return s, nil
}

// Dirs returns the directories the store uses.
func (s *Store) Dirs() Dirs { return s.dirs }

// Paths returns the file layout of VM name (whether or not it exists).
func (s *Store) Paths(name string) Paths { return s.dirs.PathsFor(name) }

// Host returns the probed host facts, from the on-disk cache when the QEMU
// binaries have not changed.
func (s *Store) Host(ctx context.Context) (*emulator.Host, error) {
	s.hostOnce.Lock()
	defer s.hostOnce.Unlock()
	if s.host != nil {
		return s.host, nil
	}
	h, err := emulator.ProbeCached(ctx, filepath.Join(s.dirs.Cache, "host.json"))
	if err != nil {
		return nil, fmt.Errorf("probe host: %w", err)
	}
	s.host = h
	return h, nil
}

// Names lists the VMs in the library, sorted.
func (s *Store) Names() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dirs.Data, "machines"))
	if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ValidateName(e.Name()) == nil {
			if _, err := os.Stat(filepath.Join(s.dirs.Data, "machines", e.Name(), specFile)); err == nil {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// Load reads and validates the Spec of VM name.
func (s *Store) Load(name string) (*Spec, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	s.settleIfPending(name)
	p := s.Paths(name)
	data, err := os.ReadFile(p.Spec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("vm %q: %w: see `vlab list` for the vms you have", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load vm %q: %w", name, err)
	}
	return decodeSpec(name, p.Spec, data)
}

func decodeSpec(name, path string, data []byte) (*Spec, error) {
	var spec Spec
	md, err := toml.Decode(string(data), &spec)
	if err != nil {
		return nil, fmt.Errorf("vm %q: %s is corrupt (%s): fix the file by hand or delete the vm", name, path, oneLine(err.Error()))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("vm %q: %s has unknown key %q: remove it or upgrade vlab", name, path, und[0].String())
	}
	if spec.Schema == 0 {
		spec.Schema = SchemaVersion // files written by hand may omit it
	}
	migrateGDBPort(&spec)
	if spec.Name != name {
		return nil, fmt.Errorf("vm %q: %s names vm %q: make name = %q", name, path, spec.Name, name)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("vm %q: %s is invalid: %s", name, path, oneLine(err.Error()))
	}
	return &spec, nil
}

// oneLine joins a multi-line error text so a CLI error stays one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func encodeSpec(spec *Spec) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# vlab machine definition. Edit with `vlab edit` or by hand while the vm is stopped.\n")
	if err := toml.NewEncoder(&buf).Encode(spec); err != nil {
		return nil, fmt.Errorf("encode vm %q: %w", spec.Name, err)
	}
	return buf.Bytes(), nil
}

// Save validates spec and writes it atomically over the existing VM's
// machine.toml.
func (s *Store) Save(ctx context.Context, spec *Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("save vm %q: %s", spec.Name, oneLine(err.Error()))
	}
	p := s.Paths(spec.Name)
	if _, err := os.Stat(p.Spec); err != nil {
		return fmt.Errorf("save vm %q: %w", spec.Name, ErrNotFound)
	}
	host, err := s.Host(ctx)
	if err != nil {
		return fmt.Errorf("save vm %q: %w", spec.Name, err)
	}
	if err := spec.ValidateFor(host); err != nil {
		return fmt.Errorf("save vm %q: %s", spec.Name, oneLine(err.Error()))
	}
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return fmt.Errorf("save vm %q: %w", spec.Name, err)
	}
	defer l.unlock()
	data, err := encodeSpec(spec)
	if err != nil {
		return err
	}
	return writeFileAtomic(p.Spec, data, 0o600)
}

// CheckSources verifies the boot files a spec names: the ISO exists, is a
// file and carries an ISO 9660 or UDF descriptor; kernel, initrd and dtb
// exist and are files.
func CheckSources(b Boot) error {
	if b.ISO != "" {
		if err := checkISO(b.ISO); err != nil {
			return err
		}
	}
	for _, f := range []struct{ what, path string }{{"kernel", b.Kernel}, {"initrd", b.Initrd}, {"dtb", b.DTB}} {
		if f.path == "" {
			continue
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("%s %s does not exist: check the path", f.what, f.path)
		}
		if fi.IsDir() {
			return fmt.Errorf("%s %s is a directory: give the file inside it", f.what, f.path)
		}
	}
	return nil
}

func checkISO(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("iso %s does not exist: check the path", path)
		}
		return fmt.Errorf("iso %s cannot be read: %v", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("iso %s cannot be read: %v", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("iso %s is a directory: give the .iso file inside it", path)
	}
	// ISO 9660 and UDF both put a volume descriptor at sector 16 whose
	// standard identifier follows one type byte.
	var id [5]byte
	if _, err := f.ReadAt(id[:], 16*2048+1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("iso %s cannot be read: %v", path, err)
	}
	switch string(id[:]) {
	case "CD001", "BEA01", "NSR02", "NSR03":
		return nil
	}
	return fmt.Errorf("iso %s is not an ISO 9660/UDF image: give a bootable .iso file", path)
}

// NewMAC returns a random locally administered MAC in QEMU's 52:54:00 range.
func NewMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// Create makes a new VM from spec: it validates everything, creates the
// disks with qemu-img and the UEFI variable store, and writes machine.toml.
// The VM folder appears all at once (built under a temp name and renamed),
// so a failure leaves nothing behind.
func (s *Store) Create(ctx context.Context, spec *Spec) (err error) {
	defer func() {
		err = noSpace(fmt.Sprintf("create vm %q", spec.Name), err, filepath.Join(s.dirs.Data, "machines"), 0)
	}()
	host, err := s.checkCreate(ctx, spec)
	if err != nil {
		return err
	}
	p := s.Paths(spec.Name)
	// The new VM's lock keeps a settling vlab off its folder in the making.
	l, err := tryLock(p.Lock)
	if err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	defer l.unlock()
	if err := s.beginIntent(&intent{Op: intentCreate, VM: spec.Name}); err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	defer s.endIntent(spec.Name)
	faultPoint("create:intent")
	tmp, err := os.MkdirTemp(filepath.Dir(p.Dir), ".new-"+spec.Name+"-")
	if err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
			if _, err := os.Stat(p.Spec); errors.Is(err, fs.ErrNotExist) {
				os.RemoveAll(p.Run) // only the lock file this call made
			}
		}
	}()
	if err := s.fillVMFolder(ctx, host, spec, tmp); err != nil {
		return err
	}
	faultPoint("create:synced")
	if err := renameDurable(tmp, p.Dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("create vm %q: %w", spec.Name, ErrExists)
		}
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	done = true
	faultPoint("create:renamed")
	return nil
}

// checkCreate completes spec's defaults (schema, MACs) and checks it can
// be created: valid, its boot files there, the name free, a QEMU for its
// arch that has what it asks for.
func (s *Store) checkCreate(ctx context.Context, spec *Spec) (*emulator.Host, error) {
	if spec.Schema == 0 {
		spec.Schema = SchemaVersion
	}
	for i := range spec.NICs {
		if spec.NICs[i].MAC == "" {
			spec.NICs[i].MAC = NewMAC()
		}
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("create vm: %s", oneLine(err.Error()))
	}
	if err := CheckSources(spec.Boot); err != nil {
		return nil, fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	if _, err := os.Stat(s.Paths(spec.Name).Dir); err == nil {
		return nil, fmt.Errorf("create vm %q: %w: pick another name or `vlab delete %s` first", spec.Name, ErrExists, spec.Name)
	}
	host, err := s.Host(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := host.Binaries[spec.Arch]; !ok {
		return nil, fmt.Errorf("create vm %q: no qemu for %s: %w (install it: apt-get install %s)", spec.Name, spec.Arch, emulator.ErrNoQEMU, emulator.AptPackage(spec.Arch))
	}
	if err := spec.ValidateFor(host); err != nil {
		return nil, fmt.Errorf("create vm %q: %s", spec.Name, oneLine(err.Error()))
	}
	return host, nil
}

// fillVMFolder makes the new VM's disks, UEFI variable store and
// machine.toml in its folder tmp (not yet under its name), owner-only and
// synced.
func (s *Store) fillVMFolder(ctx context.Context, host *emulator.Host, spec *Spec, tmp string) error {
	tp := s.Paths(spec.Name)
	tp.Dir = tmp
	for _, d := range spec.Disks {
		if filepath.IsAbs(d.File) {
			if _, err := os.Stat(d.File); err == nil {
				continue // an existing image the user attached
			}
		}
		if err := CreateDisk(ctx, host.QemuImg, tp.DiskPath(d.File), d.Format, d.Size); err != nil {
			return fmt.Errorf("create vm %q: %w", spec.Name, err)
		}
		faultPoint("create:disk-" + filepath.Base(d.File))
	}
	if needsEFIVars(spec) {
		if err := createEFIVars(ctx, host, spec.Arch, filepath.Join(tmp, efiVarsFile)); err != nil {
			return fmt.Errorf("create vm %q: %w", spec.Name, err)
		}
	}
	data, err := encodeSpec(spec)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(tmp, specFile), data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, privateDirMode); err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	if err := syncTree(tmp); err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	return nil
}

// CreateDisk creates an empty disk image with qemu-img.
func CreateDisk(ctx context.Context, qimg emulator.QemuImg, path, format string, size Size) error {
	if err := qimg.Create(ctx, emulator.ImgCreate{Path: path, Format: format, Size: int64(size)}); err != nil {
		return fmt.Errorf("create disk %s: %w", path, err)
	}
	return privateFile(path)
}

// needsEFIVars says whether spec boots UEFI firmware with a variable store.
func needsEFIVars(spec *Spec) bool {
	if spec.Firmware == emulator.FirmwareUEFI {
		return true
	}
	return spec.Firmware == emulator.FirmwareDefault && spec.Boot.Kernel == "" &&
		(spec.Arch == emulator.ArchAArch64 || spec.Arch == emulator.ArchARM)
}

// createEFIVars copies the firmware's variable template into a qcow2 image:
// a raw writable pflash would block internal snapshots.
func createEFIVars(ctx context.Context, h *emulator.Host, arch emulator.Arch, dst string) error {
	_, tmpl, err := emulator.UEFIFirmware(arch, h)
	if err != nil {
		return err
	}
	err = h.QemuImg.Convert(ctx, emulator.ImgConvert{Src: emulator.ImgSource{Path: tmpl, Format: "raw"}, Dst: dst, DstFormat: "qcow2"}, nil)
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("create uefi vars from %s: %w", tmpl, err)
	}
	return privateFile(dst)
}

// linkedTo reads what VM name is a linked clone of ("" for none) from its
// machine.toml, even when the rest of the file is invalid.
func (s *Store) linkedTo(name string) (string, error) {
	if spec, err := s.Load(name); err == nil {
		return spec.LinkedTo, nil
	}
	path := s.Paths(name).Spec
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s cannot be read (%v)", path, err)
	}
	var link struct {
		LinkedTo string `toml:"linked_to"`
	}
	if _, err := toml.Decode(string(data), &link); err != nil {
		return "", fmt.Errorf("%s is corrupt (%s)", path, oneLine(err.Error()))
	}
	return link.LinkedTo, nil
}
