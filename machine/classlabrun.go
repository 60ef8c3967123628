package machine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"vlab/emulator"
	"vlab/profiles"
)

// ClassLabVMStatus is what `vlab lab up/down/reset` did to one VM of a lab
// file and how to reach it.
type ClassLabVMStatus struct {
	Name     string        `json:"name"`
	Action   string        `json:"action"` // created, reused, started, running, stopped, restored, left alone
	State    State         `json:"state"`
	Snapshot string        `json:"snapshot,omitempty"`
	Networks []string      `json:"networks,omitempty"`
	Forwards []ForwardInfo `json:"forwards,omitempty"`
	Serial   string        `json:"serial_socket,omitempty"`
}

// ClassLabReport is the outcome of one lab operation, VMs in file order.
type ClassLabReport struct {
	Networks []string           `json:"networks"` // the lab networks (created or reused)
	VMs      []ClassLabVMStatus `json:"vms"`
}

// ClassLabUp brings up the lab a lab file describes: it creates each lab
// network and VM that does not exist yet (an existing one is reused as it
// is, after checking it does not contradict the file), takes each VM's
// snapshot while the VM is still powered off the first time, and starts the
// VMs in file order. dir is the lab file's folder: relative image paths in
// the file are taken from there. It stops at the first error, leaving what
// it made so far (running `lab up` again continues).
func (s *Store) ClassLabUp(ctx context.Context, lab *ClassLab, dir string) (*ClassLabReport, error) {
	rep := &ClassLabReport{}
	for _, n := range lab.Networks {
		if err := s.classLabNetwork(ctx, n); err != nil {
			return rep, err
		}
		rep.Networks = append(rep.Networks, n.Name)
	}
	for _, v := range lab.VMs {
		st := ClassLabVMStatus{Name: v.Name, Action: "reused", Networks: v.Networks, Snapshot: v.Snapshot}
		spec, err := s.Load(v.Name)
		switch {
		case errors.Is(err, ErrNotFound):
			if spec, err = classLabSpec(v, dir); err != nil {
				return rep, fmt.Errorf("lab up: vm %q: %w", v.Name, err)
			}
			if err := s.Create(ctx, spec); err != nil {
				return rep, fmt.Errorf("lab up: %w", err)
			}
			st.Action = "created"
		case err != nil:
			return rep, fmt.Errorf("lab up: %w", err)
		default:
			if err := classLabFits(spec, v); err != nil {
				return rep, fmt.Errorf("lab up: vm %q exists but %w: delete it (`vlab delete %s`) or rename it in the lab file", v.Name, err, v.Name)
			}
		}
		status, err := s.Status(ctx, v.Name)
		if err != nil {
			return rep, err
		}
		if v.Snapshot != "" {
			tree, err := s.Snapshots(ctx, v.Name)
			if err != nil {
				return rep, err
			}
			if _, ok := tree.Get(v.Snapshot); !ok {
				// Taken before the first start where possible: the state
				// `lab reset` returns to is the VM powered off, as built.
				desc := "vlab lab: the state `vlab lab reset` restores"
				if _, err := s.SnapshotCreate(ctx, v.Name, v.Snapshot, SnapshotOptions{Description: desc}); err != nil {
					return rep, fmt.Errorf("lab up: %w", err)
				}
			}
		}
		if !status.State.Active() {
			if err := s.Start(ctx, v.Name, StartOptions{}); err != nil {
				return rep, fmt.Errorf("lab up: %w", err)
			}
			if st.Action == "reused" {
				st.Action = "started"
			}
		} else if st.Action == "reused" {
			st.Action = "running"
		}
		rep.VMs = append(rep.VMs, s.classLabReach(ctx, st))
	}
	return rep, nil
}

// ClassLabDown stops the lab's VMs, last first (ACPI, then quit, as `vlab
// stop`; force skips ACPI). Lab networks and VMs stay defined.
func (s *Store) ClassLabDown(ctx context.Context, lab *ClassLab, force bool) (*ClassLabReport, error) {
	rep := &ClassLabReport{}
	for _, n := range lab.Networks {
		rep.Networks = append(rep.Networks, n.Name)
	}
	out := make([]ClassLabVMStatus, len(lab.VMs))
	for i := len(lab.VMs) - 1; i >= 0; i-- {
		v := lab.VMs[i]
		st := ClassLabVMStatus{Name: v.Name, Action: "left alone", Networks: v.Networks, Snapshot: v.Snapshot}
		status, err := s.Status(ctx, v.Name)
		if err != nil {
			return rep, fmt.Errorf("lab down: %w", err)
		}
		if status.State.Active() {
			if _, err := s.Stop(ctx, v.Name, StopOptions{Force: force}); err != nil {
				return rep, fmt.Errorf("lab down: %w", err)
			}
			st.Action = "stopped"
		}
		st.State = StateStopped
		out[i] = st
	}
	rep.VMs = out
	return rep, nil
}

// ClassLabReset returns each VM of the lab that names a snapshot to it: a
// running VM is powered off at once (its state is being thrown away), the
// snapshot restored, and the VM started again. VMs without a snapshot are
// left alone.
func (s *Store) ClassLabReset(ctx context.Context, lab *ClassLab) (*ClassLabReport, error) {
	rep := &ClassLabReport{}
	for _, n := range lab.Networks {
		rep.Networks = append(rep.Networks, n.Name)
	}
	for _, v := range lab.VMs {
		st := ClassLabVMStatus{Name: v.Name, Action: "left alone", Networks: v.Networks, Snapshot: v.Snapshot}
		if v.Snapshot == "" {
			if status, err := s.Status(ctx, v.Name); err == nil {
				st.State = status.State
			}
			rep.VMs = append(rep.VMs, st)
			continue
		}
		tree, err := s.Snapshots(ctx, v.Name)
		if err != nil {
			return rep, fmt.Errorf("lab reset: %w", err)
		}
		if _, ok := tree.Get(v.Snapshot); !ok {
			return rep, fmt.Errorf("lab reset: vm %q has no snapshot %q: run `vlab lab up` first, which takes it", v.Name, v.Snapshot)
		}
		status, err := s.Status(ctx, v.Name)
		if err != nil {
			return rep, fmt.Errorf("lab reset: %w", err)
		}
		if status.State.Active() {
			if _, err := s.Stop(ctx, v.Name, StopOptions{Force: true}); err != nil {
				return rep, fmt.Errorf("lab reset: %w", err)
			}
		}
		if err := s.SnapshotRestore(ctx, v.Name, v.Snapshot, SnapshotOptions{}); err != nil {
			return rep, fmt.Errorf("lab reset: %w", err)
		}
		if err := s.Start(ctx, v.Name, StartOptions{}); err != nil {
			return rep, fmt.Errorf("lab reset: %w", err)
		}
		st.Action = "restored"
		rep.VMs = append(rep.VMs, s.classLabReach(ctx, st))
	}
	return rep, nil
}

// classLabNetwork creates lab network n, or checks an existing one agrees
// with the file.
func (s *Store) classLabNetwork(ctx context.Context, n ClassLabNetwork) error {
	have, err := s.LoadLab(n.Name)
	if err == nil {
		if n.Subnet != "" && have.Subnet != n.Subnet {
			return fmt.Errorf("lab up: lab network %q exists with subnet %s, the file says %s: remove it (`vlab net lab rm %s`) or rename it in the lab file", n.Name, have.Subnet, n.Subnet, n.Name)
		}
		return nil
	}
	if !errors.Is(err, ErrLabNotFound) {
		return fmt.Errorf("lab up: %w", err)
	}
	if _, err := s.CreateLab(ctx, Lab{Name: n.Name, Subnet: n.Subnet, DHCP: n.DHCP}); err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	return nil
}

// classLabSpec builds the Spec of a lab file's VM through Build, as `vlab
// create` would with the same values: the file's values are what the
// request sets, its profile fills the rest. Each lab network is one NIC, in
// file order (the guest's first NICs: the lab is what the class works on);
// a VM with forwards gets a user-mode NIC after them that carries the
// forwards.
func classLabSpec(v ClassLabVM, dir string) (*Spec, error) {
	arch := emulator.ArchUnknown
	if v.Arch != "" {
		a, err := emulator.ParseArch(v.Arch)
		if err != nil {
			return nil, err
		}
		arch = a
	}
	var prof *profiles.Profile
	if v.Profile != "" {
		p, err := profiles.Get(v.Profile)
		if err != nil {
			return nil, err
		}
		prof = &p
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	return Build(Request{Name: v.Name, Arch: arch, Profile: prof, Set: func(spec *Spec) error {
		if v.CPUs > 0 {
			spec.CPUs = v.CPUs
		}
		if v.Memory != "" {
			m, err := ParseSize(v.Memory)
			if err != nil {
				return fmt.Errorf("memory: %w", err)
			}
			spec.Memory = m
		}
		if v.Disk != "" {
			d, err := ParseSize(v.Disk)
			if err != nil {
				return fmt.Errorf("disk: %w", err)
			}
			spec.Disks = []DiskSpec{{File: "disk0.qcow2", Size: d, Format: "qcow2"}}
		}
		spec.Boot = Boot{ISO: abs(v.ISO), Kernel: abs(v.Kernel), Initrd: abs(v.Initrd), Append: v.Append}
		if spec.Boot.ISO != "" {
			spec.Boot.Order = "dc" // an installer: CD first, then the disk it installs to
		}
		spec.NICs = nil
		for _, n := range v.Networks {
			spec.NICs = append(spec.NICs, NICSpec{Mode: NetLab, Lab: n})
		}
		if len(v.Forwards) > 0 {
			nic := NICSpec{Mode: emulator.NetUser}
			for _, f := range v.Forwards {
				fw, err := ParseForward(f)
				if err != nil {
					return err
				}
				nic.Forwards = append(nic.Forwards, fw)
			}
			spec.NICs = append(spec.NICs, nic)
		}
		return nil
	}})
}

// classLabFits reports how an existing VM contradicts its lab file entry:
// a lab network it should be on, or a forward it lacks.
func classLabFits(spec *Spec, v ClassLabVM) error {
	for _, n := range v.Networks {
		on := false
		for _, nic := range spec.NICs {
			on = on || (nic.Mode == NetLab && nic.Lab == n)
		}
		if !on {
			return fmt.Errorf("has no nic on lab network %q", n)
		}
	}
	for _, f := range v.Forwards {
		want, _ := ParseForward(f)
		has := false
		for _, nic := range spec.NICs {
			for _, g := range nic.Forwards {
				has = has || (g.Proto == want.Proto && g.HostPort == want.HostPort && g.GuestPort == want.GuestPort)
			}
		}
		if !has {
			return fmt.Errorf("lacks the forward %s", f)
		}
	}
	return nil
}

// classLabReach fills in how to reach a VM now: its state, forwards with
// their bound host ports, and its serial console.
func (s *Store) classLabReach(ctx context.Context, st ClassLabVMStatus) ClassLabVMStatus {
	if status, err := s.Status(ctx, st.Name); err == nil {
		st.State = status.State
	}
	if ni, err := s.Network(ctx, st.Name); err == nil {
		for _, nic := range ni.NICs {
			st.Forwards = append(st.Forwards, nic.Forwards...)
		}
	}
	st.Serial = s.Paths(st.Name).Serial
	return st
}
