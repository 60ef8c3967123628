package tui

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vlab/emulator"
	"vlab/internal/fixture"
	"vlab/machine"
)

func TestBootOrderWords(t *testing.T) {
	for _, w := range []string{"", "cdrom", "network"} {
		if got := bootWord(bootLetters(w)); got != w {
			t.Errorf("%q → %q → %q", w, bootLetters(w), got)
		}
	}
	if bootLetters("disk") != "" || bootWord("cd") != "" {
		t.Fatal("disk first must be QEMU's default order")
	}
}

func TestNewSpecFromWizard(t *testing.T) {
	spec, err := newSpec(NewVM{Name: "w", Arch: emulator.ArchX86_64, ISO: "/x.iso", MemoryMiB: 768, CPUs: 2, DiskBytes: 4 << 30,
		Net: emulator.NetUser, MAC: "52:54:00:00:00:07", Forwards: []emulator.Forward{{Proto: "tcp", HostPort: 2222, GuestPort: 22}}, Display: emulator.DisplayVNC})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Memory != 768*machine.MiB || spec.CPUs != 2 || spec.Boot.ISO != "/x.iso" || spec.Boot.Order != "dc" {
		t.Fatalf("spec %+v", spec)
	}
	if len(spec.Disks) != 1 || spec.Disks[0].Size != machine.Size(4<<30) {
		t.Fatalf("disks %+v", spec.Disks)
	}
	if len(spec.NICs) != 1 || spec.NICs[0].MAC != "52:54:00:00:00:07" || spec.NICs[0].Forwards[0].HostAddr != "127.0.0.1" {
		t.Fatalf("nics %+v", spec.NICs)
	}
	if spec.Machine == "" {
		t.Fatal("no machine type")
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	none, err := newSpec(NewVM{Name: "n", Arch: emulator.ArchAArch64, MemoryMiB: 256, CPUs: 1, Net: emulator.NetNone, Display: emulator.DisplayNone})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.NICs) != 0 || len(none.Disks) != 0 {
		t.Fatalf("spec without net and disk: %+v", none)
	}
}

// TestMachineServiceLibrary runs the adapter on a real (temporary) library
// with a VM that needs no QEMU to define: list, rename checks, edit, log.
func TestMachineServiceLibrary(t *testing.T) {
	root := t.TempDir()
	dirs := machine.Dirs{Config: filepath.Join(root, "c"), Data: filepath.Join(root, "d"), Runtime: filepath.Join(root, "r"),
		State: filepath.Join(root, "s"), Cache: filepath.Join(root, "k")}
	store, err := machine.Open(dirs)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewMachineService(store)
	ctx := context.Background()
	spec := machine.NewSpec("plain", emulator.ArchX86_64)
	spec.NICs[0].MAC = "52:54:00:00:00:09"
	if err := store.Create(ctx, spec); err != nil {
		if strings.Contains(err.Error(), "no qemu") || strings.Contains(err.Error(), "probe") {
			fixture.Need(t, "QEMU is missing: run make deps ("+err.Error()+")")
		}
		t.Fatal(err)
	}
	vms, err := svc.List(ctx)
	if err != nil || len(vms) != 1 || vms[0].Name != "plain" || vms[0].State != StateStopped || vms[0].MemoryMiB != 1024 {
		t.Fatalf("list: %+v %v", vms, err)
	}
	if err := svc.ValidateName("plain"); err == nil {
		t.Fatal("a taken name validated")
	}
	if err := svc.ValidateName("../x"); err == nil {
		t.Fatal("a bad name validated")
	}
	set := SettingsOf(vms[0])
	set.MemoryMiB, set.BootOrder, set.Forwards = 512, "cdrom", []emulator.Forward{{Proto: "tcp", HostPort: 2022, GuestPort: 22}}
	if err := svc.Update(ctx, "plain", set); err != nil {
		t.Fatal(err)
	}
	got, _ := store.Load("plain")
	if got.Memory != 512*machine.MiB || got.Boot.Order != "dc" || got.NICs[0].Forwards[0].HostPort != 2022 {
		t.Fatalf("after update: %+v", got)
	}
	// Forwards: a stopped VM saves them for its next start; the list shows
	// the auto one unbound, and the NIC as machine.Network reports it.
	pf, err := svc.AddForward(ctx, "plain", -1, "tcp:auto:80")
	if err != nil || pf.BoundPort != 0 || !pf.Auto() || pf.Rule.GuestPort != 80 {
		t.Fatalf("add forward: %+v %v", pf, err)
	}
	if _, err := svc.AddForward(ctx, "plain", -1, "tcp:99999:80"); err == nil || fixOf(err) == "" {
		t.Fatalf("a bad rule was accepted or has no fix: %v", err)
	}
	vms, _ = svc.List(ctx)
	nic := vms[0].NICs[0]
	if nic.Mode != "user" || nic.Kind != emulator.NetUser || nic.MAC != "52:54:00:00:00:09" || len(nic.Forwards) != 2 ||
		nic.Forwards[1].RuleString() != "tcp:127.0.0.1:auto:80" || nic.Forwards[1].BoundPort != 0 || nic.GuestIP != "" {
		t.Fatalf("nic after add: %+v", nic)
	}
	if _, err := svc.RemoveForward(ctx, "plain", 0, nic.Forwards[1].RuleString()); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.Load("plain"); len(got.NICs[0].Forwards) != 1 || got.NICs[0].Forwards[0].HostPort != 2022 {
		t.Fatalf("after remove: %+v", got.NICs[0].Forwards)
	}
	if s, err := svc.LogTail(ctx, "plain", 100); err != nil || s != "" {
		t.Fatalf("log of a never-started VM: %q %v", s, err)
	}
	if _, err := svc.SerialAttach(ctx, "plain"); err == nil || fixOf(err) == "" {
		t.Fatalf("serial of a stopped VM: %v", err)
	}
	if _, err := svc.HMP(ctx, "plain", "info status"); !errors.Is(err, machine.ErrNotRunning) || fixOf(err) == "" {
		t.Fatalf("monitor of a stopped VM: %v", err)
	}
	if s, err := svc.TraceTail(ctx, "plain", 100); err != nil || s != "" {
		t.Fatalf("trace log of a never-traced VM: %q %v", s, err)
	}
	if l, err := svc.HostLimits(ctx); err != nil || l.CPUs < 1 || l.FreeDiskBytes <= 0 {
		t.Fatalf("host limits %+v %v", l, err)
	}
	if err := svc.Delete(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(store.Paths("plain").Dir); !os.IsNotExist(err) {
		t.Fatal("delete left the folder")
	}
}

// TestMachineServiceExportImport runs export and import through the
// adapter on a real (temporary) library: a stopped VM with a small disk is
// written as an OVA and imported back (under its own name, so the original
// is deleted first); the imported VM is then written as an OVF folder and a
// libvirt domain.
func TestMachineServiceExportImport(t *testing.T) {
	fixture.Program(t, "qemu-img")
	root := t.TempDir()
	dirs := machine.Dirs{Config: filepath.Join(root, "c"), Data: filepath.Join(root, "d"), Runtime: filepath.Join(root, "r"),
		State: filepath.Join(root, "s"), Cache: filepath.Join(root, "k")}
	store, err := machine.Open(dirs)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewMachineService(store)
	ctx := context.Background()
	spec := machine.NewSpec("porter", emulator.ArchX86_64)
	spec.CPUs, spec.Memory = 2, 512*machine.MiB
	spec.Disks = []machine.DiskSpec{{File: "disk0.qcow2", Size: 16 * machine.MiB, Format: "qcow2"}}
	if err := store.Create(ctx, spec); err != nil {
		if strings.Contains(err.Error(), "no qemu") || strings.Contains(err.Error(), "probe") {
			fixture.Need(t, "QEMU is missing: run make deps ("+err.Error()+")")
		}
		t.Fatal(err)
	}
	if _, err := svc.Export(ctx, "porter", filepath.Join(root, "x.zip"), "zip", nil); err == nil {
		t.Fatal("an unknown format was accepted")
	}
	out := filepath.Join(t.TempDir(), "porter.ova")
	var reports int
	sum, err := svc.Export(ctx, "porter", out, FormatOVA, func(Progress) { reports++ })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Path != out || sum.Disks != 1 {
		t.Fatalf("export summary %+v", sum)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Fatalf("no package written: %v", err)
	}
	if _, err := svc.Export(ctx, "porter", out, FormatOVA, nil); err == nil {
		t.Fatal("an existing file was overwritten")
	}
	if err := svc.Delete(ctx, "porter"); err != nil {
		t.Fatal(err)
	}
	isum, err := svc.Import(ctx, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(isum.Names) != 1 || isum.Names[0] != "porter" {
		t.Fatalf("import summary %+v", isum)
	}
	vms, err := svc.List(ctx)
	if err != nil || len(vms) != 1 || vms[0].Name != "porter" || vms[0].CPUs != 2 || vms[0].MemoryMiB != 512 || len(vms[0].Disks) != 1 {
		t.Fatalf("list after import: %+v %v", vms, err)
	}
	if _, err := svc.Import(ctx, out, nil); err == nil {
		t.Fatal("an import over a taken name succeeded")
	}
	for _, format := range []string{FormatOVF, FormatLibvirt} {
		dir := filepath.Join(t.TempDir(), format)
		sum, err := svc.Export(ctx, "porter", dir, format, nil)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if sum.Disks != 1 {
			t.Fatalf("%s: summary %+v", format, sum)
		}
		if fi, err := os.Stat(sum.Path); err != nil || !strings.HasPrefix(sum.Path, dir) {
			t.Fatalf("%s: wrote %q: %v %v", format, sum.Path, fi, err)
		}
	}
	t.Logf("export progress reports: %d", reports)
}

// TestMachineServiceGuest runs the guest workflows through the adapter on
// a real (temporary) library: the built-in gallery, a machine made from a
// local cloud image (login user, SSH forward, grown disk, a share), its
// shares added and removed, and ssh and copy refused on a stopped machine
// with the fix. No network, no guest: a gallery ISO shows in the preview
// at the path it would be downloaded to.
func TestMachineServiceGuest(t *testing.T) {
	qimg := fixture.Program(t, "qemu-img")
	fixture.Program(t, "ssh-keygen")
	root := t.TempDir()
	t.Setenv("HOME", root) // no ~/.ssh keys of the user running the test
	t.Setenv(machine.GalleryEnv, "")
	dirs := machine.Dirs{Config: filepath.Join(root, "c"), Data: filepath.Join(root, "d"), Runtime: filepath.Join(root, "r"),
		State: filepath.Join(root, "s"), Cache: filepath.Join(root, "k")}
	store, err := machine.Open(dirs)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewMachineService(store)
	ctx := context.Background()

	g, err := svc.Gallery(ctx)
	if err != nil || len(g) == 0 {
		t.Fatalf("gallery: %d entries, %v", len(g), err)
	}
	var iso GalleryEntry
	for _, e := range g {
		if e.Kind == KindISO && e.Arch == "x86_64" {
			iso = e
		}
	}
	if iso.ID == "" {
		t.Fatal("the built-in gallery has no x86_64 installer ISO")
	}
	argv, err := svc.PreviewCmdline(ctx, NewVM{Name: "inst", Arch: emulator.ArchX86_64, OS: iso.ID, MemoryMiB: 512, CPUs: 1, DiskBytes: 1 << 30, Net: emulator.NetUser, MAC: "52:54:00:00:00:0a", Display: emulator.DisplayNone})
	if err != nil {
		if strings.Contains(err.Error(), "no qemu") || strings.Contains(err.Error(), "probe") {
			fixture.Need(t, "QEMU is missing: run make deps ("+err.Error()+")")
		}
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(argv, " "), store.GalleryFile(iso)) {
		t.Fatalf("the preview does not boot %s: %q", store.GalleryFile(iso), argv)
	}
	if err := svc.Create(ctx, NewVM{Name: "x", Arch: emulator.ArchX86_64, Image: "no-such-image", MemoryMiB: 256, CPUs: 1}, nil); !errors.Is(err, machine.ErrNoGalleryEntry) {
		t.Fatalf("an unknown gallery id: %v", err)
	}

	img := filepath.Join(root, "cloud.qcow2")
	if out, err := exec.Command(qimg, "create", "-q", "-f", "qcow2", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	share := filepath.Join(root, "project")
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	var steps []string
	n := NewVM{Name: "cloudy", Arch: emulator.ArchX86_64, Image: img, User: "dev", MemoryMiB: 256, CPUs: 1, DiskBytes: 128 << 20,
		Net: emulator.NetUser, MAC: "52:54:00:00:00:0b", Display: emulator.DisplayNone, Shares: []Share{{HostDir: share, Tag: "project"}}}
	if err := svc.Create(ctx, n, func(p Progress) { steps = append(steps, p.Step) }); err != nil {
		t.Fatal(err)
	}
	vm, err := svc.Get(ctx, "cloudy")
	if err != nil {
		t.Fatal(err)
	}
	if len(vm.Disks) != 2 || vm.Disks[0].VirtualBytes != 128<<20 || !strings.HasSuffix(vm.Disks[1].Path, ".iso") || len(vm.NICs) != 1 || len(vm.Shares) != 1 {
		t.Fatalf("the image machine: %+v", vm)
	}
	if fw := vm.NICs[0].Forwards; len(fw) != 1 || fw[0].Rule.GuestPort != 22 || !fw[0].Auto() {
		t.Fatalf("its forwards: %+v", fw)
	}
	if gi, ok := store.GuestInfoOf("cloudy"); !ok || gi.User != "dev" {
		t.Fatalf("its login: %+v %v", gi, ok)
	}
	t.Logf("create steps: %q", steps)

	// Stopped: ssh and copy say to start it; a missing upload is refused first.
	if _, err := svc.SSH(ctx, "cloudy"); !errors.Is(err, machine.ErrNotRunning) || fixOf(err) != "start it first (s)" {
		t.Fatalf("ssh to a stopped machine: %v (fix %q)", err, fixOf(err))
	}
	if err := svc.Copy(ctx, "cloudy", CopyRequest{ToVM: true, HostPath: filepath.Join(root, "nope"), GuestPath: "/tmp/"}); err == nil || !strings.Contains(err.Error(), "does not exist on the host") {
		t.Fatalf("copy of a missing file: %v", err)
	}
	if err := svc.Copy(ctx, "cloudy", CopyRequest{ToVM: true, HostPath: img, GuestPath: "/tmp/"}); !errors.Is(err, machine.ErrNotRunning) || fixOf(err) == "" {
		t.Fatalf("copy to a stopped machine: %v", err)
	}
	if err := svc.Copy(ctx, "cloudy", CopyRequest{HostPath: "rel", GuestPath: "/tmp/x"}); err == nil {
		t.Fatal("a relative host path was accepted")
	}

	// Shares: listed with their mount command; added and removed.
	views, err := svc.Shares(ctx, "cloudy")
	if err != nil || len(views) != 1 || views[0].Tag != "project" || !strings.Contains(views[0].Mount, "/mnt/project") {
		t.Fatalf("shares: %+v %v", views, err)
	}
	docs := filepath.Join(root, "docs")
	if err := os.Mkdir(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	sh, err := svc.AddShare(ctx, "cloudy", Share{HostDir: docs, ReadOnly: true})
	if err != nil || sh.Tag != "docs" {
		t.Fatalf("add share: %+v %v", sh, err)
	}
	if _, err := svc.AddShare(ctx, "cloudy", Share{HostDir: share, Tag: "docs"}); err == nil || fixOf(err) == "" {
		t.Fatalf("a taken tag: %v", err)
	}
	if _, err := svc.AddShare(ctx, "cloudy", Share{HostDir: filepath.Join(root, "nope")}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a missing folder: %v", err)
	}
	if spec, _ := store.Load("cloudy"); len(spec.Shares) != 2 || spec.Shares[1] != (machine.Share{HostDir: docs, Tag: "docs", ReadOnly: true}) {
		t.Fatalf("saved shares: %+v", spec.Shares)
	}
	if err := svc.RemoveShare(ctx, "cloudy", "project"); err != nil {
		t.Fatal(err)
	}
	if err := svc.RemoveShare(ctx, "cloudy", "project"); err == nil {
		t.Fatal("removing a share twice succeeded")
	}
	if spec, _ := store.Load("cloudy"); len(spec.Shares) != 1 || spec.Shares[0].Tag != "docs" {
		t.Fatalf("saved shares after remove: %+v", spec.Shares)
	}
}

// The wizard's VM is made by machine.Build like `vlab create`'s: a Linux
// profile brings its SSH forward and agent channel (the wizard's own
// builder once forgot the forward).
func TestNewSpecOffersWhatCreateOffers(t *testing.T) {
	spec, err := newSpec(NewVM{Name: "d", Profile: "debian", Arch: emulator.ArchX86_64, ISO: "/x.iso", MemoryMiB: 1024, CPUs: 1,
		DiskBytes: 8 << 30, Net: emulator.NetUser, Display: emulator.DisplayVNC})
	if err != nil {
		t.Fatal(err)
	}
	ssh := 0
	for _, f := range spec.NICs[0].Forwards {
		if f.GuestPort == 22 && f.HostAddr == "127.0.0.1" {
			ssh++
		}
	}
	if ssh != 1 || !spec.Agent || spec.Profile != "debian" || spec.Disks[0].Bus != "virtio" {
		t.Fatalf("spec %+v", spec)
	}
	live, err := newSpec(NewVM{Name: "l", Arch: emulator.ArchX86_64, ISO: "/live.iso", MemoryMiB: 512, CPUs: 1, Net: emulator.NetUser})
	if err != nil {
		t.Fatal(err)
	}
	if len(live.Disks) != 0 {
		t.Fatalf("the wizard's no-disk choice got disks %+v", live.Disks)
	}
}
