package machine

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"vlab/emulator"
)

// DebugOptions are what one start adds for studying the guest: a gdb stub
// for this run, QEMU -d log items, deterministic record or replay.
type DebugOptions struct {
	GDB      bool     // a gdb stub for this run even when the spec has none
	LogItems []string // -d items, checked against the binary's `-d help`
	Record   bool     // record this run for replay (replay.go)
	Replay   string   // replay this recorded run (an id from Runs) instead of a fresh one
}

// ErrNoGDBStub is returned when a running VM has no gdb stub to attach to.
var ErrNoGDBStub = errors.New("no gdb stub")

// instrument adds opts to cfg for a start of VM name. For a replay it first
// rebuilds cfg from the spec the run was recorded with.
func (s *Store) instrument(ctx context.Context, name string, host *emulator.Host, cfg *emulator.Config, opts DebugOptions) error {
	p := s.Paths(name)
	if opts.Replay != "" {
		if err := s.replayConfig(ctx, name, host, cfg, opts.Replay); err != nil { // replay.go
			return err
		}
	} else if opts.Record {
		if err := s.recordConfig(ctx, name, host, cfg); err != nil { // replay.go
			return err
		}
	}
	if opts.GDB {
		cfg.GDB, cfg.Paths.GDB = true, p.GDB
	}
	if len(opts.LogItems) > 0 {
		bin, ok := host.Binaries[cfg.Arch]
		if !ok {
			return fmt.Errorf("%w for %s guests", emulator.ErrNoQEMU, cfg.Arch)
		}
		known, err := emulator.LogItems(ctx, bin.Path)
		if err != nil {
			return err
		}
		if err := emulator.CheckLogItems(opts.LogItems, known); err != nil {
			return fmt.Errorf("--log: %w", err)
		}
		cfg.Instrument.LogItems = opts.LogItems
		if err := s.prepareTraceLog(p); err != nil { // trace.go
			return err
		}
		cfg.Instrument.LogFile = TraceLog(p)
	}
	return nil
}

// GDBArchitecture is what gdb's `set architecture` calls a guest arch.
func GDBArchitecture(a emulator.Arch) string {
	switch a {
	case emulator.ArchX86_64:
		return "i386:x86-64"
	case emulator.ArchI386:
		return "i386"
	case emulator.ArchAArch64:
		return "aarch64"
	case emulator.ArchARM:
		return "arm"
	case emulator.ArchPPC64:
		return "powerpc:common64"
	case emulator.ArchPPC:
		return "powerpc:common"
	}
	return ""
}

// DebugTarget is what a debugger needs to attach to a running VM.
type DebugTarget struct {
	Socket  string        // the gdb stub's unix socket
	Arch    emulator.Arch // guest arch
	GDBArch string        // gdb's name of it (`set architecture`)
	Kernel  string        // the kernel the VM boots directly, if any
	Symbols string        // a vmlinux found beside Kernel, or ""
	// Endian is "big" or "little" when gdb must be told: QEMU's PowerPC
	// stub sends registers in the CPU's current byte order, which SLOF
	// (big) and a ppc64le kernel (little) differ in; "" = gdb's default.
	Endian string
}

// Debug returns how to attach gdb to VM name, which must be running with a
// gdb stub (ErrNotRunning, ErrNoGDBStub otherwise, with the fix).
func (s *Store) Debug(ctx context.Context, name string) (DebugTarget, error) {
	spec, err := s.Load(name)
	if err != nil {
		return DebugTarget{}, err
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return DebugTarget{}, err
	}
	if !st.State.Active() {
		return DebugTarget{}, fmt.Errorf("debug vm %q: %w (state %s)", name, ErrNotRunning, st.State)
	}
	p := s.Paths(name)
	if fi, err := os.Stat(p.GDB); err != nil || fi.Mode().Type() != os.ModeSocket {
		return DebugTarget{}, fmt.Errorf("debug vm %q: %w: it was started without --gdb: `vlab stop %s`, then `vlab debug %s` starts it with one (or `vlab edit %s --gdb` for every start)",
			name, ErrNoGDBStub, name, name, name)
	}
	t := DebugTarget{Socket: p.GDB, Arch: spec.Arch, GDBArch: GDBArchitecture(spec.Arch), Kernel: abs(spec.Boot.Kernel)}
	t.Symbols = FindSymbols(t.Kernel)
	if spec.Arch == emulator.ArchPPC64 || spec.Arch == emulator.ArchPPC {
		regs, err := s.HMP(ctx, name, "info registers")
		if err != nil {
			return DebugTarget{}, fmt.Errorf("debug vm %q: %w", name, err)
		}
		t.Endian = ppcEndian(regs)
	}
	return t, nil
}

// ppcEndian reads the MSR from HMP `info registers` of a PowerPC CPU: its
// LE bit (the lowest) tells the byte order the CPU runs in now.
func ppcEndian(regs string) string {
	f := strings.Fields(regs)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "MSR" {
			msr, err := strconv.ParseUint(f[i+1], 16, 64)
			if err != nil {
				return ""
			}
			if msr&1 == 1 {
				return "little"
			}
			return "big"
		}
	}
	return ""
}

// FindSymbols looks for the vmlinux (an ELF with the kernel's symbols) that
// belongs to kernel image: the image itself when it is one (Debian's
// ppc64el kernels are), the name with vmlinuz turned into vmlinux, Debian's
// debug package path /usr/lib/debug/boot/vmlinux-VERSION for
// /boot/vmlinuz-VERSION, or "vmlinux" or "vmlinux.sym" in its folder. It
// returns "" when there is none.
func FindSymbols(kernel string) string {
	if kernel == "" {
		return ""
	}
	if hasSymbols(kernel) {
		return kernel
	}
	dir, base := filepath.Split(kernel)
	var cands []string
	if strings.Contains(base, "vmlinuz") {
		v := strings.Replace(base, "vmlinuz", "vmlinux", 1)
		cands = append(cands, filepath.Join(dir, v), filepath.Join("/usr/lib/debug/boot", v))
	}
	cands = append(cands, filepath.Join(dir, "vmlinux"), filepath.Join(dir, "vmlinux.sym"))
	for _, c := range cands {
		if c == kernel {
			continue
		}
		if hasSymbols(c) {
			return c
		}
	}
	return ""
}

// hasSymbols reports whether path is an ELF file with a symbol table.
func hasSymbols(path string) bool {
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Section(".symtab") != nil
}
