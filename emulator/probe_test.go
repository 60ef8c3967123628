package emulator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

func readProbeData(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "probe", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseVersionCaptured(t *testing.T) {
	for _, a := range Arches {
		got, err := ParseVersion(readProbeData(t, "version-"+a.String()+".txt"))
		if err != nil || got != "7.2.22" {
			t.Errorf("%s: ParseVersion = %q, %v; want 7.2.22", a, got, err)
		}
	}
	if got, err := ParseVersion(readProbeData(t, "version-qemu-img.txt")); err != nil || got != "7.2.22" {
		t.Errorf("qemu-img: ParseVersion = %q, %v; want 7.2.22", got, err)
	}
}

func TestParseVersionVariants(t *testing.T) {
	cases := []struct{ in, want string }{
		{"QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright (c) 2003-2022 Fabrice Bellard", "7.2.19"},
	}
	for _, line := range strings.Split(readProbeData(t, "version-variants.txt"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		in, want, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("bad variant line %q", line)
		}
		cases = append(cases, struct{ in, want string }{in, want})
	}
	for _, c := range cases {
		got, err := ParseVersion(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("ParseVersion(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestParseAccelHelp(t *testing.T) {
	cases := map[string][]string{
		"accel-x86_64.txt":      {"tcg", "kvm"},
		"accel-i386.txt":        {"tcg", "kvm"},
		"accel-aarch64.txt":     {"tcg"},
		"accel-arm.txt":         {"tcg"},
		"accel-ppc64.txt":       {"tcg"},
		"accel-ppc.txt":         {"tcg"},
		"accel-variant-xen.txt": {"tcg", "xen", "kvm"},
	}
	for file, want := range cases {
		if got := ParseAccelHelp(readProbeData(t, file)); !slices.Equal(got, want) {
			t.Errorf("%s: ParseAccelHelp = %q, want %q", file, got, want)
		}
	}
	if got := ParseAccelHelp(""); len(got) != 0 {
		t.Errorf("ParseAccelHelp(\"\") = %q, want none", got)
	}
}

func TestParseMachineHelp(t *testing.T) {
	cases := []struct {
		arch          Arch
		count         int
		has, hasNot   []string
		first, second string
	}{
		{ArchX86_64, 61, []string{"q35", "pc", "isapc", "pc-q35-7.2", "pc-i440fx-7.2", "microvm"}, []string{"Supported", "virt"}, "microvm", "pc"},
		{ArchI386, 61, []string{"q35", "pc", "isapc"}, []string{"Supported"}, "microvm", "pc"},
		{ArchAArch64, 110, []string{"virt", "virt-7.2", "raspi3b", "sbsa-ref"}, []string{"Supported", "q35"}, "akita", "ast1030-evb"},
		{ArchARM, 105, []string{"virt", "vexpress-a15"}, []string{"raspi3b"}, "akita", "ast1030-evb"},
		{ArchPPC64, 43, []string{"pseries", "pseries-7.2", "mac99", "powernv9"}, []string{"Supported"}, "40p", "bamboo"},
		{ArchPPC, 11, []string{"mac99", "g3beige"}, []string{"pseries"}, "40p", "bamboo"},
	}
	for _, c := range cases {
		got := ParseMachineHelp(readProbeData(t, "machine-"+c.arch.String()+".txt"))
		if len(got) != c.count {
			t.Errorf("%s: %d machines, want %d: %q", c.arch, len(got), c.count, got)
		}
		for _, m := range c.has {
			if !slices.Contains(got, m) {
				t.Errorf("%s: machines lack %q", c.arch, m)
			}
		}
		for _, m := range c.hasNot {
			if slices.Contains(got, m) {
				t.Errorf("%s: machines include %q", c.arch, m)
			}
		}
		if len(got) > 1 && (got[0] != c.first || got[1] != c.second) {
			t.Errorf("%s: machines start %q, %q; want %q, %q", c.arch, got[0], got[1], c.first, c.second)
		}
		// Every machine vlab supports for this arch is offered by the binary.
		for _, m := range archTable[c.arch].machines {
			if !slices.Contains(got, m) {
				t.Errorf("%s: vlab supports machine %q, which QEMU 7.2 does not list", c.arch, m)
			}
		}
	}
}

func TestParseCPUInfoVirt(t *testing.T) {
	cases := map[string]bool{
		"cpuinfo-amd-pvm-novirt.txt":   false, // this build host: nested PVM KVM, no svm
		"cpuinfo-intel-vmx.txt":        true,
		"cpuinfo-amd-svm.txt":          true,
		"cpuinfo-amd-svmlock-only.txt": false,
		"cpuinfo-arm64.txt":            false,
	}
	for file, want := range cases {
		if got := ParseCPUInfoVirt(readProbeData(t, file)); got != want {
			t.Errorf("%s: ParseCPUInfoVirt = %v, want %v", file, got, want)
		}
	}
}

func TestParseMemTotalMiB(t *testing.T) {
	cases := map[string]int{
		"meminfo-debian12.txt":  24684084 / 1024,
		"meminfo-2g.txt":        2030108 / 1024,
		"meminfo-nototal.txt":   0,
		"version-x86_64.txt":    0,
		"cpuinfo-intel-vmx.txt": 0,
	}
	for file, want := range cases {
		if got := ParseMemTotalMiB(readProbeData(t, file)); got != want {
			t.Errorf("%s: ParseMemTotalMiB = %d, want %d", file, got, want)
		}
	}
}

func TestAptPackage(t *testing.T) {
	want := map[Arch]string{
		ArchX86_64: "qemu-system-x86", ArchI386: "qemu-system-x86",
		ArchAArch64: "qemu-system-arm", ArchARM: "qemu-system-arm",
		ArchPPC64: "qemu-system-ppc", ArchPPC: "qemu-system-ppc",
		ArchUnknown: "",
	}
	for a, p := range want {
		if got := AptPackage(a); got != p {
			t.Errorf("AptPackage(%s) = %q, want %q", a, got, p)
		}
	}
}

// fakeHost is a host tree for the prober: fake qemu binaries (shell scripts
// that replay captured output and log each run), /proc files, a /dev/kvm and
// firmware files, all under a temp dir.
type fakeHost struct {
	dir, bin, log string
	p             *prober
}

func newFakeHost(t *testing.T, arches ...Arch) *fakeHost {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	f := &fakeHost{dir: dir, bin: filepath.Join(dir, "bin"), log: filepath.Join(dir, "exec.log")}
	if err := os.MkdirAll(f.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := filepath.Abs(filepath.Join("testdata", "probe"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arches {
		f.addBinary(t, archTable[a].binary, a.String(), data)
	}
	f.addBinary(t, "qemu-img", "qemu-img", data)
	f.write(t, "proc/cpuinfo", readProbeData(t, "cpuinfo-amd-pvm-novirt.txt"))
	f.write(t, "proc/meminfo", readProbeData(t, "meminfo-2g.txt"))
	f.write(t, "dev/kvm", "")
	fw := func(p string) string { return filepath.Join(dir, "fw", p) }
	f.p = &prober{
		lookPath: func(name string) (string, error) {
			p := filepath.Join(f.bin, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				return p, nil
			}
			return "", exec.ErrNotFound
		},
		kvmDev:  filepath.Join(dir, "dev/kvm"),
		cpuinfo: filepath.Join(dir, "proc/cpuinfo"),
		meminfo: filepath.Join(dir, "proc/meminfo"),
		firmware: firmwareSearch{
			ovmf:     []firmwarePair{{fw("OVMF_CODE_4M.fd"), fw("OVMF_VARS_4M.fd")}, {fw("OVMF_CODE.fd"), fw("OVMF_VARS.fd")}},
			aavmf:    []firmwarePair{{fw("AAVMF_CODE.fd"), fw("AAVMF_VARS.fd")}},
			arm:      []firmwarePair{{fw("AAVMF32_CODE.fd"), fw("AAVMF32_VARS.fd")}},
			slof:     []string{fw("slof.bin")},
			openbios: []string{fw("openbios-ppc")},
			seabios:  []string{fw("bios-256k.bin"), fw("bios.bin")},
		},
		hostArch:  ArchX86_64,
		readFile:  os.ReadFile,
		statFile:  os.Stat,
		runBinary: runQuery,
		extraDirs: []string{f.bin},
	}
	return f
}

func (f *fakeHost) write(t *testing.T, rel, content string) string {
	t.Helper()
	p := filepath.Join(f.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// addBinary writes a fake qemu binary answering from the captured outputs of
// key (an arch name or "qemu-img").
func (f *fakeHost) addBinary(t *testing.T, name, key, data string) {
	t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
echo "$0 $*" >> '%s'
case "$1" in
--version) cat '%s/version-%s.txt' ;;
-accel) cat '%s/accel-%s.txt' ;;
-machine) [ -e '%s/fail-machine' ] && { sleep "$(cat '%s/fail-machine')"; exit 1; }; cat '%s/machine-%s.txt' ;;
-device) [ -e '%s/device-%s.txt' ] && cat '%s/device-%s.txt'; exit 0 ;;
*) echo "unexpected $*" >&2; exit 1 ;;
esac
`, f.log, data, key, data, key, f.dir, f.dir, data, key, data, key, data, key)
	if err := os.WriteFile(filepath.Join(f.bin, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeHost) execs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func testCtxProbe(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProbeFakeHost(t *testing.T) {
	f := newFakeHost(t, ArchX86_64, ArchAArch64, ArchPPC)
	f.write(t, "fw/OVMF_CODE.fd", "c")
	f.write(t, "fw/OVMF_VARS.fd", "v")
	f.write(t, "fw/OVMF_CODE_4M.fd", "c") // a 4M code without its vars: not a pair
	f.write(t, "fw/AAVMF_CODE.fd", "c")
	f.write(t, "fw/AAVMF_VARS.fd", "v")
	f.write(t, "fw/bios.bin", "b")
	f.write(t, "fw/openbios-ppc", "o")

	h, err := f.p.probe(testCtxProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Binaries) != 3 {
		t.Errorf("binaries = %v, want x86_64, aarch64, ppc", h.Binaries)
	}
	x := h.Binaries[ArchX86_64]
	if x.Path != filepath.Join(f.bin, "qemu-system-x86_64") || x.Version != "7.2.22" ||
		!slices.Equal(x.Accels, []string{"tcg", "kvm"}) || !slices.Contains(x.Machines, "q35") {
		t.Errorf("x86_64 binary = %+v", x)
	}
	if a := h.Binaries[ArchAArch64]; !slices.Equal(a.Accels, []string{"tcg"}) || !slices.Contains(a.Machines, "virt") {
		t.Errorf("aarch64 binary = %+v", a)
	}
	if _, ok := h.Binaries[ArchPPC64]; ok {
		t.Error("ppc64 listed without a binary")
	}
	if string(h.QemuImg) != filepath.Join(f.bin, "qemu-img") {
		t.Errorf("QemuImg = %q", h.QemuImg)
	}
	if h.KVM != (KVMStatus{DevExists: true, DevRW: true}) {
		t.Errorf("KVM = %+v, want exists, rw, no cpu virt", h.KVM)
	}
	if h.MemTotalMiB != 2030108/1024 {
		t.Errorf("MemTotalMiB = %d", h.MemTotalMiB)
	}
	fw := func(p string) string { return filepath.Join(f.dir, "fw", p) }
	want := FirmwareFiles{
		OVMFCode: fw("OVMF_CODE.fd"), OVMFVars: fw("OVMF_VARS.fd"),
		AAVMFCode: fw("AAVMF_CODE.fd"), AAVMFVars: fw("AAVMF_VARS.fd"),
		OpenBIOS: fw("openbios-ppc"), SeaBIOS: fw("bios.bin"),
	}
	if h.Firmware != want {
		t.Errorf("Firmware = %+v\nwant %+v", h.Firmware, want)
	}
	if n := f.execs(t); n != 4*3 {
		t.Errorf("%d qemu runs, want 12 (4 queries x 3 binaries)", n)
	}
}

func TestProbeKVMStates(t *testing.T) {
	f := newFakeHost(t)
	// A /dev/kvm that cannot be opened read-write (a directory fails even for root).
	os.Remove(f.p.kvmDev)
	if err := os.Mkdir(f.p.kvmDev, 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(t, "proc/cpuinfo", readProbeData(t, "cpuinfo-intel-vmx.txt"))
	h, err := f.p.probe(testCtxProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	if !h.KVM.DevExists || h.KVM.DevRW || h.KVM.DevErr == "" || !h.KVM.CPUVirt {
		t.Errorf("KVM = %+v, want exists, not rw with an error, cpu virt", h.KVM)
	}
	os.Remove(f.p.kvmDev)
	h, err = f.p.probe(testCtxProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	if h.KVM.DevExists || h.KVM.DevRW {
		t.Errorf("KVM = %+v, want no /dev/kvm", h.KVM)
	}
	// Non-x86 hosts have no vmx/svm flag: /dev/kvm is the answer.
	f.p.hostArch = ArchAArch64
	f.write(t, "dev/kvm", "")
	f.write(t, "proc/cpuinfo", readProbeData(t, "cpuinfo-arm64.txt"))
	if h, _ = f.p.probe(testCtxProbe(t)); !h.KVM.CPUVirt || h.Arch != ArchAArch64 {
		t.Errorf("arm64 host: KVM = %+v, arch %s; want CPUVirt from /dev/kvm", h.KVM, h.Arch)
	}
}

func TestProbeCanceled(t *testing.T) {
	f := newFakeHost(t, ArchX86_64)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.p.probe(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("probe with a canceled context: %v, want context.Canceled", err)
	}
}

func TestProbeCached(t *testing.T) {
	f := newFakeHost(t, ArchX86_64, ArchPPC64)
	cache := filepath.Join(f.dir, "cache", "host.json")
	ctx := testCtxProbe(t)

	h1, err := f.p.probeCached(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	first := f.execs(t)
	if first == 0 {
		t.Fatal("first ProbeCached ran no qemu")
	}
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("cache file not written: %v", err)
	}

	// Hit from the in-process memo, then from the file alone.
	h2, err := f.p.probeCached(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	forgetMemo(cache)
	h3, err := f.p.probeCached(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.execs(t); n != first {
		t.Fatalf("cache hits ran qemu %d more times", n-first)
	}
	for i, h := range []*Host{h2, h3} {
		if h.Binaries[ArchPPC64].Version != "7.2.22" || !slices.Equal(h.Binaries[ArchX86_64].Machines, h1.Binaries[ArchX86_64].Machines) {
			t.Errorf("hit %d: host differs from the probe: %+v", i+2, h.Binaries)
		}
	}

	// Callers cannot corrupt the memo.
	h2.Binaries[ArchX86_64] = Binary{}
	h2.Binaries[ArchPPC64].Machines[0] = "garbage"
	h4, _ := f.p.probeCached(ctx, cache)
	if h4.Binaries[ArchX86_64].Path == "" || h4.Binaries[ArchPPC64].Machines[0] == "garbage" {
		t.Error("changing a returned Host changed the cached one")
	}

	// Volatile facts are re-read on a hit.
	f.write(t, "proc/cpuinfo", readProbeData(t, "cpuinfo-amd-svm.txt"))
	f.write(t, "proc/meminfo", readProbeData(t, "meminfo-debian12.txt"))
	h5, _ := f.p.probeCached(ctx, cache)
	if !h5.KVM.CPUVirt || h5.MemTotalMiB != 24684084/1024 {
		t.Errorf("hit did not re-read cpuinfo/meminfo: %+v, %d MiB", h5.KVM, h5.MemTotalMiB)
	}
	if n := f.execs(t); n != first {
		t.Fatalf("cache hits ran qemu %d more times", n-first)
	}

	// A changed binary (new mtime), a new binary, a new firmware file: each misses.
	misses := []struct {
		what   string
		change func()
	}{
		{"binary mtime", func() {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(f.bin, "qemu-system-x86_64"), later, later); err != nil {
				t.Fatal(err)
			}
		}},
		{"new binary", func() {
			data, _ := filepath.Abs(filepath.Join("testdata", "probe"))
			f.addBinary(t, "qemu-system-arm", "arm", data)
		}},
		{"new firmware", func() { f.write(t, "fw/slof.bin", "s") }},
		{"corrupt cache file", func() {
			forgetMemo(cache)
			f.write(t, "cache/host.json", "{not json")
		}},
	}
	for _, m := range misses {
		before := f.execs(t)
		m.change()
		h, err := f.p.probeCached(ctx, cache)
		if err != nil {
			t.Fatal(err)
		}
		if f.execs(t) == before {
			t.Errorf("%s: ProbeCached reused a stale cache", m.what)
		}
		if m.what == "new binary" && h.Binaries[ArchARM].Path == "" {
			t.Errorf("%s: arm binary not found after the miss", m.what)
		}
		if m.what == "new firmware" && h.Firmware.SLOF == "" {
			t.Errorf("%s: slof not found after the miss", m.what)
		}
	}
}

func forgetMemo(file string) {
	probeMemo.Lock()
	delete(probeMemo.entries, file)
	probeMemo.Unlock()
}

// TestProbeRealHost probes this machine and checks what Debian's QEMU 7.2
// packages install.
func TestProbeRealHost(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	h, err := Probe(testCtxProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range Arches {
		path, err := exec.LookPath(archTable[a].binary)
		b, ok := h.Binaries[a]
		if (err == nil) != ok {
			t.Errorf("%s: in PATH %v, probed %v", a, err == nil, ok)
			continue
		}
		if !ok {
			continue
		}
		if b.Path != path || !strings.HasPrefix(b.Version, "7.") && !strings.HasPrefix(b.Version, "8.") && !strings.HasPrefix(b.Version, "9.") {
			t.Errorf("%s: %+v", a, b)
		}
		if !slices.Contains(b.Accels, "tcg") {
			t.Errorf("%s: accels %q lack tcg", a, b.Accels)
		}
		for _, m := range archTable[a].machines {
			if !slices.Contains(b.Machines, m) {
				t.Errorf("%s: machines lack %q", a, m)
			}
		}
	}
	if h.MemTotalMiB <= 0 {
		t.Errorf("MemTotalMiB = %d", h.MemTotalMiB)
	}
	if _, err := os.Stat("/dev/kvm"); (err == nil) != h.KVM.DevExists {
		t.Errorf("KVM.DevExists = %v, stat /dev/kvm: %v", h.KVM.DevExists, err)
	}
	for _, fw := range []struct{ got, file string }{
		{h.Firmware.SeaBIOS, "/usr/share/seabios/bios-256k.bin"},
		{h.Firmware.OVMFCode, "/usr/share/OVMF/OVMF_CODE_4M.fd"},
		{h.Firmware.AAVMFCode, "/usr/share/AAVMF/AAVMF_CODE.fd"},
		{h.Firmware.SLOF, "/usr/share/qemu/slof.bin"},
		{h.Firmware.OpenBIOS, "/usr/share/qemu/openbios-ppc"},
	} {
		if _, err := os.Stat(fw.file); err == nil && fw.got != fw.file {
			t.Errorf("firmware %s exists but the probe found %q", fw.file, fw.got)
		}
	}
}

// BenchmarkProbeCachedHit measures the `vlab start` path: a memoized hit.
func BenchmarkProbeCachedHit(b *testing.B) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("qemu-system-x86_64 not found: run make deps")
	}
	cache := filepath.Join(b.TempDir(), "host.json")
	ctx := context.Background()
	if _, err := ProbeCached(ctx, cache); err != nil {
		b.Fatal(err)
	}
	b.Run("memo", func(b *testing.B) {
		for b.Loop() {
			if _, err := ProbeCached(ctx, cache); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		for b.Loop() {
			forgetMemo(cache)
			if _, err := ProbeCached(ctx, cache); err != nil {
				b.Fatal(err)
			}
		}
	})
}
