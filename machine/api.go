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

	// specs remembers, per VM, the machine.toml bytes Load last decoded and
	// their Spec. A long-lived Store (the TUI's) reads the file on every
	// Load, as it may have changed, but decodes and validates only bytes it
	// has not seen: the TUI's start of a VM skips the TOML decoder.
	specMu sync.Mutex
	specs  map[string]decodedSpec
}

// decodedSpec is one entry of Store.specs.
type decodedSpec struct {
	data []byte
	spec *Spec // never handed out: Load returns clones
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
	return s.decode(name, p.Spec, data)
}

// decode is decodeSpec, skipped when data are the bytes it last decoded for
// name (decodeSpec depends on nothing else; path only names the file in
// errors, and errors are not remembered).
func (s *Store) decode(name, path string, data []byte) (*Spec, error) {
	s.specMu.Lock()
	last, ok := s.specs[name]
	s.specMu.Unlock()
	if ok && bytes.Equal(last.data, data) {
		return last.spec.clone(), nil
	}
	spec, err := decodeSpec(name, path, data)
	if err != nil {
		return nil, err
	}
	s.specMu.Lock()
	if s.specs == nil {
		s.specs = map[string]decodedSpec{}
	}
	s.specs[name] = decodedSpec{data: data, spec: spec.clone()}
	s.specMu.Unlock()
	return spec, nil
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
	op := newByCreate
	completeNewSpec(spec)
	if err := s.checkNewSpec(spec, op); err != nil {
		return err
	}
	host, err := s.Host(ctx)
	if err != nil {
		return err
	}
	if err := checkNewSpecFor(spec, host, op); err != nil {
		return err
	}
	return s.buildVM(ctx, spec, host, op, func(ctx context.Context, tp Paths) error {
		for _, d := range spec.Disks {
			if filepath.IsAbs(d.File) {
				if _, err := os.Stat(d.File); err == nil {
					continue // an existing image the user attached
				}
			}
			if err := CreateDisk(ctx, host.QemuImg, tp.DiskPath(d.File), d.Format, d.Size); err != nil {
				return err
			}
			faultPoint("create:disk-" + filepath.Base(d.File))
		}
		return nil
	})
}

// newVM is the operation that makes a new VM folder (Create or
// CreateImported), as its messages and fault points name it.
type newVM struct {
	verb   string // "create vm NAME: ..."
	fault  string // prefix of its fault points
	rename string // how the user picks another name
}

var (
	newByCreate = newVM{verb: "create", fault: "create", rename: "pick another name"}
	newByImport = newVM{verb: "import", fault: "import-vm", rename: "pick another name with --name"}
)

func (o newVM) wrap(name string, err error) error {
	return fmt.Errorf("%s vm %q: %w", o.verb, name, err)
}

// completeNewSpec fills a new spec's defaults: the schema version and a
// MAC for every NIC without one.
func completeNewSpec(spec *Spec) {
	if spec.Schema == 0 {
		spec.Schema = SchemaVersion
	}
	for i := range spec.NICs {
		if spec.NICs[i].MAC == "" {
			spec.NICs[i].MAC = NewMAC()
		}
	}
}

// checkNewSpec checks that spec can be made: valid, its boot files there,
// its name free.
func (s *Store) checkNewSpec(spec *Spec, op newVM) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("%s vm: %s", op.verb, oneLine(err.Error()))
	}
	if err := CheckSources(spec.Boot); err != nil {
		return op.wrap(spec.Name, err)
	}
	if _, err := os.Stat(s.Paths(spec.Name).Dir); err == nil {
		return fmt.Errorf("%s vm %q: %w: %s or `vlab delete %s` first", op.verb, spec.Name, ErrExists, op.rename, spec.Name)
	}
	return nil
}

// checkNewSpecFor checks that host has a QEMU for spec's arch with what
// spec asks for.
func checkNewSpecFor(spec *Spec, host *emulator.Host, op newVM) error {
	if _, ok := host.Binaries[spec.Arch]; !ok {
		return op.wrap(spec.Name, fmt.Errorf("no qemu for %s: %w (install it: apt-get install %s)", spec.Arch, emulator.ErrNoQEMU, emulator.AptPackage(spec.Arch)))
	}
	if err := spec.ValidateFor(host); err != nil {
		return fmt.Errorf("%s vm %q: %s", op.verb, spec.Name, oneLine(err.Error()))
	}
	return nil
}

// buildVM builds VM spec's folder under a temporary name, under spec's
// lock (it keeps a settling vlab off the folder in the making) and a
// create intent: fill writes the disks into the folder tp describes, then
// the UEFI vars and machine.toml are added, everything is synced and the
// folder renamed into place. A failure removes it all; a SIGKILL leaves the
// intent, which the next vlab settles by removing the temporary folder.
func (s *Store) buildVM(ctx context.Context, spec *Spec, host *emulator.Host, op newVM, fill func(ctx context.Context, tp Paths) error) error {
	p := s.Paths(spec.Name)
	l, err := tryLock(p.Lock)
	if err != nil {
		return op.wrap(spec.Name, err)
	}
	defer l.unlock()
	if err := s.beginIntent(&intent{Op: intentCreate, VM: spec.Name}); err != nil {
		return op.wrap(spec.Name, err)
	}
	defer s.endIntent(spec.Name)
	faultPoint(op.fault + ":intent")
	tmp, err := os.MkdirTemp(filepath.Dir(p.Dir), ".new-"+spec.Name+"-")
	if err != nil {
		return op.wrap(spec.Name, err)
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
	tp := p
	tp.Dir = tmp
	if err := fill(ctx, tp); err != nil {
		return op.wrap(spec.Name, err)
	}
	if needsEFIVars(spec) {
		if err := createEFIVars(ctx, host, spec.Arch, filepath.Join(tmp, efiVarsFile)); err != nil {
			return op.wrap(spec.Name, err)
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
		return op.wrap(spec.Name, err)
	}
	if err := syncTree(tmp); err != nil {
		return op.wrap(spec.Name, err)
	}
	faultPoint(op.fault + ":synced")
	if err := renameDurable(tmp, p.Dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return op.wrap(spec.Name, ErrExists)
		}
		return op.wrap(spec.Name, err)
	}
	done = true
	faultPoint(op.fault + ":renamed")
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
