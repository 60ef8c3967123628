package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vlab/emulator"
	"vlab/machine"
)

func (a *app) createCmd() *cobra.Command {
	var (
		arch, mach, cpu, memory, disk, iso, kernel, initrd, appendArgs, dtb string
		accel, display, netMode, firmware, boot                             string
		cpus, gdb                                                           int
		forwards                                                            []string
		restrict                                                            bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Define a new VM (and create its disk)",
		Example: `  vlab create deb --iso ~/Downloads/debian-12.iso --disk 20G --memory 2G
  vlab create tiny --kernel vmlinuz --initrd initrd.img --append console=ttyS0 --display none
  vlab create web --iso alpine.iso --forward tcp:8080:80 --forward tcp:2222:22`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ar, err := emulator.ParseArch(arch)
			if err != nil {
				return usageError{err}
			}
			spec := machine.NewSpec(args[0], ar)
			if mach != "" {
				spec.Machine = mach
			}
			spec.CPU, spec.CPUs, spec.GDBPort = cpu, cpus, gdb
			if spec.Memory, err = machine.ParseSize(memory); err != nil {
				return usageError{fmt.Errorf("--memory: %w", err)}
			}
			if spec.Accel, err = emulator.ParseAccel(accel); err != nil {
				return usageError{fmt.Errorf("--accel: %w", err)}
			}
			switch display {
			case "vnc", "none":
				spec.Display = emulator.Display(display)
			default:
				return usageError{fmt.Errorf("--display %q unknown: use vnc or none", display)}
			}
			switch firmware {
			case "", "bios", "uefi":
				spec.Firmware = emulator.Firmware(firmware)
			default:
				return usageError{fmt.Errorf("--firmware %q unknown: use bios or uefi", firmware)}
			}
			spec.Boot = machine.Boot{ISO: iso, Kernel: kernel, Initrd: initrd, Append: appendArgs, DTB: dtb, Order: boot}
			if disk == "" && iso != "" {
				disk = "20G" // an installer needs somewhere to install to
			}
			if disk != "" {
				size, err := machine.ParseSize(disk)
				if err != nil {
					return usageError{fmt.Errorf("--disk: %w", err)}
				}
				spec.Disks = []machine.DiskSpec{{File: "disk0.qcow2", Size: size, Format: "qcow2"}}
			}
			switch netMode {
			case "user":
				nic := machine.NICSpec{Mode: emulator.NetUser, Restrict: restrict}
				for _, f := range forwards {
					fw, err := machine.ParseForward(f)
					if err != nil {
						return usageError{fmt.Errorf("--forward: %w", err)}
					}
					nic.Forwards = append(nic.Forwards, fw)
				}
				spec.NICs = []machine.NICSpec{nic}
			case "none":
				if len(forwards) > 0 {
					return usageError{errors.New("--forward needs --net user")}
				}
				spec.NICs = nil
			default:
				return usageError{fmt.Errorf("--net %q unknown: use user or none", netMode)}
			}
			if err := s.Create(cmd.Context(), spec); err != nil {
				return err
			}
			if a.json {
				return a.printShow(cmd, s, spec.Name)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s (%s, %s, %d cpu); start it with `vlab start %s`\n",
				spec.Name, spec.Arch, spec.Memory, spec.CPUs, spec.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&arch, "arch", emulator.ArchX86_64.String(), "guest arch: "+strings.Join(emulator.ArchNames(), ", "))
	f.StringVar(&mach, "machine", "", "QEMU machine type (default: the arch's: q35, pc, virt, pseries, mac99)")
	f.StringVar(&cpu, "cpu", "", "QEMU CPU model (default: host with KVM, the arch's default with TCG)")
	f.IntVar(&cpus, "cpus", 1, "virtual CPUs")
	f.StringVar(&memory, "memory", "1G", "memory, e.g. 512M or 2G")
	f.StringVar(&disk, "disk", "", "create a qcow2 disk of this size, e.g. 20G (default 20G with --iso, none otherwise)")
	f.StringVar(&iso, "iso", "", "installer or live ISO to put in the CD drive")
	f.StringVar(&kernel, "kernel", "", "boot this kernel directly")
	f.StringVar(&initrd, "initrd", "", "initrd for --kernel")
	f.StringVar(&appendArgs, "append", "", "kernel command line for --kernel (e.g. console=ttyS0)")
	f.StringVar(&dtb, "dtb", "", "device tree blob for --kernel (ARM)")
	f.StringVar(&boot, "boot", "", "boot order in QEMU letters: c disk, d cdrom, n network (default: disk, then cdrom)")
	f.StringVar(&accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	f.StringVar(&display, "display", "vnc", "graphical console: vnc (with a USB tablet) or none")
	f.StringVar(&firmware, "firmware", "", "firmware: bios or uefi (default: the arch's)")
	f.StringVar(&netMode, "net", "user", "network: user (NAT) or none")
	f.StringArrayVar(&forwards, "forward", nil, "port forward proto:[hostaddr:]hostport:guestport, e.g. tcp:2222:22 (repeatable)")
	f.BoolVar(&restrict, "isolated", false, "user network with restrict=on: the guest reaches nothing outside; forwards still work")
	f.IntVar(&gdb, "gdb", 0, "open a gdb stub on 127.0.0.1:PORT")
	f.BoolVar(&a.json, "json", false, "print the new VM as JSON")
	return cmd
}

// vmJSON is the `vlab list --json` object: a contract scripts rely on.
type vmJSON struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Arch    string `json:"arch"`
	Accel   string `json:"accel"`
	Machine string `json:"machine"`
	CPUs    int    `json:"cpus"`
	Memory  string `json:"memory"`
	PID     int    `json:"pid,omitempty"`
	Profile string `json:"profile,omitempty"`
}

// showJSON is the `vlab show --json` object: vmJSON plus where everything is.
type showJSON struct {
	vmJSON
	AccelReason  string       `json:"accel_reason"`
	Detail       string       `json:"detail,omitempty"`
	StartedAt    *time.Time   `json:"started_at,omitempty"`
	QMPSocket    string       `json:"qmp_socket"`
	QMPSockets   []string     `json:"qmp_sockets"`
	VNCSocket    string       `json:"vnc_socket"`
	SerialSocket string       `json:"serial_socket"`
	SerialLog    string       `json:"serial_log"`
	QEMULog      string       `json:"qemu_log"`
	Dir          string       `json:"dir"`
	Display      string       `json:"display"`
	Disks        []diskJSON   `json:"disks"`
	NICs         []nicJSON    `json:"nics"`
	Boot         machine.Boot `json:"boot"`
	GDBPort      int          `json:"gdb_port,omitempty"`
}

type diskJSON struct {
	File   string `json:"file"`
	Path   string `json:"path"`
	Size   string `json:"size"`
	Format string `json:"format"`
}

type nicJSON struct {
	Mode     string   `json:"mode"`
	Model    string   `json:"model,omitempty"`
	MAC      string   `json:"mac"`
	Isolated bool     `json:"isolated"`
	Forwards []string `json:"forwards"`
}

// describe gathers a VM's spec, status and accel (the one it runs with, or
// the one it would get).
func describe(ctx context.Context, s *machine.Store, name string) (*machine.Spec, machine.Status, emulator.AccelChoice, error) {
	spec, err := s.Load(name)
	if err != nil {
		return nil, machine.Status{}, emulator.AccelChoice{}, err
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return nil, machine.Status{}, emulator.AccelChoice{}, err
	}
	var ac emulator.AccelChoice
	if st.Accel != "" {
		ac.Accel, _ = emulator.ParseAccel(st.Accel)
		ac.Reason = st.AccelReason
	} else if h, err := s.Host(ctx); err == nil {
		if c, err := emulator.ChooseAccel(spec.Arch, spec.Accel, h); err == nil {
			ac = c
		} else {
			ac.Reason = err.Error()
		}
	}
	return spec, st, ac, nil
}

func listEntry(spec *machine.Spec, st machine.Status, ac emulator.AccelChoice) vmJSON {
	accel := ac.Accel.String()
	if ac.Accel == emulator.AccelAuto {
		accel = "unavailable"
	}
	return vmJSON{
		Name: spec.Name, State: st.State.String(), Arch: spec.Arch.String(), Accel: accel,
		Machine: spec.Machine, CPUs: spec.CPUs, Memory: spec.Memory.String(), PID: st.PID, Profile: spec.Profile,
	}
}

func (a *app) listCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List VMs with their state",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			names, err := s.Names()
			if err != nil {
				return err
			}
			out := make([]vmJSON, 0, len(names))
			for _, n := range names {
				spec, st, ac, err := describe(cmd.Context(), s, n)
				if err != nil {
					out = append(out, vmJSON{Name: n, State: "invalid", Arch: "?", Accel: "?"})
					fmt.Fprintf(cmd.ErrOrStderr(), "vlab: %s\n", oneLine(err.Error()))
					continue
				}
				out = append(out, listEntry(spec, st, ac))
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tARCH\tACCEL\tCPUS\tMEMORY\tPID")
			for _, v := range out {
				pid := "-"
				if v.PID > 0 {
					pid = fmt.Sprint(v.PID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.Name, v.State, v.Arch, v.Accel, v.CPUs, v.Memory, pid)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print a JSON array")
	return cmd
}

func (a *app) showCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a VM's settings, state and endpoints",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			return a.printShow(cmd, s, args[0])
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON")
	return cmd
}

func (a *app) printShow(cmd *cobra.Command, s *machine.Store, name string) error {
	spec, st, ac, err := describe(cmd.Context(), s, name)
	if err != nil {
		return err
	}
	p := s.Paths(name)
	v := showJSON{
		vmJSON:       listEntry(spec, st, ac),
		AccelReason:  ac.Reason,
		Detail:       st.Detail,
		QMPSocket:    p.QMP[0],
		QMPSockets:   p.QMP,
		VNCSocket:    p.VNC,
		SerialSocket: p.Serial,
		SerialLog:    p.SerialLog,
		QEMULog:      p.QEMULog,
		Dir:          p.Dir,
		Display:      string(spec.Display),
		Boot:         spec.Boot,
		GDBPort:      spec.GDBPort,
		Disks:        []diskJSON{},
		NICs:         []nicJSON{},
	}
	if !st.StartedAt.IsZero() {
		v.StartedAt = &st.StartedAt
	}
	for _, d := range spec.Disks {
		format := d.Format
		if format == "" {
			format = "qcow2"
		}
		v.Disks = append(v.Disks, diskJSON{File: d.File, Path: p.DiskPath(d.File), Size: d.Size.String(), Format: format})
	}
	for _, n := range spec.NICs {
		nj := nicJSON{Mode: string(n.Mode), Model: n.Model, MAC: n.MAC, Isolated: n.Restrict, Forwards: []string{}}
		for _, f := range n.Forwards {
			nj.Forwards = append(nj.Forwards, f.String())
		}
		v.NICs = append(v.NICs, nj)
	}
	if a.json {
		return printJSON(cmd.OutOrStdout(), v)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	row("name", v.Name)
	row("state", v.State+map[bool]string{true: " (" + v.Detail + ")", false: ""}[v.Detail != ""])
	if v.PID > 0 {
		row("pid", fmt.Sprint(v.PID))
	}
	row("arch", v.Arch+" / "+v.Machine)
	row("accel", v.Accel+" — "+v.AccelReason)
	row("cpus", fmt.Sprint(v.CPUs))
	row("memory", v.Memory)
	row("display", v.Display)
	row("iso", spec.Boot.ISO)
	row("kernel", spec.Boot.Kernel)
	row("initrd", spec.Boot.Initrd)
	row("append", spec.Boot.Append)
	for i, d := range v.Disks {
		row(fmt.Sprintf("disk%d", i), fmt.Sprintf("%s (%s, %s)", d.Path, d.Format, d.Size))
	}
	for i, n := range v.NICs {
		desc := n.Mode + " " + n.MAC
		if n.Isolated {
			desc += " isolated"
		}
		if len(n.Forwards) > 0 {
			desc += " forwards " + strings.Join(n.Forwards, ", ")
		}
		row(fmt.Sprintf("nic%d", i), desc)
	}
	if spec.GDBPort > 0 {
		row("gdb", fmt.Sprintf("127.0.0.1:%d", spec.GDBPort))
	}
	row("qmp", v.QMPSocket)
	row("vnc", v.VNCSocket)
	row("serial", v.SerialSocket)
	row("serial log", v.SerialLog)
	row("qemu log", v.QEMULog)
	return w.Flush()
}

func (a *app) startCmd() *cobra.Command {
	var accel string
	var disposable, paused bool
	cmd := &cobra.Command{
		Use:   "start NAME",
		Short: "Start a VM (QEMU keeps running when vlab exits)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			ac, err := emulator.ParseAccel(accel)
			if err != nil {
				return usageError{fmt.Errorf("--accel: %w", err)}
			}
			if err := s.Start(cmd.Context(), args[0], machine.StartOptions{Accel: ac, Disposable: disposable, Paused: paused}); err != nil {
				return err
			}
			st, _ := s.Status(cmd.Context(), args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "started %s (pid %d, %s): %s\n", args[0], st.PID, st.Accel, st.AccelReason)
			return nil
		},
	}
	cmd.Flags().StringVar(&accel, "accel", "auto", "override the accelerator for this run: auto, kvm or tcg")
	cmd.Flags().BoolVar(&disposable, "disposable", false, "discard every disk change when the VM powers off")
	cmd.Flags().BoolVar(&paused, "paused", false, "start with the CPUs stopped (resume with `vlab resume`)")
	return cmd
}

func (a *app) stopCmd() *cobra.Command {
	var force bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a VM: ACPI power-down, then quit, then kill",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			how, err := s.Stop(cmd.Context(), args[0], machine.StopOptions{Force: force, Timeout: timeout})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stopped %s (%s)\n", args[0], how)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "do not ask the guest: quit QEMU at once (like pulling the plug)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long the guest gets to power off before QEMU is quit")
	return cmd
}

func (a *app) simpleCmd(use, short string, run func(ctx context.Context, s *machine.Store, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			if err := run(cmd.Context(), s, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s done\n", args[0], use)
			return nil
		},
	}
}

func (a *app) pause(ctx context.Context, s *machine.Store, n string) error  { return s.Pause(ctx, n) }
func (a *app) resume(ctx context.Context, s *machine.Store, n string) error { return s.Resume(ctx, n) }
func (a *app) reset(ctx context.Context, s *machine.Store, n string) error  { return s.Reset(ctx, n) }

func (a *app) deleteCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a VM and its disks (asks first unless --yes)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name := args[0]
			if _, err := s.Load(name); err != nil && errors.Is(err, machine.ErrNotFound) {
				return err
			}
			if !yes {
				fmt.Fprintf(cmd.ErrOrStderr(), "Delete vm %s and all its disks? This cannot be undone. Type the vm name to confirm: ", name)
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != name {
					return fmt.Errorf("delete vm %q: not confirmed, nothing deleted (type the name, or pass --yes)", name)
				}
			}
			if err := s.Delete(cmd.Context(), name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (a *app) cmdlineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cmdline NAME",
		Short: "Print the exact qemu command line `vlab start` runs, shell-quoted",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			argv, err := s.Cmdline(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), argv)
			}
			fmt.Fprintln(cmd.OutOrStdout(), emulator.ShellQuote(argv))
			return nil
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print the argv as a JSON array")
	return cmd
}

// stdinIsTerminal reports whether stdin is a terminal.
func stdinIsTerminal() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
