package machine

import (
	"errors"
	"testing"

	"vlab/emulator"
)

func sshForwards(spec *Spec) int {
	n := 0
	for _, nic := range spec.NICs {
		for _, f := range nic.Forwards {
			if f.GuestPort == 22 {
				n++
			}
		}
	}
	return n
}

// Build is the one way a new VM's Spec is made: defaults, what the caller
// sets, the profile for the rest, a Linux guest's offers, an installer's
// disk. Each case is one rule of that order.
func TestBuild(t *testing.T) {
	d, w := mustProfile(t, "debian"), mustProfile(t, "win98")
	debian, win98 := &d, &w
	off := false
	for _, c := range []struct {
		name  string
		req   Request
		check func(t *testing.T, s *Spec)
	}{
		{"vlab defaults", Request{Name: "a"}, func(t *testing.T, s *Spec) {
			if s.Arch != emulator.ArchX86_64 || s.CPUs != 1 || s.Memory != GiB || s.Display != emulator.DisplayVNC ||
				s.Machine != emulator.DefaultMachine(s.Arch) || len(s.NICs) != 1 || s.NICs[0].Mode != emulator.NetUser ||
				len(s.Disks) != 0 || s.Agent || sshForwards(s) != 0 {
				t.Errorf("%+v", s)
			}
		}},
		{"installer with a Linux profile", Request{Name: "d", Profile: debian, Set: func(s *Spec) error {
			s.Boot.ISO = "/x.iso"
			return nil
		}}, func(t *testing.T, s *Spec) {
			if s.CPUs != 2 || s.Memory != 2048*MiB || len(s.Disks) != 1 || s.Disks[0].Size != 20480*MiB ||
				s.Disks[0].Bus != "virtio" || !s.Agent || sshForwards(s) != 1 || s.Profile != "debian" {
				t.Errorf("%+v", s)
			}
		}},
		{"what Set gives beats the profile", Request{Name: "d", Profile: debian, Set: func(s *Spec) error {
			s.CPUs, s.Memory = 4, 512*MiB
			return nil
		}}, func(t *testing.T, s *Spec) {
			if s.CPUs != 4 || s.Memory != 512*MiB {
				t.Errorf("cpus %d memory %s", s.CPUs, s.Memory)
			}
		}},
		{"the profile's network mode", Request{Name: "w", Profile: win98}, func(t *testing.T, s *Spec) {
			if s.Arch != emulator.ArchI386 || len(s.NICs) != 1 || s.NICs[0].Mode != emulator.NetSandbox || s.Agent || sshForwards(s) != 0 {
				t.Errorf("%+v", s)
			}
		}},
		{"a cloud image: no empty disk, ssh and agent", Request{Name: "c", Image: true, Set: func(s *Spec) error {
			s.Boot.ISO = "/x.iso" // even so: the image is the system disk
			return nil
		}}, func(t *testing.T, s *Spec) {
			if len(s.Disks) != 0 || !s.Agent || sshForwards(s) != 1 {
				t.Errorf("%+v", s)
			}
		}},
		{"--agent off over the profile", Request{Name: "d", Profile: debian, Agent: &off}, func(t *testing.T, s *Spec) {
			if s.Agent {
				t.Error("agent on")
			}
		}},
		{"a live ISO without a disk", Request{Name: "l", NoDisk: true, Set: func(s *Spec) error {
			s.Boot.ISO = "/live.iso"
			return nil
		}}, func(t *testing.T, s *Spec) {
			if len(s.Disks) != 0 {
				t.Errorf("disks %+v", s.Disks)
			}
		}},
		{"an installer without a profile gets 20G", Request{Name: "i", Set: func(s *Spec) error {
			s.Boot.ISO = "/x.iso"
			return nil
		}}, func(t *testing.T, s *Spec) {
			if len(s.Disks) != 1 || s.Disks[0].Size != 20*GiB {
				t.Errorf("disks %+v", s.Disks)
			}
		}},
		{"no user NIC, no ssh forward", Request{Name: "n", Profile: debian, Set: func(s *Spec) error {
			s.NICs = nil
			return nil
		}}, func(t *testing.T, s *Spec) {
			if len(s.NICs) != 0 {
				t.Errorf("nics %+v", s.NICs)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Build(c.req)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, s)
		})
	}
}

func TestBuildErrors(t *testing.T) {
	bad := errors.New("--cpus: bad")
	if _, err := Build(Request{Name: "a", Set: func(*Spec) error { return bad }}); err != bad {
		t.Errorf("Set's error came back as %v", err)
	}
	if _, err := Build(Request{Name: "a/b"}); err == nil {
		t.Error("a name with a slash was built")
	}
	if _, err := Build(Request{Name: "a", Set: func(s *Spec) error { s.Machine = "no such,board"; return nil }}); err == nil {
		t.Error("an option-injecting machine type was built")
	}
}
