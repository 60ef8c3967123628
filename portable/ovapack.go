package portable

// Packing an OVA without copying its first disk. An OVA is a ustar
// archive: the descriptor, the manifest, then the disks, each behind a
// 512-byte header and padded to 512 bytes. The naive packing copies every
// converted VMDK into the archive: a second write of the whole disk, the
// largest cost of an export after the conversion itself (bench/RESULTS.md).
// Where the file system can insert a range into a file (fallocate
// FALLOC_FL_INSERT_RANGE: ext4, XFS), the archive is built around the
// first VMDK instead: the archive's head (descriptor and manifest with
// their headers, and the VMDK's own header) is inserted in front of the
// VMDK's data, which never moves. The insertion must be a whole number of
// file system blocks, so the descriptor is padded with trailing blanks
// (allowed after an XML document's root element) until the head is.
// Disks after the first are copied (in the kernel, copy_file_range).
// Where insertion is not supported, the whole archive is copied.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const tarBlock = 512

// tarHeader is the ustar header block of a regular file.
func tarHeader(name string, size int64, mtime time.Time) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: size, Mode: 0o600, ModTime: mtime, Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("tar header for %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// tarPad is the padding after n bytes of a packMember's data.
func tarPad(n int64) []byte { return make([]byte, (tarBlock-n%tarBlock)%tarBlock) }

// packMember is one file of the archive: its data in memory (descriptor,
// manifest) or in a file of the work folder (disks).
type packMember struct {
	name string
	data []byte // nil: the file at path
	path string
	size int64
}

// packOVA writes the OVA at path: the descriptor desc, then a manifest of
// SHA-256 sums (sums holds the disks' ones, by file name), then the disks.
// It returns how the archive was built ("insert" or "copy").
func packOVA(path, ovfName, mfName string, desc []byte, disks []packMember, sums map[string]string) (string, error) {
	mtime := time.Now()
	manifest := func(desc []byte) []byte {
		var mf strings.Builder
		fmt.Fprintf(&mf, "SHA256(%s)= %s\n", ovfName, sha256Bytes(desc))
		for _, d := range disks {
			fmt.Fprintf(&mf, "SHA256(%s)= %s\n", d.name, sums[d.name])
		}
		return []byte(mf.String())
	}
	if len(disks) > 0 {
		if how, err := packAround(path, ovfName, mfName, desc, disks, manifest, mtime); err == nil || !errors.Is(err, errNoInsert) {
			return how, err
		}
	}
	ms := []packMember{{name: ovfName, data: desc}, {name: mfName, data: manifest(desc)}}
	return "copy", writeTarFile(path, append(ms, disks...), mtime)
}

func sha256Bytes(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// errNoInsert: the file system cannot insert a range (or not this one).
var errNoInsert = errors.New("range insertion unsupported")

// packAround builds the archive around disks[0]'s file (see the file
// comment) and renames it to path.
func packAround(path, ovfName, mfName string, desc []byte, disks []packMember, manifest func([]byte) []byte, mtime time.Time) (string, error) {
	first := disks[0]
	var st unix.Statfs_t
	if err := unix.Statfs(first.path, &st); err != nil {
		return "", fmt.Errorf("%w: %v", errNoInsert, err)
	}
	bs := int64(st.Bsize)
	if bs < tarBlock || bs%tarBlock != 0 || first.size == 0 {
		return "", errNoInsert
	}
	var head []byte
	padded := desc
	for k := int64(0); ; k++ {
		if k > bs/tarBlock {
			return "", errNoInsert // cannot happen: each step adds a block
		}
		padded = append(append([]byte(nil), desc...), bytes.Repeat([]byte(" "), int(k)*tarBlock)...)
		var err error
		if head, err = archiveHead(ovfName, mfName, padded, manifest(padded), first, mtime); err != nil {
			return "", err
		}
		if int64(len(head))%bs == 0 {
			break
		}
	}
	f, err := os.OpenFile(first.path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_INSERT_RANGE, 0, int64(len(head))); err != nil {
		return "", fmt.Errorf("%w: %v", errNoInsert, err)
	}
	// From here the VMDK is the archive under construction.
	if _, err := f.WriteAt(head, 0); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return "", err
	}
	if _, err := f.Write(tarPad(first.size)); err != nil {
		return "", err
	}
	if err := appendMembers(f, disks[1:], mtime); err != nil {
		return "", err
	}
	if _, err := f.Write(make([]byte, 2*tarBlock)); err != nil { // end of archive
		return "", err
	}
	if err := f.Chmod(0o600); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return "insert", os.Rename(first.path, path)
}

// archiveHead is the archive up to the first disk's data: descriptor and
// manifest with their headers and padding, and the disk's header.
func archiveHead(ovfName, mfName string, desc, mf []byte, first packMember, mtime time.Time) ([]byte, error) {
	var b bytes.Buffer
	for _, m := range []packMember{{name: ovfName, data: desc}, {name: mfName, data: mf}} {
		h, err := tarHeader(m.name, int64(len(m.data)), mtime)
		if err != nil {
			return nil, err
		}
		b.Write(h)
		b.Write(m.data)
		b.Write(tarPad(int64(len(m.data))))
	}
	h, err := tarHeader(first.name, first.size, mtime)
	if err != nil {
		return nil, err
	}
	b.Write(h)
	return b.Bytes(), nil
}

// appendMembers writes each packMember with its header and padding at f's
// offset; files are copied by the kernel where it can (copy_file_range).
func appendMembers(f *os.File, ms []packMember, mtime time.Time) error {
	for _, m := range ms {
		h, err := tarHeader(m.name, m.size, mtime)
		if err != nil {
			return err
		}
		if _, err := f.Write(h); err != nil {
			return err
		}
		if m.data != nil {
			if _, err := f.Write(m.data); err != nil {
				return err
			}
		} else {
			src, err := os.Open(m.path)
			if err != nil {
				return err
			}
			n, err := f.ReadFrom(io.LimitReader(src, m.size))
			src.Close()
			if err != nil {
				return err
			}
			if n != m.size {
				return fmt.Errorf("pack %s: %s changed size while packed", filepath.Base(f.Name()), m.name)
			}
		}
		if _, err := f.Write(tarPad(m.size)); err != nil {
			return err
		}
	}
	return nil
}

// writeTarFile writes members as a new ustar archive at path, synced.
func writeTarFile(path string, ms []packMember, mtime time.Time) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for i := range ms {
		if ms[i].data != nil {
			ms[i].size = int64(len(ms[i].data))
		}
	}
	if err := appendMembers(f, ms, mtime); err != nil {
		return err
	}
	if _, err := f.Write(make([]byte, 2*tarBlock)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
