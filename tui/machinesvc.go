package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"vlab/console"
	"vlab/emulator"
	"vlab/machine"
	"vlab/portable"
	"vlab/profiles"
	"vlab/tui/service"
)

// MachineService is the Service over vlab's real library (package machine).
type MachineService struct {
	store *machine.Store

	mu      sync.Mutex
	prev    map[string]cpuSample // last CPU sample per VM, for CPU%
	running map[string]proc      // from the last List: what Stats samples
}

type proc struct {
	pid     int
	started time.Time
}

type cpuSample struct {
	pid   int
	ticks uint64
	at    time.Time
}

// NewMachineService returns the Service over store.
func NewMachineService(store *machine.Store) *MachineService {
	return &MachineService{store: store, prev: map[string]cpuSample{}, running: map[string]proc{}}
}

var _ Service = (*MachineService)(nil)

// Boot orders: the TUI's words and QEMU's letters.
func bootWord(order string) string {
	switch {
	case strings.HasPrefix(order, "d"):
		return "cdrom"
	case strings.HasPrefix(order, "n"):
		return "network"
	}
	return ""
}

func bootLetters(word string) string {
	switch word {
	case "cdrom":
		return "dc"
	case "network":
		return "nc"
	}
	return ""
}

// List implements Service.
func (s *MachineService) List(ctx context.Context) ([]VM, error) {
	names, err := s.store.Names()
	if err != nil {
		return nil, err
	}
	host, _ := s.store.Host(ctx) // nil host: accels shown as chosen at start only
	out := make([]VM, len(names))
	s.mu.Lock()
	clear(s.running) // refilled by vm() for each running machine
	s.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // status queries of running VMs talk QMP
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = s.vm(ctx, name, host)
		}()
	}
	wg.Wait()
	return out, nil
}

func (s *MachineService) vm(ctx context.Context, name string, host *emulator.Host) VM {
	vm := VM{Name: name, State: StateStopped}
	spec, err := s.store.Load(name)
	if err != nil {
		vm.State, vm.LastError = StateInvalid, err.Error()
		return vm
	}
	p := s.store.Paths(name)
	vm.Profile, vm.Arch, vm.CPUs, vm.MemoryMiB = spec.Profile, spec.Arch, spec.CPUs, int(spec.Memory/machine.MiB)
	if pr, err := profiles.Get(spec.Profile); err == nil {
		vm.OS = pr.Title
	}
	vm.ISO, vm.Kernel, vm.Initrd, vm.Append = spec.Boot.ISO, spec.Boot.Kernel, spec.Boot.Initrd, spec.Boot.Append
	vm.BootOrder = bootWord(spec.Boot.Order)
	vm.Display = spec.Display
	vm.Accel = spec.Accel
	vm.Shares = append([]Share(nil), spec.Shares...)
	for i, d := range spec.Disks {
		di := DiskInfo{Disk: emulator.Disk{Path: p.DiskPath(d.File), Format: orDefault(d.Format, "qcow2"), Bus: d.Bus, NodeName: fmt.Sprintf("hd%d", i)}, VirtualBytes: int64(d.Size)}
		var st syscall.Stat_t
		if syscall.Stat(di.Path, &st) == nil {
			di.ActualBytes = st.Blocks * 512
		}
		vm.Disks = append(vm.Disks, di)
	}
	vm.NICs = specNICs(name, spec)
	vm.Snapshots = s.store.SnapshotCount(name)
	st, err := s.store.Status(ctx, name)
	if err != nil {
		vm.State, vm.LastError = StateInvalid, err.Error()
		return vm
	}
	if len(spec.NICs) > 0 {
		vm.NICs = netNICs(s.store.NetworkOf(ctx, spec, st))
	}
	vm.State = st.State
	vm.LastError = st.Detail
	if st.State.Active() {
		if a, err := emulator.ParseAccel(st.Accel); err == nil && a != emulator.AccelAuto {
			vm.Accel = a
		}
		vm.AccelReason = st.AccelReason
		vm.Uptime = time.Since(st.StartedAt).Round(time.Second)
		vm.VNC, vm.Serial = p.VNC, p.Serial
		if len(p.QMP) > 0 {
			vm.QMP = p.QMP[0]
		}
		if vm.Display == emulator.DisplayNone {
			vm.VNC = ""
		}
		s.mu.Lock()
		s.running[name] = proc{pid: st.PID, started: st.StartedAt}
		s.mu.Unlock()
		if pct, rss, ok := s.sample(name, st.PID, st.StartedAt); ok {
			vm.CPUPercent, vm.RSSBytes = pct, rss
		}
	} else if host != nil {
		if c, err := emulator.ChooseAccel(spec.Arch, spec.Accel, host); err == nil {
			vm.Accel, vm.AccelReason = c.Accel, c.Reason
		} else {
			vm.AccelReason = err.Error()
		}
	}
	return vm
}

// specNICs are the NICs of spec as saved, nothing bound (what the list
// shows when the live state cannot be read).
func specNICs(name string, spec *machine.Spec) []NIC {
	var out []NIC
	for i, n := range spec.NICs {
		nic := NIC{ID: fmt.Sprintf("net%d", i), Kind: n.Mode, Mode: n.ModeString(), Model: n.Model, MAC: orDefault(n.MAC, machine.StableMAC(name, i))}
		for _, f := range n.Forwards {
			nic.Forwards = append(nic.Forwards, PortForward{Rule: emulatorForward(f)})
		}
		out = append(out, nic)
	}
	return out
}

// netNICs converts the live network state of a machine.
func netNICs(ni machine.NetInfo) []NIC {
	var out []NIC
	for _, n := range ni.NICs {
		nic := NIC{ID: n.ID, Mode: n.Mode, Model: n.Model, MAC: n.MAC, GuestIP: n.GuestIP, GuestIPSource: n.GuestIPSource}
		if p, err := machine.ParseNIC(n.Mode); err == nil {
			nic.Kind = p.Mode
		} else {
			kind, _, _ := strings.Cut(n.Mode, ":")
			nic.Kind = emulator.NetMode(kind)
		}
		for _, f := range n.Forwards {
			nic.Forwards = append(nic.Forwards, portForward(f))
		}
		out = append(out, nic)
	}
	return out
}

func emulatorForward(f machine.Forward) emulator.Forward {
	return emulator.Forward{Proto: f.Proto, HostAddr: f.HostAddr, HostPort: f.HostPort, GuestPort: f.GuestPort}
}

func portForward(f machine.ForwardInfo) PortForward {
	pf := PortForward{Rule: emulatorForward(f.Rule), Note: f.Note}
	if f.Active {
		pf.BoundPort = f.HostPort
	}
	return pf
}

// ruleSyntax is the fix shown for a forward rule that does not parse.
const ruleSyntax = service.RuleSyntax

// AddForward implements Service: the rule is read by machine.ParseForward
// and hot-applied by the store on a running machine.
func (s *MachineService) AddForward(ctx context.Context, name string, nic int, rule string) (PortForward, error) {
	f, err := machine.ParseForward(strings.TrimSpace(rule))
	if err != nil {
		return PortForward{}, WithFix(fmt.Errorf("add forward to %q: %w", name, err), ruleSyntax)
	}
	fi, err := s.store.AddForward(ctx, name, nic, f)
	if err != nil {
		return PortForward{}, err
	}
	return portForward(fi), nil
}

// RemoveForward implements Service.
func (s *MachineService) RemoveForward(ctx context.Context, name string, nic int, rule string) (PortForward, error) {
	f, err := machine.ParseForward(strings.TrimSpace(rule))
	if err != nil {
		return PortForward{}, WithFix(fmt.Errorf("remove forward from %q: %w", name, err), ruleSyntax)
	}
	fi, err := s.store.RemoveForward(ctx, name, nic, f)
	if err != nil {
		return PortForward{}, err
	}
	return portForward(fi), nil // still Active (bound) only when QEMU could not release it
}

// sample reads the process's CPU ticks and RSS from /proc and returns the
// CPU% since the previous sample of the same process.
func (s *MachineService) sample(name string, pid int, started time.Time) (float64, int64, bool) {
	if pid <= 0 {
		return 0, 0, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// Fields after the parenthesised command: state is 3rd, utime 14th,
	// stime 15th, rss (pages) 24th.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 22 {
		return 0, 0, false
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	stt, _ := strconv.ParseUint(f[12], 10, 64)
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	now, ticks := time.Now(), ut+stt
	s.mu.Lock()
	prev, ok := s.prev[name]
	s.prev[name] = cpuSample{pid: pid, ticks: ticks, at: now}
	s.mu.Unlock()
	const hz = 100 // USER_HZ on Linux
	pct := 0.0
	switch {
	case ok && prev.pid == pid && now.After(prev.at) && ticks >= prev.ticks:
		pct = float64(ticks-prev.ticks) / hz / now.Sub(prev.at).Seconds() * 100
	case !started.IsZero() && now.After(started):
		// First look at this process: its average since it started.
		pct = float64(ticks) / hz / now.Sub(started).Seconds() * 100
	}
	return pct, rssPages * int64(os.Getpagesize()), true
}

// Stats implements Service: it samples /proc for the processes the last
// List found running (no QMP, no library scan), so the slow refresh stays
// cheap. A process that is gone is left out; the change stream reports it.
func (s *MachineService) Stats(ctx context.Context) ([]Stats, error) {
	s.mu.Lock()
	procs := make(map[string]proc, len(s.running))
	for k, v := range s.running {
		procs[k] = v
	}
	s.mu.Unlock()
	var out []Stats
	for name, p := range procs {
		pct, rss, ok := s.sample(name, p.pid, p.started)
		if !ok {
			continue
		}
		out = append(out, Stats{Name: name, CPUPercent: pct, RSSBytes: rss, Uptime: time.Since(p.started).Round(time.Second)})
	}
	return out, nil
}

// newSpec builds the machine Spec the wizard describes through
// machine.Build, as `vlab create` does with the same values: the form's
// fields are what the request sets, the profile fills the rest.
func newSpec(n NewVM) (*machine.Spec, error) {
	var prof *profiles.Profile
	if p, err := profiles.Get(n.Profile); err == nil {
		prof = &p
	}
	return machine.Build(machine.Request{
		Name: n.Name, Arch: n.Arch, Profile: prof, Image: n.Image != "", NoDisk: n.DiskBytes <= 0,
		Set: func(spec *machine.Spec) error {
			if n.Display != "" {
				spec.Display = n.Display
			}
			if n.DiskBytes > 0 && n.Image == "" { // an image's disk is its copy (CreateFromImage)
				spec.Disks = []machine.DiskSpec{{File: "disk0.qcow2", Size: machine.Size(n.DiskBytes), Format: "qcow2"}}
			}
			spec.NICs = nil
			if n.Net != emulator.NetNone {
				nic := machine.NICSpec{Mode: n.Net, MAC: n.MAC}
				for _, f := range n.Forwards {
					nic.Forwards = append(nic.Forwards, machine.Forward{Proto: f.Proto, HostAddr: orDefault(f.HostAddr, "127.0.0.1"), HostPort: f.HostPort, GuestPort: f.GuestPort})
				}
				spec.NICs = []machine.NICSpec{nic}
			}
			spec.CPUs, spec.Memory = n.CPUs, machine.Size(n.MemoryMiB)*machine.MiB
			spec.Boot = machine.Boot{ISO: n.ISO, Kernel: n.Kernel, Initrd: n.Initrd, Append: n.Append}
			if n.ISO != "" {
				spec.Boot.Order = "dc" // install: CD first, then the disk it installs to
			}
			spec.Shares = append([]machine.Share(nil), n.Shares...)
			return nil
		},
	})
}

// galleryEntry finds gallery entry id of kind for arch.
func (s *MachineService) galleryEntry(id string, arch emulator.Arch, kind string) (machine.GalleryEntry, error) {
	g, err := s.store.Gallery()
	if err != nil {
		return machine.GalleryEntry{}, err
	}
	e, err := g.Find(id, arch.String())
	if err != nil {
		return machine.GalleryEntry{}, err
	}
	if e.Kind != kind {
		what := map[string]string{machine.KindISO: "an installer ISO", machine.KindCloud: "a cloud image"}
		return machine.GalleryEntry{}, WithFix(fmt.Errorf("gallery: %s is %s, not %s", id, what[e.Kind], what[kind]), "choose it as the other install source")
	}
	return e, nil
}

// downloadProgress reports a download as a job step with its sizes.
func downloadProgress(what string, p ProgressFunc) func(machine.Progress) {
	if p == nil {
		return nil
	}
	return func(d machine.Progress) {
		total := max(d.Total, 0)
		step := "downloading " + what + " (" + fmtBytes(d.Done)
		if total > 0 {
			step += " of " + fmtBytes(total)
		}
		if d.Resumed > 0 {
			step += ", resumed at " + fmtBytes(d.Resumed)
		}
		p(Progress{Step: step + ")", Done: d.Done, Total: total})
	}
}

// Create implements Service: an empty or installer machine as `vlab
// create` makes it, the gallery's installer ISO fetched first (`--os`), or
// a machine from a cloud image (`--image`).
func (s *MachineService) Create(ctx context.Context, n NewVM, progress ProgressFunc) error {
	if err := s.ValidateName(n.Name); err != nil {
		return fmt.Errorf("create vm %q: %w", n.Name, err)
	}
	if err := machine.CheckShares(n.Shares); err != nil {
		return fmt.Errorf("create vm %q: %w", n.Name, err)
	}
	if n.OS != "" {
		e, err := s.galleryEntry(n.OS, n.Arch, machine.KindISO)
		if err != nil {
			return err
		}
		if n.ISO, err = s.store.FetchGallery(ctx, e, machine.FetchOptions{Progress: downloadProgress(e.ID, progress)}); err != nil {
			return err
		}
	}
	if n.Image != "" {
		return s.createFromImage(ctx, n, progress)
	}
	if progress != nil && n.DiskBytes > 0 {
		progress(Progress{Step: "creating the disk"})
	}
	spec, err := newSpec(n)
	if err != nil {
		return fmt.Errorf("create vm %q: %w", n.Name, err)
	}
	return s.store.Create(ctx, spec)
}

// createFromImage is `vlab create NAME --image SOURCE`: the image fetched
// into the cache (a gallery id or a URL) or taken as it is (a file), then
// copied into the new machine with its seed.
func (s *MachineService) createFromImage(ctx context.Context, n NewVM, progress ProgressFunc) error {
	what := n.Image
	if u, perr := url.Parse(n.Image); perr == nil && u.Scheme != "" {
		what = path.Base(u.Path)
	}
	// ResolveImage asks the gallery for anything that is neither a URL
	// nor a file (ids with dots included), as `vlab create --image` does.
	img, _, err := s.store.ResolveImage(ctx, n.Image, n.Arch.String(), "", machine.FetchOptions{Progress: downloadProgress(what, progress)})
	if err != nil {
		return err
	}
	spec, err := newSpec(n)
	if err != nil {
		return fmt.Errorf("create vm %q: %w", n.Name, err)
	}
	return s.store.CreateFromImage(ctx, spec, machine.ImageCreate{
		Image: img, Disk: machine.Size(n.DiskBytes), User: n.User,
		Progress: machineProgress("copying the image", progress),
	})
}

// Gallery implements Service.
func (s *MachineService) Gallery(ctx context.Context) ([]GalleryEntry, error) {
	g, err := s.store.Gallery()
	if err != nil {
		return nil, err
	}
	return g.Entries, nil
}

// PreviewCmdline implements Service. A gallery ISO shows at the path it
// is downloaded to; an image machine's disk as the copy it gets (its
// cloud-init seed is made when it is created).
func (s *MachineService) PreviewCmdline(ctx context.Context, n NewVM) ([]string, error) {
	if n.OS != "" {
		e, err := s.galleryEntry(n.OS, n.Arch, machine.KindISO)
		if err != nil {
			return nil, err
		}
		n.ISO = s.store.GalleryFile(e)
	}
	spec, err := newSpec(n)
	if err != nil {
		return nil, fmt.Errorf("preview %q: %w", n.Name, err)
	}
	if n.Image != "" { // the image's copy, as CreateFromImage adds it
		spec.Disks = []machine.DiskSpec{{File: "disk0.qcow2", Size: machine.Size(max(n.DiskBytes, 1<<30)), Format: "qcow2"}}
	}
	cfg, host, err := s.store.ConfigFor(ctx, spec)
	if err != nil {
		return nil, err
	}
	return emulator.Cmdline(cfg, host)
}

// Start implements Service.
func (s *MachineService) Start(ctx context.Context, name string) error {
	return s.store.Start(ctx, name, machine.StartOptions{})
}

// Stop implements Service.
func (s *MachineService) Stop(ctx context.Context, name string, force bool) error {
	_, err := s.store.Stop(ctx, name, machine.StopOptions{Force: force})
	return err
}

// Pause implements Service.
func (s *MachineService) Pause(ctx context.Context, name string) error {
	return s.store.Pause(ctx, name)
}

// Resume implements Service.
func (s *MachineService) Resume(ctx context.Context, name string) error {
	return s.store.Resume(ctx, name)
}

// Reset implements Service.
func (s *MachineService) Reset(ctx context.Context, name string) error {
	return s.store.Reset(ctx, name)
}

// Delete implements Service.
func (s *MachineService) Delete(ctx context.Context, name string) error {
	return s.store.Delete(ctx, name)
}

func machineProgress(step string, p ProgressFunc) machine.ProgressFunc {
	if p == nil {
		return nil
	}
	return func(done, total float64) { p(Progress{Step: step, Done: int64(done), Total: int64(total)}) }
}

// Clone implements Service.
func (s *MachineService) Clone(ctx context.Context, src, dst string, linked bool, progress ProgressFunc) error {
	return s.store.Clone(ctx, src, dst, machine.CloneOptions{Linked: linked, Progress: machineProgress("copying disks", progress)})
}

// Export implements Service through package portable, as `vlab export`
// does: an OVA or OVF package, or a libvirt domain folder.
func (s *MachineService) Export(ctx context.Context, name, out, format string, progress ProgressFunc) (ExportSummary, error) {
	export := portable.Export
	switch format {
	case FormatOVA, FormatOVF:
	case FormatLibvirt:
		export = portable.ExportLibvirt
	default:
		return ExportSummary{}, fmt.Errorf("export %q: format %q is unknown: use one of %s", name, format, strings.Join(portable.Formats, ", "))
	}
	res, err := export(ctx, s.store, name, out, portable.ExportOptions{Format: format, Progress: machineProgress("writing disks", progress)})
	if err != nil {
		return ExportSummary{}, err
	}
	return ExportSummary{Path: res.Path, Disks: len(res.Disks), Notes: res.Notes}, nil
}

// Import implements Service through package portable, as `vlab import`
// does (each system named after its name in the package).
func (s *MachineService) Import(ctx context.Context, path string, progress ProgressFunc) (ImportSummary, error) {
	res, err := portable.Import(ctx, s.store, path, portable.ImportOptions{Progress: machineProgress("converting disks", progress)})
	var sum ImportSummary
	if res != nil {
		sum.Notes = res.Notes
		for _, vm := range res.VMs {
			sum.Names = append(sum.Names, vm.Name)
			sum.Dropped = append(sum.Dropped, vm.Dropped...)
		}
	}
	return sum, err
}

// Update implements Service. A running VM can only change its ISO (a live
// media change through QMP, also saved for the next boot).
func (s *MachineService) Update(ctx context.Context, name string, set Settings) error {
	spec, err := s.store.Load(name)
	if err != nil {
		return err
	}
	st, err := s.store.Status(ctx, name)
	if err != nil {
		return err
	}
	if st.State.Active() {
		if spec.Boot.ISO == set.ISO {
			return nil
		}
		// A live media change through QMP, saved for the next boot too.
		if set.ISO == "" {
			_, err = s.store.EjectCDROM(ctx, name)
		} else {
			_, err = s.store.InsertCDROM(ctx, name, set.ISO)
		}
		return err
	}
	// Read, change and write under the VM lock: a CLI change at the same
	// time is not lost.
	return s.store.Update(ctx, name, func(spec *machine.Spec) error {
		if st, err := s.store.Status(ctx, name); err != nil {
			return err
		} else if st.State.Active() {
			return fmt.Errorf("edit %q: %w: stop it first", name, machine.ErrRunning)
		}
		spec.CPUs, spec.Memory = set.CPUs, machine.Size(set.MemoryMiB)*machine.MiB
		spec.Boot.ISO, spec.Boot.Order = set.ISO, bootLetters(set.BootOrder)
		spec.Display, spec.Accel = set.Display, set.Accel
		switch {
		case set.Net == emulator.NetNone:
			spec.NICs = nil
		case len(spec.NICs) == 0:
			spec.NICs = []machine.NICSpec{{Mode: set.Net, MAC: machine.NewMAC()}}
		default:
			spec.NICs[0].Mode = set.Net
		}
		if len(spec.NICs) > 0 {
			spec.NICs[0].Forwards = nil
			for _, f := range set.Forwards {
				spec.NICs[0].Forwards = append(spec.NICs[0].Forwards, machine.Forward{Proto: f.Proto, HostAddr: orDefault(f.HostAddr, "127.0.0.1"), HostPort: f.HostPort, GuestPort: f.GuestPort})
			}
		}
		if err := machine.CheckSources(spec.Boot); err != nil {
			return fmt.Errorf("edit %q: %w", name, err)
		}
		return nil
	})
}

// Cmdline implements Service.
func (s *MachineService) Cmdline(ctx context.Context, name string) ([]string, error) {
	return s.store.Cmdline(ctx, name)
}

// Snapshots implements Service.
func (s *MachineService) Snapshots(ctx context.Context, name string) ([]Snapshot, error) {
	tree, err := s.store.Snapshots(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(tree.Snapshots))
	for _, sn := range tree.Snapshots {
		out = append(out, Snapshot{Name: sn.Tag, Created: sn.Time, SizeBytes: sn.Size, Current: sn.Current})
	}
	return out, nil
}

// SaveSnapshot implements Service.
func (s *MachineService) SaveSnapshot(ctx context.Context, name, snap string, progress ProgressFunc) error {
	_, err := s.store.SnapshotCreate(ctx, name, snap, machine.SnapshotOptions{Progress: machineProgress("saving", progress)})
	return err
}

// RestoreSnapshot implements Service.
func (s *MachineService) RestoreSnapshot(ctx context.Context, name, snap string, progress ProgressFunc) error {
	return s.store.SnapshotRestore(ctx, name, snap, machine.SnapshotOptions{Progress: machineProgress("loading", progress)})
}

// DeleteSnapshot implements Service.
func (s *MachineService) DeleteSnapshot(ctx context.Context, name, snap string) error {
	return s.store.SnapshotDelete(ctx, name, snap, machine.SnapshotOptions{})
}

// serialScrollback is how much of serial.log the console view starts with.
const serialScrollback = 64 << 10

// SerialAttach implements Service.
func (s *MachineService) SerialAttach(ctx context.Context, name string) (*Serial, error) {
	p := s.store.Paths(name)
	st, err := s.store.Status(ctx, name)
	if err != nil {
		return nil, err
	}
	if !st.State.Active() {
		return nil, WithFix(fmt.Errorf("attach serial %q: machine is %s", name, st.State), "start it first (s)")
	}
	back, _ := tail(p.SerialLog, serialScrollback)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := console.AttachSerial(actx, p.Serial)
	if err != nil {
		if errors.Is(err, console.ErrSerialBusy) {
			return nil, WithFix(err, "detach the other console (vlab console "+name+") first")
		}
		return nil, err
	}
	return &Serial{Conn: c, Scrollback: back}, nil
}

// tail returns up to max bytes from the end of a file.
func tail(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// LogTail implements Service.
func (s *MachineService) LogTail(ctx context.Context, name string, max int) (string, error) {
	b, err := tail(s.store.Paths(name).QEMULog, int64(max))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // never started: no log yet
	}
	if err != nil {
		return "", fmt.Errorf("read qemu.log of %q: %w", name, err)
	}
	return string(b), nil
}

// HMP implements Service through the store's human-monitor-command.
func (s *MachineService) HMP(ctx context.Context, name, line string) (string, error) {
	out, err := s.store.HMP(ctx, name, line)
	if errors.Is(err, machine.ErrNotRunning) {
		return "", WithFix(err, "start it first (s)")
	}
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(out, "\r\n", "\n"), nil
}

// TraceTail implements Service: the end of machine.TraceLog.
func (s *MachineService) TraceTail(ctx context.Context, name string, max int) (string, error) {
	b, err := tail(machine.TraceLog(s.store.Paths(name)), int64(max))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // never traced: no log yet
	}
	if err != nil {
		return "", fmt.Errorf("read trace.log of %q: %w", name, err)
	}
	return string(b), nil
}

// HostLimits implements Service.
func (s *MachineService) HostLimits(ctx context.Context) (HostLimits, error) {
	l := HostLimits{CPUs: runtime.NumCPU()}
	if h, err := s.store.Host(ctx); err == nil {
		l.MemoryMiB = h.MemTotalMiB
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(s.store.Dirs().Data, &fs); err == nil {
		l.FreeDiskBytes = int64(fs.Bavail) * int64(fs.Bsize)
	}
	return l, nil
}

// Profiles implements Service.
func (s *MachineService) Profiles(ctx context.Context) ([]Profile, error) {
	var out []Profile
	for _, p := range profiles.List() {
		out = append(out, Profile{Name: p.Name, Description: p.Title, Arch: p.Arch, MemoryMiB: p.MemoryMiB, CPUs: p.CPUs, DiskBytes: p.DiskBytes(), Net: p.Net})
	}
	if len(out) == 0 {
		return DefaultProfiles(), nil
	}
	return out, nil
}

// ValidateName implements Service.
func (s *MachineService) ValidateName(name string) error {
	if err := machine.ValidateName(name); err != nil {
		return err
	}
	if _, err := os.Stat(s.store.Paths(name).Dir); err == nil {
		return fmt.Errorf("name %q is taken", name)
	}
	return nil
}

// Changes implements Service: the store's watcher (file notifications and
// one QMP event subscription per running VM). When it cannot run (no
// inotify), the stream is empty and closes with ctx: the screen then shows
// what this TUI does and what a key press re-reads.
func (s *MachineService) Changes(ctx context.Context) <-chan Change {
	in, err := s.store.Watch(ctx)
	if err != nil {
		out := make(chan Change)
		context.AfterFunc(ctx, func() { close(out) })
		return out
	}
	return in
}

// Get implements Service: one VM as List reads it.
func (s *MachineService) Get(ctx context.Context, name string) (VM, error) {
	if err := machine.ValidateName(name); err != nil {
		return VM{}, err
	}
	if _, err := os.Stat(s.store.Paths(name).Spec); errors.Is(err, fs.ErrNotExist) {
		s.mu.Lock()
		delete(s.running, name)
		s.mu.Unlock()
		return VM{}, fmt.Errorf("vm %q: %w", name, ErrNoMachine)
	}
	host, _ := s.store.Host(ctx)
	vm := s.vm(ctx, name, host)
	if !vm.State.Active() {
		s.mu.Lock()
		delete(s.running, name)
		s.mu.Unlock()
	}
	return vm, nil
}

// sshTarget is Store.SSHTarget with the TUI's fixes on its errors.
func (s *MachineService) sshTarget(ctx context.Context, name string) (machine.SSHTarget, error) {
	t, err := s.store.SSHTarget(ctx, name, "")
	switch {
	case errors.Is(err, machine.ErrNotRunning):
		return t, WithFix(err, "start it first (s)")
	case errors.Is(err, machine.ErrNoSSH):
		return t, WithFix(err, "add tcp:auto:22 in its port forwards (f)")
	}
	return t, err
}

// lookSSH finds ssh or scp.
func lookSSH(bin string) (string, error) {
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", WithFix(fmt.Errorf("%s not found", bin), "install openssh-client (apt-get install openssh-client)")
	}
	return p, nil
}

// SSH implements Service: `vlab ssh NAME`'s argv, with a terminal.
func (s *MachineService) SSH(ctx context.Context, name string) ([]string, error) {
	t, err := s.sshTarget(ctx, name)
	if err != nil {
		return nil, err
	}
	bin, err := lookSSH("ssh")
	if err != nil {
		return nil, err
	}
	return append([]string{bin}, t.SSHArgs(true, "")...), nil
}

// Copy implements Service as `vlab cp` does: scp -r through the machine's
// SSH forward; scp's last words become the error.
func (s *MachineService) Copy(ctx context.Context, name string, c CopyRequest) error {
	argv, err := s.copyArgv(ctx, name, c)
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		why := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(why, '\n'); i >= 0 {
			why = why[i+1:]
		}
		if why == "" {
			why = err.Error()
		}
		return WithFix(fmt.Errorf("copy %s: scp failed: %s", copyText(name, c), why), "check both paths")
	}
	return nil
}

// copyArgv checks a copy as `vlab cp` does and returns its scp argv.
func (s *MachineService) copyArgv(ctx context.Context, name string, c CopyRequest) ([]string, error) {
	if err := checkCopy(name, c); err != nil {
		return nil, err
	}
	t, err := s.sshTarget(ctx, name)
	if err != nil {
		return nil, err
	}
	bin, err := lookSSH("scp")
	if err != nil {
		return nil, err
	}
	src, dst := c.HostPath, t.Remote(c.GuestPath)
	if !c.ToVM {
		src, dst = dst, src
	}
	return append([]string{bin}, t.SCPArgs(true, src, dst)...), nil // -r: folders and files alike
}

// checkCopy refuses what `vlab cp` refuses: an empty path, a relative host
// path, an upload of a host path that does not exist.
func checkCopy(name string, c CopyRequest) error {
	switch {
	case c.HostPath == "" || c.GuestPath == "":
		return fmt.Errorf("copy %s: empty path: give both the host and the guest path", copyText(name, c))
	case !filepath.IsAbs(c.HostPath):
		return fmt.Errorf("copy %s: the host path must be absolute", copyText(name, c))
	case c.ToVM && !machine.LocalExists(c.HostPath):
		return WithFix(fmt.Errorf("copy %s: %s does not exist on the host", copyText(name, c), c.HostPath), "check the path")
	}
	return nil
}

// copyText writes a copy as `vlab cp` arguments: SRC DST, the guest side
// NAME:PATH.
func copyText(name string, c CopyRequest) string {
	if c.ToVM {
		return c.HostPath + " " + name + ":" + c.GuestPath
	}
	return name + ":" + c.GuestPath + " " + c.HostPath
}

// Shares implements Service.
func (s *MachineService) Shares(ctx context.Context, name string) ([]ShareView, error) {
	return s.store.ShareViews(name)
}

// stoppedUpdate changes a stopped machine's spec under its lock; a running
// one is refused with the fix.
func (s *MachineService) stoppedUpdate(ctx context.Context, name, op string, fn func(*machine.Spec) error) error {
	return s.store.Update(ctx, name, func(spec *machine.Spec) error {
		st, err := s.store.Status(ctx, name)
		if err != nil {
			return err
		}
		if st.State.Active() {
			return WithFix(fmt.Errorf("%s %q: %w: shared folders change only while it is stopped", op, name, machine.ErrRunning), "stop it first (x)")
		}
		return fn(spec)
	})
}

// AddShare implements Service with `vlab edit --share`'s checks.
func (s *MachineService) AddShare(ctx context.Context, name string, sh Share) (Share, error) {
	sh = normShare(sh)
	if err := sh.Validate(); err != nil {
		return Share{}, err
	}
	err := s.stoppedUpdate(ctx, name, "share a folder with", func(spec *machine.Spec) error {
		if err := service.CheckNewShare(spec.Shares, sh); err != nil {
			return err
		}
		spec.Shares = append(spec.Shares, sh)
		return nil
	})
	return sh, err
}

// normShare makes a share's folder absolute and gives it its default tag,
// as machine.ParseShare does.
func normShare(sh Share) Share {
	if sh.HostDir != "" {
		sh.HostDir = absPath(sh.HostDir)
	}
	if sh.Tag == "" && sh.HostDir != "" {
		sh.Tag = filepath.Base(sh.HostDir)
	}
	return sh
}

// RemoveShare implements Service (`vlab edit --unshare TAG`).
func (s *MachineService) RemoveShare(ctx context.Context, name, tag string) error {
	return s.stoppedUpdate(ctx, name, "unshare a folder of", func(spec *machine.Spec) error {
		i := slices.IndexFunc(spec.Shares, func(sh machine.Share) bool { return sh.Tag == tag })
		if i < 0 {
			return fmt.Errorf("unshare %s: %s has no share with that tag", tag, name)
		}
		spec.Shares = slices.Delete(spec.Shares, i, i+1)
		return nil
	})
}
