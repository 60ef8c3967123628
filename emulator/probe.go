package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoQEMU is wrapped (with the arch and the Debian package that provides
// the binary) when a guest's qemu-system-* binary is missing.
var ErrNoQEMU = errors.New("qemu not found")

// ErrNoFirmware is wrapped (with the Debian package that provides it) when a
// guest needs a firmware image the host lacks, e.g. UEFI without ovmf.
var ErrNoFirmware = errors.New("firmware not found")

// probeTimeout bounds each qemu invocation of a probe (they answer in
// milliseconds; a hung binary must not hang vlab).
const probeTimeout = 10 * time.Second

// Probe inspects this host: the qemu-system-* binaries in PATH (version,
// accelerators, machine types), qemu-img, /dev/kvm, vmx/svm, RAM and the
// firmware images. A binary whose queries fail is still listed (with what
// could be read), so starting a guest shows QEMU's own error. Probe fails
// only when ctx ends.
func Probe(ctx context.Context) (*Host, error) {
	return defaultProber().probe(ctx)
}

// prober reads one host. Every path it touches comes from its fields, so
// tests can point it at a fake tree.
type prober struct {
	lookPath  func(string) (string, error)
	kvmDev    string
	cpuinfo   string
	meminfo   string
	firmware  firmwareSearch
	hostArch  Arch
	readFile  func(string) ([]byte, error)
	statFile  func(string) (os.FileInfo, error)
	runBinary func(ctx context.Context, path string, args ...string) (string, error)
}

func defaultProber() *prober {
	return &prober{
		lookPath:  exec.LookPath,
		kvmDev:    "/dev/kvm",
		cpuinfo:   "/proc/cpuinfo",
		meminfo:   "/proc/meminfo",
		firmware:  defaultFirmwareSearch,
		hostArch:  HostArch(),
		readFile:  os.ReadFile,
		statFile:  os.Stat,
		runBinary: runQuery,
	}
}

// runQuery runs a qemu help query and returns its stdout.
func runQuery(ctx context.Context, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (p *prober) probe(ctx context.Context) (*Host, error) {
	h := &Host{Arch: p.hostArch, Binaries: map[Arch]Binary{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, a := range Arches {
		path, err := p.lookPath(archTable[a].binary)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := p.probeBinary(ctx, path)
			mu.Lock()
			h.Binaries[a] = b
			mu.Unlock()
		}()
	}
	if path, err := p.lookPath("qemu-img"); err == nil {
		h.QemuImg = path
	}
	p.readVolatile(h)
	h.Firmware = p.firmware.find(p.exists)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("probe host: %w", err)
	}
	return h, nil
}

// probeBinary asks one qemu-system-* binary for its version, accelerators
// and machine types, in parallel.
func (p *prober) probeBinary(ctx context.Context, path string) Binary {
	b := Binary{Path: path}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if out, err := p.runBinary(ctx, path, "--version"); err == nil {
			b.Version, _ = ParseVersion(out)
		}
	}()
	go func() {
		defer wg.Done()
		if out, err := p.runBinary(ctx, path, "-accel", "help"); err == nil {
			b.Accels = ParseAccelHelp(out)
		}
	}()
	go func() {
		defer wg.Done()
		if out, err := p.runBinary(ctx, path, "-machine", "help"); err == nil {
			b.Machines = ParseMachineHelp(out)
		}
	}()
	wg.Wait()
	return b
}

// readVolatile fills the facts that can change without any file vlab
// watches changing (group membership, module loads): KVM, vmx/svm, RAM.
// They are cheap to read, so they are never cached.
func (p *prober) readVolatile(h *Host) {
	h.KVM = KVMStatus{}
	if _, err := p.statFile(p.kvmDev); err == nil {
		h.KVM.DevExists = true
		f, err := os.OpenFile(p.kvmDev, os.O_RDWR, 0)
		if err != nil {
			h.KVM.DevErr = err.Error()
		} else {
			f.Close()
			h.KVM.DevRW = true
		}
	}
	switch p.hostArch {
	case ArchX86_64, ArchI386:
		if b, err := p.readFile(p.cpuinfo); err == nil {
			h.KVM.CPUVirt = ParseCPUInfoVirt(string(b))
		}
	default:
		// Other hosts have no such flag: a /dev/kvm is the hardware's word.
		h.KVM.CPUVirt = h.KVM.DevExists
	}
	h.MemTotalMiB = 0
	if b, err := p.readFile(p.meminfo); err == nil {
		h.MemTotalMiB = ParseMemTotalMiB(string(b))
	}
}

func (p *prober) exists(path string) bool {
	fi, err := p.statFile(path)
	return err == nil && !fi.IsDir()
}

// firmwarePair is one UEFI code image and the vars template built with it
// (their flash layouts must match, so they are found together).
type firmwarePair struct{ code, vars string }

// firmwareSearch lists, per firmware kind, where distributions install it,
// most preferred first: Debian/Ubuntu paths, QEMU's own edk2 copies, then
// Fedora and Arch.
type firmwareSearch struct {
	ovmf, aavmf, arm        []firmwarePair
	slof, openbios, seabios []string
}

var defaultFirmwareSearch = firmwareSearch{
	ovmf: []firmwarePair{
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
		{"/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd"},
		{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
		{"/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"},
		{"/usr/share/edk2-ovmf/x64/OVMF_CODE.fd", "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd"},
	},
	aavmf: []firmwarePair{
		{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
		{"/usr/share/qemu/edk2-aarch64-code.fd", "/usr/share/qemu/edk2-arm-vars.fd"},
		{"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
		{"/usr/share/edk2/aarch64/QEMU_CODE.fd", "/usr/share/edk2/aarch64/QEMU_VARS.fd"},
	},
	arm: []firmwarePair{
		{"/usr/share/AAVMF/AAVMF32_CODE.fd", "/usr/share/AAVMF/AAVMF32_VARS.fd"},
		{"/usr/share/qemu/edk2-arm-code.fd", "/usr/share/qemu/edk2-arm-vars.fd"},
		{"/usr/share/edk2/arm/QEMU_CODE.fd", "/usr/share/edk2/arm/QEMU_VARS.fd"},
	},
	slof:     []string{"/usr/share/qemu/slof.bin", "/usr/share/slof/slof.bin"},
	openbios: []string{"/usr/share/qemu/openbios-ppc", "/usr/share/openbios/openbios-ppc"},
	seabios:  []string{"/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/bios-256k.bin", "/usr/share/seabios/bios.bin"},
}

// find returns the first firmware of each kind that exists.
func (s firmwareSearch) find(exists func(string) bool) FirmwareFiles {
	pair := func(list []firmwarePair) (string, string) {
		for _, p := range list {
			if exists(p.code) && exists(p.vars) {
				return p.code, p.vars
			}
		}
		return "", ""
	}
	first := func(list []string) string {
		for _, p := range list {
			if exists(p) {
				return p
			}
		}
		return ""
	}
	var f FirmwareFiles
	f.OVMFCode, f.OVMFVars = pair(s.ovmf)
	f.AAVMFCode, f.AAVMFVars = pair(s.aavmf)
	f.ArmCode, f.ArmVars = pair(s.arm)
	f.SLOF = first(s.slof)
	f.OpenBIOS = first(s.openbios)
	f.SeaBIOS = first(s.seabios)
	return f
}

// paths lists every candidate path, in a fixed order (the cache fingerprints
// which of them exist).
func (s firmwareSearch) paths() []string {
	var out []string
	for _, list := range [][]firmwarePair{s.ovmf, s.aavmf, s.arm} {
		for _, p := range list {
			out = append(out, p.code, p.vars)
		}
	}
	out = append(out, s.slof...)
	out = append(out, s.openbios...)
	return append(out, s.seabios...)
}

var versionRE = regexp.MustCompile(`(?i)version\s+(\d+\.\d+(?:\.\d+)?)`)

// ParseVersion extracts the version number from `qemu-system-* --version`
// (or `qemu-img --version`) output:
// "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)" -> "7.2.19".
func ParseVersion(out string) (string, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		return "", fmt.Errorf("parse qemu version: no version number in %q", line)
	}
	return m[1], nil
}

// ParseAccelHelp returns the accelerators listed by `qemu-system-* -accel
// help` ("tcg", "kvm", ...), in the order QEMU prints them.
func ParseAccelHelp(out string) []string {
	var accels []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasSuffix(line, ":") || strings.ContainsAny(line, " \t") {
			continue // header ("Accelerators supported in QEMU binary:") or prose
		}
		accels = append(accels, line)
	}
	return accels
}

// ParseMachineHelp returns the machine type names listed by `qemu-system-*
// -machine help` (aliases such as "pc" and "q35" included), in QEMU's order.
func ParseMachineHelp(out string) []string {
	var machines []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' || strings.HasSuffix(strings.TrimSpace(line), ":") {
			continue // header ("Supported machines are:") or continuation
		}
		if f := strings.Fields(line); len(f) > 0 {
			machines = append(machines, f[0])
		}
	}
	return machines
}

// ParseCPUInfoVirt reports whether an x86 /proc/cpuinfo lists the vmx
// (Intel VT-x) or svm (AMD-V) flag, which KVM needs to run ordinary guests.
func ParseCPUInfoVirt(cpuinfo string) bool {
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, f := range strings.Fields(val) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// ParseMemTotalMiB returns MemTotal from /proc/meminfo in MiB (0 if absent).
func ParseMemTotalMiB(meminfo string) int {
	for _, line := range strings.Split(meminfo, "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		unit := "kb"
		if len(f) > 1 {
			unit = strings.ToLower(f[1])
		}
		switch unit {
		case "kb":
			return int(n / 1024)
		case "mb":
			return int(n)
		case "gb":
			return int(n * 1024)
		default:
			return int(n / (1 << 20))
		}
	}
	return 0
}

// --- cache ---------------------------------------------------------------

// probeCacheVersion changes whenever the cache format or what Probe finds
// changes, so an older vlab's cache is not trusted.
const probeCacheVersion = 1

// probeCache is the on-disk form of a cached probe.
type probeCache struct {
	Version  int                  `json:"version"`
	Path     string               `json:"path"` // $PATH the binaries were looked up in
	Files    map[string]fileStamp `json:"files"`
	Firmware string               `json:"firmware"` // which firmware candidates exist
	Host     *Host                `json:"host"`
}

// fileStamp identifies one version of an executable. A missing file is
// recorded with Missing so that installing it invalidates the cache.
type fileStamp struct {
	Path    string `json:"path,omitempty"`
	Size    int64  `json:"size,omitempty"`
	ModTime int64  `json:"mtime,omitempty"` // UnixNano
	Missing bool   `json:"missing,omitempty"`
}

var probeMemo struct {
	sync.Mutex
	entries map[string]*probeCache // keyed by cache file
}

// ProbeCached is Probe with a JSON cache file. The cached result is reused
// while every qemu-system-* and qemu-img resolves through $PATH to the same
// file with the same size and mtime, and the same firmware candidates exist;
// the KVM, vmx/svm and RAM facts are always read afresh. A hit costs a few
// dozen stat calls and no exec. In-process the cache is also memoized, so a
// hit does not even read the file. Failing to write the cache is not an
// error (the probe result is still returned).
func ProbeCached(ctx context.Context, cacheFile string) (*Host, error) {
	return defaultProber().probeCached(ctx, cacheFile)
}

func (p *prober) probeCached(ctx context.Context, cacheFile string) (*Host, error) {
	stamps := p.stamps()
	fw := p.firmwareFingerprint()
	path := os.Getenv("PATH")
	valid := func(c *probeCache) bool {
		return c != nil && c.Version == probeCacheVersion && c.Host != nil &&
			c.Path == path && c.Firmware == fw && maps.Equal(c.Files, stamps)
	}

	probeMemo.Lock()
	c := probeMemo.entries[cacheFile]
	probeMemo.Unlock()
	if !valid(c) {
		c = p.readCache(cacheFile)
	}
	if !valid(c) {
		h, err := p.probe(ctx)
		if err != nil {
			return nil, err
		}
		c = &probeCache{Version: probeCacheVersion, Path: path, Files: stamps, Firmware: fw, Host: h}
		_ = writeCache(cacheFile, c) // a read-only cache dir only costs speed
	}
	probeMemo.Lock()
	if probeMemo.entries == nil {
		probeMemo.entries = map[string]*probeCache{}
	}
	probeMemo.entries[cacheFile] = c
	probeMemo.Unlock()

	h := cloneHost(c.Host)
	p.readVolatile(h)
	return h, nil
}

// stamps identifies every executable Probe looks for, keyed by name.
func (p *prober) stamps() map[string]fileStamp {
	names := make([]string, 0, len(Arches)+1)
	for _, a := range Arches {
		names = append(names, archTable[a].binary)
	}
	names = append(names, "qemu-img")
	out := make(map[string]fileStamp, len(names))
	for _, n := range names {
		path, err := p.lookPath(n)
		if err != nil {
			out[n] = fileStamp{Missing: true}
			continue
		}
		fi, err := p.statFile(path)
		if err != nil {
			out[n] = fileStamp{Missing: true}
			continue
		}
		out[n] = fileStamp{Path: path, Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	}
	return out
}

// firmwareFingerprint is one character per firmware candidate: 1 exists, 0 not.
func (p *prober) firmwareFingerprint() string {
	paths := p.firmware.paths()
	b := make([]byte, len(paths))
	for i, path := range paths {
		b[i] = '0'
		if p.exists(path) {
			b[i] = '1'
		}
	}
	return string(b)
}

func (p *prober) readCache(file string) *probeCache {
	b, err := p.readFile(file)
	if err != nil {
		return nil
	}
	var c probeCache
	if json.Unmarshal(b, &c) != nil {
		return nil
	}
	return &c
}

// writeCache writes c atomically (temp file + rename).
func writeCache(file string, c *probeCache) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write probe cache: %w", err)
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write probe cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("write probe cache: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write probe cache %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write probe cache %s: %w", file, err)
	}
	return nil
}

// cloneHost deep-copies h so callers cannot change the memoized value.
func cloneHost(h *Host) *Host {
	c := *h
	c.Binaries = make(map[Arch]Binary, len(h.Binaries))
	for a, b := range h.Binaries {
		b.Accels = append([]string(nil), b.Accels...)
		b.Machines = append([]string(nil), b.Machines...)
		c.Binaries[a] = b
	}
	return &c
}
