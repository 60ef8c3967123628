package portable

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"vlab/emulator"
	"vlab/machine"
)

// libvirtHost is a host with every binary and firmware file, KVM usable.
func libvirtHost() *emulator.Host {
	bin := func(name string) emulator.Binary {
		return emulator.Binary{Path: "/usr/bin/" + name, Accels: []string{"kvm", "tcg"}}
	}
	return &emulator.Host{
		Arch: emulator.ArchX86_64,
		Binaries: map[emulator.Arch]emulator.Binary{
			emulator.ArchX86_64:  bin("qemu-system-x86_64"),
			emulator.ArchAArch64: bin("qemu-system-aarch64"),
		},
		KVM: emulator.KVMStatus{DevExists: true, DevRW: true, CPUVirt: true},
		Firmware: emulator.FirmwareFiles{
			OVMFCode: "/usr/share/OVMF/OVMF_CODE_4M.fd", OVMFVars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
			AAVMFCode: "/usr/share/AAVMF/AAVMF_CODE.fd", AAVMFVars: "/usr/share/AAVMF/AAVMF_VARS.fd",
		},
		QemuImg: "/usr/bin/qemu-img",
	}
}

// libvirtCase builds the domain of cfg and checks it with libvirt's own
// schema validator.
func libvirtCase(t *testing.T, spec *machine.Spec, cfg emulator.Config, files libvirtFiles) (*Domain, []string) {
	t.Helper()
	r, err := emulator.Resolve(cfg, libvirtHost())
	if err != nil {
		t.Fatal(err)
	}
	d, notes := libvirtDomain(spec, cfg, r, files)
	data, err := marshalDomain(d)
	if err != nil {
		t.Fatal(err)
	}
	validateDomainXML(t, data)
	var back Domain
	if err := xml.Unmarshal(data, &back); err != nil {
		t.Fatalf("the written XML does not read back: %v", err)
	}
	return &back, notes
}

// validateDomainXML runs `virt-xml-validate FILE domain` (libvirt-clients).
func validateDomainXML(t *testing.T, data []byte) {
	t.Helper()
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		if os.Getenv("VLAB_REQUIRE_E2E") != "" {
			t.Fatal("virt-xml-validate is missing: apt-get install libvirt-clients libxml2-utils")
		}
		t.Skip("virt-xml-validate is missing: apt-get install libvirt-clients libxml2-utils")
	}
	file := filepath.Join(t.TempDir(), "domain.xml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, file, "domain").CombinedOutput()
	if err != nil {
		t.Fatalf("virt-xml-validate refuses the domain: %v\n%s\n%s", err, out, data)
	}
}

func basePaths() emulator.Paths {
	return emulator.Paths{QMP: []string{"/run/vlab/x/qmp.sock"}, VNC: "/run/vlab/x/vnc.sock", Serial: "/run/vlab/x/serial.sock",
		SerialLog: "/d/serial.log", Pidfile: "/run/vlab/x/pid"}
}

func TestLibvirtDomainQ35BIOS(t *testing.T) {
	spec := &machine.Spec{Name: "web", NICs: []machine.NICSpec{{Mode: emulator.NetUser}, {Mode: emulator.NetBridge, Bridge: "br0"}, {Mode: machine.NetLab, Lab: "lab1"}, {Mode: emulator.NetUser}}}
	cfg := emulator.Config{
		Name: "web", Arch: emulator.ArchX86_64, CPUs: 2, MemoryMiB: 1024,
		Accel:     emulator.AccelChoice{Accel: emulator.AccelKVM},
		Firmware:  emulator.FirmwareBIOS,
		Disks:     []emulator.Disk{{Path: "/vm/disk0.qcow2", Format: "qcow2"}, {Path: "/vm/disk1.qcow2", Format: "raw", Bus: "ide"}, {Path: "/vm/d2.qcow2", Bus: "scsi"}},
		CDROMs:    []emulator.CDROM{{ID: "cd0", Path: "/isos/debian.iso"}},
		BootOrder: "cd",
		NICs: []emulator.NIC{
			{ID: "net0", Mode: emulator.NetUser, MAC: "52:54:00:AA:BB:01", Restrict: true, Forwards: []emulator.Forward{{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 2222, GuestPort: 22}}},
			{ID: "net1", Mode: emulator.NetBridge, Bridge: "br0", Model: "e1000", MAC: "52:54:00:aa:bb:02"},
			{ID: "net2", Mode: emulator.NetSocket, Socket: []string{"dgram", "local.type=unix", "local.path=/a", "remote.type=unix", "remote.path=/b"}},
			{ID: "net3", Mode: emulator.NetUser, MAC: "52:54:00:aa:bb:04"},
		},
		Display: emulator.DisplayVNC, Paths: basePaths(),
	}
	files := libvirtFiles{Disks: []string{"/out/web-disk1.qcow2", "/out/web-disk2.qcow2", "/out/web-disk3.qcow2"}, SerialLog: "/out/web-serial.log"}
	d, notes := libvirtCase(t, spec, cfg, files)
	if d.Type != "kvm" || d.OS.Type.Machine != "q35" || d.OS.Type.Arch != "x86_64" || d.VCPU != 2 || d.Memory.Value != 1024 || d.Memory.Unit != "MiB" {
		t.Errorf("domain header = type %s machine %s arch %s vcpu %d memory %d %s", d.Type, d.OS.Type.Machine, d.OS.Type.Arch, d.VCPU, d.Memory.Value, d.Memory.Unit)
	}
	if d.CPU == nil || d.CPU.Mode != "host-passthrough" {
		t.Errorf("cpu = %+v, want host-passthrough under KVM", d.CPU)
	}
	if d.OS.Loader != nil || d.OS.NVRAM != "" {
		t.Errorf("a BIOS guest has a loader: %+v %q", d.OS.Loader, d.OS.NVRAM)
	}
	if got := bootDevs(d); got != "hd,cdrom" {
		t.Errorf("boot order = %s, want hd,cdrom", got)
	}
	want := []string{"disk vda virtio /out/web-disk1.qcow2", "disk sda sata /out/web-disk2.qcow2", "disk sdb scsi /out/web-disk3.qcow2", "cdrom sdc sata /isos/debian.iso"}
	if got := diskRows(d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("disks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, dd := range d.Devices.Disks {
		if dd.Device == "disk" && dd.Driver.Type != "qcow2" {
			t.Errorf("disk %s driver %s, want qcow2 (the copies are qcow2)", dd.Target.Dev, dd.Driver.Type)
		}
	}
	if !hasController(d, "scsi", "virtio-scsi") || !hasController(d, "usb", "qemu-xhci") {
		t.Errorf("controllers = %+v, want virtio-scsi and qemu-xhci", d.Devices.Controllers)
	}
	if len(d.Devices.Interfaces) != 3 {
		t.Fatalf("interfaces = %+v, want user, bridge and user (the lab NIC is a note)", d.Devices.Interfaces)
	}
	fw, b, u := d.Devices.Interfaces[0], d.Devices.Interfaces[1], d.Devices.Interfaces[2]
	if u.Type != "user" || u.Model.Type != "virtio" || u.MAC == nil || u.MAC.Address != "52:54:00:aa:bb:04" || u.Alias != nil {
		t.Errorf("user nic = %+v", u)
	}
	// The NIC with a forward and restrict=on uses vlab's own -netdev:
	// libvirt 9's user interface has neither.
	if fw.Type != "user" || fw.MAC == nil || fw.MAC.Address != "52:54:00:aa:bb:01" || fw.Alias == nil || fw.Alias.Name != "ua-vlab-net0" {
		t.Errorf("forwarding nic = %+v, want a user interface named ua-vlab-net0", fw)
	}
	var args []string
	if d.Commandline != nil {
		for _, a := range d.Commandline.Args {
			args = append(args, a.Value)
		}
	}
	wantArgs := []string{"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,restrict=on"}
	if strings.Join(args, " ") != strings.Join(wantArgs, " ") {
		t.Errorf("qemu:commandline = %q, want %q", args, wantArgs)
	}
	wantOverride := []DomainOverrideDevice{{Alias: "ua-vlab-net0", Properties: []DomainProperty{{Name: "netdev", Type: "string", Value: "net0"}}}}
	if d.Override == nil || !reflect.DeepEqual(d.Override.Devices, wantOverride) {
		t.Errorf("qemu:override = %+v, want %+v", d.Override, wantOverride)
	}
	if b.Type != "bridge" || b.Source == nil || b.Source.Bridge != "br0" || b.Model.Type != "e1000" {
		t.Errorf("bridge nic = %+v", b)
	}
	if len(d.Devices.Serials) != 1 || d.Devices.Serials[0].Log == nil || d.Devices.Serials[0].Log.File != "/out/web-serial.log" {
		t.Errorf("serial = %+v, want a pty logged to the export folder", d.Devices.Serials)
	}
	if len(d.Devices.Graphics) != 1 || d.Devices.Graphics[0].Type != "vnc" || d.Devices.Graphics[0].Listen != "127.0.0.1" {
		t.Errorf("graphics = %+v, want vnc on loopback", d.Devices.Graphics)
	}
	if !hasInput(d, "tablet", "usb") {
		t.Errorf("inputs = %+v, want a usb tablet", d.Devices.Inputs)
	}
	if len(d.Devices.Videos) != 1 || d.Devices.Videos[0].Model.Type != "vga" {
		t.Errorf("video = %+v, want vga", d.Devices.Videos)
	}
	all := strings.Join(notes, "; ")
	if !strings.Contains(all, "lab lab1") {
		t.Errorf("notes %q do not mention the lab NIC", all)
	}
	if strings.Contains(all, "forward") || strings.Contains(all, "restrict") {
		t.Errorf("notes %q call the carried forward or restrict lost", all)
	}
}

func TestLibvirtDomainUEFI(t *testing.T) {
	spec := &machine.Spec{Name: "efi"}
	cfg := emulator.Config{
		Name: "efi", Arch: emulator.ArchX86_64, CPUs: 1, MemoryMiB: 512, CPU: "Skylake-Client,-hle,+pcid,x2apic=off",
		Accel: emulator.AccelChoice{Accel: emulator.AccelTCG}, Firmware: emulator.FirmwareUEFI, Machine: "pc",
		Disks:  []emulator.Disk{{Path: "/vm/disk0.qcow2", Format: "qcow2"}},
		CDROMs: []emulator.CDROM{{ID: "cd0"}}, BootOrder: "dc", RTCLocalTime: true,
		Paths: func() emulator.Paths { p := basePaths(); p.EFIVars = "/vm/efivars.qcow2"; return p }(),
	}
	files := libvirtFiles{Disks: []string{"/out/efi-disk1.qcow2"}, NVRAM: "/out/efi-VARS.fd", SerialLog: "/out/efi-serial.log"}
	d, _ := libvirtCase(t, spec, cfg, files)
	if d.Type != "qemu" {
		t.Errorf("domain type %s under TCG, want qemu", d.Type)
	}
	if d.OS.Loader == nil || d.OS.Loader.Type != "pflash" || d.OS.Loader.ReadOnly != "yes" || d.OS.Loader.Path != "/usr/share/OVMF/OVMF_CODE_4M.fd" {
		t.Errorf("loader = %+v, want the OVMF code read-only in pflash", d.OS.Loader)
	}
	if d.OS.NVRAM != "/out/efi-VARS.fd" {
		t.Errorf("nvram = %q, want the exported copy", d.OS.NVRAM)
	}
	if d.OS.Type.Machine != "pc" || bootDevs(d) != "cdrom,hd" || d.Clock.Offset != "localtime" {
		t.Errorf("machine %s boot %s clock %s", d.OS.Type.Machine, bootDevs(d), d.Clock.Offset)
	}
	want := []string{"disk hda ide /out/efi-disk1.qcow2", "cdrom hdc ide "}
	if got := diskRows(d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("disks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d.CPU == nil || d.CPU.Mode != "custom" || d.CPU.Model == nil || d.CPU.Model.Name != "Skylake-Client" {
		t.Fatalf("cpu = %+v, want custom Skylake-Client", d.CPU)
	}
	var feats []string
	for _, f := range d.CPU.Features {
		feats = append(feats, f.Policy+":"+f.Name)
	}
	if got := strings.Join(feats, ","); got != "disable:hle,require:pcid,disable:x2apic" {
		t.Errorf("cpu features = %s", got)
	}
	if len(d.Devices.Graphics) != 0 || len(d.Devices.Inputs) != 0 || !hasController(d, "usb", "none") {
		t.Errorf("a headless guest got graphics %+v inputs %+v controllers %+v", d.Devices.Graphics, d.Devices.Inputs, d.Devices.Controllers)
	}
}

func TestLibvirtDomainAArch64Virt(t *testing.T) {
	spec := &machine.Spec{Name: "arm"}
	cfg := emulator.Config{
		Name: "arm", Arch: emulator.ArchAArch64, CPUs: 4, MemoryMiB: 2048,
		Accel:  emulator.AccelChoice{Accel: emulator.AccelTCG, MultiThread: true, TBSizeMiB: 256},
		Disks:  []emulator.Disk{{Path: "/vm/disk0.qcow2", Format: "qcow2"}},
		CDROMs: []emulator.CDROM{{ID: "cd0", Path: "/isos/arm.iso"}},
		Kernel: "/k/vmlinuz", Initrd: "/k/initrd.gz", Append: "console=ttyAMA0 vlab.marker=x",
		NICs:    []emulator.NIC{{ID: "net0", Mode: emulator.NetUser, MAC: "52:54:00:00:00:09"}},
		Display: emulator.DisplayVNC, Paths: basePaths(),
	}
	files := libvirtFiles{Disks: []string{"/out/arm-disk1.qcow2"}, Kernel: "/out/arm-kernel", Initrd: "/out/arm-initrd", SerialLog: "/out/arm-serial.log"}
	d, notes := libvirtCase(t, spec, cfg, files)
	if d.Type != "qemu" || d.OS.Type.Arch != "aarch64" || d.OS.Type.Machine != "virt" {
		t.Errorf("type %s arch %s machine %s", d.Type, d.OS.Type.Arch, d.OS.Type.Machine)
	}
	if d.OS.Loader != nil {
		t.Errorf("direct kernel boot on virt got a loader %+v (vlab runs no firmware there)", d.OS.Loader)
	}
	if d.OS.Kernel != "/out/arm-kernel" || d.OS.Initrd != "/out/arm-initrd" || d.OS.Cmdline != "console=ttyAMA0 vlab.marker=x" {
		t.Errorf("kernel %q initrd %q cmdline %q", d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline)
	}
	if d.Features == nil || d.Features.TCG == nil || d.Features.TCG.TBCache.Value != 256 || d.Features.ACPI != nil {
		t.Errorf("features = %+v, want the tcg tb-cache and no acpi (direct kernel boot on virt)", d.Features)
	}
	if d.CPU == nil || d.CPU.Mode != "maximum" {
		t.Errorf("cpu = %+v, want maximum (-cpu max)", d.CPU)
	}
	want := []string{"disk vda virtio /out/arm-disk1.qcow2", "cdrom sda scsi /isos/arm.iso"}
	if got := diskRows(d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("disks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !hasController(d, "scsi", "virtio-scsi") || !hasController(d, "usb", "qemu-xhci") || !hasInput(d, "tablet", "usb") {
		t.Errorf("controllers %+v inputs %+v", d.Devices.Controllers, d.Devices.Inputs)
	}
	if len(d.Devices.Videos) != 1 || d.Devices.Videos[0].Model.Type != "virtio" {
		t.Errorf("video = %+v, want virtio", d.Devices.Videos)
	}
	if !strings.Contains(strings.Join(notes, "; "), "pauth-impdef=on") {
		t.Errorf("notes %q do not name the cpu property libvirt cannot carry", notes)
	}
}

func TestLibvirtDomainAArch64UEFI(t *testing.T) {
	cfg := emulator.Config{
		Name: "armefi", Arch: emulator.ArchAArch64, CPUs: 1, MemoryMiB: 1024,
		Accel: emulator.AccelChoice{Accel: emulator.AccelTCG},
		Disks: []emulator.Disk{{Path: "/vm/disk0.qcow2", Format: "qcow2"}},
		Paths: func() emulator.Paths { p := basePaths(); p.EFIVars = "/vm/efivars.qcow2"; return p }(),
	}
	d, _ := libvirtCase(t, &machine.Spec{Name: "armefi"}, cfg, libvirtFiles{Disks: []string{"/out/a.qcow2"}, NVRAM: "/out/armefi-VARS.fd", SerialLog: "/out/s.log"})
	if d.OS.Loader == nil || d.OS.Loader.Path != "/usr/share/AAVMF/AAVMF_CODE.fd" || d.OS.NVRAM != "/out/armefi-VARS.fd" {
		t.Errorf("loader %+v nvram %q, want AAVMF and the exported vars", d.OS.Loader, d.OS.NVRAM)
	}
	if d.Features == nil || d.Features.ACPI == nil {
		t.Errorf("features = %+v, want acpi (QEMU's virt has it with UEFI)", d.Features)
	}
}

func TestTargetDev(t *testing.T) {
	next := map[string]int{}
	var got []string
	for i := 0; i < 28; i++ {
		got = append(got, targetDev("virtio", next, 0))
	}
	if got[0] != "vda" || got[25] != "vdz" || got[26] != "vdaa" || got[27] != "vdab" {
		t.Errorf("names = %v", got)
	}
}

func bootDevs(d *Domain) string {
	var s []string
	for _, b := range d.OS.Boot {
		s = append(s, b.Dev)
	}
	return strings.Join(s, ",")
}

func diskRows(d *Domain) []string {
	var rows []string
	for _, dd := range d.Devices.Disks {
		src := ""
		if dd.Source != nil {
			src = dd.Source.File
		}
		rows = append(rows, dd.Device+" "+dd.Target.Dev+" "+dd.Target.Bus+" "+src)
	}
	return rows
}

func hasController(d *Domain, typ, model string) bool {
	for _, c := range d.Devices.Controllers {
		if c.Type == typ && c.Model == model {
			return true
		}
	}
	return false
}

func hasInput(d *Domain, typ, bus string) bool {
	for _, in := range d.Devices.Inputs {
		if in.Type == typ && in.Bus == bus {
			return true
		}
	}
	return false
}
