package machine

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
)

// VNCDisplay is a running VM's graphical console as a viewer reaches it:
// the sockets QEMU serves VNC on and the files a viewer session keeps. All
// of them are in the VM's private (0700) runtime folder.
type VNCDisplay struct {
	Name string
	// Socket is QEMU's VNC unix socket, without a password: the built-in
	// viewer and external viewers that take a unix socket connect to it.
	Socket string
	// Protected is the password-protected display's socket, which loopback
	// endpoints relay to; SetPassword sets its one-time password.
	Protected string
	// PasswordFile is where the open endpoints share that password (0600).
	PasswordFile string
	// Run is the VM's private runtime folder, where a viewer's own password
	// file goes.
	Run string

	s *Store
}

// VNCDisplay returns VM name's graphical console after checking that the VM
// has one (display = "vnc") and runs.
func (s *Store) VNCDisplay(ctx context.Context, name string) (VNCDisplay, error) {
	spec, err := s.Load(name)
	if err != nil {
		return VNCDisplay{}, err
	}
	if spec.Display != emulator.DisplayVNC {
		return VNCDisplay{}, fmt.Errorf("vnc %q: the vm has no graphical console (display %s): use `vlab console %s`, or set display = \"vnc\" in its machine.toml", name, spec.Display, name)
	}
	if err := s.RequireActive(ctx, "vnc", name); err != nil {
		return VNCDisplay{}, err
	}
	p := s.Paths(name)
	return VNCDisplay{
		Name:         name,
		Socket:       p.VNC,
		Protected:    emulator.ExternalVNCSocket(p.VNC),
		PasswordFile: p.VNCPass,
		Run:          p.Run,
		s:            s,
	}, nil
}

// SetPassword sets the one-time password of the VM's password-protected
// display through QMP (set_password), within 15 seconds.
func (d VNCDisplay) SetPassword(ctx context.Context, password string) error {
	ctx, cancel := context.WithTimeout(ctx, screenTimeout)
	defer cancel()
	return d.s.withMonitor(ctx, d.Name, func(m *emulator.Monitor) error {
		return m.SetVNCPassword(ctx, emulator.VNCExternalID, password)
	})
}

// ConfiguredViewer returns the external VNC viewer command set as viewer in
// vlab's config.toml ("" when unset or unreadable).
func (s *Store) ConfiguredViewer() string {
	var cfg struct {
		Viewer string `toml:"viewer"`
	}
	_, _ = toml.DecodeFile(filepath.Join(s.dirs.Config, configFile), &cfg)
	return cfg.Viewer
}
