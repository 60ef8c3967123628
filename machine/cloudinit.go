package machine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// SeedVolumeID is the volume id cloud-init's NoCloud datasource looks for.
const SeedVolumeID = "cidata"

// SeedFile is the NoCloud seed ISO's file name in the VM folder.
const SeedFile = "cidata.iso"

// CloudInit is the data of a NoCloud seed: user-data (cloud-config or a
// script), meta-data (generated when empty) and an optional
// network-config.
type CloudInit struct {
	UserData      []byte
	MetaData      []byte
	NetworkConfig []byte
}

// userDataStarts are the first lines cloud-init acts on; anything else it
// ignores, so vlab refuses it instead of booting a guest that never gets
// the user's key.
var userDataStarts = []string{"#cloud-config", "#!", "#include", "#cloud-boothook", "#part-handler", "## template:", "Content-Type:", "#cloud-config-archive"}

// Validate checks that the user-data is something cloud-init acts on.
func (c CloudInit) Validate() error {
	if len(bytes.TrimSpace(c.UserData)) == 0 {
		return errors.New("cloud-init user-data is empty: start it with #cloud-config")
	}
	for _, p := range userDataStarts {
		if bytes.HasPrefix(c.UserData, []byte(p)) {
			return nil
		}
	}
	return errors.New("cloud-init user-data does not start with #cloud-config or #! (cloud-init would ignore it): add #cloud-config as its first line")
}

// metaData returns the meta-data to write: the user's, or a fresh
// instance-id (so cloud-init runs again for new data) and the hostname.
func (c CloudInit) metaData(hostname string) []byte {
	if len(c.MetaData) > 0 {
		return c.MetaData
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Appendf(nil, "instance-id: vlab-%s-%s\nlocal-hostname: %s\n", hostname, hex.EncodeToString(b[:]), hostname)
}

// WriteSeedISO writes a NoCloud seed ISO to path: ISO 9660 with Rock Ridge
// and Joliet, volume id "cidata", files user-data, meta-data and (when
// given) network-config in the root. hostname goes into generated
// meta-data. The file appears atomically.
//
// The image is written by github.com/diskfs/go-diskfs (a maintained Go
// library; lima writes its cidata seeds with it), so no external tool is
// needed.
func WriteSeedISO(path, hostname string, c CloudInit) error {
	if err := c.Validate(); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	work, err := os.MkdirTemp(dir, ".cidata-work-")
	if err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	defer os.RemoveAll(work)
	// The workspace's mode becomes the ISO root directory's.
	if err := os.Chmod(work, 0o755); err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	fs, err := iso9660.Create(file.New(tmp, false), 0, 0, 2048, work)
	if err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"user-data", c.UserData},
		{"meta-data", c.metaData(hostname)},
	}
	if len(c.NetworkConfig) > 0 {
		files = append(files, struct {
			name string
			data []byte
		}{"network-config", c.NetworkConfig})
	}
	for _, f := range files {
		w, err := fs.OpenFile("/"+f.name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("write seed %s: add %s: %w", path, f.name, err)
		}
		if _, err := io.Copy(w, bytes.NewReader(f.data)); err != nil {
			w.Close()
			return fmt.Errorf("write seed %s: add %s: %w", path, f.name, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("write seed %s: add %s: %w", path, f.name, err)
		}
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: SeedVolumeID}); err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	// Pad to whole 2 KiB sectors: the last file's data may end mid-sector,
	// and block devices (and Size) want whole sectors.
	if fi, err := tmp.Stat(); err == nil && fi.Size()%2048 != 0 {
		if err := tmp.Truncate(fi.Size() + 2048 - fi.Size()%2048); err != nil {
			return fmt.Errorf("write seed %s: %w", path, err)
		}
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	return nil
}

// SetCloudInit writes VM name's NoCloud seed ISO into its folder and
// attaches it as a read-only raw disk (cloud-init finds the seed by its
// volume id on any block device). Called again, it replaces the seed with
// a new instance-id, so cloud-init applies the new data at the next boot.
func (s *Store) SetCloudInit(ctx context.Context, name string, c CloudInit) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("cloud-init for vm %q: %w", name, err)
	}
	// The seed is written and attached under the VM lock: a concurrent edit
	// is not lost.
	return s.Update(ctx, name, func(spec *Spec) error {
		p := s.Paths(name)
		seed := filepath.Join(p.Dir, SeedFile)
		if err := WriteSeedISO(seed, name, c); err != nil {
			return fmt.Errorf("cloud-init for vm %q: %w", name, err)
		}
		fi, err := os.Stat(seed)
		if err != nil {
			return fmt.Errorf("cloud-init for vm %q: %w", name, err)
		}
		found := false
		for i := range spec.Disks {
			if spec.Disks[i].File == SeedFile {
				spec.Disks[i].Size = Size(fi.Size())
				found = true
			}
		}
		if !found {
			bus := ""
			if len(spec.Disks) > 0 {
				bus = spec.Disks[0].Bus
			}
			spec.Disks = append(spec.Disks, DiskSpec{File: SeedFile, Size: Size(fi.Size()), Format: "raw", Bus: bus, ReadOnly: true})
		}
		return nil
	})
}
