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
	var sf specFlags
	var cp createProfile // --profile, --cloud-init
	var img imageFlags   // --image, --share (imagecreate.go)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Define a new VM (and create its disk)",
		Example: `  vlab create deb --iso ~/Downloads/debian-12.iso --disk 20G --memory 2G
  vlab create tiny --kernel vmlinuz --initrd initrd.img --append console=ttyS0 --display none
  vlab create web --iso alpine.iso --forward tcp:8080:80 --forward tcp:2222:22
  vlab create inst --os debian-12-netinst           # an installer ISO from ` + "`vlab gallery`" + `
  vlab create dev --image debian-12 --disk 20G      # a cloud image: vlab start dev, then vlab ssh dev
  vlab create fc --image rootfs.qcow2 --kernel vmlinuz --initrd initrd.img --append "root=/dev/vda console=ttyS0"`,
		Args: gdbPortArgs(exactArgs("NAME")),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			// The OS profile and cloud-init steps are in profile.go.
			ar, err := cp.prepare(cmd, a, &sf)
			if err != nil {
				return err
			}
			if img.image != "" {
				sf.disk = img.disk(cmd, sf.disk) // --disk grows the image instead
			}
			agent, err := sf.agentChoice(cmd) // --agent over the profile's default
			if err != nil {
				return err
			}
			var setErr error
			spec, err := machine.Build(machine.Request{
				Name: args[0], Arch: ar, Profile: cp.profile, Image: img.image != "", Agent: agent,
				Set: func(spec *machine.Spec) error { setErr = sf.apply(cmd, spec); return setErr },
			})
			if setErr != nil {
				return setErr
			}
			if err != nil { // a bad flag value
				return usageError{fmt.Errorf("create vm %q: %s", args[0], oneLine(err.Error()))}
			}
			if img.image != "" {
				return img.run(cmd, a, s, spec, &sf, &cp)
			}
			if err := s.Create(cmd.Context(), spec); err != nil {
				return err
			}
			if err := cp.finish(cmd, s, spec); err != nil { // cloud-init seed
				return err
			}
			if a.json {
				return a.printVM(cmd, s, spec.Name, "created", "")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s (%s, %s, %s); start it with `vlab start %s`\n",
				spec.Name, spec.Arch, spec.Memory, count(spec.CPUs, "CPU", "CPUs"), spec.Name)
			cp.report(cmd, spec) // profile notes, console hint
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.arch, "arch", emulator.ArchX86_64.String(), "guest arch: "+strings.Join(emulator.ArchNames(), ", "))
	sf.register(f, true)
	cp.register(f)
	img.register(f)
	f.BoolVar(&a.json, "json", false, "print the new VM as JSON")
	return cmd
}

func (a *app) editCmd() *cobra.Command {
	var sf specFlags
	cmd := &cobra.Command{
		Use:   "edit NAME",
		Short: "Change a stopped VM's settings (only the flags given change)",
		Example: `  vlab edit deb --memory 4G --cpus 2
  vlab edit deb --iso ""            # eject the installer
  vlab edit web --forward tcp:8443:443 --forward tcp:2222:22`,
		Args: gdbPortArgs(exactArgs("NAME")),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name := args[0]
			if _, err := s.Load(name); err != nil {
				return err
			}
			if cmd.Flags().NFlag() == 0 || (cmd.Flags().NFlag() == 1 && a.json) {
				return usageError{fmt.Errorf("edit %s: nothing to change: give the settings to change, e.g. --memory 2G", name)}
			}
			// Read, change and write under the VM lock: a `vlab disk add` or
			// another edit at the same time is not lost.
			err = s.Update(cmd.Context(), name, func(spec *machine.Spec) error {
				st, err := s.Status(cmd.Context(), name)
				if err != nil {
					return err
				}
				if st.State.Active() {
					return fmt.Errorf("edit vm %q: %w: hardware changes need a stopped vm: `vlab stop %s` first", name, machine.ErrRunning, name)
				}
				if err := sf.apply(cmd, spec); err != nil {
					return err
				}
				if err := spec.Validate(); err != nil { // a bad flag value
					return usageError{fmt.Errorf("edit vm %q: %s", name, oneLine(err.Error()))}
				}
				if err := machine.CheckSources(spec.Boot); err != nil {
					return fmt.Errorf("edit vm %q: %w", name, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if a.json {
				return a.printVM(cmd, s, name, "updated", "")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "updated %s\n", name)
			return nil
		},
	}
	sf.register(cmd.Flags(), false)
	a.jsonFlag(cmd, "print the changed VM as JSON")
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
	AccelReason  string     `json:"accel_reason"`
	Detail       string     `json:"detail,omitempty"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	QMPSocket    string     `json:"qmp_socket"`
	QMPSockets   []string   `json:"qmp_sockets"`
	VNCSocket    string     `json:"vnc_socket"`
	SerialSocket string     `json:"serial_socket"`
	SerialLog    string     `json:"serial_log"`
	QEMULog      string     `json:"qemu_log"`
	Dir          string     `json:"dir"`
	Display      string     `json:"display"`
	Disks        []diskJSON `json:"disks"`
	NICs         []nicJSON  `json:"nics"`
	Boot         bootJSON   `json:"boot"`
	GDBSocket    string     `json:"gdb_socket,omitempty"`
}

// bootJSON is machine.Boot with the contract's keys.
type bootJSON struct {
	ISO    string `json:"iso,omitempty"`
	Kernel string `json:"kernel,omitempty"`
	Initrd string `json:"initrd,omitempty"`
	Append string `json:"append,omitempty"`
	DTB    string `json:"dtb,omitempty"`
	Order  string `json:"order,omitempty"`
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
	Forwards []string `json:"forwards"`           // with the bound port of auto forwards while running
	GuestIP  string   `json:"guest_ip,omitempty"` // where known (net.go)
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
	v, spec, err := buildShow(cmd, s, name)
	if err != nil {
		return err
	}
	if a.json {
		return printResult(cmd.OutOrStdout(), v)
	}
	return printShowText(cmd, v, spec)
}

// buildShow gathers `vlab show --json`'s object for VM name.
func buildShow(cmd *cobra.Command, s *machine.Store, name string) (showJSON, *machine.Spec, error) {
	spec, st, ac, err := describe(cmd.Context(), s, name)
	if err != nil {
		return showJSON{}, nil, err
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
		Boot:         bootJSON(spec.Boot),
		Disks:        []diskJSON{},
		NICs:         []nicJSON{},
	}
	if !st.StartedAt.IsZero() {
		v.StartedAt = &st.StartedAt
	}
	if spec.GDB {
		v.GDBSocket = p.GDB
	}
	for _, d := range spec.Disks {
		v.Disks = append(v.Disks, diskEntry(p, d))
	}
	netInfo := s.NetworkOf(cmd.Context(), spec, st) // bound forward ports, guest addresses (net.go)
	for i, n := range spec.NICs {
		nj := nicJSON{Mode: string(n.Mode), Model: n.Model, MAC: n.MAC, Isolated: n.Restrict, Forwards: []string{}}
		for k, f := range n.Forwards {
			if i < len(netInfo.NICs) && k < len(netInfo.NICs[i].Forwards) && netInfo.NICs[i].Forwards[k].Active {
				f.HostPort = netInfo.NICs[i].Forwards[k].HostPort // the port an auto forward got
			}
			nj.Forwards = append(nj.Forwards, f.String())
		}
		if i < len(netInfo.NICs) {
			nj.Mode, nj.GuestIP = netInfo.NICs[i].Mode, netInfo.NICs[i].GuestIP
		}
		v.NICs = append(v.NICs, nj)
	}
	return v, spec, nil
}

// printShowText prints `vlab show` for people.
func printShowText(cmd *cobra.Command, v showJSON, spec *machine.Spec) error {
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
		if n.GuestIP != "" {
			desc += " ip " + n.GuestIP
		}
		if len(n.Forwards) > 0 {
			desc += " forwards " + strings.Join(n.Forwards, ", ")
		}
		row(fmt.Sprintf("nic%d", i), desc)
	}
	row("gdb", v.GDBSocket)
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
	var dbg machine.DebugOptions // replay.go
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
			if err := s.Start(cmd.Context(), args[0], machine.StartOptions{Accel: ac, Disposable: disposable, Paused: paused, Debug: dbg}); err != nil {
				return err
			}
			if a.json {
				return a.printVM(cmd, s, args[0], "started", "")
			}
			st, _ := s.Launched(args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "started %s (pid %d, %s): %s\n", args[0], st.PID, st.Accel, st.AccelReason)
			return nil
		},
	}
	cmd.Flags().StringVar(&accel, "accel", "auto", "override the accelerator for this run: auto, kvm or tcg")
	cmd.Flags().BoolVar(&disposable, "disposable", false, "discard every disk change when the VM powers off")
	cmd.Flags().BoolVar(&paused, "paused", false, "start with the CPUs stopped (resume with `vlab resume`)")
	a.jsonFlag(cmd, "print the started VM as JSON")
	startDebugFlags(cmd.Flags(), &dbg)
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
			if a.json {
				return a.printVM(cmd, s, args[0], "stopped", how)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stopped %s (%s)\n", args[0], how)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "do not ask the guest: quit QEMU at once (like pulling the plug)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long the guest gets to power off before QEMU is quit")
	a.jsonFlag(cmd, "print the stopped VM as JSON")
	return cmd
}

func (a *app) simpleCmd(use, done, short string, run func(ctx context.Context, s *machine.Store, name string) error) *cobra.Command {
	cmd := &cobra.Command{
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
			if a.json {
				return a.printVM(cmd, s, args[0], done, "")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s done\n", args[0], use)
			return nil
		},
	}
	a.jsonFlag(cmd, "print the VM as JSON")
	return cmd
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
				if stdinIsTerminal() {
					fmt.Fprintf(cmd.ErrOrStderr(), "Delete vm %s and all its disks? This cannot be undone. Type the vm name to confirm: ", name)
				}
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != name {
					return fmt.Errorf("delete vm %q: not confirmed, nothing deleted (type the name, or pass --yes)", name)
				}
			}
			if err := s.Delete(cmd.Context(), name); err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), goneResult{Action: "deleted", Kind: "vm", Name: name})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	a.jsonFlag(cmd, `print {"action":"deleted","kind":"vm","name":...}`)
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
func stdinIsTerminal() bool { return isTerminal(os.Stdin) }

// isTerminal reports whether w is a file on a terminal (a character device).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
