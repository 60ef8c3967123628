package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"vlab/machine"
)

func (a *app) netCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "net",
		Short: "Networks: a VM's NICs and port forwards, and private lab networks",
		Long: `Each VM has NICs in one of these modes (vlab create/edit --nic):
  user        NAT through QEMU's user-mode network, with port forwards from the host
              (the guest also reaches every service on the host's loopback as 10.0.2.2)
  sandbox     internet through passt, but not the host (no 10.0.2.2, no host addresses); forwards work
  isolated    user mode with restrict=on: the guest reaches nothing outside; forwards still work
  bridge:BR   on host bridge BR through qemu-bridge-helper (vlab doctor checks the helper)
  tap:IF      on a tap interface created beforehand (ip tuntap add IF mode tap user $USER)
  lab:NAME    on lab network NAME: a private switch joining VMs of this user, without root

Forward host ports may be "auto": the kernel picks a free port at each start and
` + "`vlab net show`" + ` tells which.`,
		Example: `  vlab net show web
  vlab net forward add web tcp:8080:80
  vlab net forward add web tcp:auto:22
  vlab net forward rm web tcp:8080
  vlab net lab create lab1
  vlab create a --nic lab:lab1 ...`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.netShowCmd(), a.netForwardCmd(), a.netLabCmd(), &cobra.Command{
		Use:    "sandbox-filter QEMU-SOCKET PASST-SOCKET",
		Short:  "Relay a sandbox NIC between QEMU and passt, dropping frames to the host (vlab starts it; not for people)",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return machine.ServeSandboxFilter(cmd.Context(), args[0], args[1])
		},
	})
	return cmd
}

func (a *app) netShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a VM's NICs, forwards with the host ports bound, and guest addresses",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			info, err := s.Network(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), info)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			state := "stopped"
			if info.Running {
				state = "running"
			}
			fmt.Fprintf(w, "%s (%s)\n", info.Name, state)
			if len(info.NICs) == 0 {
				fmt.Fprintln(w, "  no nics")
			}
			for _, n := range info.NICs {
				desc := n.Mode + "\t" + n.MAC
				if n.Model != "" {
					desc += "\t" + n.Model
				}
				fmt.Fprintf(w, "  %s:\t%s\n", n.ID, desc)
				if n.GuestIP != "" {
					fmt.Fprintf(w, "    guest ip:\t%s (%s)\n", n.GuestIP, n.GuestIPSource)
				}
				for _, f := range n.Forwards {
					fmt.Fprintf(w, "    forward:\t%s\n", f)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON")
	return cmd
}

func (a *app) netForwardCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forward",
		Short: "Add, remove and list port forwards (applied at once to a running VM)",
		Long: `Forwards bring a host port to a guest port through QEMU's user-mode network. A rule is
proto:[hostaddr:]hostport:guestport; hostaddr defaults to 127.0.0.1 and hostport may be "auto".
On a running VM a change is applied at once through QMP and saved; on a stopped VM it is saved
for the next start.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.netForwardAddCmd(), a.netForwardRmCmd(), a.netForwardListCmd())
	return cmd
}

func (a *app) netForwardAddCmd() *cobra.Command {
	var nic int
	add := &cobra.Command{
		Use:     "add NAME RULE",
		Short:   "Add a forward, e.g. tcp:8080:80, udp:5353:53 or tcp:auto:22",
		Example: "  vlab net forward add web tcp:8080:80\n  vlab net forward add web tcp:0.0.0.0:auto:22",
		Args:    exactArgs("NAME", "RULE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := machine.ParseForward(args[1])
			if err != nil {
				return usageError{err}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			fi, err := s.AddForward(cmd.Context(), args[0], nic, f)
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), forwardResult{Action: "added", VM: args[0], ForwardInfo: fi})
			}
			switch {
			case fi.Active:
				fmt.Fprintf(cmd.OutOrStdout(), "forward %s added to %s: %s reaches guest port %d now\n", fi.Spec, args[0], fi.Addr, fi.GuestPort)
			case fi.Note != "":
				fmt.Fprintf(cmd.OutOrStdout(), "forward %s added to %s (%s)\n", fi.Spec, args[0], fi.Note)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "forward %s added to %s; it applies when it starts\n", fi.Spec, args[0])
			}
			return nil
		},
	}
	add.Flags().IntVar(&nic, "nic", -1, "NIC index (default: the first user-mode NIC)")
	add.Flags().BoolVar(&a.json, "json", false, "print the forward as JSON")
	return add
}

func (a *app) netForwardRmCmd() *cobra.Command {
	var nic int
	rm := &cobra.Command{
		Use:     "rm NAME RULE",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a forward, named by its rule or by proto:hostport (the bound port of an auto forward works too)",
		Example: "  vlab net forward rm web tcp:8080\n  vlab net forward rm web tcp:auto:22",
		Args:    exactArgs("NAME", "RULE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := machine.ParseForwardRef(args[1])
			if err != nil {
				return usageError{err}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			fi, err := s.RemoveForward(cmd.Context(), args[0], nic, f)
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), forwardResult{Action: "removed", VM: args[0], ForwardInfo: fi})
			}
			msg := fmt.Sprintf("forward %s removed from %s", fi.Spec, args[0])
			if fi.Note != "" {
				msg += " (" + fi.Note + ")"
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	rm.Flags().IntVar(&nic, "nic", -1, "NIC index (default: any)")
	a.jsonFlag(rm, "print the removed forward as JSON")
	return rm
}

func (a *app) netForwardListCmd() *cobra.Command {
	list := &cobra.Command{
		Use:     "list NAME",
		Aliases: []string{"ls"},
		Short:   "List a VM's forwards with the host ports bound now",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			info, err := s.Network(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			type row struct {
				NIC string `json:"nic"`
				machine.ForwardInfo
			}
			rows := []row{}
			for _, n := range info.NICs {
				for _, f := range n.Forwards {
					rows = append(rows, row{NIC: n.ID, ForwardInfo: f})
				}
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NIC\tPROTO\tHOST\tGUEST\tRULE\tSTATE")
			for _, r := range rows {
				host := r.HostAddr + ":" + machine.AutoPort
				if r.HostPort != 0 {
					host = r.HostAddr + ":" + strconv.Itoa(r.HostPort)
				}
				state := "saved"
				switch {
				case r.Active:
					state = "active"
				case r.Note != "":
					state = r.Note
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", r.NIC, r.Proto, host, r.GuestPort, r.Spec, state)
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&a.json, "json", false, "print JSON")
	return list
}

func (a *app) netLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Private lab networks joining VMs of this user (no root)",
		Long: `A lab network joins the NICs of several VMs (mode lab:NAME) through a small vlab switch
process, without root and without touching the host's interfaces. With DHCP on (the default)
the switch leases each VM a stable address from the lab's subnet. The switch starts with the
first VM on the lab and runs until the lab is removed.`,
		Args: cobra.NoArgs,
	}
	serve := &cobra.Command{
		Use:    "serve CONF",
		Short:  "Run a lab network's switch (vlab starts it; not for people)",
		Hidden: true,
		Args:   exactArgs("CONF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return machine.ServeLab(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(a.netLabCreateCmd(), a.netLabListCmd(), a.netLabRmCmd(), serve)
	return cmd
}

func (a *app) netLabCreateCmd() *cobra.Command {
	var subnet string
	var noDHCP bool
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Define a lab network",
		Example: "  vlab net lab create lab1\n  vlab net lab create dmz --subnet 192.168.50.0/24\n  vlab create a --nic lab:lab1 ...",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := machine.ValidateLabName(args[0]); err != nil {
				return usageError{err}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			lab, err := s.CreateLab(cmd.Context(), machine.Lab{Name: args[0], Subnet: subnet, DHCP: !noDHCP})
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), labResult{Action: "created", Lab: lab})
			}
			dhcp := "dhcp on"
			if !lab.DHCP {
				dhcp = "no dhcp"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created lab %s (%s, %s); attach vms with --nic lab:%s\n", lab.Name, lab.Subnet, dhcp, lab.Name)
			return nil
		},
	}
	create.Flags().StringVar(&subnet, "subnet", "", "IPv4 subnet the lab's DHCP serves (default: a free 10.77.N.0/24)")
	create.Flags().BoolVar(&noDHCP, "no-dhcp", false, "no DHCP: guests configure their addresses themselves")
	create.Flags().BoolVar(&a.json, "json", false, "print the lab as JSON")
	return create
}

func (a *app) netLabListCmd() *cobra.Command {
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List lab networks with their VMs, switch and leases",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			labs, err := s.Labs()
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), labs)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSUBNET\tDHCP\tSWITCH\tVMS\tLEASES")
			for _, l := range labs {
				sw := "stopped"
				if l.Switch {
					sw = "pid " + strconv.Itoa(l.PID)
				}
				var leases []string
				for mac, ip := range l.Leases {
					leases = append(leases, ip+"="+mac)
				}
				slices.Sort(leases) // a stable line, not map order
				fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%s\n", l.Name, l.Subnet, l.DHCP, sw, dash(strings.Join(l.Members, ",")), dash(strings.Join(leases, " ")))
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&a.json, "json", false, "print JSON")
	return list
}

func (a *app) netLabRmCmd() *cobra.Command {
	var force bool
	rm := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a lab network and stop its switch",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			if err := s.RemoveLab(cmd.Context(), args[0], force); err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), goneResult{Action: "removed", Kind: "lab", Name: args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed lab %s\n", args[0])
			return nil
		},
	}
	rm.Flags().BoolVar(&force, "force", false, "remove it even though VMs have NICs on it (they fail to start until moved)")
	a.jsonFlag(rm, `print {"action":"removed","kind":"lab","name":...}`)
	return rm
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
