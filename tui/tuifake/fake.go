// Package tuifake is an in-memory tui Service for tests and bench/tui. It
// is imported only by tests and benchmarks: the vlab binary does not
// contain it (TestBinaryHasNoFake).
package tuifake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"vlab/emulator"
	"vlab/machine"
	"vlab/tui/service"
)

// Service is an in-memory service.Service for model tests, teatest flows and the
// benchmark. Operations change state at once (or after StartDelay), signal
// Changes, and can be made to fail with FailNext. It is safe for concurrent
// use.
type Service struct {
	mu        sync.Mutex
	vms       map[string]*service.VM
	snaps     map[string][]service.Snapshot
	logs      map[string]string
	traces    map[string]string // trace.log text per machine
	hmp       []string          // monitor lines run, as "name: line"
	fail      map[string]error
	subs      []chan service.Change
	limits    service.HostLimits
	profiles  []service.Profile
	calls     []string
	lists     int // List calls
	gets      int // Get calls
	serialOut map[string][]byte
	autoPort  int               // the last host port handed to an auto forward
	linkedTo  map[string]string // linked clone -> its source
	exports   []ExportCall
	gallery   []service.GalleryEntry
	created   []service.NewVM   // every NewVM Create was asked for
	users     map[string]string // login user of machines made from an image
	sshArgv   [][]string        // SSH answers handed out
	copies    []CopyCall        // Copy calls that passed the checks

	// StartDelay, when set, keeps a started machine in service.StateStarting for
	// that long before it turns running (to exercise live updates).
	StartDelay time.Duration
	// JobSteps is how many progress reports Create/Clone/snapshot jobs send.
	JobSteps int
	// OnProgress, when set, sees every progress report of a job after it
	// was sent (a test can hold a job there to look at its progress).
	OnProgress func(service.Progress)
}

// New returns an empty fake with a 4-CPU, 8 GiB, 100 GiB-free host
// and the default per-arch profiles plus two OS presets.
func New() *Service {
	return &Service{
		vms:       map[string]*service.VM{},
		linkedTo:  map[string]string{},
		snaps:     map[string][]service.Snapshot{},
		logs:      map[string]string{},
		traces:    map[string]string{},
		fail:      map[string]error{},
		serialOut: map[string][]byte{},
		limits:    service.HostLimits{CPUs: 4, MemoryMiB: 8192, FreeDiskBytes: 100 << 30},
		profiles: append([]service.Profile{
			{Name: "debian-12", Description: "Debian 12 (bookworm)", Arch: emulator.ArchX86_64, MemoryMiB: 2048, CPUs: 2, DiskBytes: 20 << 30},
			{Name: "alpine-arm64", Description: "Alpine Linux for ARM64", Arch: emulator.ArchAArch64, MemoryMiB: 512, CPUs: 1, DiskBytes: 2 << 30},
		}, service.DefaultProfiles()...),
		gallery:  DefaultGallery(),
		users:    map[string]string{},
		JobSteps: 4,
	}
}

// DefaultGallery is the fake's gallery: cloud images and installer ISOs
// for x86_64 and aarch64, shaped like vlab's own.
func DefaultGallery() []service.GalleryEntry {
	e := func(id, title, arch, kind, profile, file string) service.GalleryEntry {
		return service.GalleryEntry{ID: id, Title: title, Arch: arch, Kind: kind, Profile: profile,
			URL: "https://images.example.org/" + id + "/" + file, SHA256: strings.Repeat("ab", 32)}
	}
	return []service.GalleryEntry{
		e("debian-12", "Debian 12 (bookworm) generic cloud image", "x86_64", service.KindCloud, "linux-bios", "debian-12-genericcloud-amd64.qcow2"),
		e("debian-12", "Debian 12 (bookworm) generic cloud image", "aarch64", service.KindCloud, "debian-arm64", "debian-12-genericcloud-arm64.qcow2"),
		e("debian-12-netinst", "Debian 12 network installer", "x86_64", service.KindISO, "debian", "debian-12.8.0-amd64-netinst.iso"),
		e("ubuntu-24.04", "Ubuntu 24.04 LTS cloud image", "x86_64", service.KindCloud, "ubuntu", "ubuntu-24.04-server-cloudimg-amd64.img"),
		e("fedora-41", "Fedora 41 Cloud Base", "x86_64", service.KindCloud, "linux-bios", "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2"),
		e("alpine-3.20", "Alpine Linux 3.20 standard ISO", "x86_64", service.KindISO, "linux-bios", "alpine-standard-3.20.3-x86_64.iso"),
	}
}

// SetGallery replaces the gallery.
func (f *Service) SetGallery(g []service.GalleryEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gallery = append([]service.GalleryEntry(nil), g...)
}

// Created returns every NewVM Create was asked for (also the failed ones),
// in order.
func (f *Service) Created() []service.NewVM {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]service.NewVM(nil), f.created...)
}

// SSHArgvs returns the argvs SSH handed out, in order.
func (f *Service) SSHArgvs() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.sshArgv...)
}

// CopyCall is one Copy that passed the checks: the request and the scp
// argv the real service would run for it (the fake runs nothing).
type CopyCall struct {
	Name string
	Req  service.CopyRequest
	Argv []string
}

// Copies returns the copies made so far.
func (f *Service) Copies() []CopyCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CopyCall(nil), f.copies...)
}

// Machine returns a stopped machine named name with one disk and one
// user-mode NIC, to adjust and Add.
func Machine(name string, a emulator.Arch) service.VM { return *fakeVM(name, a) }

// MakeRunning turns vm (not yet added) into a running machine: sockets,
// guest address, bound forwards.
func (f *Service) MakeRunning(vm *service.VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setRunning(vm)
}

// AddSnapshot adds a snapshot to machine name.
func (f *Service) AddSnapshot(name string, snap service.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snaps[name] = append(f.snaps[name], snap)
}

// AddProfile offers one more OS preset.
func (f *Service) AddProfile(p service.Profile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.profiles = append(f.profiles, p)
}

// Epoch is the fixed time the fake's dates start from.
var Epoch = fakeEpoch

// fakeEpoch is a fixed time so golden screens do not change between runs.
var fakeEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// Add defines vm as is (tests use it to set up any state).
func (f *Service) Add(vm service.VM) {
	f.mu.Lock()
	v := vm
	f.vms[vm.Name] = &v
	f.mu.Unlock()
	f.notify(vm.Name)
}

// Populate defines n machines named vm-000..., the first running of them
// running, with a mix of arches (the benchmark's library).
func (f *Service) Populate(n, running int) {
	arches := emulator.Arches
	f.mu.Lock()
	for i := 0; i < n; i++ {
		a := arches[i%len(arches)]
		vm := fakeVM(fmt.Sprintf("vm-%03d", i), a)
		if i < running {
			f.setRunning(vm)
			vm.CPUPercent = float64(i%7) * 3.5
			vm.Uptime = time.Duration(i+1) * 17 * time.Minute
		}
		f.vms[vm.Name] = vm
	}
	names := make([]string, 0, len(f.vms))
	for n := range f.vms {
		names = append(names, n)
	}
	f.mu.Unlock()
	f.notify(names...)
}

// SetLimits replaces the host limits.
func (f *Service) SetLimits(l service.HostLimits) {
	f.mu.Lock()
	f.limits = l
	f.mu.Unlock()
}

// SetLog sets the qemu.log text of a machine.
func (f *Service) SetLog(name, text string) {
	f.mu.Lock()
	f.logs[name] = text
	f.mu.Unlock()
}

// SetTraceLog sets the trace.log text of a machine.
func (f *Service) SetTraceLog(name, text string) {
	f.mu.Lock()
	f.traces[name] = text
	f.mu.Unlock()
}

// HMPLines returns the monitor command lines run so far, each as
// "NAME: LINE" (HMP is also in Calls as "HMP NAME").
func (f *Service) HMPLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.hmp...)
}

// SetSerialOutput sets what a machine's serial console printed so far.
func (f *Service) SetSerialOutput(name string, b []byte) {
	f.mu.Lock()
	f.serialOut[name] = append([]byte(nil), b...)
	f.mu.Unlock()
}

// FailNext makes the next call of op (a method name, e.g. "Start") fail
// with err.
func (f *Service) FailNext(op string, err error) {
	f.mu.Lock()
	f.fail[op] = err
	f.mu.Unlock()
}

// SetState changes a machine's state from outside (as another vlab or the
// CLI would) and signals Changes.
func (f *Service) SetState(name string, s service.State) {
	f.mu.Lock()
	if vm, ok := f.vms[name]; ok {
		if s == service.StateRunning {
			f.setRunning(vm)
		} else {
			vm.State = s
		}
	}
	f.mu.Unlock()
	f.notify(name)
}

// Calls returns the operations called so far, as "Op name" strings.
func (f *Service) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// service.VM returns a copy of one machine.
func (f *Service) VM(name string) (service.VM, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm, ok := f.vms[name]
	if !ok {
		return service.VM{}, false
	}
	return *vm, true
}

func fakeVM(name string, a emulator.Arch) *service.VM {
	return &service.VM{
		Name:        name,
		Profile:     a.String(),
		Arch:        a,
		State:       service.StateStopped,
		Accel:       emulator.AccelTCG,
		AccelReason: "TCG: /dev/kvm opens but the CPU has no vmx/svm",
		CPUs:        1,
		MemoryMiB:   512,
		Disks: []service.DiskInfo{{
			Disk:         emulator.Disk{Path: "/var/lib/vlab/" + name + "/disk0.qcow2", Format: "qcow2", Bus: "virtio", NodeName: "hd0"},
			VirtualBytes: 8 << 30, ActualBytes: 196 << 20,
		}},
		NICs:    []service.NIC{{ID: "net0", Kind: emulator.NetUser, Mode: "user", Model: "virtio-net-pci", MAC: fakeMAC(name)}},
		Display: emulator.DisplayVNC,
	}
}

func fakeMAC(name string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", byte(h>>16), byte(h>>8), byte(h))
}

// setRunning marks vm running with its runtime endpoints, its forwards
// bound (auto ones to ports from 40000 up) and its user-mode guests at
// QEMU's DHCP address. Caller holds mu.
func (f *Service) setRunning(vm *service.VM) {
	vm.State = service.StateRunning
	dir := "/run/user/0/vlab/" + vm.Name
	vm.VNC, vm.Serial, vm.QMP = dir+"/vnc.sock", dir+"/serial.sock", dir+"/qmp.sock"
	vm.LastError = ""
	for i := range vm.NICs {
		n := &vm.NICs[i]
		if n.Kind != emulator.NetUser {
			continue
		}
		n.GuestIP, n.GuestIPSource = "10.0.2.15", "user-mode DHCP address (where forwards go)"
		for k := range n.Forwards {
			n.Forwards[k].BoundPort, n.Forwards[k].Note = f.bindPort(n.Forwards[k].Rule), ""
		}
	}
}

// bindPort is the host port a forward gets: its own, or the next free one
// for an auto forward. Caller holds mu.
func (f *Service) bindPort(r emulator.Forward) int {
	if r.HostPort != 0 {
		return r.HostPort
	}
	if f.autoPort == 0 {
		f.autoPort = 40000
	}
	f.autoPort++
	return f.autoPort
}

func setStopped(vm *service.VM) {
	vm.State = service.StateStopped
	vm.VNC, vm.Serial, vm.QMP = "", "", ""
	vm.CPUPercent, vm.RSSBytes, vm.Uptime = 0, 0, 0
	for i := range vm.NICs {
		vm.NICs[i].GuestIP, vm.NICs[i].GuestIPSource = "", ""
		for k := range vm.NICs[i].Forwards {
			vm.NICs[i].Forwards[k].BoundPort, vm.NICs[i].Forwards[k].Note = 0, ""
		}
	}
}

// copyNICs copies NICs with their forwards, so a copy handed out never
// shares memory with the fake's own state.
func copyNICs(nics []service.NIC) []service.NIC {
	if nics == nil {
		return nil
	}
	out := append([]service.NIC(nil), nics...)
	for i := range out {
		out[i].Forwards = append([]service.PortForward(nil), out[i].Forwards...)
	}
	return out
}

// begin records a call and returns an injected failure, if any.
// Caller holds mu.
func (f *Service) begin(op, name string) error {
	f.calls = append(f.calls, strings.TrimSpace(op+" "+name))
	if err, ok := f.fail[op]; ok {
		delete(f.fail, op)
		return err
	}
	return nil
}

// notify sends a Change (a file change, no event) for each of names.
func (f *Service) notify(names ...string) {
	for _, n := range names {
		f.send(service.Change{Name: n})
	}
}

func (f *Service) send(c service.Change) {
	f.mu.Lock()
	subs := append([]chan service.Change(nil), f.subs...)
	f.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- c:
		default: // the subscriber is far behind: like a lost inotify event
		}
	}
}

// SetCPU sets the CPU% a running machine shows (a figure, not a change:
// nothing is signalled).
func (f *Service) SetCPU(name string, pct float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vm, ok := f.vms[name]; ok {
		vm.CPUPercent = pct
	}
}

// Reads returns how many times List and Get were called.
func (f *Service) Reads() (lists, gets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.gets
}

// Event acts like QMP event ev (STOP, RESUME, SHUTDOWN...) of a running
// machine: the state changes as QEMU's would and a Change carrying the
// event is sent.
func (f *Service) Event(name, ev string) {
	f.mu.Lock()
	if vm, ok := f.vms[name]; ok {
		if st, ok := machine.EventState(ev); ok {
			vm.State = st
		}
	}
	f.mu.Unlock()
	f.send(service.Change{Name: name, Event: ev})
}

// Changes implements service.Service.
func (f *Service) Changes(ctx context.Context) <-chan service.Change {
	ch := make(chan service.Change, 1024)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		for i, c := range f.subs {
			if c == ch {
				f.subs = append(f.subs[:i], f.subs[i+1:]...)
				break
			}
		}
		f.mu.Unlock()
		close(ch)
	}()
	return ch
}

// Get implements service.Service.
func (f *Service) Get(ctx context.Context, name string) (service.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if err := f.fail["Get"]; err != nil {
		delete(f.fail, "Get")
		return service.VM{}, err
	}
	vm, ok := f.vms[name]
	if !ok {
		return service.VM{}, fmt.Errorf("machine %q: %w", name, service.ErrNoMachine)
	}
	v := *vm
	v.NICs = copyNICs(vm.NICs)
	v.Shares = append([]service.Share(nil), vm.Shares...)
	v.Snapshots = len(f.snaps[vm.Name])
	return v, nil
}

// List implements service.Service.
func (f *Service) List(ctx context.Context) ([]service.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if err := f.fail["List"]; err != nil {
		delete(f.fail, "List")
		return nil, err
	}
	out := make([]service.VM, 0, len(f.vms))
	for _, vm := range f.vms {
		v := *vm
		v.NICs = copyNICs(vm.NICs)
		v.Shares = append([]service.Share(nil), vm.Shares...)
		v.Snapshots = len(f.snaps[vm.Name])
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stats implements service.Service.
func (f *Service) Stats(ctx context.Context) ([]service.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []service.Stats
	for _, vm := range f.vms {
		if vm.State == service.StateRunning {
			out = append(out, service.Stats{Name: vm.Name, CPUPercent: vm.CPUPercent, RSSBytes: vm.RSSBytes, Uptime: vm.Uptime})
		}
	}
	return out, nil
}

func (f *Service) get(name string) (*service.VM, error) {
	vm, ok := f.vms[name]
	if !ok {
		return nil, fmt.Errorf("machine %q not found", name)
	}
	return vm, nil
}

// Create implements service.Service.
func (f *Service) Create(ctx context.Context, spec service.NewVM, progress service.ProgressFunc) error {
	f.mu.Lock()
	f.created = append(f.created, spec)
	err := f.begin("Create", spec.Name)
	if err == nil {
		err = f.validateNameLocked(spec.Name)
	}
	var iso, img *service.GalleryEntry
	if err == nil && spec.OS != "" {
		iso, err = f.findLocked(spec.OS, spec.Arch, service.KindISO)
	}
	if err == nil && spec.Image != "" && !strings.ContainsAny(spec.Image, "/") {
		img, err = f.findLocked(spec.Image, spec.Arch, service.KindCloud)
	}
	f.mu.Unlock()
	if err == nil {
		err = machine.CheckShares(spec.Shares)
	}
	if err != nil {
		return err
	}
	// Downloads report their bytes, as the real one does.
	switch {
	case iso != nil:
		if err := f.job(ctx, "downloading "+iso.ID, 600<<20, progress); err != nil {
			return err
		}
		spec.ISO = "/var/cache/vlab/isos/" + iso.ID + "-" + iso.Arch + ".iso"
	case img != nil:
		if err := f.job(ctx, "downloading "+img.ID, 400<<20, progress); err != nil {
			return err
		}
	case strings.HasPrefix(spec.Image, "http://") || strings.HasPrefix(spec.Image, "https://"):
		if err := f.job(ctx, "downloading "+filepath.Base(spec.Image), 400<<20, progress); err != nil {
			return err
		}
	}
	switch {
	case spec.Image != "":
		if err := f.job(ctx, "copying the image", 100, progress); err != nil {
			return err
		}
		spec.DiskBytes = max(spec.DiskBytes, 2<<30)
	case spec.DiskBytes > 0:
		if err := f.job(ctx, "creating disk", spec.DiskBytes, progress); err != nil {
			return err
		}
	}
	vm := fakeVM(spec.Name, spec.Arch)
	vm.Profile, vm.CPUs, vm.MemoryMiB = spec.Profile, spec.CPUs, spec.MemoryMiB
	vm.ISO, vm.Kernel, vm.Initrd, vm.Append = spec.ISO, spec.Kernel, spec.Initrd, spec.Append
	vm.Display = spec.Display
	if spec.DiskBytes > 0 {
		vm.Disks[0].VirtualBytes, vm.Disks[0].ActualBytes = spec.DiskBytes, 192<<10
	} else {
		vm.Disks = nil
	}
	if spec.Net == emulator.NetNone {
		vm.NICs = nil
	} else {
		vm.NICs[0].Forwards = service.PortForwards(spec.Forwards)
		vm.NICs[0].Kind, vm.NICs[0].Mode = spec.Net, string(spec.Net)
		if spec.MAC != "" {
			vm.NICs[0].MAC = spec.MAC
		}
	}
	if spec.ISO != "" {
		vm.BootOrder = "cd"
	}
	vm.Shares = append([]service.Share(nil), spec.Shares...)
	f.mu.Lock()
	if spec.Image != "" { // as `vlab create --image`: a login user and an SSH forward
		f.users[vm.Name] = orDefault(spec.User, "vlab")
		if len(vm.NICs) > 0 && (vm.NICs[0].Kind == emulator.NetUser || vm.NICs[0].Kind == emulator.NetSandbox) {
			vm.NICs[0].Forwards = append(vm.NICs[0].Forwards, service.PortForward{Rule: emulator.Forward{Proto: "tcp", HostAddr: "127.0.0.1", GuestPort: 22}})
		}
	}
	f.vms[vm.Name] = vm
	f.mu.Unlock()
	f.notify(vm.Name)
	return nil
}

// job reports steps of progress for a pretend long job.
func (f *Service) job(ctx context.Context, step string, total int64, progress service.ProgressFunc) error {
	n := int64(f.JobSteps)
	for i := int64(1); i <= n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := service.Progress{Step: step, Done: total * i / n, Total: total}
		if progress != nil {
			progress(p)
		}
		if f.OnProgress != nil {
			f.OnProgress(p)
		}
	}
	return nil
}

// PreviewCmdline implements service.Service.
func (f *Service) PreviewCmdline(ctx context.Context, spec service.NewVM) ([]string, error) {
	f.mu.Lock()
	err := f.begin("PreviewCmdline", spec.Name)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return fakeArgv(spec.Name, spec.Arch, spec.MemoryMiB, spec.CPUs, spec.ISO, spec.Kernel, spec.Initrd, spec.Append, spec.Net, spec.Forwards), nil
}

func fakeArgv(name string, a emulator.Arch, mem, cpus int, iso, kernel, initrd, appendArgs string, net emulator.NetMode, fwd []emulator.Forward) []string {
	dir := "/run/user/0/vlab/" + name
	argv := []string{"qemu-system-" + a.String(), "-name", name, "-machine", "q35", "-accel", "tcg,thread=multi",
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-drive", "file=/var/lib/vlab/" + name + "/disk0.qcow2,if=virtio,format=qcow2"}
	if iso != "" {
		argv = append(argv, "-cdrom", iso, "-boot", "order=dc")
	}
	if kernel != "" {
		argv = append(argv, "-kernel", kernel)
		if initrd != "" {
			argv = append(argv, "-initrd", initrd)
		}
		if appendArgs != "" {
			argv = append(argv, "-append", appendArgs)
		}
	}
	if net == emulator.NetUser {
		nd := "user,id=net0"
		for _, fw := range fwd {
			nd += fmt.Sprintf(",hostfwd=%s:127.0.0.1:%d-:%d", fw.Proto, fw.HostPort, fw.GuestPort)
		}
		argv = append(argv, "-netdev", nd, "-device", "virtio-net-pci,netdev=net0")
	} else {
		argv = append(argv, "-nic", "none")
	}
	return append(argv, "-qmp", "unix:"+dir+"/qmp.sock,server=on,wait=off",
		"-vnc", "unix:"+dir+"/vnc.sock", "-serial", "unix:"+dir+"/serial.sock,server=on,wait=off",
		"-daemonize", "-pidfile", dir+"/qemu.pid")
}

func (f *Service) simple(op, name string, fn func(vm *service.VM) error) error {
	f.mu.Lock()
	err := f.begin(op, name)
	if err == nil {
		var vm *service.VM
		vm, err = f.get(name)
		if err == nil {
			err = fn(vm)
		}
	}
	f.mu.Unlock()
	if err == nil {
		f.notify(name)
	}
	return err
}

// Start implements service.Service.
func (f *Service) Start(ctx context.Context, name string) error {
	err := f.simple("Start", name, func(vm *service.VM) error {
		if vm.State.Active() {
			return fmt.Errorf("start %q: already %s", name, vm.State)
		}
		if f.StartDelay > 0 {
			vm.State = service.StateStarting
			return nil
		}
		f.setRunning(vm)
		return nil
	})
	if err == nil && f.StartDelay > 0 {
		time.AfterFunc(f.StartDelay, func() { f.SetState(name, service.StateRunning) })
	}
	return err
}

// Stop implements service.Service.
func (f *Service) Stop(ctx context.Context, name string, force bool) error {
	op := "Stop"
	if force {
		op = "ForceStop"
	}
	return f.simple(op, name, func(vm *service.VM) error {
		if !vm.State.Active() {
			return fmt.Errorf("stop %q: not running", name)
		}
		setStopped(vm)
		return nil
	})
}

// Pause implements service.Service.
func (f *Service) Pause(ctx context.Context, name string) error {
	return f.simple("Pause", name, func(vm *service.VM) error {
		if vm.State != service.StateRunning {
			return fmt.Errorf("pause %q: not running", name)
		}
		vm.State = service.StatePaused
		return nil
	})
}

// Resume implements service.Service.
func (f *Service) Resume(ctx context.Context, name string) error {
	return f.simple("Resume", name, func(vm *service.VM) error {
		if vm.State != service.StatePaused {
			return fmt.Errorf("resume %q: not paused", name)
		}
		vm.State = service.StateRunning
		return nil
	})
}

// Reset implements service.Service.
func (f *Service) Reset(ctx context.Context, name string) error {
	return f.simple("Reset", name, func(vm *service.VM) error {
		if !vm.State.Active() {
			return fmt.Errorf("reset %q: not running", name)
		}
		vm.Uptime = 0
		return nil
	})
}

// Delete implements service.Service.
func (f *Service) Delete(ctx context.Context, name string) error {
	return f.simple("Delete", name, func(vm *service.VM) error {
		if vm.State.Active() {
			return service.WithFix(fmt.Errorf("delete %q: machine is %s", name, vm.State), "stop it first (x)")
		}
		for clone, src := range f.linkedTo {
			if src == name {
				return service.WithFix(fmt.Errorf("delete %q: linked clone %q sits on its disks", name, clone), "delete "+clone+" first")
			}
		}
		delete(f.linkedTo, name)
		delete(f.vms, name)
		delete(f.snaps, name)
		return nil
	})
}

// Clone implements service.Service.
func (f *Service) Clone(ctx context.Context, src, dst string, linked bool, progress service.ProgressFunc) error {
	f.mu.Lock()
	err := f.begin("Clone", src)
	var vm *service.VM
	if err == nil {
		vm, err = f.get(src)
	}
	if err == nil {
		err = f.validateNameLocked(dst)
	}
	var c service.VM
	if err == nil {
		c = *vm
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if !linked { // a linked clone copies nothing
		if err := f.job(ctx, "copying disks", 1<<30, progress); err != nil {
			return err
		}
	}
	c.Name = dst
	setStopped(&c)
	c.NICs = copyNICs(c.NICs)
	for i := range c.NICs {
		c.NICs[i].MAC = fakeMAC(dst + c.NICs[i].ID)
	}
	f.mu.Lock()
	f.vms[dst] = &c
	if linked {
		f.linkedTo[dst] = src
	}
	f.mu.Unlock()
	f.notify(src, dst)
	return nil
}

// ExportCall is one Export the fake was asked for.
type ExportCall struct {
	Name, Out, Format string
}

// Exports returns the exports asked for so far (also in Calls as
// "Export NAME").
func (f *Service) Exports() []ExportCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ExportCall(nil), f.exports...)
}

// Export implements service.Service: it records the call, refuses an
// active machine like the real one, and writes nothing.
func (f *Service) Export(ctx context.Context, name, out, format string, progress service.ProgressFunc) (service.ExportSummary, error) {
	f.mu.Lock()
	err := f.begin("Export", name)
	var vm *service.VM
	if err == nil {
		vm, err = f.get(name)
	}
	var disks int
	if err == nil {
		switch {
		case vm.State.Active():
			err = service.WithFix(fmt.Errorf("export %q: it is %s", name, vm.State), "stop it first (x)")
		case format != service.FormatOVA && format != service.FormatOVF && format != service.FormatLibvirt:
			err = fmt.Errorf("export %q: format %q is unknown", name, format)
		default:
			disks = len(vm.Disks)
			f.exports = append(f.exports, ExportCall{Name: name, Out: out, Format: format})
		}
	}
	f.mu.Unlock()
	if err != nil {
		return service.ExportSummary{}, err
	}
	if err := f.job(ctx, "writing disks", 1<<30, progress); err != nil {
		return service.ExportSummary{}, err
	}
	sum := service.ExportSummary{Path: out, Disks: disks}
	if format == service.FormatLibvirt {
		sum.Notes = []string{"port forwards (user-mode NICs become libvirt's NAT network)"}
	}
	return sum, nil
}

// Import implements service.Service: it adds a stopped machine named after
// the package's file name (without its extension), refusing a taken name.
func (f *Service) Import(ctx context.Context, path string, progress service.ProgressFunc) (service.ImportSummary, error) {
	base := filepath.Base(path)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	f.mu.Lock()
	err := f.begin("Import", path)
	if err == nil {
		if verr := f.validateNameLocked(name); verr != nil {
			err = fmt.Errorf("import %s: %w", path, verr)
		}
	}
	f.mu.Unlock()
	if err != nil {
		return service.ImportSummary{}, err
	}
	if err := f.job(ctx, "converting disks", 1<<30, progress); err != nil {
		return service.ImportSummary{}, err
	}
	f.mu.Lock()
	f.vms[name] = fakeVM(name, emulator.ArchX86_64)
	f.mu.Unlock()
	f.notify(name)
	return service.ImportSummary{Names: []string{name}, Dropped: []string{"sound card"}}, nil
}

// Update implements service.Service.
func (f *Service) Update(ctx context.Context, name string, s service.Settings) error {
	return f.simple("Update", name, func(vm *service.VM) error {
		cur := service.SettingsOf(*vm)
		if vm.State.Active() && (s.MemoryMiB != cur.MemoryMiB || s.CPUs != cur.CPUs) {
			return fmt.Errorf("update %q: memory and CPUs need a stopped machine", name)
		}
		vm.MemoryMiB, vm.CPUs, vm.ISO, vm.BootOrder = s.MemoryMiB, s.CPUs, s.ISO, s.BootOrder
		vm.Display, vm.Accel = s.Display, s.Accel
		if s.Net == emulator.NetNone {
			vm.NICs = nil
		} else {
			if len(vm.NICs) == 0 {
				vm.NICs = []service.NIC{{ID: "net0", Model: "virtio-net-pci", MAC: fakeMAC(name)}}
			}
			vm.NICs[0].Kind, vm.NICs[0].Mode, vm.NICs[0].Forwards = s.Net, string(s.Net), service.PortForwards(s.Forwards)
		}
		return nil
	})
}

// Cmdline implements service.Service.
func (f *Service) Cmdline(ctx context.Context, name string) ([]string, error) {
	var argv []string
	err := f.simple("Cmdline", name, func(vm *service.VM) error {
		var fwd []emulator.Forward
		net := emulator.NetNone
		if len(vm.NICs) > 0 {
			net, fwd = vm.NICs[0].Kind, service.ForwardRules(vm.NICs[0].Forwards)
		}
		argv = fakeArgv(vm.Name, vm.Arch, vm.MemoryMiB, vm.CPUs, vm.ISO, vm.Kernel, vm.Initrd, vm.Append, net, fwd)
		return nil
	})
	return argv, err
}

// forwardNIC returns the index of the service.NIC a forward goes to: nic when it
// is a user-mode service.NIC, with -1 the first user-mode one.
func forwardNIC(vm *service.VM, nic int) (int, error) {
	if nic >= len(vm.NICs) {
		return 0, fmt.Errorf("vm %q has no nic %d", vm.Name, nic)
	}
	for i, n := range vm.NICs {
		if (nic < 0 || i == nic) && n.Kind == emulator.NetUser {
			return i, nil
		}
	}
	return 0, fmt.Errorf("vm %q has no user-mode nic for forwards", vm.Name)
}

// AddForward implements service.Service with machine.ParseForward's syntax: a
// running machine binds the forward at once, a stopped one keeps it for
// its next start. A fixed host port another forward of the machine has is
// refused.
func (f *Service) AddForward(ctx context.Context, name string, nic int, rule string) (service.PortForward, error) {
	var pf service.PortForward
	err := f.simple("AddForward", name, func(vm *service.VM) error {
		r, err := machine.ParseForward(strings.TrimSpace(rule))
		if err != nil {
			return service.WithFix(fmt.Errorf("add forward to %q: %w", name, err), service.RuleSyntax)
		}
		i, err := forwardNIC(vm, nic)
		if err != nil {
			return fmt.Errorf("add forward %s: %w", rule, err)
		}
		fr := emulator.Forward{Proto: r.Proto, HostAddr: r.HostAddr, HostPort: r.HostPort, GuestPort: r.GuestPort}
		for _, n := range vm.NICs {
			for _, o := range n.Forwards {
				if fr.HostPort != 0 && o.Rule.Proto == fr.Proto && o.Rule.HostPort == fr.HostPort {
					return fmt.Errorf("add forward %s to %q: host port %d is taken by %s", rule, name, fr.HostPort, o.RuleString())
				}
			}
		}
		pf = service.PortForward{Rule: fr}
		if vm.State.Active() {
			pf.BoundPort = f.bindPort(fr)
		}
		vm.NICs[i].Forwards = append(vm.NICs[i].Forwards, pf)
		return nil
	})
	return pf, err
}

// RemoveForward implements service.Service: the forward must be written as
// RuleString writes it.
func (f *Service) RemoveForward(ctx context.Context, name string, nic int, rule string) (service.PortForward, error) {
	var pf service.PortForward
	err := f.simple("RemoveForward", name, func(vm *service.VM) error {
		for i := range vm.NICs {
			if nic >= 0 && i != nic {
				continue
			}
			fw := vm.NICs[i].Forwards
			for k := range fw {
				if fw[k].RuleString() == strings.TrimSpace(rule) {
					pf = fw[k]
					pf.BoundPort = 0
					vm.NICs[i].Forwards = append(fw[:k:k], fw[k+1:]...)
					return nil
				}
			}
		}
		return fmt.Errorf("remove forward %s from %q: no such forward", rule, name)
	})
	return pf, err
}

// Snapshots implements service.Service.
func (f *Service) Snapshots(ctx context.Context, name string) ([]service.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Snapshots", name); err != nil {
		return nil, err
	}
	if _, err := f.get(name); err != nil {
		return nil, err
	}
	return append([]service.Snapshot(nil), f.snaps[name]...), nil
}

// SaveSnapshot implements service.Service.
func (f *Service) SaveSnapshot(ctx context.Context, name, snap string, progress service.ProgressFunc) error {
	f.mu.Lock()
	err := f.begin("SaveSnapshot", name)
	if err == nil {
		_, err = f.get(name)
	}
	if err == nil {
		for _, s := range f.snaps[name] {
			if s.Name == snap {
				err = fmt.Errorf("save snapshot %q: already exists", snap)
			}
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if err := f.job(ctx, "saving snapshot", 0, progress); err != nil {
		return err
	}
	f.mu.Lock()
	list := f.snaps[name]
	for i := range list {
		list[i].Current = false
	}
	f.snaps[name] = append(list, service.Snapshot{Name: snap, Created: fakeEpoch.Add(time.Duration(len(list)) * time.Hour), SizeBytes: 300 << 20, Current: true})
	f.mu.Unlock()
	f.notify(name)
	return nil
}

// RestoreSnapshot implements service.Service.
func (f *Service) RestoreSnapshot(ctx context.Context, name, snap string, progress service.ProgressFunc) error {
	f.mu.Lock()
	err := f.begin("RestoreSnapshot", name)
	found := false
	for i, s := range f.snaps[name] {
		f.snaps[name][i].Current = s.Name == snap
		found = found || s.Name == snap
	}
	if err == nil && !found {
		err = fmt.Errorf("restore snapshot %q: not found", snap)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	err = f.job(ctx, "loading snapshot", 0, progress)
	f.notify(name)
	return err
}

// DeleteSnapshot implements service.Service.
func (f *Service) DeleteSnapshot(ctx context.Context, name, snap string) error {
	f.mu.Lock()
	err := f.begin("DeleteSnapshot", name)
	if err == nil {
		err = fmt.Errorf("delete snapshot %q: not found", snap)
		list := f.snaps[name]
		for i, s := range list {
			if s.Name == snap {
				f.snaps[name] = append(list[:i:i], list[i+1:]...)
				err = nil
				break
			}
		}
	}
	f.mu.Unlock()
	if err == nil {
		f.notify(name)
	}
	return err
}

// SerialAttach implements service.Service: the fake guest echoes every byte typed.
func (f *Service) SerialAttach(ctx context.Context, name string) (*service.Serial, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("SerialAttach", name); err != nil {
		return nil, err
	}
	vm, err := f.get(name)
	if err != nil {
		return nil, err
	}
	if !vm.State.Active() {
		return nil, service.WithFix(fmt.Errorf("attach serial %q: machine is %s", name, vm.State), "start it first (s)")
	}
	return &service.Serial{Conn: newEchoConn(), Scrollback: append([]byte(nil), f.serialOut[name]...)}, nil
}

// echoConn is a fake serial line: what is written comes back to Read, in
// order.
type echoConn struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool
}

func newEchoConn() *echoConn {
	c := &echoConn{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *echoConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) == 0 && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
		return 0, io.EOF
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *echoConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, io.ErrClosedPipe
	}
	c.buf = append(c.buf, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *echoConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}

// LogTail implements service.Service.
func (f *Service) LogTail(ctx context.Context, name string, max int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("LogTail", name); err != nil {
		return "", err
	}
	if _, err := f.get(name); err != nil {
		return "", err
	}
	s := f.logs[name]
	if max > 0 && len(s) > max {
		s = s[len(s)-max:]
	}
	return s, nil
}

// HMP implements service.Service with canned answers in QEMU's words for
// the common commands of an x86 guest; stop and cont pause and resume the
// machine (as the QMP events would tell the TUI), trace-event adds a line
// to its trace log, and a command the fake does not know gets QEMU's
// "unknown command" answer.
func (f *Service) HMP(ctx context.Context, name, line string) (string, error) {
	f.mu.Lock()
	err := f.begin("HMP", name)
	var vm *service.VM
	if err == nil {
		vm, err = f.get(name)
	}
	if err == nil && !vm.State.Active() {
		err = service.WithFix(fmt.Errorf("vm %q: %w", name, machine.ErrNotRunning), "start it first (s)")
	}
	if err != nil {
		f.mu.Unlock()
		return "", err
	}
	f.hmp = append(f.hmp, name+": "+line)
	fields := strings.Fields(line)
	cmd := ""
	if len(fields) > 0 {
		cmd = fields[0]
	}
	changed := false
	var out string
	switch {
	case cmd == "":
	case cmd == "info" && len(fields) > 1:
		out = fakeInfo[fields[1]]
		switch {
		case fields[1] == "status":
			out = "VM status: running\n"
			if vm.State == service.StatePaused {
				out = "VM status: paused\n"
			}
		case out == "":
			out = "info: unknown topic '" + fields[1] + "'\n"
		}
	case cmd == "info":
		out = "info subcommands: status registers mtree pci irq tlb cpus block network\n"
	case cmd == "stop":
		vm.State, changed = service.StatePaused, true
	case cmd == "cont" || cmd == "c":
		vm.State, changed = service.StateRunning, true
	case cmd == "system_reset":
		vm.Uptime = 0
	case cmd == "trace-event" && len(fields) == 3:
		f.traces[name] += fmt.Sprintf("%d@%d.%06d:trace_event_set_state %s %s\n", 4242, fakeEpoch.Unix(), len(f.hmp), fields[1], fields[2])
	case cmd == "help":
		out = strings.Join(emulator.HMPCommands, "\n") + "\n"
	default:
		found := false
		for _, c := range emulator.HMPCommands {
			found = found || c == cmd
		}
		if !found {
			out = "unknown command: '" + cmd + "'\n"
		}
	}
	f.mu.Unlock()
	if changed {
		f.notify(name)
	}
	return out, nil
}

// fakeInfo are the fake's answers to info TOPIC, shortened from QEMU 7.2's
// for a q35 x86_64 guest.
var fakeInfo = map[string]string{
	"registers": `RAX=0000000000000000 RBX=ffffffff82a0c940 RCX=0000000000000001 RDX=0000000000000000
RSI=0000000000000083 RDI=00000000000e3c14 RBP=ffffffff82a03e28 RSP=ffffffff82a03e08
R8 =ffff88803ec1f1e0 R9 =0000000000000000 R10=0000000000000001 R11=0000000000000000
R12=0000000000000000 R13=0000000000000000 R14=0000000000000000 R15=0000000000000000
RIP=ffffffff81f7a20e RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
ES =0000 0000000000000000 00000000 00000000
CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]
CR0=80050033 CR2=00007f3c2a1b4000 CR3=0000000002c0e000 CR4=00350ef0
EFER=0000000000000d01
`,
	"mtree": `FlatView #0
 AS "memory", root: system
 Root memory region: system
  0000000000000000-000000000009ffff (prio 0, ram): pc.ram KVM
  00000000000a0000-00000000000bffff (prio 1, i/o): vga-lowmem
  00000000000c0000-00000000000dffff (prio 0, rom): pc.ram @00000000000c0000 KVM
  0000000000100000-000000003fffffff (prio 0, ram): pc.ram @0000000000100000 KVM
  00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram KVM
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios KVM
`,
	"pci": `  Bus  0, device   0, function 0:
    Host bridge: PCI device 8086:29c0
      PCI subsystem 1af4:1100
      id ""
  Bus  0, device   1, function 0:
    VGA controller: PCI device 1234:1111
      PCI subsystem 1af4:1100
      BAR0: 32 bit prefetchable memory at 0xfd000000 [0xfdffffff].
      id ""
  Bus  0, device   2, function 0:
    Ethernet controller: PCI device 1af4:1000
      PCI subsystem 1af4:0001
      IRQ 10, pin A
      BAR0: I/O at 0xc040 [0xc05f].
      id "net0"
`,
	"irq": `IRQ statistics for ioapic:
 0: 1
 1: 9
 4: 1832
 8: 1
10: 215
`,
	"tlb": `ffffffff81000000: 0000000001000000 --PDA---W
ffffffff81200000: 0000000001200000 --PDA---W
ffffffff81400000: 0000000001400000 --PDA---W
ffff888000000000: 0000000000000000 X-PDA---W
`,
}

// TraceTail implements service.Service.
func (f *Service) TraceTail(ctx context.Context, name string, max int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("TraceTail", name); err != nil {
		return "", err
	}
	if _, err := f.get(name); err != nil {
		return "", err
	}
	s := f.traces[name]
	if max > 0 && len(s) > max {
		s = s[len(s)-max:]
	}
	return s, nil
}

// findLocked finds gallery entry id of kind for arch. Caller holds mu.
func (f *Service) findLocked(id string, arch emulator.Arch, kind string) (*service.GalleryEntry, error) {
	for _, e := range f.gallery {
		if e.ID == id && e.Arch == arch.String() {
			if e.Kind != kind {
				return nil, fmt.Errorf("gallery: %s is a %s entry, not %s", id, e.Kind, kind)
			}
			return &e, nil
		}
	}
	return nil, fmt.Errorf("gallery: no %s image %q: `vlab gallery` lists them", arch, id)
}

// Gallery implements service.Service.
func (f *Service) Gallery(ctx context.Context) ([]service.GalleryEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["Gallery"]; err != nil { // FailNext works; the call is not recorded (every wizard makes it)
		delete(f.fail, "Gallery")
		return nil, err
	}
	return append([]service.GalleryEntry(nil), f.gallery...), nil
}

// target is the SSH target the real service would find for vm: its bound
// forward to guest port 22, its login user, vlab's key and its own
// known_hosts (fixed paths). Caller holds mu.
func (f *Service) target(vm *service.VM) (machine.SSHTarget, error) {
	if !vm.State.Active() {
		return machine.SSHTarget{}, service.WithFix(fmt.Errorf("ssh to vm %q: %w (%s)", vm.Name, machine.ErrNotRunning, vm.State), "start it first (s)")
	}
	t := machine.SSHTarget{Name: vm.Name, User: orDefault(f.users[vm.Name], "vlab"), Host: "127.0.0.1",
		KnownHosts: "/var/lib/vlab/" + vm.Name + "/known_hosts", Alias: "vlab-" + vm.Name,
		Key: "/home/tester/.config/vlab/id_ed25519", Seeded: f.users[vm.Name] != ""}
	for _, n := range vm.NICs {
		for _, fw := range n.Forwards {
			if t.Port == 0 && orDefault(fw.Rule.Proto, "tcp") == "tcp" && fw.Rule.GuestPort == 22 && fw.BoundPort != 0 {
				t.Port = fw.BoundPort
			}
		}
	}
	if t.Port == 0 {
		return machine.SSHTarget{}, service.WithFix(fmt.Errorf("ssh to vm %q: %w to guest port 22", vm.Name, machine.ErrNoSSH), "add tcp:auto:22 in its port forwards (f)")
	}
	return t, nil
}

// SSH implements service.Service: the argv `vlab ssh` would run (built by
// machine.SSHTarget.SSHArgs from the fake's target), recorded; nothing
// runs.
func (f *Service) SSH(ctx context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("SSH", name); err != nil {
		return nil, err
	}
	vm, err := f.get(name)
	if err != nil {
		return nil, err
	}
	t, err := f.target(vm)
	if err != nil {
		return nil, err
	}
	argv := append([]string{"ssh"}, t.SSHArgs(true, "")...)
	f.sshArgv = append(f.sshArgv, argv)
	return argv, nil
}

// Copy implements service.Service with `vlab cp`'s checks; a copy that
// passes them is recorded with its scp argv, and nothing runs.
func (f *Service) Copy(ctx context.Context, name string, c service.CopyRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Copy", name); err != nil {
		return err
	}
	vm, err := f.get(name)
	if err != nil {
		return err
	}
	switch {
	case c.HostPath == "" || c.GuestPath == "":
		return fmt.Errorf("copy to/from %q: empty path: give both the host and the guest path", name)
	case !filepath.IsAbs(c.HostPath):
		return fmt.Errorf("copy to/from %q: the host path must be absolute", name)
	case c.ToVM && !machine.LocalExists(c.HostPath):
		return service.WithFix(fmt.Errorf("copy to %q: %s does not exist on the host", name, c.HostPath), "check the path")
	}
	t, err := f.target(vm)
	if err != nil {
		return err
	}
	src, dst := c.HostPath, t.Remote(c.GuestPath)
	if !c.ToVM {
		src, dst = dst, src
	}
	f.copies = append(f.copies, CopyCall{Name: name, Req: c, Argv: append([]string{"scp"}, t.SCPArgs(true, src, dst)...)})
	return nil
}

// Shares implements service.Service: the saved shares, each served by
// 9p (the fake host has no virtiofsd), with machine.MountCommand.
func (f *Service) Shares(ctx context.Context, name string) ([]service.ShareView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin("Shares", name); err != nil {
		return nil, err
	}
	vm, err := f.get(name)
	if err != nil {
		return nil, err
	}
	var out []service.ShareView
	for _, sh := range vm.Shares {
		kind := orDefault(sh.Kind, machine.Share9P)
		out = append(out, service.ShareView{Share: sh, Uses: kind, Mount: machine.MountCommand(sh, kind)})
	}
	return out, nil
}

// AddShare implements service.Service with the real checks (the folder
// exists, the tag is free) and refuses an active machine.
func (f *Service) AddShare(ctx context.Context, name string, sh service.Share) (service.Share, error) {
	if sh.HostDir != "" && !filepath.IsAbs(sh.HostDir) {
		if abs, err := filepath.Abs(sh.HostDir); err == nil {
			sh.HostDir = abs
		}
	}
	if sh.Tag == "" && sh.HostDir != "" {
		sh.Tag = filepath.Base(sh.HostDir)
	}
	err := f.simple("AddShare", name, func(vm *service.VM) error {
		if vm.State.Active() {
			return service.WithFix(fmt.Errorf("share a folder with %q: %w: shared folders change only while it is stopped", name, machine.ErrRunning), "stop it first (x)")
		}
		if err := service.CheckNewShare(vm.Shares, sh); err != nil {
			return err
		}
		vm.Shares = append(append([]service.Share(nil), vm.Shares...), sh)
		return nil
	})
	return sh, err
}

// RemoveShare implements service.Service.
func (f *Service) RemoveShare(ctx context.Context, name, tag string) error {
	return f.simple("RemoveShare", name, func(vm *service.VM) error {
		if vm.State.Active() {
			return service.WithFix(fmt.Errorf("unshare a folder of %q: %w: shared folders change only while it is stopped", name, machine.ErrRunning), "stop it first (x)")
		}
		for i, sh := range vm.Shares {
			if sh.Tag == tag {
				vm.Shares = append(vm.Shares[:i:i], vm.Shares[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("unshare %s: %s has no share with that tag", tag, name)
	})
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// service.HostLimits implements service.Service.
func (f *Service) HostLimits(ctx context.Context) (service.HostLimits, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limits, nil
}

// Profiles implements service.Service.
func (f *Service) Profiles(ctx context.Context) ([]service.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]service.Profile(nil), f.profiles...), nil
}

// ValidateName implements service.Service.
func (f *Service) ValidateName(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.validateNameLocked(name)
}

func (f *Service) validateNameLocked(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case len(name) > 64:
		return errors.New("name is longer than 64 bytes")
	case strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-"):
		return fmt.Errorf("name %q must start with a letter or digit", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("name %q: only letters, digits, '-', '_' and '.' are allowed", name)
		}
	}
	if _, ok := f.vms[name]; ok {
		return fmt.Errorf("name %q is taken", name)
	}
	return nil
}

var _ service.Service = (*Service)(nil)
