package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"vlab/emulator"
	"vlab/internal/lazyre"
)

// Kinds of shared folders. The empty kind is "auto": virtiofs where a
// virtiofsd can serve it, 9p otherwise (ResolveShares, virtiofsd.go).
const (
	ShareVirtiofs = emulator.ShareVirtiofs // vhost-user-fs through the host's virtiofsd
	Share9P       = emulator.Share9P       // virtio-9p, QEMU's own server
)

// Share is a host folder the guest mounts.
type Share struct {
	HostDir  string `toml:"host_dir" json:"host_dir"`
	Tag      string `toml:"tag" json:"tag"`
	ReadOnly bool   `toml:"readonly,omitempty" json:"readonly,omitempty"`
	Kind     string `toml:"kind,omitempty" json:"kind,omitempty"`   // "" (auto), virtiofs or 9p
	Mount    string `toml:"mount,omitempty" json:"mount,omitempty"` // in the guest; default /mnt/TAG
}

// GuestPath is where the guest mounts the share.
func (s Share) GuestPath() string {
	if s.Mount != "" {
		return s.Mount
	}
	return "/mnt/" + s.Tag
}

var tagRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$`)

// ParseShare reads HOSTDIR[,tag=TAG][,ro][,9p|,virtiofs][,mount=/PATH]
// and checks that the folder exists.
func ParseShare(s string) (Share, error) {
	parts := strings.Split(s, ",")
	sh := Share{HostDir: parts[0]}
	if sh.HostDir == "" {
		return Share{}, fmt.Errorf("share %q: no folder: write --share HOSTDIR[,tag=TAG][,ro]", s)
	}
	for _, p := range parts[1:] {
		k, v, hasV := strings.Cut(p, "=")
		switch {
		case k == "tag" && hasV:
			sh.Tag = v
		case k == "mount" && hasV:
			sh.Mount = v
		case k == "ro" && !hasV:
			sh.ReadOnly = true
		case k == "rw" && !hasV:
			sh.ReadOnly = false
		case (k == "9p" || k == "virtiofs") && !hasV:
			sh.Kind = k
		default:
			return Share{}, fmt.Errorf("share %q: unknown option %q: use tag=TAG, ro, mount=/PATH or 9p", s, p)
		}
	}
	abs, err := filepath.Abs(sh.HostDir)
	if err != nil {
		return Share{}, fmt.Errorf("share %q: %w", s, err)
	}
	sh.HostDir = abs
	if sh.Tag == "" {
		sh.Tag = filepath.Base(abs)
	}
	if err := sh.Validate(); err != nil {
		return Share{}, err
	}
	if err := sh.CheckFolder(); err != nil {
		return Share{}, err
	}
	return sh, nil
}

// CheckFolder reports whether the share's host folder exists and is a
// folder (create, edit and every start check it; loading a spec does not,
// so a VM whose shared folder went away still lists and edits).
func (s Share) CheckFolder() error {
	fi, err := os.Stat(s.HostDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("share %s: folder does not exist: create it or fix the path", s.HostDir)
	case err != nil:
		return fmt.Errorf("share %s: %w", s.HostDir, err)
	case !fi.IsDir():
		return fmt.Errorf("share %s: not a folder: share the folder that holds it", s.HostDir)
	}
	return nil
}

// Validate checks a share's fields: an absolute folder path, a tag the
// guest can mount, a known kind, an absolute guest path.
func (s Share) Validate() error {
	if !filepath.IsAbs(s.HostDir) || strings.ContainsAny(s.HostDir, ",\n") {
		return fmt.Errorf("share %q: the folder's path must be absolute, without commas or newlines", s.HostDir)
	}
	if !tagRE().MatchString(s.Tag) {
		return fmt.Errorf("share %s: tag %q: use letters, digits, '.', '_' or '-' (at most 36): give one with ,tag=NAME", s.HostDir, s.Tag)
	}
	if s.Kind != "" && s.Kind != ShareVirtiofs && s.Kind != Share9P {
		return fmt.Errorf("share %s: kind %q: use virtiofs or 9p", s.HostDir, s.Kind)
	}
	if m := s.GuestPath(); !strings.HasPrefix(m, "/") || strings.Contains(m, "..") || strings.ContainsAny(m, " \n\t\"'") {
		return fmt.Errorf("share %s: mount %q must be an absolute guest path without spaces or '..'", s.HostDir, m)
	}
	return nil
}

// CheckShares validates a list of shares: each one, its folder, and no
// tag twice.
func CheckShares(shares []Share) error {
	if err := checkShareList(shares); err != nil {
		return err
	}
	for _, s := range shares {
		if err := s.CheckFolder(); err != nil {
			return err
		}
	}
	return nil
}

// checkShareList validates each share's fields and that no tag repeats.
func checkShareList(shares []Share) error {
	seen := map[string]string{}
	for _, s := range shares {
		if err := s.Validate(); err != nil {
			return err
		}
		if prev, ok := seen[s.Tag]; ok {
			return fmt.Errorf("share %s: tag %q is already used by %s: give one of them another with ,tag=NAME", s.HostDir, s.Tag, prev)
		}
		seen[s.Tag] = s.HostDir
	}
	return nil
}
