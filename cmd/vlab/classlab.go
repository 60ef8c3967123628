package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// labCmd is `vlab lab up|down|reset FILE`: a class lab, the VMs and lab
// networks one lab file describes (machine.ParseClassLab), handled as one.
func (a *app) labCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Bring up, stop or reset a class lab: the VMs and lab networks one lab file describes",
		Long: `A lab file is TOML a teacher hands to a class: [[network]] tables (name, subnet, dhcp) and
[[vm]] tables (name, profile, arch, memory, cpus, disk, iso, kernel, initrd, append, networks,
forwards, snapshot), e.g.

  [[network]]
  name = "lan"
  dhcp = true

  [[vm]]
  name = "server"
  kernel = "vmlinuz"          # relative paths are taken from the lab file's folder
  initrd = "initrd.img"
  disk = "1G"
  networks = ["lan"]
  forwards = ["tcp:8080:80"]
  snapshot = "clean"          # taken before the first start; vlab lab reset returns to it

Errors in the file name its line.`,
	}
	cmd.AddCommand(a.labUpCmd(), a.labDownCmd(), a.labResetCmd())
	return cmd
}

// readClassLab reads and checks a lab file; a bad file is a usage error.
func readClassLab(file string) (*machine.ClassLab, string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, "", fmt.Errorf("lab file %s: %w", file, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, "", usageError{fmt.Errorf("lab file: %w: give the path of a lab .toml file", err)}
	}
	lab, err := machine.ParseClassLab(file, data)
	if err != nil {
		return nil, "", usageError{err}
	}
	return lab, filepath.Dir(abs), nil
}

func (a *app) labUpCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up FILE",
		Short: "Create what a lab file describes (reusing what exists) and start its VMs in order",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, dir, err := readClassLab(args[0])
			if err != nil {
				return err
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			rep, err := s.ClassLabUp(cmd.Context(), lab, dir)
			if err != nil {
				return err
			}
			return a.printClassLab(cmd.OutOrStdout(), "up", rep)
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print what was done and how to reach each VM as JSON")
	return cmd
}

func (a *app) labDownCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "down FILE",
		Short: "Stop a lab's VMs, last first (they and the lab networks stay defined)",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, _, err := readClassLab(args[0])
			if err != nil {
				return err
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			rep, err := s.ClassLabDown(cmd.Context(), lab, force)
			if err != nil {
				return err
			}
			return a.printClassLab(cmd.OutOrStdout(), "down", rep)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "power the VMs off at once instead of asking the guests (ACPI)")
	cmd.Flags().BoolVar(&a.json, "json", false, "print what was done as JSON")
	return cmd
}

func (a *app) labResetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset FILE",
		Short: "Return each VM of a lab to its snapshot and start it again (what the guests did since is lost)",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			lab, _, err := readClassLab(args[0])
			if err != nil {
				return err
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			rep, err := s.ClassLabReset(cmd.Context(), lab)
			if err != nil {
				return err
			}
			return a.printClassLab(cmd.OutOrStdout(), "reset", rep)
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print what was done and how to reach each VM as JSON")
	return cmd
}

// classLabJSON is `vlab lab up|down|reset --json` (docs/json.md).
type classLabJSON struct {
	Action   string                     `json:"action"`
	Networks []string                   `json:"networks"`
	VMs      []machine.ClassLabVMStatus `json:"vms"`
}

func (a *app) printClassLab(w io.Writer, action string, rep *machine.ClassLabReport) error {
	if a.json {
		j := classLabJSON{Action: action, Networks: nonNil(rep.Networks), VMs: rep.VMs}
		if j.VMs == nil {
			j.VMs = []machine.ClassLabVMStatus{}
		}
		return printResult(w, j)
	}
	for _, v := range rep.VMs {
		line := fmt.Sprintf("%s: %s (%s)", v.Name, v.Action, v.State)
		var reach []string
		for _, f := range v.Forwards {
			if f.HostPort != 0 {
				reach = append(reach, fmt.Sprintf("%s %s:%d -> %d", f.Proto, f.HostAddr, f.HostPort, f.GuestPort))
			}
		}
		if len(v.Networks) > 0 {
			reach = append(reach, "on "+strings.Join(v.Networks, ", "))
		}
		if v.State.Active() {
			reach = append(reach, "console: vlab console "+v.Name)
		}
		if len(reach) > 0 {
			line += "; " + strings.Join(reach, "; ")
		}
		fmt.Fprintln(w, line)
	}
	return nil
}
