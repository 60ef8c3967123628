package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"vlab/console"
	"vlab/emulator"
	"vlab/machine"
)

func (a *app) qmpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "qmp NAME [JSON]",
		Short: "Talk raw QMP to a running VM (interactive without JSON)",
		Long: `Send QMP commands to a running VM and print QEMU's replies verbatim.
With a JSON argument, run that one command. Without, read one JSON command per line from stdin
and print replies and asynchronous events as they arrive. Each VM has several QMP monitors, so this
works while the TUI and other vlab commands are connected.`,
		Example: `  vlab qmp deb '{"execute":"query-status"}'
  vlab qmp deb    # then type {"execute":"query-block"}`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("qmp takes NAME and an optional JSON command: see `vlab qmp --help`")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			send := func(mon *emulator.Monitor, line string) error {
				if !json.Valid([]byte(line)) {
					return fmt.Errorf(`qmp: %q is not JSON: write e.g. {"execute":"query-status"}`, line)
				}
				reply, err := mon.ExecuteRaw(ctx, json.RawMessage(line))
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(reply))
				return nil
			}
			if len(args) == 2 {
				if !json.Valid([]byte(args[1])) {
					return usageError{fmt.Errorf(`qmp: %q is not JSON: write e.g. '{"execute":"query-status"}'`, args[1])}
				}
				mon, err := s.Monitor(ctx, args[0])
				if err != nil {
					return err
				}
				defer mon.Close()
				return send(mon, args[1])
			}
			mon, err := s.Monitor(ctx, args[0])
			if err != nil {
				return err
			}
			defer mon.Close()
			out := cmd.OutOrStdout()
			g := mon.Greeting()
			fmt.Fprintf(cmd.ErrOrStderr(), "connected to %s (QEMU %d.%d.%d); one JSON command per line, Ctrl-D to leave\n",
				args[0], g.Major, g.Minor, g.Micro)
			go func() {
				for ev := range mon.Events() {
					b, _ := json.Marshal(map[string]any{"event": ev.Name, "data": ev.Data, "timestamp": ev.Time})
					fmt.Fprintln(out, string(b))
				}
			}()
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					continue
				}
				if err := send(mon, line); err != nil {
					if errors.Is(err, emulator.ErrMonitorClosed) {
						return err
					}
					fmt.Fprintln(cmd.ErrOrStderr(), "vlab: "+oneLine(err.Error()))
				}
			}
			return sc.Err()
		},
	}
}

func (a *app) consoleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "console NAME",
		Short: "Attach to a VM's serial console (" + console.DetachHint + " detaches; the VM keeps running)",
		Long: `Attach this terminal to the VM's serial console. Type ` + console.DetachHint + ` to detach: the VM keeps running.
If the VM is still starting, console waits for it. With stdin not a terminal, input is sent as-is
and output is printed until the VM's console closes or vlab is interrupted.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name := args[0]
			if err := s.RequireActive(cmd.Context(), "console", name); err != nil {
				return err
			}
			p := s.Paths(name)
			if st, ok := s.Launched(name); ok && st.Replay != "" {
				return fmt.Errorf("console %q: this run is a %s run, whose console is written to %s only (typed input would not be in the recording): follow it with `tail -f %q`", name, st.Replay, p.SerialLog, p.SerialLog)
			}
			ser, err := console.AttachSerial(cmd.Context(), p.Serial)
			if err != nil {
				if errors.Is(err, console.ErrSerialBusy) {
					return fmt.Errorf("console %q: %w (the TUI serial view or another `vlab console`): detach there, or follow the output read-only with `tail -f %q`", name, console.ErrSerialBusy, p.SerialLog)
				}
				return err
			}
			defer ser.Close()
			interactive := stdinIsTerminal()
			if interactive {
				fmt.Fprintf(cmd.ErrOrStderr(), "attached to %s serial console; %s detaches\r\n", name, console.DetachHint)
				old, err := term.MakeRaw(os.Stdin.Fd())
				if err == nil {
					defer term.Restore(os.Stdin.Fd(), old)
				}
			}
			err = console.Pump(cmd.Context(), ser, cmd.InOrStdin(), cmd.OutOrStdout(), interactive)
			if !interactive && err == nil {
				// Input ended: keep showing output until the console closes
				// or we are interrupted.
				err = console.Pump(cmd.Context(), ser, strings.NewReader(""), cmd.OutOrStdout(), false)
				if err == nil {
					<-cmd.Context().Done()
				}
			}
			if interactive {
				fmt.Fprintf(cmd.ErrOrStderr(), "\r\ndetached from %s (still running)\r\n", name)
			}
			return err
		},
	}
}

// check is one line of `vlab doctor`.
type check struct {
	What string `json:"what"`
	OK   bool   `json:"ok"`
	Info string `json:"info"`
	Fix  string `json:"fix,omitempty"`
}

func (a *app) doctorCmd() *cobra.Command {
	var fixPerms bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Show what this host has and lacks for vlab, with the command that fixes each gap",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			h, err := emulator.Probe(cmd.Context())
			if err != nil {
				return err
			}
			var checks []check
			for _, ar := range emulator.Arches {
				b, ok := h.Binaries[ar]
				c := check{What: "qemu " + ar.String(), OK: ok}
				if ok {
					c.Info = fmt.Sprintf("%s %s (accels: %s)", b.Path, b.Version, strings.Join(b.Accels, ", "))
					choice, err := emulator.ChooseAccel(ar, emulator.AccelAuto, h)
					if err == nil {
						c.Info += "; " + choice.Reason
					}
				} else {
					c.Info = "missing"
					c.Fix = "sudo apt-get install " + emulator.AptPackage(ar)
				}
				checks = append(checks, c)
			}
			checks = append(checks, check{What: "qemu-img", OK: h.QemuImg != "", Info: orMissing(h.QemuImg), Fix: fixIf(h.QemuImg == "", "sudo apt-get install qemu-utils")})
			kvm := check{What: "kvm", OK: h.KVM.DevRW && h.KVM.CPUVirt}
			switch {
			case !h.KVM.DevExists:
				kvm.Info, kvm.Fix = "/dev/kvm missing: guests run under TCG emulation (slow)", "enable virtualization in the firmware setup and `sudo modprobe kvm_intel` (or kvm_amd)"
			case !h.KVM.DevRW:
				kvm.Info, kvm.Fix = "/dev/kvm does not open read-write: "+h.KVM.DevErr, "sudo usermod -aG kvm $USER (then log in again)"
			case !h.KVM.CPUVirt:
				kvm.Info = "/dev/kvm opens but the CPU exposes no vmx/svm (nested or paravirtual KVM): vlab uses TCG"
			default:
				kvm.Info = "usable"
			}
			checks = append(checks, kvm)
			fw := []struct{ what, path, pkg string }{
				{"UEFI x86_64 (OVMF)", h.Firmware.OVMFCode, "ovmf"},
				{"UEFI aarch64 (AAVMF)", h.Firmware.AAVMFCode, "qemu-efi-aarch64"},
				{"SLOF (ppc64 pseries)", h.Firmware.SLOF, "qemu-system-ppc"},
				{"OpenBIOS (ppc mac99)", h.Firmware.OpenBIOS, "qemu-system-ppc"},
			}
			for _, f := range fw {
				checks = append(checks, check{What: f.what, OK: f.path != "", Info: orMissing(f.path), Fix: fixIf(f.path == "", "sudo apt-get install "+f.pkg)})
			}
			for _, t := range []struct{ what, bin, pkg string }{
				{"VNC viewer", "vncviewer", "tigervnc-viewer"},
				{"tmux (tests)", "tmux", "tmux"},
				{"xorriso (ISO building)", "xorriso", "xorriso"},
				{"passt (--net sandbox)", "passt", "passt"},
			} {
				p, err := exec.LookPath(t.bin)
				checks = append(checks, check{What: t.what, OK: err == nil, Info: orMissing(p), Fix: fixIf(err != nil, "sudo apt-get install "+t.pkg)})
			}
			checks = append(checks, bridgeCheck()) // bridged nics (net.go)
			perms, err := permissionChecks(s, fixPerms)
			if err != nil {
				return err
			}
			checks = append(checks, perms...)
			d := s.Dirs()
			checks = append(checks, check{What: "library", OK: true, Info: filepath.Join(d.Data, "machines")},
				check{What: "runtime dir", OK: true, Info: d.Runtime + " (0700: QMP, VNC and serial sockets)"})
			if a.json {
				if err := printJSON(cmd.OutOrStdout(), checks); err != nil {
					return err
				}
				return doctorFindings(checks)
			}
			for _, c := range checks {
				mark := "ok  "
				if !c.OK {
					mark = "MISS"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "[%s] %-24s %s\n", mark, c.What, c.Info)
				if c.Fix != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "       fix: %s\n", c.Fix)
				}
			}
			return doctorFindings(checks)
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON")
	cmd.Flags().BoolVar(&fixPerms, "fix-permissions", false, "make every folder in vlab's own directories 0700 and take group/world access off every file (links are never followed)")
	return cmd
}

// permissionChecks are doctor's lines about vlab's own files: one per file
// or folder others may access (or that fix made private), or one "ok" line.
func permissionChecks(s *machine.Store, fix bool) ([]check, error) {
	check1 := s.CheckPermissions
	if fix {
		check1 = s.FixPermissions
	}
	probs, err := check1()
	if err != nil {
		return nil, err
	}
	if len(probs) == 0 {
		return []check{{What: "permissions", OK: true, Info: "vlab's folders are 0700 and its files owner-only"}}, nil
	}
	var out []check
	for _, p := range probs {
		c := check{What: "permissions", Info: fmt.Sprintf("%s is %04o, others may access it", p.Path, p.Mode)}
		switch {
		case p.Fixed:
			c.OK, c.Info = true, fmt.Sprintf("%s was %04o, now %04o", p.Path, p.Mode, p.Want)
		case p.Err != nil:
			c.Info += ": " + p.Err.Error()
			c.Fix = fmt.Sprintf("chmod %04o %q", p.Want, p.Path)
		default:
			c.Fix = "vlab doctor --fix-permissions"
		}
		out = append(out, c)
	}
	return out, nil
}

func orMissing(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}

func fixIf(cond bool, fix string) string {
	if cond {
		return fix
	}
	return ""
}
