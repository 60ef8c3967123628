package emulator

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"vlab/internal/lazyre"
)

// Kinds of shared folder devices.
const (
	ShareVirtiofs = "virtiofs" // vhost-user-fs-pci, served by a virtiofsd vlab starts
	Share9P       = "9p"       // virtio-9p-pci, served by QEMU itself
)

// SharedRAMID is the id of the guest RAM backend a VM with a virtiofs share
// gets: vhost-user devices map guest memory into the daemon, so it must be
// a shareable memfd.
const SharedRAMID = "vlab-ram"

// Share is one host folder passed to the guest (Config.Shares).
type Share struct {
	Kind     string // ShareVirtiofs or Share9P
	Tag      string // the guest mounts it by this tag
	Dir      string // 9p: the host folder QEMU serves
	Socket   string // virtiofs: the vhost-user socket virtiofsd listens on
	ReadOnly bool   // 9p: QEMU refuses writes; virtiofs: the daemon's view is read-only
	Mount    string // where the guest mounts it (told through SharesFwCfg)
}

// SharesFwCfg is the fw_cfg file that tells the guest its shares, one line
// each: "TAG KIND ro|rw MOUNTPOINT". A guest reads it at
// /sys/firmware/qemu_fw_cfg/by_name/opt/org.vlab/shares/raw (module
// qemu_fw_cfg) and mounts what it lists, so shares added after the guest
// was set up mount too. It holds no host path. Boards without fw_cfg
// (pseries) do not get it.
const SharesFwCfg = "opt/org.vlab/shares"

// sharesTable is the content of SharesFwCfg.
func sharesTable(shares []Share) string {
	var b strings.Builder
	for _, s := range shares {
		mode := "rw"
		if s.ReadOnly {
			mode = "ro"
		}
		mount := s.Mount
		if mount == "" {
			mount = "/mnt/" + s.Tag
		}
		fmt.Fprintf(&b, "%s %s %s %s\n", s.Tag, s.Kind, mode, mount)
	}
	return b.String()
}

// shareTagRE is what a mount tag may be: a word the guest can type on a
// mount command line, at most 36 bytes (virtio-fs's tag field).
var shareTagRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$`)

// CheckShareTag reports whether tag is usable as a mount tag.
func CheckShareTag(tag string) error {
	if !shareTagRE().MatchString(tag) {
		return fmt.Errorf("share tag %q: use letters, digits, '.', '_' or '-' (at most 36)", tag)
	}
	return nil
}

// fsdevID and shareCharID are the ids of share i's backend.
func fsdevID(i int) string     { return "vlab-fs" + strconv.Itoa(i) }
func shareCharID(i int) string { return "vlab-vfs" + strconv.Itoa(i) }

// checkShares validates Config.Shares before anything is emitted.
func (b *builder) checkShares() error {
	if len(b.cfg.Shares) == 0 {
		return nil
	}
	if !b.board.pci {
		return fmt.Errorf("shared folders need a PCI bus, and machine %q has none: use another machine or `vlab cp`", b.machine)
	}
	if b.cfg.Instrument.Replay.Mode != ReplayOff {
		return errors.New("shared folders cannot be recorded or replayed (their files change outside the guest): start without --record, or remove the shares")
	}
	seen := map[string]bool{}
	for _, s := range b.cfg.Shares {
		if err := CheckShareTag(s.Tag); err != nil {
			return err
		}
		if seen[s.Tag] {
			return fmt.Errorf("share tag %q is used twice: give each share its own tag", s.Tag)
		}
		seen[s.Tag] = true
		if s.Mount != "" && (!strings.HasPrefix(s.Mount, "/") || strings.ContainsAny(s.Mount, " \t\n")) {
			return fmt.Errorf("share %q: mount point %q must be an absolute guest path without blanks", s.Tag, s.Mount)
		}
		switch s.Kind {
		case ShareVirtiofs:
			if !filepath.IsAbs(s.Socket) {
				return fmt.Errorf("share %q: virtiofs socket %q is not an absolute path", s.Tag, s.Socket)
			}
		case Share9P:
			if !filepath.IsAbs(s.Dir) || strings.ContainsAny(s.Dir, "\n") {
				return fmt.Errorf("share %q: folder %q is not an absolute path", s.Tag, s.Dir)
			}
		default:
			return fmt.Errorf("share %q: kind %q: use %s or %s", s.Tag, s.Kind, ShareVirtiofs, Share9P)
		}
	}
	return nil
}

// sharedRAM reports whether guest RAM must be a shared memfd (virtiofs).
func (b *builder) sharedRAM() bool {
	for _, s := range b.cfg.Shares {
		if s.Kind == ShareVirtiofs {
			return true
		}
	}
	return false
}

// addShares emits the share devices. 9p shares use security_model=
// mapped-xattr: the guest's owners and modes live in xattrs, never on the
// host files themselves, so a guest cannot plant a set-uid file or hand a
// file to another host user even when QEMU runs as root.
func (b *builder) addShares() {
	for i, s := range b.cfg.Shares {
		switch s.Kind {
		case Share9P:
			o := newOpt("local").set("id", fsdevID(i)).set("path", s.Dir).raw("security_model=mapped-xattr")
			if s.ReadOnly {
				o.raw("readonly=on")
			}
			b.add("-fsdev", o.String())
			b.add("-device", newOpt("virtio-9p-pci").set("id", "vlab-share"+strconv.Itoa(i)).set("fsdev", fsdevID(i)).set("mount_tag", s.Tag).String())
		case ShareVirtiofs:
			b.add("-chardev", newOpt("socket").set("id", shareCharID(i)).set("path", s.Socket).String())
			b.add("-device", newOpt("vhost-user-fs-pci").set("id", "vlab-share"+strconv.Itoa(i)).set("chardev", shareCharID(i)).set("tag", s.Tag).String())
		}
	}
	if len(b.cfg.Shares) > 0 && b.board.name != "pseries" {
		b.add("-fw_cfg", newOpt("name="+SharesFwCfg).set("string", sharesTable(b.cfg.Shares)).String())
	}
}
