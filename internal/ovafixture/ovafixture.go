// Package ovafixture writes OVF packages for tests: descriptors in the form
// VMware (ovftool) and VirtualBox write them, following DMTF DSP0243 and
// the vendors' documented extensions, packed as OVAs with streamOptimized
// VMDKs made by qemu-img, each disk starting with a marker line. It also
// damages packages in the ways the import must refuse.
package ovafixture

import (
	"archive/tar"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Disk is one disk of a fixture: Size bytes whose first sector starts with
// the line Marker.
type Disk struct {
	Marker string
	Size   int64
	Random int64 // bytes of random data after the first sector (a disk that does not compress)
}

// VM describes a fixture system.
type VM struct {
	Name      string
	CPUs      int
	Memory    string // VirtualQuantity with Units
	Units     string // AllocationUnits spelling, e.g. "byte * 2^20", "MegaBytes"
	Disks     []Disk
	NICs      []string // ResourceSubType of each NIC
	EFI       bool
	OSID      int    // CIM OS id
	OSType    string // vmw:osType or vbox:OSType
	VBoxMACs  []string
	DiskFiles []string // set by Build: the package names of the disks
}

// Member is one file to pack.
type Member struct {
	Name string
	Path string // a file to copy, or
	Data []byte // these bytes
	Link string // a symlink member pointing here (a hostile package)
}

// MakeDisk writes a streamOptimized VMDK at path holding d.
func MakeDisk(t testing.TB, path string, d Disk) {
	t.Helper()
	raw := path + ".raw"
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(d.Marker + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(d.Size); err != nil {
		t.Fatal(err)
	}
	if d.Random > 0 {
		if _, err := io.CopyN(io.NewOffsetWriter(f, 512), rand.Reader, d.Random); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	defer os.Remove(raw)
	out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
}

// Build writes vm's disks into dir and returns the descriptor of the given
// vendor ("vmware" or "vbox") and the members to pack after it.
func Build(t testing.TB, dir, vendor string, vm *VM) ([]byte, []Member) {
	t.Helper()
	var members []Member
	vm.DiskFiles = nil
	for i, d := range vm.Disks {
		name := fmt.Sprintf("%s-disk%d.vmdk", vm.Name, i+1)
		path := filepath.Join(dir, name)
		MakeDisk(t, path, d)
		vm.DiskFiles = append(vm.DiskFiles, name)
		members = append(members, Member{Name: name, Path: path})
	}
	switch vendor {
	case "vmware":
		return []byte(VMware(vm)), members
	case "vbox":
		return []byte(VBox(vm)), members
	}
	t.Fatalf("unknown vendor %q", vendor)
	return nil, nil
}

// Manifest returns a manifest of members with alg (SHA1 or SHA256) digests.
func Manifest(t testing.TB, alg string, members []Member) []byte {
	t.Helper()
	var b strings.Builder
	for _, m := range members {
		data := m.Data
		if m.Path != "" {
			var err error
			if data, err = os.ReadFile(m.Path); err != nil {
				t.Fatal(err)
			}
		}
		var sum []byte
		if alg == "SHA1" {
			s := sha1.Sum(data)
			sum = s[:]
		} else {
			s := sha256.Sum256(data)
			sum = s[:]
		}
		fmt.Fprintf(&b, "%s(%s)= %s\n", alg, m.Name, hex.EncodeToString(sum))
	}
	return []byte(b.String())
}

// Pack writes the members, in order, as a ustar archive at path.
func Pack(t testing.TB, path string, members []Member) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, m := range members {
		if m.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Name: m.Name, Typeflag: tar.TypeSymlink, Linkname: m.Link, Mode: 0o777, Format: tar.FormatUSTAR}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var r io.Reader
		size := int64(len(m.Data))
		if m.Path != "" {
			src, err := os.Open(m.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			fi, _ := src.Stat()
			r, size = src, fi.Size()
		} else {
			r = strings.NewReader(string(m.Data))
		}
		if err := tw.WriteHeader(&tar.Header{Name: m.Name, Typeflag: tar.TypeReg, Size: size, Mode: 0o644, Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// OVA builds vm as a vendor package at path: descriptor first, then a
// SHA256 (SHA1 for VirtualBox, as it writes by default) manifest, then the
// disks.
func OVA(t testing.TB, path, vendor string, vm *VM) {
	t.Helper()
	dir := t.TempDir()
	desc, disks := Build(t, dir, vendor, vm)
	d := Member{Name: vm.Name + ".ovf", Data: desc}
	alg := "SHA256"
	if vendor == "vbox" {
		alg = "SHA1"
	}
	mf := Member{Name: vm.Name + ".mf", Data: Manifest(t, alg, append([]Member{d}, disks...))}
	Pack(t, path, append([]Member{d, mf}, disks...))
}
