package portable

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"vlab/emulator"
	"vlab/internal/fixture"
	"vlab/internal/ovafixture"
	"vlab/machine"
)

// TestExportRoundTrip: a VM exported as an OVA is a package other tools
// read (descriptor first, manifest that verifies, streamOptimized VMDKs)
// and imports back into the same definition with the same disk data.
func TestExportRoundTrip(t *testing.T) {
	fixture.Program(t, "qemu-img")
	fixture.Program(t, "qemu-system-x86_64")
	s := testStore(t)
	ctx := context.Background()
	dir := t.TempDir()
	vm := ovafixture.VM{Name: "orig", CPUs: 2, Memory: "512", Units: "byte * 2^20",
		Disks: []ovafixture.Disk{{Marker: "RT-MARK-A", Size: 16 << 20}, {Marker: "RT-MARK-B", Size: 8 << 20}},
		NICs:  []string{"E1000"}, OSID: 96, OSType: "debian10_64Guest"}
	ovafixture.OVA(t, filepath.Join(dir, "in.ova"), "vmware", &vm)
	if _, err := Import(ctx, s, filepath.Join(dir, "in.ova"), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// What OVF cannot say: the vlab section must carry it.
	err := s.Update(ctx, "orig", func(sp *machine.Spec) error {
		sp.Machine, sp.CPU = "pc", "qemu64"
		sp.Disks[0].Bus, sp.Disks[1].Bus = "virtio", "ide"
		f, _ := machine.ParseForward("tcp:2222:22")
		sp.NICs[0].Forwards = []machine.Forward{f}
		sp.NICs[0].Restrict = true
		sp.NICs = append(sp.NICs, machine.NICSpec{Mode: emulator.NetUser, Model: "rtl8139", MAC: "52:54:00:12:34:56"})
		// A host folder: never taken from a package.
		sp.Shares = []machine.Share{{HostDir: dir, Tag: "host"}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"ova", "ovf"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "orig."+format)
			res, err := Export(ctx, s, "orig", out, ExportOptions{Format: format})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Disks) != 2 {
				t.Fatalf("%d disks exported", len(res.Disks))
			}
			src := out
			if format == "ova" {
				checkOVALayout(t, out)
			} else {
				src = filepath.Join(out, "orig.ovf")
				for _, d := range res.Disks {
					checkStreamOptimized(t, filepath.Join(out, d.File))
				}
			}
			pkg, err := Open(src)
			if err != nil || pkg.Manifest == "" {
				t.Fatalf("open the export: %v (manifest %q)", err, pkg.Manifest)
			}
			name := "copy-" + format
			if _, err := Import(ctx, s, src, ImportOptions{Name: name}); err != nil {
				t.Fatal(err)
			}
			a, _ := s.Load("orig")
			b, _ := s.Load(name)
			a.Name, b.Name = "", ""
			if len(b.Shares) > 0 {
				t.Errorf("the package brought shared folders %+v: host paths are never taken from a package", b.Shares)
			}
			a.Shares = nil
			for i := range a.Disks {
				a.Disks[i].File = b.Disks[i].File
			}
			if !reflect.DeepEqual(a, b) {
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				t.Errorf("round trip changed the definition:\n was %s\n got %s", ja, jb)
			}
			for i, d := range b.Disks {
				if got := firstLine(t, s.Paths(name).DiskPath(d.File)); got != vm.Disks[i].Marker {
					t.Errorf("disk %d starts with %q, want %q", i, got, vm.Disks[i].Marker)
				}
			}
		})
	}
}

// checkOVALayout checks that the OVA holds the descriptor first, the
// manifest second and streamOptimized VMDKs after them.
func checkOVALayout(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Format != tar.FormatUSTAR && hdr.Format != tar.FormatUnknown {
			t.Errorf("%s is written as %v, want ustar", hdr.Name, hdr.Format)
		}
		names = append(names, hdr.Name)
		if filepath.Ext(hdr.Name) == ".vmdk" {
			tmp := filepath.Join(t.TempDir(), hdr.Name)
			w, _ := os.Create(tmp)
			io.Copy(w, tr)
			w.Close()
			checkStreamOptimized(t, tmp)
		}
	}
	if len(names) < 3 || names[0] != "orig.ovf" || names[1] != "orig.mf" {
		t.Errorf("members %v: want the descriptor, then the manifest, then disks", names)
	}
}

func checkStreamOptimized(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Format         string `json:"format"`
		FormatSpecific struct {
			Data struct {
				CreateType string `json:"create-type"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != "vmdk" || info.FormatSpecific.Data.CreateType != "streamOptimized" {
		t.Errorf("%s is %s/%s, want vmdk/streamOptimized", path, info.Format, info.FormatSpecific.Data.CreateType)
	}
}
