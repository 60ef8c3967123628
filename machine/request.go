package machine

import (
	"vlab/emulator"
	"vlab/profiles"
)

// Request is what a new VM is made from, whoever asks for it: `vlab
// create` (its flags), the TUI's wizard (its form) and class labs (a lab
// file's entry). Build turns every Request into a Spec the same way, so a
// VM made one way is the VM made the other.
type Request struct {
	Name string
	// Arch is the guest's arch; ArchUnknown takes the profile's, else
	// x86_64.
	Arch emulator.Arch
	// Profile is the OS profile (`vlab profiles`) whose period hardware
	// fills what Set leaves open; nil for none.
	Profile *profiles.Profile
	// Image marks a VM made from a cloud image: its system disk is the
	// image's copy (CreateFromImage adds it), so it gets no empty disk, and
	// it is a Linux guest with sshd and qemu-guest-agent.
	Image bool
	// NoDisk keeps a VM with an ISO and no disk diskless (a live system);
	// otherwise such an installer gets an empty disk to install to.
	NoDisk bool
	// Agent, when set, decides the guest agent channel over what the
	// profile offers (`--agent on|off`).
	Agent *bool
	// Set applies what the caller was given: changed flags, form fields,
	// the lab file's values. It sees vlab's defaults (one CPU, 1G, VNC, one
	// user-mode NIC in the profile's network mode) with CPUs, memory and
	// machine type left zero when a profile will fill them. What it leaves
	// zero gets the profile's value, then vlab's.
	Set func(*Spec) error
}

// Build makes the Spec of a new VM from r: vlab's defaults, then what r.Set
// applies, then an empty disk for an installer, the profile's hardware for
// whatever is still open, what a Linux guest is offered (an SSH forward on
// an auto host port, the guest agent channel) and vlab's defaults for the
// rest. The Spec is validated; errors from Set and Validate come back as
// they are.
func Build(r Request) (*Spec, error) {
	arch := r.Arch
	if arch == emulator.ArchUnknown {
		arch = emulator.ArchX86_64
		if r.Profile != nil {
			arch = r.Profile.Arch
		}
	}
	spec := NewSpec(r.Name, arch)
	if r.Profile != nil {
		// The profile's machine type, CPUs and memory beat vlab's defaults;
		// Set's own values beat the profile's.
		spec.Machine, spec.CPUs, spec.Memory = "", 0, 0
		if r.Profile.Net != "" {
			spec.NICs[0].Mode = r.Profile.Net // e.g. sandbox for old systems
		}
	}
	if r.Set != nil {
		if err := r.Set(spec); err != nil {
			return nil, err
		}
	}
	if len(spec.Disks) == 0 && spec.Boot.ISO != "" && !r.Image && !r.NoDisk {
		// An installer needs somewhere to install to: the profile's size,
		// else 20G (below).
		spec.Disks = []DiskSpec{{File: "disk0.qcow2", Format: "qcow2"}}
	}
	if p := r.Profile; p != nil {
		ApplyProfile(spec, *p)
		OfferSSHForward(spec, *p) // Linux: ssh on an auto host port (network.go)
		OfferAgent(spec, *p)      // Linux: the guest agent channel (agent.go)
	}
	if r.Image {
		linux := profiles.Profile{Family: "linux"}
		OfferSSHForward(spec, linux)
		OfferAgent(spec, linux)
	}
	if r.Agent != nil {
		spec.Agent = *r.Agent
	}
	def := NewSpec(r.Name, spec.Arch)
	if spec.Machine == "" {
		spec.Machine = def.Machine
	}
	if spec.CPUs == 0 {
		spec.CPUs = def.CPUs
	}
	if spec.Memory == 0 {
		spec.Memory = def.Memory
	}
	if spec.Display == "" {
		spec.Display = def.Display
	}
	for i := range spec.Disks {
		if spec.Disks[i].Size == 0 {
			spec.Disks[i].Size = 20 * GiB
		}
	}
	if err := spec.Validate(); err != nil {
		return nil, err // callers name the operation: create, a lab's VM...
	}
	return spec, nil
}
