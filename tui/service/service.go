// Package service defines what vlab's TUI needs from the rest of vlab:
// the Service interface and the values it passes. The real Service sits
// on package machine (tui.MachineService); package tuifake keeps machines
// in memory for tests and benchmarks. Package tui re-exports every name.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"vlab/emulator"
	"vlab/machine"
)

// ErrNotSupported is returned by a Service for an operation this build cannot
// do yet (for example snapshots before that feature lands). The TUI shows it
// as a status message, never as a crash.
var ErrNotSupported = errors.New("not supported yet")

// Service is everything the screens need from the rest of vlab. The real one
// (tui.MachineService) sits on package machine; tuifake.Service keeps
// machines in memory for tests and benchmarks. Methods may block on I/O: the TUI only
// calls them from tea.Cmds, never from Update or View.
type Service interface {
	// List returns every defined machine, sorted by name (read once, at
	// start; after that the TUI follows Changes).
	List(ctx context.Context) ([]VM, error)
	// Get returns one machine as List would, or an error wrapping
	// ErrNoMachine when it does not exist (any more).
	Get(ctx context.Context, name string) (VM, error)
	// Stats returns fresh CPU%/uptime/RSS figures for the running machines
	// (refreshed when a key arrives and the last figures are old).
	Stats(ctx context.Context) ([]Stats, error)
	// Create defines a new machine (creating its disk); progress may be nil.
	Create(ctx context.Context, spec NewVM, progress ProgressFunc) error
	// PreviewCmdline returns the exact qemu argv Create+Start would run.
	PreviewCmdline(ctx context.Context, spec NewVM) ([]string, error)
	// Start boots a stopped machine; it returns once QEMU runs (not when the
	// guest has booted).
	Start(ctx context.Context, name string) error
	// Stop asks the guest to power off (ACPI); force kills QEMU instead.
	Stop(ctx context.Context, name string, force bool) error
	// Pause stops the vCPUs.
	Pause(ctx context.Context, name string) error
	// Resume continues paused vCPUs.
	Resume(ctx context.Context, name string) error
	// Reset is a hard reset of a running machine.
	Reset(ctx context.Context, name string) error
	// Delete removes a stopped machine and its disks.
	Delete(ctx context.Context, name string) error
	// Clone copies a stopped machine under a new name; progress may be nil.
	// A linked clone's disks are thin overlays on a frozen base of src's
	// disks (src cannot be deleted while the clone exists).
	Clone(ctx context.Context, src, dst string, linked bool, progress ProgressFunc) error
	// Export writes stopped machine name to out in format: "ova" (one
	// archive), "ovf" (a new folder) or "libvirt" (a folder with a domain
	// XML and its disks); progress may be nil. An active machine is
	// refused (its disks must be still).
	Export(ctx context.Context, name, out string, format string, progress ProgressFunc) (ExportSummary, error)
	// Import creates machines from the OVA or OVF package at path; progress
	// may be nil.
	Import(ctx context.Context, path string, progress ProgressFunc) (ImportSummary, error)
	// Update replaces a machine's editable settings.
	Update(ctx context.Context, name string, s Settings) error
	// AddForward adds a port forward to NIC nic of a machine (-1: its first
	// user-mode NIC). rule is written proto:[hostaddr:]hostport:guestport,
	// hostport "auto" letting the kernel pick a free port at each start. A
	// running machine binds it at once: the result has BoundPort set, or a
	// Note saying why it waits for the next start. A stopped machine saves
	// it for its next start.
	AddForward(ctx context.Context, name string, nic int, rule string) (PortForward, error)
	// RemoveForward removes the forward written rule (as AddForward reads
	// it) from NIC nic of a machine (-1: any NIC). A running machine
	// releases the port at once unless the result's Note says otherwise.
	RemoveForward(ctx context.Context, name string, nic int, rule string) (PortForward, error)
	// Cmdline returns the qemu argv of a machine (the running one's, or the
	// one Start would use).
	Cmdline(ctx context.Context, name string) ([]string, error)
	// Snapshots lists a machine's snapshots.
	Snapshots(ctx context.Context, name string) ([]Snapshot, error)
	// SaveSnapshot takes a snapshot (live when running); progress may be nil.
	SaveSnapshot(ctx context.Context, name, snap string, progress ProgressFunc) error
	// RestoreSnapshot reverts to a snapshot, losing the current state.
	RestoreSnapshot(ctx context.Context, name, snap string, progress ProgressFunc) error
	// DeleteSnapshot removes a snapshot.
	DeleteSnapshot(ctx context.Context, name, snap string) error
	// SerialAttach connects to a running machine's serial console.
	SerialAttach(ctx context.Context, name string) (*Serial, error)
	// LogTail returns up to max bytes from the end of the machine's qemu.log.
	LogTail(ctx context.Context, name string, max int) (string, error)
	// HMP runs one human monitor command line (`info registers`, `x/8i
	// $pc`...) on a running machine, over QMP, and returns QEMU's answer
	// with "\n" line ends. A command QEMU does not know is an answer, not an
	// error; a machine that is not running is an error.
	HMP(ctx context.Context, name, line string) (string, error)
	// TraceTail returns up to max bytes from the end of the machine's trace
	// log (where `vlab trace` sends events and -d items), "" when there is
	// none yet.
	TraceTail(ctx context.Context, name string, max int) (string, error)
	// Gallery lists the OS gallery (`vlab gallery`): installer ISOs
	// (KindISO) and cloud images (KindCloud), per arch. The wizard offers
	// them; NewVM.OS and NewVM.Image name them by id.
	Gallery(ctx context.Context) ([]GalleryEntry, error)
	// SSH returns the argv (argv[0] the ssh binary) of an interactive SSH
	// session into running machine name, as `vlab ssh NAME` runs it: its
	// SSH forward, its login user, vlab's key, its own known_hosts. The TUI
	// suspends while it runs. A machine that is not running, or has no
	// forward to guest port 22, is an error with the fix.
	SSH(ctx context.Context, name string) ([]string, error)
	// Copy copies files or folders between the host and running machine
	// name over SSH (scp -r, as `vlab cp` does) and returns when done. An
	// upload whose host path does not exist is refused before anything
	// runs.
	Copy(ctx context.Context, name string, c CopyRequest) error
	// Shares lists a machine's shared folders with the kind each gets at
	// the next start and the guest command that mounts it.
	Shares(ctx context.Context, name string) ([]ShareView, error)
	// AddShare shares a host folder with stopped machine name (HostDir made
	// absolute; Tag "" = the folder's name). The folder must exist and the
	// tag be free; a running machine is refused (stop it first).
	AddShare(ctx context.Context, name string, sh Share) (Share, error)
	// RemoveShare stops sharing the folder with tag from stopped machine
	// name.
	RemoveShare(ctx context.Context, name, tag string) error
	// HostLimits bounds what the wizard and the edit screen accept.
	HostLimits(ctx context.Context) (HostLimits, error)
	// Profiles lists the OS presets the wizard offers.
	Profiles(ctx context.Context) ([]Profile, error)
	// ValidateName says why a new machine name is unacceptable (nil if it is
	// fine, including not being taken). It must be cheap: the wizard calls it
	// as the user types.
	ValidateName(name string) error
	// Changes streams what changed (a machine was defined, edited,
	// deleted, started, stopped, paused...), by this or another vlab: each
	// Change names one machine and, for a QMP event, the event. The TUI
	// re-reads only that machine. The channel is closed when ctx ends.
	Changes(ctx context.Context) <-chan Change
}

// State is the lifecycle state of a machine: machine.State, the one state
// type the CLI prints too.
type State = machine.State

// States. StateStopping is "shutting-down"; StateError is a QEMU that runs
// but whose QMP does not answer ("unresponsive"); StateInvalid a machine
// whose definition cannot be read.
const (
	StateStopped  = machine.StateStopped
	StateStarting = machine.StateStarting
	StateRunning  = machine.StateRunning
	StatePaused   = machine.StatePaused
	StateStopping = machine.StateShuttingDown
	StateCrashed  = machine.StateCrashed
	StateError    = machine.StateUnresponsive
	StateInvalid  = machine.StateInvalid
)

// VM is one machine as the list and the detail pane show it.
type VM struct {
	Name        string
	Profile     string // OS preset name, "" when none
	OS          string // human OS name ("Debian 12"), "" when unknown
	Arch        emulator.Arch
	State       State
	Accel       emulator.Accel // the accel chosen (or that would be chosen)
	AccelReason string
	CPUs        int
	MemoryMiB   int
	CPUPercent  float64       // running only
	RSSBytes    int64         // running only
	Uptime      time.Duration // running only
	Disks       []DiskInfo
	ISO         string // attached install medium, "" when none
	Kernel      string // direct kernel boot, "" when none
	Initrd      string
	Append      string
	BootOrder   string
	NICs        []NIC
	Display     emulator.Display
	Shares      []Share // shared host folders, as saved
	Snapshots   int
	VNC         string // VNC socket (running only)
	Serial      string // serial socket (running only)
	QMP         string // QMP socket (running only)
	LastError   string // last failure, e.g. from qemu.log, "" when none
}

// NIC is one network card of a machine as it is now.
type NIC struct {
	ID            string           // netdev id, e.g. net0
	Kind          emulator.NetMode // user, bridge, tap, lab...
	Mode          string           // as vlab writes it: user, isolated, bridge:br0, tap:tap0, lab:NAME
	Model         string           // device model, "" for the arch's default
	MAC           string
	Forwards      []PortForward // user-mode NICs only
	GuestIP       string        // the guest's address where vlab knows it, else ""
	GuestIPSource string        // how vlab knows GuestIP
}

// PortForward is one port forward of a NIC: the rule as saved and, while
// the machine runs, the host port QEMU bound for it.
type PortForward struct {
	Rule      emulator.Forward // as saved; Rule.HostPort 0 = auto (picked at each start)
	BoundPort int              // the host port bound now, 0 when not bound
	Note      string           // e.g. "applied at next start", "" when none
}

// Auto reports whether the host port is picked at each start.
func (f PortForward) Auto() bool { return f.Rule.HostPort == 0 }

// RuleString writes the rule as AddForward and RemoveForward read it:
// proto:hostaddr:hostport:guestport, hostport "auto" when picked at start.
func (f PortForward) RuleString() string {
	port := "auto"
	if f.Rule.HostPort != 0 {
		port = fmt.Sprint(f.Rule.HostPort)
	}
	return fmt.Sprintf("%s:%s:%s:%d", orDefault(f.Rule.Proto, "tcp"), orDefault(f.Rule.HostAddr, "127.0.0.1"), port, f.Rule.GuestPort)
}

// PortForwards wraps saved rules, none bound.
func PortForwards(rules []emulator.Forward) []PortForward {
	var out []PortForward
	for _, r := range rules {
		out = append(out, PortForward{Rule: r})
	}
	return out
}

// ForwardRules returns the saved rules of forwards.
func ForwardRules(fw []PortForward) []emulator.Forward {
	var out []emulator.Forward
	for _, f := range fw {
		out = append(out, f.Rule)
	}
	return out
}

// DiskInfo is one disk with its sizes.
type DiskInfo struct {
	emulator.Disk
	VirtualBytes int64 // guest-visible size
	ActualBytes  int64 // bytes used on the host
}

// Stats are the figures that change while a machine runs.
type Stats struct {
	Name       string
	CPUPercent float64
	RSSBytes   int64
	Uptime     time.Duration
}

// NewVM is what the wizard collects.
type NewVM struct {
	Name    string
	Profile string
	Arch    emulator.Arch
	ISO     string // install from an ISO, or
	OS      string // from the gallery's installer ISO of this id (`vlab create --os`), downloaded into the ISO library, or
	Image   string // from a cloud image (`vlab create --image`): a gallery id, an http(s) URL or an image file, or
	Kernel  string // boot a kernel directly
	Initrd  string
	Append  string
	// User is the login user of an Image machine ("" = vlab). An Image
	// machine also gets vlab's SSH key, an SSH forward on an auto host port
	// and a NoCloud seed; DiskBytes grows the image's copy (0 keeps its
	// size).
	User      string
	Shares    []Share // shared host folders (checked: they exist)
	MemoryMiB int
	CPUs      int
	DiskBytes int64 // 0 = no disk
	Net       emulator.NetMode
	MAC       string // the NIC's MAC, fixed by the wizard so the preview is exact
	Forwards  []emulator.Forward
	Display   emulator.Display
}

// Settings are the editable settings of an existing machine.
type Settings struct {
	MemoryMiB int
	CPUs      int
	ISO       string // "" ejects
	BootOrder string // "" = disk first; "cd" = cdrom then disk; "n" network...
	Net       emulator.NetMode
	Forwards  []emulator.Forward
	Display   emulator.Display
	Accel     emulator.Accel
}

// SettingsOf returns the current settings of a machine.
func SettingsOf(vm VM) Settings {
	s := Settings{
		MemoryMiB: vm.MemoryMiB,
		CPUs:      vm.CPUs,
		ISO:       vm.ISO,
		BootOrder: vm.BootOrder,
		Net:       emulator.NetNone,
		Display:   vm.Display,
		Accel:     vm.Accel,
	}
	if len(vm.NICs) > 0 {
		s.Net = vm.NICs[0].Kind
		s.Forwards = ForwardRules(vm.NICs[0].Forwards)
	}
	return s
}

// GalleryEntry is one OS download of the gallery (machine.GalleryEntry):
// ID, Title, Arch, Kind (KindISO or KindCloud), URL, Profile.
type GalleryEntry = machine.GalleryEntry

// Kinds of gallery entries.
const (
	KindISO   = machine.KindISO   // an installer ISO: NewVM.OS
	KindCloud = machine.KindCloud // a cloud image: NewVM.Image
)

// Share is a shared host folder of a machine (machine.Share): HostDir,
// Tag, ReadOnly, Kind ("" auto, virtiofs or 9p), Mount (in the guest).
type Share = machine.Share

// ShareView is one share as the shares screen shows it
// (machine.ShareView): the Share, the kind it Uses at the next start (or
// the Error why it cannot) and the Mount command for a Linux guest.
type ShareView = machine.ShareView

// CheckNewShare checks a share about to be added to a machine that has
// shares: its fields and its folder (only its own: a missing folder of an
// existing share is the start's business), and that its tag is free.
func CheckNewShare(shares []Share, sh Share) error {
	if err := machine.CheckShares([]Share{sh}); err != nil {
		return err
	}
	for _, o := range shares {
		if o.Tag == sh.Tag {
			return WithFix(fmt.Errorf("share %s: tag %q is already used by %s", sh.HostDir, sh.Tag, o.HostDir), "give it another tag")
		}
	}
	return nil
}

// CopyRequest is one copy between the host and a machine (Service.Copy).
type CopyRequest struct {
	ToVM      bool   // host → guest; false: guest → host
	HostPath  string // absolute
	GuestPath string // as the guest reads it: relative to the login user's home
}

// Snapshot is one snapshot of a machine.
type Snapshot struct {
	Name      string
	Created   time.Time
	SizeBytes int64 // VM state size, 0 for disk-only snapshots
	Current   bool  // the state the machine was last restored to or saved as
}

// Serial is an attached serial console: Conn carries the live bytes and
// Scrollback holds what the guest printed before the attach (serial.log).
// Closing Conn detaches; the machine keeps running.
type Serial struct {
	Conn       io.ReadWriteCloser
	Scrollback []byte
}

// HostLimits bound the sizes the wizard and the edit screen accept.
type HostLimits struct {
	CPUs          int
	MemoryMiB     int
	FreeDiskBytes int64
}

// Profile is one OS preset offered by the wizard.
type Profile struct {
	Name        string
	Description string
	Arch        emulator.Arch
	MemoryMiB   int   // suggested memory, 0 = the wizard's default
	CPUs        int   // suggested CPUs, 0 = the wizard's default
	DiskBytes   int64 // suggested disk, 0 = the wizard's default
	// Net is the suggested NIC mode: "" (user) or sandbox (old systems).
	Net emulator.NetMode
}

// DefaultProfiles are the per-arch defaults offered until the profiles
// package supplies OS presets.
func DefaultProfiles() []Profile {
	out := make([]Profile, 0, len(emulator.Arches))
	for _, a := range emulator.Arches {
		out = append(out, Profile{Name: a.String(), Description: "generic " + a.String() + " machine", Arch: a})
	}
	return out
}

// Export formats (Service.Export).
const (
	FormatOVA     = "ova"
	FormatOVF     = "ovf"
	FormatLibvirt = "libvirt"
)

// ExportSummary is what an export wrote.
type ExportSummary struct {
	Path  string   // the archive, or the folder
	Disks int      // disks written
	Notes []string // what the package does not carry
}

// ImportSummary is what an import created.
type ImportSummary struct {
	Names   []string // the new machines, in package order
	Dropped []string // what could not be mapped, e.g. "sound card"
	Notes   []string // about the package (no manifest, certificates)
}

// Progress reports how far a long job got. Total 0 means the size is not
// known (the TUI shows a spinner instead of a bar).
type Progress struct {
	Step  string // what runs now, e.g. "creating disk"
	Done  int64
	Total int64
}

// ProgressFunc receives progress reports from a long job. It must not block.
type ProgressFunc func(Progress)

// Fixer is implemented by errors that know the one-line fix for themselves;
// the status line shows it after the error.
type Fixer interface {
	Fix() string
}

// fixError wraps an error with a one-line fix.
type fixError struct {
	err error
	fix string
}

func (e *fixError) Error() string { return e.err.Error() }
func (e *fixError) Unwrap() error { return e.err }
func (e *fixError) Fix() string   { return e.fix }

// WithFix attaches a one-line fix to err for the status line.
func WithFix(err error, fix string) error {
	if err == nil {
		return nil
	}
	return &fixError{err: err, fix: fix}
}

// Change says that VM Name changed; Event is the QMP event behind it, if
// any (see machine.Change).
type Change = machine.Change

// ErrNoMachine is returned (wrapped) by Service.Get for a VM that does not
// exist (any more).
var ErrNoMachine = machine.ErrNotFound

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// RuleSyntax is the fix shown for a forward rule that does not parse.
const RuleSyntax = "write proto:[addr:]hostport|auto:guestport, e.g. tcp:8080:80 or tcp:auto:22"
