package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// shareCmd is `vlab share`: the shared folders of a VM (added and removed
// with create/edit --share and edit --unshare).
func (a *app) shareCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "share",
		Short: "Show a VM's shared folders and how the guest mounts them",
		Long: `Shared folders are host folders a VM's guest mounts: add them with
` + "`vlab create|edit NAME --share HOSTDIR[,tag=TAG][,ro][,9p|,virtiofs][,mount=/PATH]`" + `,
remove them with ` + "`vlab edit NAME --unshare TAG`" + `. vlab serves each one with
virtiofs (through the host's virtiofsd, started and stopped with the VM)
where it can, and with QEMU's 9p server otherwise; read-only shares are
read-only for the guest whatever it does. VMs made from a cloud image
mount them at boot (/mnt/TAG unless told otherwise); other guests mount
them with the command ` + "`vlab share list NAME`" + ` prints.`,
		Example: `  vlab edit dev --share ~/project
  vlab share list dev`,
		Args: cobra.NoArgs,
	}
	list := &cobra.Command{
		Use:   "list NAME",
		Short: "List a VM's shared folders: tag, host folder, kind at the next start, guest mount command",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			views, err := s.ShareViews(args[0])
			if err != nil {
				return err
			}
			if a.json {
				if views == nil {
					views = []machine.ShareView{}
				}
				return printJSON(cmd.OutOrStdout(), views)
			}
			if len(views) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s shares no folder: add one with `vlab edit %s --share HOSTDIR`\n", args[0], args[0])
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TAG\tHOST FOLDER\tACCESS\tKIND\tIN THE GUEST")
			for _, v := range views {
				access, kind := "rw", v.Uses
				if v.ReadOnly {
					access = "ro"
				}
				if v.Error != "" {
					kind = "error: " + v.Error
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", v.Tag, v.HostDir, access, kind, v.Mount)
			}
			return w.Flush()
		},
	}
	a.jsonFlag(list, "print the shares as JSON")
	ro := &cobra.Command{
		Use:    "virtiofsd-ro FOLDER -- VIRTIOFSD [ARG...]",
		Short:  "Run QEMU's virtiofsd with FOLDER read-only (vlab starts it; not for people)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return machine.ReadOnlyExec(args[0], args[1:])
		},
	}
	cmd.AddCommand(list, ro)
	return cmd
}
