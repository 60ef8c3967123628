package machine

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vlab/emulator"
	"vlab/profiles"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeHost is a Debian 12 x86_64 host with every QEMU vlab drives, working
// KVM and the firmware packages installed: a value, so argv tests are pure.
func fakeHost() *emulator.Host {
	bin := func(name string, accels []string, machines ...string) emulator.Binary {
		return emulator.Binary{Path: "/usr/bin/" + name, Version: "7.2.19", Accels: accels, Machines: machines}
	}
	kvm := []string{"kvm", "tcg"}
	tcg := []string{"tcg"}
	return &emulator.Host{
		Arch: emulator.ArchX86_64,
		Binaries: map[emulator.Arch]emulator.Binary{
			emulator.ArchX86_64:  bin("qemu-system-x86_64", kvm, "pc", "q35", "isapc", "microvm"),
			emulator.ArchI386:    bin("qemu-system-i386", kvm, "pc", "q35", "isapc"),
			emulator.ArchAArch64: bin("qemu-system-aarch64", tcg, "virt", "raspi3b"),
			emulator.ArchARM:     bin("qemu-system-arm", tcg, "virt", "versatilepb"),
			emulator.ArchPPC64:   bin("qemu-system-ppc64", tcg, "pseries", "powernv", "mac99", "g3beige"),
			emulator.ArchPPC:     bin("qemu-system-ppc", tcg, "mac99", "g3beige", "ppce500"),
		},
		KVM: emulator.KVMStatus{DevExists: true, DevRW: true, CPUVirt: true},
		Firmware: emulator.FirmwareFiles{
			OVMFCode:  "/usr/share/OVMF/OVMF_CODE_4M.fd",
			OVMFVars:  "/usr/share/OVMF/OVMF_VARS_4M.fd",
			AAVMFCode: "/usr/share/AAVMF/AAVMF_CODE.fd",
			AAVMFVars: "/usr/share/AAVMF/AAVMF_VARS.fd",
			SLOF:      "/usr/share/qemu/slof.bin",
			OpenBIOS:  "/usr/share/qemu/openbios-ppc",
			SeaBIOS:   "/usr/share/seabios/bios-256k.bin",
		},
		MemTotalMiB: 24 * 1024,
		QemuImg:     "/usr/bin/qemu-img",
	}
}

// goldenStore lays VMs out under fixed, fake directories (nothing is
// created: config only computes paths).
func goldenStore() *Store {
	return &Store{dirs: Dirs{
		Config: "/home/u/.config/vlab", Data: "/home/u/.local/share/vlab", Runtime: "/run/user/1000/vlab",
		State: "/home/u/.local/state/vlab", Cache: "/home/u/.cache/vlab",
	}}
}

// profileSpec is what `vlab create NAME --profile P --iso installer.iso`
// defines, with a fixed MAC.
func profileSpec(p profiles.Profile) *Spec {
	spec := &Spec{
		Schema:  SchemaVersion,
		Name:    "vm-" + p.Name,
		Display: emulator.DisplayVNC,
		Boot:    Boot{ISO: "/home/u/isos/installer.iso"},
		Disks:   []DiskSpec{{File: "disk0.qcow2", Format: "qcow2"}},
		NICs:    []NICSpec{{Mode: emulator.NetUser, MAC: "52:54:00:12:34:56"}},
	}
	ApplyProfile(spec, p)
	return spec
}

// TestProfileArgvGolden builds every profile's qemu argv through
// ApplyProfile, the store's config and emulator.Cmdline, and compares it with
// testdata/profiles/<profile>-<arch>-<accel>.golden (one argument per line;
// refresh with go test ./machine -run TestProfileArgvGolden -update).
func TestProfileArgvGolden(t *testing.T) {
	host := fakeHost()
	s := goldenStore()
	dir := filepath.Join("testdata", "profiles")
	seen := map[string]bool{}
	for _, p := range profiles.List() {
		accels := []emulator.Accel{emulator.AccelTCG}
		if (p.Arch == emulator.ArchX86_64 || p.Arch == emulator.ArchI386) && p.Accel == emulator.AccelAuto {
			accels = append(accels, emulator.AccelKVM)
		}
		for _, accel := range accels {
			name := fmt.Sprintf("%s-%s-%s.golden", p.Name, p.Arch, accel)
			seen[name] = true
			t.Run(strings.TrimSuffix(name, ".golden"), func(t *testing.T) {
				spec := profileSpec(p)
				if err := spec.Validate(); err != nil {
					t.Fatalf("spec from profile %s: %v", p.Name, err)
				}
				cfg, err := s.config(spec, host, accel)
				if err != nil {
					t.Fatal(err)
				}
				argv, err := emulator.Cmdline(cfg, host)
				if err != nil {
					t.Fatal(err)
				}
				checkProfileArgv(t, p, cfg, argv)
				got := strings.Join(argv, "\n") + "\n"
				path := filepath.Join(dir, name)
				if *update {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v: run go test ./machine -run TestProfileArgvGolden -update", err)
				}
				if got != string(want) {
					t.Errorf("argv differs from %s (run with -update if the change is intended):\n%s", path, lineDiff(string(want), got))
				}
			})
		}
	}
	// No golden file without a profile behind it.
	if !*update {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !seen[e.Name()] {
				t.Errorf("stale golden file %s: no profile makes it (delete it)", e.Name())
			}
		}
	}
}

// checkProfileArgv asserts what the profile asks for shows up in the argv,
// whatever the builder's exact spelling: the binary, the machine with its
// options, the accelerator, local-time RTC, devices by name.
func checkProfileArgv(t *testing.T, p profiles.Profile, cfg emulator.Config, argv []string) {
	t.Helper()
	joined := strings.Join(argv, " ")
	wantBin := map[emulator.Arch]string{
		emulator.ArchX86_64: "qemu-system-x86_64", emulator.ArchI386: "qemu-system-i386",
		emulator.ArchAArch64: "qemu-system-aarch64", emulator.ArchPPC64: "qemu-system-ppc64", emulator.ArchPPC: "qemu-system-ppc",
	}[p.Arch]
	if filepath.Base(argv[0]) != wantBin {
		t.Errorf("binary %s, want %s", argv[0], wantBin)
	}
	if !strings.Contains(joined, p.Machine) {
		t.Errorf("machine %s missing", p.Machine)
	}
	for _, o := range p.MachineOpts {
		if !strings.Contains(joined, o) {
			t.Errorf("machine option %s missing", o)
		}
	}
	if cfg.Accel.Accel == emulator.AccelKVM && !strings.Contains(joined, "kvm") {
		t.Error("kvm chosen but not on the command line")
	}
	if cfg.Accel.Accel == emulator.AccelTCG && !strings.Contains(joined, "tcg") {
		t.Error("tcg chosen but not on the command line")
	}
	if p.RTCLocalTime && !strings.Contains(joined, "base=localtime") {
		t.Error("rtc local time missing")
	}
	if p.CPU != "" && !slices.ContainsFunc(argv, func(a string) bool { return a == p.CPU || strings.HasPrefix(a, p.CPU+",") }) {
		t.Errorf("cpu %s missing", p.CPU)
	}
	if !strings.Contains(joined, p.NICModel) {
		t.Errorf("nic model %s missing", p.NICModel)
	}
	if p.Sound != "" && !strings.Contains(strings.ToLower(joined), p.Sound) {
		t.Errorf("sound %s missing", p.Sound)
	}
	if p.Firmware == profiles.FirmwareUEFI && !strings.Contains(joined, "pflash") && !strings.Contains(joined, "CODE") {
		t.Error("uefi firmware missing")
	}
	if p.Input == emulator.InputUSBTablet && !strings.Contains(joined, "usb-tablet") {
		t.Error("usb-tablet missing")
	}
	if p.Input == emulator.InputPS2 && strings.Contains(joined, "usb-tablet") {
		t.Error("a PS/2 profile got a usb-tablet")
	}
}

// lineDiff shows the first differing lines of two argv listings.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}
