package portable

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPackOVA: both packings (around the first disk where the file system
// inserts ranges, copying otherwise) give a ustar archive with the
// descriptor first, the manifest second and the disks' exact bytes after,
// the manifest naming each member's SHA-256.
func TestPackOVA(t *testing.T) {
	desc := []byte("<?xml version=\"1.0\"?>\n<Envelope/>\n")
	for _, how := range []string{"auto", "copy"} {
		t.Run(how, func(t *testing.T) {
			work := t.TempDir()
			rng := rand.New(rand.NewSource(1))
			var ms []packMember
			want := map[string][]byte{}
			sums := map[string]string{}
			for i, size := range []int{3*4096 + 77, 1000} {
				data := make([]byte, size)
				rng.Read(data)
				name := fmt.Sprintf("vm-disk%d.vmdk", i+1)
				path := filepath.Join(work, name)
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
				want[name], sums[name] = data, sha256Bytes(data)
				ms = append(ms, packMember{name: name, path: path, size: int64(size)})
			}
			out := filepath.Join(work, "vm.ova")
			var got string
			var err error
			if how == "copy" {
				got = "copy"
				err = writeTarFile(out, append([]packMember{{name: "vm.ovf", data: desc}, {name: "vm.mf", data: []byte("x")}}, ms...), time.Now())
			} else {
				got, err = packOVA(out, "vm.ovf", "vm.mf", desc, ms, sums)
			}
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Statfs_t
			if how == "auto" && unix.Statfs(work, &st) == nil && (st.Type == unix.EXT4_SUPER_MAGIC || st.Type == unix.XFS_SUPER_MAGIC) && got != "insert" {
				t.Errorf("packed by %q on ext4/XFS, want insert", got)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			tr := tar.NewReader(f)
			var names []string
			files := map[string][]byte{}
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("read the archive: %v", err)
				}
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, h.Name)
				files[h.Name] = b
			}
			if strings.Join(names, ",") != "vm.ovf,vm.mf,vm-disk1.vmdk,vm-disk2.vmdk" {
				t.Fatalf("members %v", names)
			}
			for n, w := range want {
				if !bytes.Equal(files[n], w) {
					t.Errorf("%s: %d bytes differ from the disk's %d", n, len(files[n]), len(w))
				}
			}
			ovf := files["vm.ovf"]
			if !bytes.HasPrefix(ovf, desc) || strings.Trim(string(ovf[len(desc):]), " ") != "" {
				t.Errorf("descriptor %q, want %q plus blanks", ovf, desc)
			}
			if how == "auto" {
				mf := string(files["vm.mf"])
				for n, b := range files {
					if n != "vm.mf" && !strings.Contains(mf, "SHA256("+n+")= "+sha256Bytes(b)+"\n") {
						t.Errorf("manifest lacks the sum of %s:\n%s", n, mf)
					}
				}
			}
		})
	}
}
