package emulator

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vlab/internal/fakeqemu"
	"vlab/internal/fixture"
)

// The -update flag rewrites the golden argv files:
// go test ./emulator -run Golden -update
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// goldenHost is a Debian 12 x86_64 host as Probe sees it, with the machine
// lists captured from QEMU 7.2 and KVM that opens but has no vmx/svm (so
// auto picks TCG, as on the build machines).
func goldenHost(t testing.TB) *Host {
	t.Helper()
	h := &Host{
		Arch:        ArchX86_64,
		Binaries:    map[Arch]Binary{},
		KVM:         KVMStatus{DevExists: true, DevRW: true},
		MemTotalMiB: 8192,
		QemuImg:     "/usr/bin/qemu-img",
		Firmware: FirmwareFiles{
			OVMFCode: "/usr/share/OVMF/OVMF_CODE_4M.fd", OVMFVars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
			AAVMFCode: "/usr/share/AAVMF/AAVMF_CODE.fd", AAVMFVars: "/usr/share/AAVMF/AAVMF_VARS.fd",
			SLOF: "/usr/share/qemu/slof.bin", OpenBIOS: "/usr/share/qemu/openbios-ppc",
			SeaBIOS: "/usr/share/seabios/bios-256k.bin",
		},
	}
	for _, a := range Arches {
		h.Binaries[a] = Binary{
			Path:     "/usr/bin/" + archTable[a].binary,
			Version:  "7.2.22",
			Accels:   ParseAccelHelp(readProbeData(t, "accel-"+a.String()+".txt")),
			Machines: ParseMachineHelp(readProbeData(t, "machine-"+a.String()+".txt")),
		}
	}
	return h
}

// goldenKVMHost is goldenHost with working KVM.
func goldenKVMHost(t testing.TB) *Host {
	h := goldenHost(t)
	h.KVM.CPUVirt = true
	return h
}

// cmdCase is one golden case: a config built under root (so the smoke test
// can put every file in a temp dir).
type cmdCase struct {
	name  string
	host  func(testing.TB) *Host
	cfg   func(root string) Config
	smoke string // why the real-QEMU smoke test cannot run this case ("" = it can)
	// elfKernel: the smoke test needs a real kernel (pseries loads only ELF):
	// the fixture kernel of this fixture arch.
	elfKernel string
}

// baseConfig is a minimal guest with every runtime path laid out under root.
func baseConfig(root, name string, arch Arch) Config {
	run := filepath.Join(root, "run", name)
	return Config{
		Name: name, Arch: arch, CPUs: 1, MemoryMiB: 512,
		Paths: Paths{
			QMP:       []string{filepath.Join(run, "qmp.sock"), filepath.Join(run, "qmp-user.sock")},
			VNC:       filepath.Join(run, "vnc.sock"),
			Serial:    filepath.Join(run, "serial.sock"),
			SerialLog: filepath.Join(root, "log", name, "serial.log"),
			Pidfile:   filepath.Join(run, "qemu.pid"),
		},
	}
}

// agentConfig is a headless guest with the guest agent channel.
func agentConfig(r string, arch Arch) Config {
	c := baseConfig(r, "cloud", arch)
	c.Disks = []Disk{{Path: dataPath(r, "cloud", "disk0.qcow2")}}
	c.Display = DisplayNone
	c.Agent = true
	c.Paths.Agent = filepath.Join(r, "run", "cloud", "qga.sock")
	switch arch {
	case ArchAArch64:
		c.Kernel, c.Initrd = isoPath(r, "vmlinuz-arm64"), isoPath(r, "initrd-arm64.img")
	case ArchPPC64:
		c.Kernel, c.Initrd = isoPath(r, "vmlinux-ppc64el"), isoPath(r, "initrd-ppc64el.img")
	}
	return c
}

func dataPath(root, name, file string) string { return filepath.Join(root, "data", name, file) }

func isoPath(root, file string) string { return filepath.Join(root, "iso", file) }

func cmdCases() []cmdCase {
	ssh := []Forward{{Proto: "tcp", HostPort: 2222, GuestPort: 22}}
	return []cmdCase{
		{name: "desktop", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "desktop", ArchX86_64)
			c.CPUs, c.MemoryMiB = 2, 2048
			c.Disks = []Disk{{Path: dataPath(r, "desktop", "disk0.qcow2"), NodeName: "hd0"}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "debian-12.7.0-amd64-netinst.iso")}}
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, MAC: "52:54:00:12:34:01", Forwards: ssh}}
			c.Display = DisplayVNC
			return c
		}},
		{name: "uefi", host: goldenKVMHost, cfg: func(r string) Config {
			c := baseConfig(r, "uefi", ArchX86_64)
			c.Accel = AccelChoice{Accel: AccelKVM, Reason: "KVM: test"}
			c.CPUs, c.MemoryMiB = 4, 4096
			c.Firmware = FirmwareUEFI
			c.Paths.EFIVars = dataPath(r, "uefi", "efivars.qcow2")
			c.Disks = []Disk{{Path: dataPath(r, "uefi", "disk0.qcow2")}}
			c.CDROMs = []CDROM{{ID: "cd0"}} // empty tray
			c.NICs = []NIC{{ID: "net0", Mode: NetUser}}
			c.Display = DisplayVNC
			return c
		}},
		{name: "legacy", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "win98", ArchX86_64)
			c.Machine, c.CPU, c.MemoryMiB = "pc", "pentium2", 256
			c.Disks = []Disk{{Path: dataPath(r, "win98", "disk0.img"), Format: "raw", Bus: "ide"}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "win98se.iso")}}
			c.BootOrder = "dc"
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, Model: "rtl8139", Restrict: true}}
			c.Display, c.VGA, c.Input, c.Sound, c.RTCLocalTime = DisplayVNC, "cirrus", InputPS2, "sb16", true
			return c
		}},
		{name: "xp", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "xp", ArchI386)
			c.CPU, c.MemoryMiB = "pentium3", 512
			c.Disks = []Disk{{Path: dataPath(r, "xp", "disk0.qcow2")}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "en_windows_xp_professional_sp3.iso")}}
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, Model: "rtl8139"}}
			c.Display, c.Sound, c.RTCLocalTime = DisplayVNC, "ac97", true
			return c
		}},
		{name: "dos", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "dos", ArchI386)
			c.Machine, c.CPU, c.MemoryMiB = "isapc", "486", 64
			c.Disks = []Disk{{Path: dataPath(r, "dos", "c.img"), Format: "raw"}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "freedos.iso")}}
			c.BootOrder = "dc"
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, Restrict: true}}
			c.Display, c.Sound = DisplayVNC, "sb16"
			return c
		}},
		{name: "uefi-iso", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "arm-desktop", ArchAArch64)
			c.CPUs, c.MemoryMiB = 2, 2048
			c.Paths.EFIVars = dataPath(r, "arm-desktop", "efivars.qcow2")
			c.Disks = []Disk{{Path: dataPath(r, "arm-desktop", "disk0.qcow2")}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "debian-12-arm64-netinst.iso")}}
			c.BootOrder = "dc"
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, Forwards: ssh}}
			c.Display = DisplayVNC
			return c
		}},
		{name: "kernel", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "arm64-kernel", ArchAArch64)
			c.CPUs = 2
			c.Kernel, c.Initrd = isoPath(r, "vmlinuz-arm64"), isoPath(r, "initrd-arm64.img")
			c.Append = "console=ttyAMA0 quiet vlab.marker=hello,world"
			c.Disks = []Disk{{Path: dataPath(r, "arm64-kernel", "disk0.qcow2")}}
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, Restrict: true}}
			c.Display = DisplayNone
			return c
		}},
		{name: "kernel", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "armhf", ArchARM)
			c.Kernel, c.Initrd, c.DTB = isoPath(r, "vmlinuz-armmp"), isoPath(r, "initrd-armmp.img"), isoPath(r, "virt.dtb")
			c.Append = "console=ttyAMA0"
			c.Disks = []Disk{{Path: dataPath(r, "armhf", "disk0.qcow2")}}
			c.Display = DisplayNone
			return c
		}},
		{name: "kernel", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "power", ArchPPC64)
			c.CPUs, c.MemoryMiB = 2, 1024
			c.Kernel, c.Initrd = isoPath(r, "vmlinux-ppc64el"), isoPath(r, "initrd-ppc64el.img")
			c.Append = "console=hvc0"
			c.Disks = []Disk{{Path: dataPath(r, "power", "disk0.qcow2")}}
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, Restrict: true}}
			c.Display = DisplayNone
			return c
		}, elfKernel: "ppc64le"},
		{name: "iso", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "power-inst", ArchPPC64)
			c.MemoryMiB = 2048
			c.Disks = []Disk{{Path: dataPath(r, "power-inst", "disk0.qcow2")}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "debian-12-ppc64el-netinst.iso")}}
			c.BootOrder = "dc"
			c.NICs = []NIC{{ID: "net0", Mode: NetUser}}
			c.Display = DisplayVNC
			return c
		}},
		{name: "macos9", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "macos9", ArchPPC)
			c.Disks = []Disk{{Path: dataPath(r, "macos9", "disk0.qcow2")}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "macos-9.2.iso")}}
			c.BootOrder = "dc"
			c.NICs = []NIC{{ID: "net0", Mode: NetUser}}
			c.Display = DisplayVNC
			return c
		}},
		{name: "macos9-adb", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "macos90", ArchPPC)
			c.MachineOpts = []string{"via=pmu-adb"}
			c.Disks = []Disk{{Path: dataPath(r, "macos90", "disk0.qcow2")}}
			c.CDROMs = []CDROM{{ID: "cd0"}}
			c.Display, c.Input = DisplayVNC, InputPS2
			return c
		}},
		{name: "headless", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "server", ArchX86_64)
			c.Disks = []Disk{{Path: dataPath(r, "server", "disk0.qcow2")}}
			c.NICs = []NIC{{ID: "net0", Mode: NetUser, Forwards: ssh, Restrict: true}}
			c.Display = DisplayNone
			return c
		}},
		{name: "paths", host: goldenHost, cfg: func(r string) Config {
			r = filepath.Join(r, "my vms, old")
			c := baseConfig(r, "odd, name", ArchX86_64)
			c.Firmware = FirmwareUEFI
			c.Paths.EFIVars = dataPath(r, "odd, name", "efi vars,1.qcow2")
			c.Disks = []Disk{{Path: dataPath(r, "odd, name", "disk 0,a.qcow2")}, {Path: dataPath(r, "odd, name", "ro,,disk.raw"), Format: "raw", Bus: "scsi", ReadOnly: true}}
			c.CDROMs = []CDROM{{ID: "cd0", Path: isoPath(r, "x, y's.iso")}}
			c.Display = DisplayVNC
			return c
		}},
		{name: "usernet", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "web", ArchX86_64)
			c.Disks = []Disk{{Path: dataPath(r, "web", "disk0.qcow2")}}
			c.NICs = []NIC{
				{ID: "net0", Mode: NetUser, MAC: "52:54:00:AB:CD:EF", Restrict: true, Forwards: []Forward{
					{Proto: "tcp", HostPort: 2222, GuestPort: 22},
					{HostPort: 8080, GuestPort: 80},
					{Proto: "udp", HostAddr: "127.0.0.2", HostPort: 5353, GuestPort: 53},
				}},
				{ID: "net1", Mode: NetNone},
				{ID: "lan", Mode: NetUser, Model: "e1000"},
			}
			c.BootOrder = "cn"
			c.Display = DisplayNone
			return c
		}},
		{name: "netmodes", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "router", ArchX86_64)
			c.NICs = []NIC{
				{ID: "wan", Mode: NetBridge, Bridge: "br0", Helper: "/usr/lib/qemu/qemu-bridge-helper", MAC: "52:54:00:00:00:01"},
				{ID: "tap", Mode: NetTap, Tap: "vlabtap0"},
				{ID: "lab", Mode: NetSocket, Socket: []string{"dgram", "local.type=inet", "local.host=127.0.0.1", "local.port=40001", "remote.type=inet", "remote.host=127.0.0.1", "remote.port=40002"}},
			}
			c.Kernel = isoPath(r, "vmlinuz")
			c.Display = DisplayNone
			return c
		}, smoke: "bridge and tap need host network setup (the network e2e tests cover them)"},
		{name: "sandbox", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "dos", ArchX86_64)
			c.NICs = []NIC{
				{ID: "net0", Mode: NetSandbox, Passt: filepath.Join(r, "run", "odd, dir", "passt-0.sock"), MAC: "52:54:00:00:00:07"},
				{ID: "net1", Mode: NetSandbox, Passt: filepath.Join(r, "run", "passt-1.sock"), Model: "e1000"},
			}
			c.Kernel = isoPath(r, "vmlinuz")
			c.Display = DisplayNone
			return c
		}, smoke: "sandbox needs a running passt (the sandbox e2e tests cover it)"},
		{name: "gdb", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "kdev", ArchX86_64)
			c.Disks = []Disk{{Path: dataPath(r, "kdev", "disk0.qcow2")}}
			c.GDB, c.StartPaused = true, true
			c.Paths.GDB = filepath.Join(r, "run", "kdev", "gdb.sock")
			c.Display = DisplayNone
			return c
		}},
		{name: "buses", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "buses", ArchX86_64)
			c.Disks = []Disk{
				{Path: dataPath(r, "buses", "virtio.qcow2")},
				{Path: dataPath(r, "buses", "sata.qcow2"), Bus: "sata"},
				{Path: dataPath(r, "buses", "scsi.qcow2"), Bus: "scsi", NodeName: "data"},
				{Path: dataPath(r, "buses", "ro.qcow2"), Bus: "virtio", ReadOnly: true},
				{Path: dataPath(r, "buses", "nvme.qcow2"), Bus: "nvme"},
			}
			c.CDROMs = []CDROM{{ID: "cd0"}, {ID: "cd1", Path: isoPath(r, "tools.iso"), Bus: "scsi"}}
			c.Display, c.Input, c.VGA, c.Sound = DisplayVNC, InputVirtioTablet, "virtio", "hda"
			return c
		}},
		{name: "agent", host: goldenHost, cfg: func(r string) Config { return agentConfig(r, ArchX86_64) }},
		{name: "agent", host: goldenHost, cfg: func(r string) Config { return agentConfig(r, ArchAArch64) }},
		{name: "agent", host: goldenHost, cfg: func(r string) Config { return agentConfig(r, ArchPPC64) }, elfKernel: "ppc64le"},
		{name: "buses", host: goldenHost, cfg: func(r string) Config {
			c := baseConfig(r, "pc-buses", ArchI386)
			c.Disks = []Disk{
				{Path: dataPath(r, "pc-buses", "ide0.qcow2")},
				{Path: dataPath(r, "pc-buses", "ide1.qcow2")},
				{Path: dataPath(r, "pc-buses", "sata.qcow2"), Bus: "sata"},
			}
			c.CDROMs = []CDROM{{ID: "cd0"}, {ID: "cd1", Path: isoPath(r, "drivers.iso")}}
			c.Display, c.VGA = DisplayNone, "std"
			return c
		}},
	}
}

// caseFile is the golden file name: <case>-<arch>-<accel>.golden.
func caseFile(c cmdCase, cfg Config, argv []string) string {
	accel := "tcg"
	if i := slices.Index(argv, "-accel"); i >= 0 && argv[i+1] == "kvm" {
		accel = "kvm"
	}
	return fmt.Sprintf("%s-%s-%s.golden", c.name, cfg.Arch, accel)
}

const goldenRoot = "/vlab"

func TestCmdlineGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range cmdCases() {
		cfg := c.cfg(goldenRoot)
		argv, err := Cmdline(cfg, c.host(t))
		if err != nil {
			t.Errorf("%s (%s): %v", c.name, cfg.Arch, err)
			continue
		}
		file := caseFile(c, cfg, argv)
		if seen[file] {
			t.Fatalf("two cases write %s", file)
		}
		seen[file] = true
		t.Run(strings.TrimSuffix(file, ".golden"), func(t *testing.T) {
			path := filepath.Join("testdata", "golden", file)
			got := strings.Join(argv, "\n") + "\n"
			if updateGolden() {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./emulator -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("argv differs from %s (go test ./emulator -run Golden -update, then review the diff):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
	// No stale golden files.
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.golden"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s belongs to no case: delete it", f)
		}
	}
}

// lineDiff shows the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)"
	}
	return b.String()
}

// optMap parses "head,k=v,..." into its head and properties.
func optMap(s string) (string, map[string]string) {
	parts := fakeqemu.SplitOpts(s)
	m := map[string]string{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		m[k] = v
	}
	return parts[0], m
}

// values returns the argument of every occurrence of flag in argv.
func values(argv []string, flag string) []string {
	var out []string
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] == flag {
			out = append(out, argv[i+1])
		}
	}
	return out
}

func hasTablet(argv []string) bool {
	for _, d := range values(argv, "-device") {
		if head, _ := optMap(d); head == "usb-tablet" || head == "virtio-tablet-pci" {
			return true
		}
	}
	return false
}

// TestCmdlineInvariants checks every golden case for what must always hold.
func TestCmdlineInvariants(t *testing.T) {
	for _, c := range cmdCases() {
		cfg := c.cfg(goldenRoot)
		h := c.host(t)
		argv, err := Cmdline(cfg, h)
		if err != nil {
			t.Errorf("%s (%s): %v", c.name, cfg.Arch, err)
			continue
		}
		name := caseFile(c, cfg, argv)
		if argv[0] != h.Binaries[cfg.Arch].Path {
			t.Errorf("%s: argv[0] = %q", name, argv[0])
		}
		for i, a := range argv {
			if a == "" {
				t.Errorf("%s: argument %d is empty", name, i)
			}
		}
		if !slices.Contains(argv, "-nodefaults") || !slices.Contains(argv, "-no-user-config") {
			t.Errorf("%s: no -nodefaults -no-user-config", name)
		}
		// QMP: one monitor per socket, each on its own chardev.
		mons := values(argv, "-mon")
		if len(mons) != len(cfg.Paths.QMP) || len(mons) == 0 {
			t.Errorf("%s: %d -mon for %d qmp sockets", name, len(mons), len(cfg.Paths.QMP))
		}
		chardevs := map[string]map[string]string{}
		for _, cd := range values(argv, "-chardev") {
			_, m := optMap(cd)
			chardevs[m["id"]] = m
		}
		for i, p := range cfg.Paths.QMP {
			m := chardevs[QMPChardevID(i)]
			if m == nil || m["path"] != p || m["server"] != "on" || m["wait"] != "off" {
				t.Errorf("%s: qmp chardev %d = %v, want socket %s", name, i, m, p)
			}
			if !slices.Contains(mons, "chardev="+QMPChardevID(i)+",mode=control") {
				t.Errorf("%s: no control monitor on %s", name, QMPChardevID(i))
			}
		}
		if m := chardevs[SerialChardevID]; m == nil || m["path"] != cfg.Paths.Serial || m["logfile"] != cfg.Paths.SerialLog {
			t.Errorf("%s: serial chardev = %v", name, m)
		}
		// The gdb stub: only on a unix socket chardev, never on TCP (its
		// `monitor` command reaches the human monitor).
		if gdb := values(argv, "-gdb"); cfg.GDB {
			m := chardevs[GDBChardevID]
			if len(gdb) != 1 || gdb[0] != "chardev:"+GDBChardevID || m == nil || m["path"] != cfg.Paths.GDB || m["server"] != "on" || m["host"] != "" || m["port"] != "" {
				t.Errorf("%s: gdb stub -gdb %q on chardev %v, want chardev:%s on socket %s", name, gdb, m, GDBChardevID, cfg.Paths.GDB)
			}
		} else if len(gdb) > 0 || chardevs[GDBChardevID] != nil {
			t.Errorf("%s: -gdb %q without Config.GDB", name, gdb)
		}
		// KVM only where the host can run the guest.
		accel := values(argv, "-accel")
		if len(accel) != 1 {
			t.Errorf("%s: -accel %q", name, accel)
		} else if accel[0] == "kvm" && !kvmCanRun(h.Arch, cfg.Arch) {
			t.Errorf("%s: kvm for a %s guest on a %s host", name, cfg.Arch, h.Arch)
		} else if strings.HasPrefix(accel[0], "tcg") && !strings.Contains(accel[0], "tb-size=") {
			t.Errorf("%s: tcg without a tb-size: %s", name, accel[0])
		}
		// An absolute pointer iff a VNC display without PS/2 input.
		wantTablet := cfg.Display == DisplayVNC && cfg.Input != InputPS2
		if cfg.Display == DisplayVNC && cfg.Input == InputAuto && boardTable[machineFamily(orDefault(cfg))].input == InputPS2 {
			wantTablet = false // isapc: no USB, no PCI
		}
		if got := hasTablet(argv); got != wantTablet {
			t.Errorf("%s: tablet %v, want %v (display %q, input %q)", name, got, wantTablet, cfg.Display, cfg.Input)
		}
		if got := len(values(argv, "-vnc")) > 0; got != (cfg.Display == DisplayVNC) {
			t.Errorf("%s: -vnc present %v for display %q", name, got, cfg.Display)
		}
		// Block graph: every drive= and file= names a node; node names and ids are unique.
		nodes := map[string]bool{}
		for _, bd := range values(argv, "-blockdev") {
			_, m := optMap(bd)
			if nodes[m["node-name"]] {
				t.Errorf("%s: node %q twice", name, m["node-name"])
			}
			nodes[m["node-name"]] = true
			if f, ok := m["file"]; ok && !nodes[f] {
				t.Errorf("%s: node %q uses undefined file node %q", name, m["node-name"], f)
			}
		}
		ids := map[string]bool{}
		for _, d := range values(argv, "-device") {
			_, m := optMap(d)
			if dr, ok := m["drive"]; ok && !nodes[dr] {
				t.Errorf("%s: device %s uses undefined node %q", name, d, dr)
			}
			if id, ok := m["id"]; ok {
				if ids[id] {
					t.Errorf("%s: device id %q twice", name, id)
				}
				ids[id] = true
			}
		}
		for _, cd := range cfg.CDROMs {
			if !ids[cd.ID] {
				t.Errorf("%s: no device with the cd-rom's id %q", name, cd.ID)
			}
		}
		// Every image path survives QEMU's option parsing intact.
		files := map[string]bool{}
		for _, bd := range values(argv, "-blockdev") {
			if _, m := optMap(bd); m["filename"] != "" {
				files[m["filename"]] = true
			}
		}
		for _, d := range cfg.Disks {
			if !files[d.Path] {
				t.Errorf("%s: disk %q not on the command line as itself", name, d.Path)
			}
		}
	}
}

func orDefault(cfg Config) string {
	if cfg.Machine != "" {
		return cfg.Machine
	}
	return DefaultMachine(cfg.Arch)
}

// TestCmdlineBootOrder checks bootindex follows BootOrder.
func TestCmdlineBootOrder(t *testing.T) {
	bootOf := func(argv []string, key, val string) string {
		for _, d := range values(argv, "-device") {
			if _, m := optMap(d); m[key] == val {
				if b, ok := m["bootindex"]; ok {
					return b
				}
				return "none"
			}
		}
		return "none"
	}
	base := baseConfig(goldenRoot, "boot", ArchX86_64)
	base.Disks = []Disk{{Path: "/d0.qcow2"}, {Path: "/d1.qcow2"}}
	base.CDROMs = []CDROM{{ID: "cd0", Path: "/x.iso"}}
	base.NICs = []NIC{{ID: "net0", Mode: NetUser}}
	cases := []struct {
		order             string
		hd0, hd1, cd, net string
		rom               bool
	}{
		{"", "1", "2", "3", "none", false},
		{"cd", "1", "2", "3", "none", false},
		{"dc", "2", "3", "1", "none", false},
		{"d", "none", "none", "1", "none", false},
		{"ncd", "2", "3", "4", "1", true},
	}
	for _, c := range cases {
		cfg := base
		cfg.BootOrder = c.order
		argv, err := Cmdline(cfg, goldenHost(t))
		if err != nil {
			t.Fatal(err)
		}
		got := []string{bootOf(argv, "drive", "hd0"), bootOf(argv, "drive", "hd1"), bootOf(argv, "id", "cd0"), bootOf(argv, "netdev", "net0")}
		if want := []string{c.hd0, c.hd1, c.cd, c.net}; !slices.Equal(got, want) {
			t.Errorf("order %q: bootindex hd0, hd1, cd0, net0 = %q, want %q", c.order, got, want)
		}
		if rom := !strings.Contains(strings.Join(argv, " "), "romfile="); rom != c.rom {
			t.Errorf("order %q: nic option rom kept %v, want %v", c.order, rom, c.rom)
		}
	}
	// mac99's OpenBIOS reads -boot order, not bootindex.
	mac := baseConfig(goldenRoot, "mac", ArchPPC)
	mac.Disks, mac.CDROMs, mac.BootOrder = []Disk{{Path: "/d.qcow2"}}, []CDROM{{ID: "cd0", Path: "/x.iso"}}, "dc"
	argv, err := Cmdline(mac, goldenHost(t))
	if err != nil {
		t.Fatal(err)
	}
	if b := values(argv, "-boot"); !slices.Equal(b, []string{"order=dc"}) || strings.Contains(strings.Join(argv, " "), "bootindex") {
		t.Errorf("mac99: -boot %q, argv %q", b, argv)
	}
}

// TestCmdlineMTTCG: thread=multi exactly where the target supports MTTCG.
func TestCmdlineMTTCG(t *testing.T) {
	for _, a := range Arches {
		cfg := baseConfig(goldenRoot, "m", a)
		if a == ArchAArch64 || a == ArchARM || a == ArchPPC64 {
			cfg.Kernel = "/vmlinuz"
		}
		cfg.Accel = AccelChoice{Accel: AccelTCG, MultiThread: true, TBSizeMiB: 128}
		argv, err := Cmdline(cfg, goldenHost(t))
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		want := "tcg,thread=multi,tb-size=128"
		if a == ArchPPC {
			want = "tcg,thread=single,tb-size=128"
		}
		if got := values(argv, "-accel"); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: -accel %q, want %q", a, got, want)
		}
	}
}

func TestCmdlineKVMForeignArch(t *testing.T) {
	for _, a := range Arches {
		cfg := baseConfig(goldenRoot, "k", a)
		cfg.Kernel = "/vmlinuz"
		cfg.Accel = AccelChoice{Accel: AccelKVM}
		argv, err := Cmdline(cfg, goldenKVMHost(t))
		if kvmCanRun(ArchX86_64, a) {
			if err != nil || !slices.Equal(values(argv, "-accel"), []string{"kvm"}) || !slices.Equal(values(argv, "-cpu"), []string{"host"}) {
				t.Errorf("%s with kvm on x86_64: %q, %v", a, values(argv, "-accel"), err)
			}
			continue
		}
		if !errors.Is(err, ErrKVMUnavailable) || !strings.Contains(err.Error(), "--accel tcg") {
			t.Errorf("%s with kvm on x86_64: %v; want ErrKVMUnavailable naming --accel tcg", a, err)
		}
	}
}

func TestCmdlineErrors(t *testing.T) {
	type tc struct {
		name   string
		edit   func(c *Config, h *Host)
		is     error
		substr string
	}
	cases := []tc{
		{"missing binary", func(c *Config, h *Host) { c.Arch = ArchPPC64; delete(h.Binaries, ArchPPC64) }, ErrNoQEMU, "apt-get install qemu-system-ppc"},
		{"missing binary arm", func(c *Config, h *Host) { c.Arch = ArchARM; c.Kernel = "/k"; delete(h.Binaries, ArchARM) }, ErrNoQEMU, "qemu-system-arm runs arm guests"},
		{"no ovmf", func(c *Config, h *Host) { c.Firmware = FirmwareUEFI; c.Paths.EFIVars = "/v"; h.Firmware.OVMFCode = "" }, ErrNoFirmware, "apt-get install ovmf"},
		{"no aavmf", func(c *Config, h *Host) { c.Arch = ArchAArch64; c.Paths.EFIVars = "/v"; h.Firmware.AAVMFVars = "" }, ErrNoFirmware, "apt-get install qemu-efi-aarch64"},
		{"no arm uefi", func(c *Config, h *Host) { c.Arch = ArchARM; c.Paths.EFIVars = "/v" }, ErrNoFirmware, "apt-get install qemu-efi-arm"},
		{"uefi without vars", func(c *Config, h *Host) { c.Firmware = FirmwareUEFI }, nil, "Paths.EFIVars"},
		{"uefi on ppc", func(c *Config, h *Host) { c.Arch = ArchPPC64; c.Firmware = FirmwareUEFI }, nil, "uefi is not available for ppc64"},
		{"uefi on i386", func(c *Config, h *Host) { c.Arch = ArchI386; c.Firmware = FirmwareUEFI; c.Paths.EFIVars = "/v" }, nil, "uefi is not available for i386"},
		{"bios on aarch64", func(c *Config, h *Host) { c.Arch = ArchAArch64; c.Firmware = FirmwareBIOS }, nil, "no BIOS"},
		{"kvm for ppc64", func(c *Config, h *Host) { c.Arch = ArchPPC64; c.Accel = AccelChoice{Accel: AccelKVM} }, ErrKVMUnavailable, "use --accel tcg"},
		{"kvm in a tcg-only build", func(c *Config, h *Host) {
			c.Accel = AccelChoice{Accel: AccelKVM}
			b := h.Binaries[ArchX86_64]
			b.Accels = []string{"tcg"}
			h.Binaries[ArchX86_64] = b
		}, ErrKVMUnavailable, "built without KVM"},
		{"unknown machine", func(c *Config, h *Host) { c.Machine = "virt" }, nil, `machine "virt" is not supported for x86_64 guests: use one of q35, pc, isapc`},
		{"machine not in binary", func(c *Config, h *Host) { c.Machine = "pc-q35-1.0" }, nil, `has no machine "pc-q35-1.0"`},
		{"bad machine opt", func(c *Config, h *Host) { c.MachineOpts = []string{"usb"} }, nil, "not key=value"},
		{"no name", func(c *Config, h *Host) { c.Name = "" }, nil, "no name"},
		{"control char name", func(c *Config, h *Host) { c.Name = "a\nb" }, nil, "control characters"},
		{"no cpus", func(c *Config, h *Host) { c.CPUs = 0 }, nil, "cpus must be at least 1"},
		{"no memory", func(c *Config, h *Host) { c.MemoryMiB = 0 }, nil, "memory must be at least 1 MiB"},
		{"no qmp", func(c *Config, h *Host) { c.Paths.QMP = nil }, nil, "no qmp socket"},
		{"no pidfile", func(c *Config, h *Host) { c.Paths.Pidfile = "" }, nil, "no pidfile"},
		{"long socket", func(c *Config, h *Host) { c.Paths.QMP = []string{"/" + strings.Repeat("x", 120)} }, nil, "over the 107-byte limit"},
		{"vnc without socket", func(c *Config, h *Host) { c.Display = DisplayVNC; c.Paths.VNC = "" }, nil, "Paths.VNC"},
		{"unknown display", func(c *Config, h *Host) { c.Display = "sdl" }, nil, `unknown display "sdl"`},
		{"bad boot order", func(c *Config, h *Host) { c.BootOrder = "a" }, nil, "boot order"},
		{"boot order twice", func(c *Config, h *Host) { c.BootOrder = "cdc" }, nil, "twice"},
		{"unknown bus", func(c *Config, h *Host) { c.Disks = []Disk{{Path: "/d", Bus: "floppy"}} }, nil, `unknown bus "floppy"`},
		{"ide on virt", func(c *Config, h *Host) {
			c.Arch = ArchAArch64
			c.Kernel = "/k"
			c.Disks = []Disk{{Path: "/d", Bus: "ide"}}
		}, nil, "no ide bus"},
		{"read-only ide", func(c *Config, h *Host) { c.Disks = []Disk{{Path: "/d", Bus: "ide", ReadOnly: true}} }, nil, "read-only disk"},
		{"too many ide", func(c *Config, h *Host) {
			c.Machine = "pc"
			c.Disks = []Disk{{Path: "/a"}, {Path: "/b"}, {Path: "/c"}, {Path: "/d"}, {Path: "/e"}}
		}, nil, "slots of the pc machine are taken"},
		{"empty disk path", func(c *Config, h *Host) { c.Disks = []Disk{{}} }, nil, "no image path"},
		{"bad format", func(c *Config, h *Host) { c.Disks = []Disk{{Path: "/d", Format: "iso"}} }, nil, `unknown format "iso"`},
		{"duplicate nodes", func(c *Config, h *Host) { c.Disks = []Disk{{Path: "/a", NodeName: "x"}, {Path: "/b", NodeName: "x"}} }, nil, "used twice"},
		{"bad node name", func(c *Config, h *Host) { c.Disks = []Disk{{Path: "/a", NodeName: "1x"}} }, nil, "node name"},
		{"duplicate cd ids", func(c *Config, h *Host) { c.CDROMs = []CDROM{{ID: "cd"}, {ID: "cd"}} }, nil, "used twice"},
		{"virtio cd", func(c *Config, h *Host) { c.CDROMs = []CDROM{{ID: "cd0", Bus: "virtio"}} }, nil, `unknown bus "virtio"`},
		{"ps2 on virt", func(c *Config, h *Host) {
			c.Arch, c.Kernel, c.Display, c.Input = ArchAArch64, "/k", DisplayVNC, InputPS2
		}, nil, "ps2 input needs"},
		{"usb tablet on isapc", func(c *Config, h *Host) { c.Machine, c.Display, c.Input = "isapc", DisplayVNC, InputUSBTablet }, nil, "no USB"},
		{"unknown input", func(c *Config, h *Host) { c.Display, c.Input = DisplayVNC, "wacom" }, nil, `unknown input "wacom"`},
		{"bad vga", func(c *Config, h *Host) { c.Display, c.VGA = DisplayVNC, "tseng" }, nil, `unknown vga "tseng"`},
		{"qxl on virt", func(c *Config, h *Host) { c.Arch, c.Kernel, c.Display, c.VGA = ArchAArch64, "/k", DisplayVNC, "qxl" }, nil, "not available on the virt machine"},
		{"sb16 on virt", func(c *Config, h *Host) { c.Arch, c.Kernel, c.Sound = ArchAArch64, "/k", "sb16" }, nil, "needs an ISA bus"},
		{"unknown sound", func(c *Config, h *Host) { c.Sound = "screamer" }, nil, `unknown sound card "screamer"`},
		{"bad mac", func(c *Config, h *Host) { c.NICs = []NIC{{Mode: NetUser, MAC: "52:54:00"}} }, nil, "mac"},
		{"forward on bridge", func(c *Config, h *Host) {
			c.NICs = []NIC{{Mode: NetBridge, Bridge: "br0", Forwards: []Forward{{HostPort: 1, GuestPort: 2}}}}
		}, nil, "port forwards need user mode"},
		{"bad forward port", func(c *Config, h *Host) {
			c.NICs = []NIC{{Mode: NetUser, Forwards: []Forward{{HostPort: 70000, GuestPort: 22}}}}
		}, nil, "ports must be 1-65535"},
		{"bad forward proto", func(c *Config, h *Host) {
			c.NICs = []NIC{{Mode: NetUser, Forwards: []Forward{{Proto: "sctp", HostPort: 1, GuestPort: 2}}}}
		}, nil, "use tcp or udp"},
		{"bridge without name", func(c *Config, h *Host) { c.NICs = []NIC{{Mode: NetBridge}} }, nil, "bridge name"},
		{"tap without name", func(c *Config, h *Host) { c.NICs = []NIC{{Mode: NetTap}} }, nil, "interface name"},
		{"socket without type", func(c *Config, h *Host) { c.NICs = []NIC{{Mode: NetSocket, Socket: []string{"remote.type=inet"}}} }, nil, "netdev type first"},
		{"unknown nic mode", func(c *Config, h *Host) { c.NICs = []NIC{{Mode: "vde"}} }, nil, `unknown mode "vde"`},
		{"sandbox without passt socket", func(c *Config, h *Host) { c.NICs = []NIC{{Mode: NetSandbox}} }, nil, "passt's socket"},
		{"forward on sandbox", func(c *Config, h *Host) {
			c.NICs = []NIC{{Mode: NetSandbox, Passt: "/run/p.sock", Forwards: []Forward{{HostPort: 1, GuestPort: 2}}}}
		}, nil, "port forwards need user mode"},
		{"pci nic on isapc", func(c *Config, h *Host) { c.Machine = "isapc"; c.NICs = []NIC{{Mode: NetUser, Model: "e1000"}} }, nil, "needs PCI"},
		{"isa nic on virt", func(c *Config, h *Host) {
			c.Arch, c.Kernel = ArchAArch64, "/k"
			c.NICs = []NIC{{Mode: NetUser, Model: "ne2k_isa"}}
		}, nil, "needs an ISA bus"},
		{"append without kernel", func(c *Config, h *Host) { c.Append = "quiet" }, nil, "need a kernel"},
		{"gdb without socket", func(c *Config, h *Host) { c.GDB = true }, nil, "gdb stub needs a socket path"},
		{"nil host", func(c *Config, h *Host) { *h = Host{} }, ErrNoQEMU, "apt-get install qemu-system-x86"},
		{"unknown arch", func(c *Config, h *Host) { c.Arch = ArchUnknown }, nil, "unknown arch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig(goldenRoot, "err", ArchX86_64)
			h := goldenHost(t)
			c.edit(&cfg, h)
			argv, err := Cmdline(cfg, h)
			if err == nil {
				t.Fatalf("Cmdline succeeded: %s", ShellQuote(argv))
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.substr) {
				t.Errorf("error %q does not contain %q", err, c.substr)
			}
			if cfg.Name != "" && !strings.Contains(err.Error(), strconv.Quote(cfg.Name)) {
				t.Errorf("error %q does not name the vm", err)
			}
		})
	}
	if _, err := Cmdline(baseConfig(goldenRoot, "x", ArchX86_64), nil); err == nil {
		t.Error("Cmdline with a nil host succeeded")
	}
}

// TestValidators checks the hand-written validators against the regular
// expressions that state the same rules.
func TestValidators(t *testing.T) {
	cases := []struct {
		name string
		fn   func(string) bool
		re   string
		in   []string
	}{
		{"isNodeName", isNodeName, `^[A-Za-z][A-Za-z0-9_.-]{0,30}$`, []string{
			"", "a", "Z", "hd0", "A9", "a-b.c_d", strings.Repeat("a", 31), strings.Repeat("a", 32),
			"1x", "_a", "-a", "a b", "a,b", "a=b", "a\n", "é", "aé", "a\xff",
		}},
		{"isMAC", isMAC, `^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$`, []string{
			"52:54:00:12:34:56", "52:54:00:AB:cd:EF", "", "52:54:00", "52-54-00-12-34-56", "52:54:00:12:34:5g",
			"52:54:00:12:34:567", "52:54:00:12:34:56\n", "5254:00:12:34:56:", ":::::::::::::::::", "52:54:00:12:34:é",
		}},
		{"isMachineOpt", isMachineOpt, `^[A-Za-z0-9_.-]+=[^,]*$`, []string{
			"via=pmu-adb", "usb=", "a.b-c_d=x=y", "9=v", "k=v\n", "k=é", "k=\xff",
			"usb", "", "=on", "k=v,w", "k v=1", "é=1", "k,=1",
		}},
	}
	for _, c := range cases {
		re := regexp.MustCompile(c.re)
		for _, in := range c.in {
			if got, want := c.fn(in), re.MatchString(in); got != want {
				t.Errorf("%s(%q) = %v, want %v", c.name, in, got, want)
			}
		}
	}
}

// TestCmdlineEscaping: paths with spaces and commas reach QEMU intact
// (commas doubled in option values, verbatim where QEMU takes the whole
// argument).
func TestCmdlineEscaping(t *testing.T) {
	cfg := baseConfig("/a b,c", "x,y", ArchAArch64)
	cfg.Kernel, cfg.Initrd, cfg.DTB = "/k,1 2/vmlinuz", "/k,1 2/initrd", "/k,1 2/dtb"
	cfg.Append = "console=ttyAMA0,115200 x=a,b"
	cfg.Disks = []Disk{{Path: "/a b,c/d,,isk.qcow2"}}
	cfg.CDROMs = []CDROM{{ID: "cd0", Path: "/a b,c/x.iso"}}
	cfg.Display = DisplayVNC
	argv, err := Cmdline(cfg, goldenHost(t))
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"-kernel": cfg.Kernel, "-initrd": cfg.Initrd, "-dtb": cfg.DTB, "-append": cfg.Append, "-pidfile": cfg.Paths.Pidfile} {
		if got := values(argv, flag); !slices.Equal(got, []string{want}) {
			t.Errorf("%s %q, want %q verbatim", flag, got, want)
		}
	}
	if _, m := optMap(values(argv, "-name")[0]); m["process"] != "vlab-x,y" {
		t.Errorf("-name %q parses to %v", values(argv, "-name")[0], m)
	}
	if head, _ := optMap(values(argv, "-name")[0]); head != "guest=x,y" {
		t.Errorf("-name head parses to %q", head)
	}
	if head, _ := optMap(values(argv, "-vnc")[0]); head != "unix:"+cfg.Paths.VNC {
		t.Errorf("-vnc parses to %q, want unix:%s", head, cfg.Paths.VNC)
	}
	found := map[string]bool{}
	for _, bd := range values(argv, "-blockdev") {
		_, m := optMap(bd)
		found[m["filename"]] = true
	}
	for _, p := range []string{cfg.Disks[0].Path, cfg.CDROMs[0].Path} {
		if !found[p] {
			t.Errorf("%q not found in -blockdev filenames %v", p, found)
		}
	}
	for _, cd := range values(argv, "-chardev") {
		_, m := optMap(cd)
		if !strings.HasPrefix(m["path"], "/a b,c/run/x,y/") {
			t.Errorf("chardev path %q", m["path"])
		}
	}
}

func TestShellQuote(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	args := []string{"plain", "", "two words", "it's", `"dq"`, "$HOME", "`id`", `back\slash`, "*", "~", "a,b=c:d/e.f@g%h+i-j_k",
		"new\nline", "tab\there", "ünïcode", "-", "--x", "#hash", "a;b", "a|b", "a&b", "(x)", "{a,b}", "!bang", "'", "''"}
	argv := append([]string{"printf", `[%s]\n`}, args...)
	line := ShellQuote(argv)
	out, err := exec.Command("sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("sh -c %s: %v", line, err)
	}
	var want strings.Builder
	for _, a := range args {
		fmt.Fprintf(&want, "[%s]\n", a)
	}
	if string(out) != want.String() {
		t.Errorf("sh split %s into\n%s\nwant\n%s", line, out, want.String())
	}
	if got := ShellQuote([]string{"/usr/bin/qemu-system-x86_64", "-m", "512M"}); got != "/usr/bin/qemu-system-x86_64 -m 512M" {
		t.Errorf("safe words quoted: %s", got)
	}
	// A first word with = must not become a variable assignment.
	if got := ShellQuote([]string{"A=b", "c"}); got != "'A=b' c" {
		t.Errorf("ShellQuote(A=b c) = %s", got)
	}
}

func ExampleShellQuote() {
	fmt.Println(ShellQuote([]string{"qemu-system-x86_64", "-name", "guest=my vm", "-append", "console=ttyS0 it's"}))
	// Output: qemu-system-x86_64 -name 'guest=my vm' -append 'console=ttyS0 it'\''s'
}

// --- real QEMU -------------------------------------------------------------

// smokeDir is a short temp dir (unix socket paths are limited to 107 bytes).
func smokeDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vlab-cl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// materialize creates every file cfg refers to: disks (qemu-img create),
// ISOs (1 MiB of zeros), UEFI vars (from the host's template), kernels (a
// dummy blob) and the runtime directories.
func materialize(t *testing.T, cfg Config, h *Host) {
	t.Helper()
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		if out, err := exec.Command(string(h.QemuImg), args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %q: %v: %s", args, err, out)
		}
	}
	blob := func(p string, size int) {
		mkdir(p)
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range cfg.Disks {
		mkdir(d.Path)
		f := d.Format
		if f == "" {
			f = "qcow2"
		}
		run("create", "-q", "-f", f, d.Path, "64M")
	}
	for _, c := range cfg.CDROMs {
		if c.Path != "" {
			blob(c.Path, 1<<20)
		}
	}
	for _, k := range []string{cfg.Kernel, cfg.Initrd} {
		if k != "" {
			blob(k, 64<<10)
		}
	}
	if cfg.DTB != "" {
		// QEMU checks a dtb's magic: use the board's own, as QEMU dumps it.
		mkdir(cfg.DTB)
		bin := h.Binaries[cfg.Arch].Path
		if out, err := exec.Command(bin, "-nodefaults", "-display", "none", "-machine", orDefault(cfg)+",dumpdtb="+optValue(cfg.DTB)).CombinedOutput(); err != nil {
			t.Fatalf("dump dtb: %v: %s", err, out)
		}
	}
	if cfg.Paths.EFIVars != "" {
		_, vars, err := UEFIFirmware(cfg.Arch, h)
		if err != nil {
			t.Fatal(err)
		}
		mkdir(cfg.Paths.EFIVars)
		run("convert", "-q", "-f", "raw", "-O", "qcow2", vars, cfg.Paths.EFIVars)
	}
	for _, p := range append([]string{cfg.Paths.VNC, cfg.Paths.Serial, cfg.Paths.SerialLog, cfg.Paths.Pidfile}, cfg.Paths.QMP...) {
		if p != "" {
			mkdir(p)
		}
	}
}

// qmpSession is a minimal QMP client for the smoke tests (independent of
// the package's own client, so a bug there cannot hide one here).
type qmpSession struct {
	c   net.Conn
	r   *bufio.Reader
	out func() string // qemu's output so far, for failure messages
}

func dialQMP(t *testing.T, path string, exited <-chan struct{}, stderr func() string) (*qmpSession, string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.SetDeadline(time.Now().Add(60 * time.Second))
			s := &qmpSession{c: c, r: bufio.NewReader(c), out: stderr}
			greeting, err := s.r.ReadString('\n')
			if err != nil {
				t.Fatalf("read qmp greeting: %v (qemu: %s)", err, stderr())
			}
			return s, greeting
		}
		select {
		case <-exited:
			t.Fatalf("qemu exited before its qmp socket opened: %s", stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("qmp socket %s never opened: %s", path, stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run executes cmd and returns its "return" value, failing on an error reply.
func (s *qmpSession) run(t *testing.T, cmd string, args any) json.RawMessage {
	t.Helper()
	msg := map[string]any{"execute": cmd}
	if args != nil {
		msg["arguments"] = args
	}
	b, _ := json.Marshal(msg)
	if _, err := s.c.Write(append(b, '\n')); err != nil {
		t.Fatalf("qmp %s: %v (qemu: %s)", cmd, err, s.out())
	}
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("qmp %s: %v (qemu: %s)", cmd, err, s.out())
		}
		var reply struct {
			Return json.RawMessage `json:"return"`
			Error  *struct{ Class, Desc string }
			Event  string `json:"event"`
		}
		if err := json.Unmarshal(line, &reply); err != nil {
			t.Fatalf("qmp %s: bad reply %q", cmd, line)
		}
		if reply.Event != "" {
			continue
		}
		if reply.Error != nil {
			t.Fatalf("qmp %s: %s (%s) (qemu: %s)", cmd, reply.Error.Desc, reply.Error.Class, s.out())
		}
		return reply.Return
	}
}

// startQEMU starts argv and returns a channel closed when it exits and a
// function returning its output so far.
func startQEMU(t *testing.T, argv []string) (<-chan struct{}, func() string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	return exited, out.String
}

// TestCmdlineSmoke runs every golden case with real QEMU (paused with -S),
// its files created in a temp dir, and checks that QEMU accepts the argv:
// QMP greets and negotiates, the pidfile holds QEMU's pid, the VNC socket
// speaks RFB, the pointer devices are what the case asked for, and every
// empty CD-ROM tray takes a medium through blockdev-change-medium.
func TestCmdlineSmoke(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	h, err := ProbeCached(testCtxProbe(t), filepath.Join(t.TempDir(), "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	if h.QemuImg == "" {
		fixture.Need(t, "qemu-img not found: run make deps")
	}
	for _, c := range cmdCases() {
		golden := c.cfg(goldenRoot)
		argv0, err := Cmdline(golden, c.host(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.TrimSuffix(caseFile(c, golden, argv0), ".golden"), func(t *testing.T) {
			if c.smoke != "" {
				t.Skip(c.smoke)
			}
			if _, ok := h.Binaries[golden.Arch]; !ok {
				fixture.Need(t, archTable[golden.Arch].binary+" not found: run make deps")
			}
			dir := smokeDir(t)
			cfg := c.cfg(dir)
			if cfg.Accel.Accel == AccelKVM {
				// Only where KVM really works; else the same guest under TCG.
				if choice, err := ChooseAccel(cfg.Arch, AccelKVM, h); err == nil {
					cfg.Accel = choice
				} else {
					cfg.Accel = AccelChoice{}
				}
			}
			for i := range cfg.NICs {
				for j := range cfg.NICs[i].Forwards {
					cfg.NICs[i].Forwards[j].HostPort = freePort(t)
					cfg.NICs[i].Forwards[j].HostAddr = ""
				}
			}
			cfg.StartPaused = true
			if (cfg.Firmware == FirmwareUEFI || cfg.Paths.EFIVars != "") && cfg.Kernel == "" {
				if _, _, err := UEFIFirmware(cfg.Arch, h); err != nil {
					fixture.Need(t, err.Error()+": run make deps")
				}
			}
			if c.elfKernel != "" {
				kernel, initrd := fixture.Guest(t, c.elfKernel)
				materialize(t, Config{Arch: cfg.Arch, Disks: cfg.Disks, Paths: cfg.Paths}, h)
				cfg.Kernel, cfg.Initrd = kernel, initrd
			} else {
				materialize(t, cfg, h)
			}
			argv, err := Cmdline(cfg, h)
			if err != nil {
				t.Fatal(err)
			}
			exited, output := startQEMU(t, argv)
			s, greeting := dialQMP(t, cfg.Paths.QMP[0], exited, output)
			defer s.c.Close()
			if !strings.Contains(greeting, `"QMP"`) {
				t.Fatalf("qmp greeting %q", greeting)
			}
			s.run(t, "qmp_capabilities", nil)
			var status struct{ Status string }
			json.Unmarshal(s.run(t, "query-status", nil), &status)
			if status.Status != "prelaunch" {
				t.Errorf("status %q, want prelaunch (-S)", status.Status)
			}
			pid, err := os.ReadFile(cfg.Paths.Pidfile)
			if err != nil || strings.TrimSpace(string(pid)) == "" {
				t.Errorf("pidfile: %q, %v", pid, err)
			}
			for _, p := range append([]string{cfg.Paths.Serial}, cfg.Paths.QMP[1:]...) {
				if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeSocket == 0 {
					t.Errorf("socket %s: %v", p, err)
				}
			}
			if cfg.Display == DisplayVNC {
				checkRFB(t, cfg.Paths.VNC)
			}
			var mice []struct {
				Name     string
				Absolute bool
			}
			json.Unmarshal(s.run(t, "query-mice", nil), &mice)
			abs := slices.ContainsFunc(mice, func(m struct {
				Name     string
				Absolute bool
			}) bool {
				return m.Absolute
			})
			if want := hasTablet(argv); abs != want {
				t.Errorf("absolute pointer %v, want %v: query-mice %+v", abs, want, mice)
			}
			for _, cd := range cfg.CDROMs {
				if cd.Path != "" {
					continue
				}
				iso := filepath.Join(dir, cd.ID+" inserted.iso")
				if err := os.WriteFile(iso, make([]byte, 1<<20), 0o644); err != nil {
					t.Fatal(err)
				}
				s.run(t, "blockdev-change-medium", map[string]any{"id": cd.ID, "filename": iso, "format": "raw", "read-only-mode": "read-only"})
				if blk := string(s.run(t, "query-block", nil)); !strings.Contains(blk, cd.ID+` inserted.iso`) {
					t.Errorf("cd-rom %s: medium not inserted: %s", cd.ID, blk)
				}
			}
			s.run(t, "quit", nil)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatal("qemu did not quit")
			}
		})
	}
}

// checkRFB reads the RFB protocol version QEMU's VNC server sends first.
func checkRFB(t *testing.T, path string) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Errorf("vnc socket: %v", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 12)
	if _, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf), "RFB 003.") {
		t.Errorf("vnc socket says %q, %v; want an RFB version", buf, err)
	}
}

// TestBootKernels boots the fixture kernels (Debian's) with argv from
// Cmdline on each arch's default machine and CPU under TCG, and waits for
// the guest's userspace marker on the serial log and its power-off: proof
// that the per-arch defaults (q35 + max, virt + max,pauth-impdef=on,
// pseries + power9 + TCG caps) run real guests.
func TestBootKernels(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	h, err := ProbeCached(testCtxProbe(t), filepath.Join(t.TempDir(), "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		fixture string
		arch    Arch
		uefi    bool
	}{{"x86_64", ArchX86_64, false}, {"aarch64", ArchAArch64, false}, {"ppc64le", ArchPPC64, false}, {"x86_64", ArchX86_64, true}} {
		name := g.fixture
		if g.uefi {
			name += "-uefi"
		}
		t.Run(name, func(t *testing.T) {
			if _, ok := h.Binaries[g.arch]; !ok {
				fixture.Need(t, archTable[g.arch].binary+" not found: run make deps")
			}
			kernel, initrd := fixture.Guest(t, g.fixture)
			dir := smokeDir(t)
			cfg := baseConfig(dir, "boot", g.arch)
			cfg.CPUs, cfg.MemoryMiB = 2, 512
			cfg.Kernel, cfg.Initrd = kernel, initrd
			cfg.Append = fixture.Append(g.fixture, "vlab.marker=cmdline", "vlab.poweroff=1")
			cfg.Disks = []Disk{{Path: filepath.Join(dir, "disk.qcow2")}}
			cfg.NICs = []NIC{{Mode: NetUser, Restrict: true}}
			cfg.Display = DisplayNone
			if Console(g.arch) != fixture.Console(g.fixture) {
				t.Errorf("Console(%s) = %q, fixture says %q", g.arch, Console(g.arch), fixture.Console(g.fixture))
			}
			if g.uefi {
				// OVMF (pflash code + qcow2 vars) hands the kernel's EFI stub
				// the kernel QEMU loaded through fw_cfg.
				if _, _, err := UEFIFirmware(g.arch, h); err != nil {
					fixture.Need(t, err.Error()+": run make deps")
				}
				cfg.Firmware, cfg.Paths.EFIVars = FirmwareUEFI, filepath.Join(dir, "efivars.qcow2")
			}
			materialize(t, Config{Arch: cfg.Arch, Disks: cfg.Disks, Paths: cfg.Paths}, h)
			argv, err := Cmdline(cfg, h)
			if err != nil {
				t.Fatal(err)
			}
			if g.uefi && !strings.Contains(strings.Join(argv, " "), "pflash1="+EFIVarsNode) {
				t.Fatalf("no uefi pflash in %s", ShellQuote(argv))
			}
			start := time.Now()
			exited, output := startQEMU(t, argv)
			select {
			case <-exited:
			case <-time.After(180 * time.Second):
				t.Fatalf("guest did not power off; serial log:\n%s", tailFile(cfg.Paths.SerialLog))
			}
			log, _ := os.ReadFile(cfg.Paths.SerialLog)
			if _, ok := fixture.Find(string(log), fixture.MarkerBootOK); !ok {
				t.Fatalf("no %s on the serial console; qemu: %s\nserial log:\n%s", fixture.MarkerBootOK, output(), tailFile(cfg.Paths.SerialLog))
			}
			if m, _ := fixture.Find(string(log), fixture.MarkerMarker); m != "cmdline" {
				t.Errorf("marker %q, want cmdline", m)
			}
			t.Logf("%s: %s booted to userspace and powered off in %s (-cpu %s, uefi %v)", g.arch, DefaultMachine(g.arch), time.Since(start).Round(100*time.Millisecond), values(argv, "-cpu")[0], g.uefi)
		})
	}
}

// isoFixture returns a fixture ISO's path, skipping (or failing under
// VLAB_REQUIRE_E2E=1) when it has not been built.
func isoFixture(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(fixture.Dir(), "iso", name)
	if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		fixture.Need(t, "fixture "+p+" missing: run make fixtures")
	}
	return p
}

// bootToPoweroff runs cfg until the guest powers off and returns its serial
// log; it fails the test if QEMU runs longer than the safety net.
func bootToPoweroff(t *testing.T, cfg Config, h *Host) string {
	t.Helper()
	argv, err := Cmdline(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	exited, output := startQEMU(t, argv)
	select {
	case <-exited:
	case <-time.After(240 * time.Second):
		t.Fatalf("guest did not power off; serial log:\n%s", tailFile(cfg.Paths.SerialLog))
	}
	log, _ := os.ReadFile(cfg.Paths.SerialLog)
	if _, ok := fixture.Find(string(log), fixture.MarkerError); ok {
		t.Errorf("guest reported an error; serial log:\n%s", tailFile(cfg.Paths.SerialLog))
	}
	t.Logf("%s %s: powered off after %s; qemu said %q", cfg.Arch, orDefault(cfg), time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(output()))
	return string(log)
}

// TestBootISOs boots the fixture ISOs through the firmware each arch uses by
// default, with the CD-ROM attachment and boot order Cmdline produces:
// x86_64 q35 + SeaBIOS from an AHCI CD (an installer that writes the blank
// disk; the second start boots the installed disk), aarch64 virt + AAVMF
// with a qcow2 variable store from a virtio-scsi CD, ppc64 pseries + SLOF
// from a spapr-vscsi CD.
func TestBootISOs(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	h, err := ProbeCached(testCtxProbe(t), filepath.Join(t.TempDir(), "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	setup := func(t *testing.T, arch Arch, iso string) Config {
		if _, ok := h.Binaries[arch]; !ok {
			fixture.Need(t, archTable[arch].binary+" not found: run make deps")
		}
		path := isoFixture(t, iso)
		dir := smokeDir(t)
		cfg := baseConfig(dir, "iso", arch)
		cfg.CPUs, cfg.MemoryMiB = 2, 512
		cfg.Disks = []Disk{{Path: filepath.Join(dir, "disk.qcow2")}}
		cfg.CDROMs = []CDROM{{ID: "cd0", Path: path}}
		cfg.NICs = []NIC{{Mode: NetUser, Restrict: true}}
		cfg.Display = DisplayNone
		return cfg
	}
	t.Run("x86_64-install", func(t *testing.T) {
		cfg := setup(t, ArchX86_64, "installer-x86_64.iso")
		// The default order (disks, then CD-ROMs): the blank disk falls
		// through to the installer, the installed disk boots next time.
		materialize(t, Config{Disks: cfg.Disks, Paths: cfg.Paths}, h)
		if log := bootToPoweroff(t, cfg, h); !strings.Contains(log, "VLAB-INSTALL-DONE") {
			t.Fatalf("installer did not finish; serial log:\n%s", tailFile(cfg.Paths.SerialLog))
		}
		os.Remove(cfg.Paths.SerialLog)
		if m, _ := fixture.Find(bootToPoweroff(t, cfg, h), fixture.MarkerMarker); m != "installed-system" {
			t.Fatalf("second start did not boot the installed disk (marker %q); serial log:\n%s", m, tailFile(cfg.Paths.SerialLog))
		}
	})
	t.Run("aarch64-uefi", func(t *testing.T) {
		cfg := setup(t, ArchAArch64, "boot-aarch64.iso")
		cfg.BootOrder = "dc"
		cfg.Paths.EFIVars = filepath.Join(filepath.Dir(cfg.Disks[0].Path), "efivars.qcow2")
		if _, _, err := UEFIFirmware(ArchAArch64, h); err != nil {
			fixture.Need(t, err.Error()+": run make deps")
		}
		materialize(t, Config{Arch: cfg.Arch, Disks: cfg.Disks, Paths: cfg.Paths}, h)
		if m, _ := fixture.Find(bootToPoweroff(t, cfg, h), fixture.MarkerMarker); m != "iso-aarch64" {
			t.Fatalf("marker %q, want iso-aarch64; serial log:\n%s", m, tailFile(cfg.Paths.SerialLog))
		}
	})
	t.Run("ppc64-slof", func(t *testing.T) {
		cfg := setup(t, ArchPPC64, "boot-ppc64le.iso")
		cfg.BootOrder = "dc"
		materialize(t, Config{Disks: cfg.Disks, Paths: cfg.Paths}, h)
		if m, _ := fixture.Find(bootToPoweroff(t, cfg, h), fixture.MarkerMarker); m != "iso-ppc64le" {
			t.Fatalf("marker %q, want iso-ppc64le; serial log:\n%s", m, tailFile(cfg.Paths.SerialLog))
		}
	})
}

// TestBootMac99Order: mac99's OpenBIOS picks its boot device from -boot
// order and finds the CD-ROM where Cmdline attaches it (its "cd" alias is
// the secondary IDE master) and the disk where "hd" points.
func TestBootMac99Order(t *testing.T) {
	fixture.Program(t, "qemu-system-ppc")
	h, err := ProbeCached(testCtxProbe(t), filepath.Join(t.TempDir(), "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	for order, want := range map[string]string{"dc": "Trying cd:", "cd": "Trying hd:"} {
		t.Run(order, func(t *testing.T) {
			dir := smokeDir(t)
			cfg := baseConfig(dir, "mac", ArchPPC)
			cfg.Disks = []Disk{{Path: filepath.Join(dir, "disk.qcow2")}}
			cfg.CDROMs = []CDROM{{ID: "cd0", Path: filepath.Join(dir, "blank.iso")}}
			cfg.BootOrder = order
			cfg.Display = DisplayNone // with a screen OpenBIOS talks there, not on the serial port
			materialize(t, cfg, h)
			argv, err := Cmdline(cfg, h)
			if err != nil {
				t.Fatal(err)
			}
			exited, output := startQEMU(t, argv)
			deadline := time.Now().Add(60 * time.Second)
			for {
				log, _ := os.ReadFile(cfg.Paths.SerialLog)
				if strings.Contains(string(log), want) {
					break
				}
				select {
				case <-exited:
					t.Fatalf("qemu exited: %s; serial log:\n%s", output(), log)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("OpenBIOS never said %q; serial log:\n%s", want, log)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func tailFile(p string) string {
	b, _ := os.ReadFile(p)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// lockedBuffer collects a process's output safely across goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCmdlineReplay: a recorded run counts instructions with the fixed
// shift, starts from a snapshot whose VM state goes to a -drive of its own
// (a disk's blkreplay node would hang QEMU 7.2 before the guest runs), puts
// every disk behind blkreplay and writes the console to the log file only
// (an unattached console socket stalls the UART on a host timer the
// recording lacks).
func TestCmdlineReplay(t *testing.T) {
	cfg := baseConfig(goldenRoot, "rr", ArchX86_64)
	cfg.Accel = AccelChoice{Accel: AccelTCG}
	cfg.Disks = []Disk{{Path: dataPath(goldenRoot, "rr", "hd0.qcow2"), NodeName: "hd0"}}
	state := filepath.Join(goldenRoot, "runs, odd", "state.qcow2")
	cfg.Instrument.Replay = Replay{Mode: ReplayRecord, File: "/runs/replay.bin", Snapshot: "rr-start", State: state}
	if err := CheckReplay(cfg); err != nil {
		t.Fatal(err)
	}
	argv, err := Cmdline(cfg, goldenHost(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := values(argv, "-icount"); !slices.Equal(got, []string{"shift=7,rr=record,rrfile=/runs/replay.bin,rrsnapshot=rr-start"}) {
		t.Errorf("-icount %q", got)
	}
	wantDrive := "if=none,id=" + ReplayStateID + ",file=" + strings.ReplaceAll(state, ",", ",,") + ",format=qcow2"
	if got := values(argv, "-drive"); !slices.Equal(got, []string{wantDrive}) {
		t.Errorf("-drive %q, want %q", got, wantDrive)
	}
	var rr, attached bool
	for _, v := range values(argv, "-blockdev") {
		rr = rr || v == "driver=blkreplay,node-name=hd0"+blkreplaySuffix+",image=hd0"
	}
	for _, v := range values(argv, "-device") {
		attached = attached || strings.Contains(v, "drive=hd0"+blkreplaySuffix)
	}
	if !rr || !attached {
		t.Errorf("disk hd0 not behind blkreplay: %q", argv)
	}
	wantSerial := "file,id=" + SerialChardevID + ",path=" + cfg.Paths.SerialLog + ",append=on"
	if got := values(argv, "-chardev"); !slices.Contains(got, wantSerial) || slices.ContainsFunc(got, func(v string) bool {
		return strings.Contains(v, cfg.Paths.Serial)
	}) {
		t.Errorf("-chardev %q, want the console as %q and no serial socket", got, wantSerial)
	}

	cfg.Instrument.Replay.State = ""
	if err := CheckReplay(cfg); err == nil || !strings.Contains(err.Error(), "state image") {
		t.Errorf("snapshot without a state image: %v", err)
	}
	cfg.Instrument.Replay = Replay{Mode: ReplayPlay, File: "/runs/replay.bin"}
	cfg.Accel.MultiThread = true
	if err := CheckReplay(cfg); err == nil || !strings.Contains(err.Error(), "single-threaded") {
		t.Errorf("multi-threaded TCG: %v", err)
	}
}

// TestResolveNICWires: each NIC's -netdev, as Resolve hands it to a host
// that creates the NIC's device itself (the libvirt export), is the one in
// the argv, forwards and restrict included; a NIC of mode none has none.
func TestResolveNICWires(t *testing.T) {
	cfg := baseConfig(goldenRoot, "nics", ArchX86_64)
	cfg.BootOrder = "nc"
	cfg.NICs = []NIC{
		{ID: "net0", Mode: NetUser, MAC: "52:54:00:AA:BB:01", Restrict: true, Forwards: []Forward{{Proto: "tcp", HostPort: 2222, GuestPort: 22}}},
		{ID: "net1", Mode: NetNone},
	}
	r, err := Resolve(cfg, goldenHost(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.NICWires) != 2 || r.NICWires[1] != (NICWire{}) {
		t.Fatalf("NICWires = %q, want two entries, the second empty", r.NICWires)
	}
	want := NICWire{NetdevID: "net0", Netdev: "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,restrict=on"}
	if r.NICWires[0] != want {
		t.Errorf("NICWires[0] = %q, want %q", r.NICWires[0], want)
	}
	argv, err := Cmdline(cfg, goldenHost(t))
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(argv, "\x00")
	if !strings.Contains(joined, "-netdev\x00"+want.Netdev+"\x00-device\x00virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:01,bootindex=1") {
		t.Errorf("the argv does not hold the NIC's -netdev and its device (with its bootindex): %q", argv)
	}
}
