package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"vlab/portable"
)

// importJSON is `vlab import --json`.
type importJSON struct {
	VMs      []importedJSON `json:"vms"`
	Manifest string         `json:"manifest"`
	Notes    []string       `json:"notes"`
}

type importedJSON struct {
	Name        string           `json:"name"`
	System      string           `json:"system"`
	Profile     string           `json:"profile"`
	Arch        string           `json:"arch"`
	Machine     string           `json:"machine"`
	CPUs        int              `json:"cpus"`
	MemoryBytes int64            `json:"memory_bytes"`
	Firmware    string           `json:"firmware"`
	Disks       []importDiskJSON `json:"disks"`
	NICs        []importNICJSON  `json:"nics"`
	Dropped     []string         `json:"dropped"`
}

type importDiskJSON struct {
	File      string `json:"file"`
	SizeBytes int64  `json:"size_bytes"`
	Bus       string `json:"bus"`
}

type importNICJSON struct {
	Mode  string `json:"mode"`
	Model string `json:"model"`
	MAC   string `json:"mac"`
}

func (a *app) importCmd() *cobra.Command {
	var opts portable.ImportOptions
	cmd := &cobra.Command{
		Use:   "import FILE.ova|FILE.ovf",
		Short: "Create VMs from an OVA or OVF package (VirtualBox, VMware, vlab export)",
		Long: `Import reads an OVF package (an .ova archive, or an .ovf descriptor with its files beside it),
verifies its manifest, maps its virtual hardware and OS to a vlab profile, and converts its disks to
qcow2 in the new VM's folder. A package with several systems (a vApp) needs --vsys. Whatever cannot be
mapped is listed. Nothing is created unless the whole package checks out.`,
		Example: `  vlab import appliance.ova
  vlab import exported/web.ovf --name web2
  vlab import lab.ova --vsys db`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), "importing")
			opts.Progress = bar.update
			res, err := portable.Import(cmd.Context(), s, args[0], opts)
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), importToJSON(res))
			}
			out := cmd.OutOrStdout()
			for _, n := range res.Notes {
				fmt.Fprintf(out, "note: %s\n", n)
			}
			for _, vm := range res.VMs {
				sp := vm.Spec
				fmt.Fprintf(out, "imported %s (profile %s, %s, %s, %s, %s, %s); start it with `vlab start %s`\n",
					vm.Name, orNone(sp.Profile), sp.Arch, sp.Memory, count(sp.CPUs, "CPU", "CPUs"),
					count(len(sp.Disks), "disk", "disks"), count(len(sp.NICs), "NIC", "NICs"), vm.Name)
				if len(vm.Dropped) > 0 {
					fmt.Fprintf(out, "not imported: %s\n", strings.Join(vm.Dropped, ", "))
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "", "name of the new VM (default: the system's name)")
	f.StringVar(&opts.VSys, "vsys", "", "system of a multi-VM package to import (its id or name), or all")
	f.BoolVar(&a.json, "json", false, "print what was imported as JSON")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func importToJSON(res *portable.ImportResult) importJSON {
	out := importJSON{VMs: []importedJSON{}, Manifest: res.Manifest, Notes: nonNil(res.Notes)}
	for _, vm := range res.VMs {
		sp := vm.Spec
		j := importedJSON{Name: vm.Name, System: vm.System, Profile: sp.Profile, Arch: sp.Arch.String(), Machine: sp.Machine,
			CPUs: sp.CPUs, MemoryBytes: int64(sp.Memory), Firmware: string(sp.Firmware), Dropped: nonNil(vm.Dropped),
			Disks: []importDiskJSON{}, NICs: []importNICJSON{}}
		for _, d := range sp.Disks {
			j.Disks = append(j.Disks, importDiskJSON{File: d.File, SizeBytes: int64(d.Size), Bus: d.Bus})
		}
		for _, n := range sp.NICs {
			j.NICs = append(j.NICs, importNICJSON{Mode: string(n.Mode), Model: n.Model, MAC: n.MAC})
		}
		out.VMs = append(out.VMs, j)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// exportJSON is `vlab export --json`.
type exportJSON struct {
	Name   string           `json:"name"`
	Format string           `json:"format"`
	Path   string           `json:"path"`
	Disks  []exportDiskJSON `json:"disks"`
	Notes  []string         `json:"notes"`
}

type exportDiskJSON struct {
	File          string `json:"file"`
	Bytes         int64  `json:"bytes"`
	CapacityBytes int64  `json:"capacity_bytes"`
}

// printExport says what export of VM name (in format) wrote: as JSON, or
// one line with what a libvirt domain does not carry, or notes.
func (a *app) printExport(out io.Writer, name, format string, res *portable.ExportResult) error {
	if a.json {
		j := exportJSON{Name: name, Format: format, Path: res.Path, Disks: []exportDiskJSON{}, Notes: nonNil(res.Notes)}
		for _, d := range res.Disks {
			j.Disks = append(j.Disks, exportDiskJSON{File: d.File, Bytes: d.Size, CapacityBytes: d.Capacity})
		}
		return printResult(out, j)
	}
	fmt.Fprintf(out, "exported %s to %s (%s, %s)\n", name, res.Path, format, count(len(res.Disks), "disk", "disks"))
	if format == portable.FormatLibvirt {
		fmt.Fprintf(out, "run it with `virsh define %s && virsh start %s`\n", res.Path, name)
		if len(res.Notes) > 0 {
			fmt.Fprintf(out, "not carried: %s\n", strings.Join(res.Notes, "; "))
		}
		return nil
	}
	for _, n := range res.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	return nil
}

func (a *app) exportCmd() *cobra.Command {
	var format, to, pool string
	var start bool
	cmd := &cobra.Command{
		Use:   "export NAME OUT | export NAME --to URI [--start]",
		Short: "Write a stopped VM as an OVA, an OVF folder or a libvirt domain",
		Long: `Export writes the VM as OVF 1.0: an .ova archive (descriptor first, a SHA256 manifest, disks as
streamOptimized VMDK) or, with --format ovf, a new folder OUT holding the same files. A vlab section that
other tools skip carries what OVF cannot say (arch, machine type, profile, forwards), so importing the
package into vlab gives the same VM. Host files (an ISO, a direct-boot kernel) are not packed.

With --format libvirt, OUT is a new (or empty) folder that receives OUT/NAME.xml, a libvirt domain,
with qcow2 copies of the disks, the direct-boot kernel and initrd, and the UEFI variables beside it,
all named by absolute path: ` + "`virsh define OUT/NAME.xml && virsh start NAME`" + ` runs the same guest.
The serial console is logged to OUT/NAME-serial.log. A user-mode NIC's port forwards (and --isolated)
go over as QEMU's own -netdev in <qemu:commandline>, with the interface pointed at it by <qemu:override>
(libvirt 8.2 or newer), since libvirt's user interface has no forwards: libvirt runs such a domain and
marks it tainted (custom-argv). What libvirt cannot express is listed.

With --to URI (e.g. qemu+ssh://root@host/system) the domain goes straight onto that libvirt through
virsh: its disks, kernel, initrd and UEFI variables are uploaded as volumes of a storage pool there
(--pool, default "default") and the domain is defined; --start starts it.`,
		Example: `  vlab export web web.ova
  vlab export web ./web-ovf --format ovf
  vlab export web ./web-libvirt --format libvirt
  vlab export web --to qemu+ssh://root@server/system --start`,
		Args: func(cmd *cobra.Command, args []string) error {
			if to != "" {
				return exactArgs("NAME")(cmd, args)
			}
			return exactArgs("NAME", "OUT")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" && (start || cmd.Flags().Changed("pool")) {
				return usageError{fmt.Errorf("--start and --pool need --to URI: add --to qemu+ssh://user@host/system")}
			}
			if to != "" {
				if cmd.Flags().Changed("format") && format != portable.FormatLibvirt {
					return usageError{fmt.Errorf("--to writes a libvirt domain, not %s: drop --format", format)}
				}
				return a.exportTo(cmd, args[0], to, portable.RemoteOptions{Pool: pool, Start: start})
			}
			if !slices.Contains(portable.Formats, format) {
				return usageError{fmt.Errorf("export format %q is unknown: use one of %s", format, strings.Join(portable.Formats, ", "))}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), "exporting")
			export := portable.Export
			if format == portable.FormatLibvirt {
				export = portable.ExportLibvirt
			}
			res, err := export(cmd.Context(), s, args[0], args[1], portable.ExportOptions{Format: format, Progress: bar.update})
			bar.finish()
			if err != nil {
				return err
			}
			return a.printExport(cmd.OutOrStdout(), args[0], format, res)
		},
	}
	cmd.Flags().StringVar(&format, "format", "ova", "ova (one archive), ovf (a folder) or libvirt (a domain XML and its disks in a folder)")
	cmd.Flags().BoolVar(&a.json, "json", false, "print what was written as JSON")
	cmd.Flags().StringVar(&to, "to", "", "define the VM on the libvirt at this URI (e.g. qemu+ssh://root@host/system) instead of writing files")
	cmd.Flags().StringVar(&pool, "pool", "default", "with --to: the storage pool there that receives the disks")
	cmd.Flags().BoolVar(&start, "start", false, "with --to: start the domain once it is defined")
	// Registered before wireCompletion, which would offer disk formats.
	_ = cmd.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return portable.Formats, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// exportTo is `vlab export NAME --to URI`.
func (a *app) exportTo(cmd *cobra.Command, name, uri string, opts portable.RemoteOptions) error {
	s, err := a.open()
	if err != nil {
		return err
	}
	bar := newProgressBar(cmd.ErrOrStderr(), "exporting")
	opts.Progress = bar.update
	res, err := portable.ExportTo(cmd.Context(), s, name, uri, opts)
	bar.finish()
	if err != nil {
		return err
	}
	if a.json {
		j := exportJSON{Name: name, Format: portable.FormatLibvirt, Path: res.Path, Disks: []exportDiskJSON{}, Notes: nonNil(res.Notes)}
		for _, d := range res.Disks {
			j.Disks = append(j.Disks, exportDiskJSON{File: d.File, Bytes: d.Size, CapacityBytes: d.Capacity})
		}
		return printResult(cmd.OutOrStdout(), j)
	}
	out := cmd.OutOrStdout()
	what := "defined"
	if opts.Start {
		what = "defined and started"
	}
	fmt.Fprintf(out, "%s %s on %s (%d disks in pool %s)\n", what, name, uri, len(res.Disks), opts.Pool)
	if len(res.Notes) > 0 {
		fmt.Fprintf(out, "not carried: %s\n", strings.Join(res.Notes, "; "))
	}
	return nil
}
