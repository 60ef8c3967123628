package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"vlab/machine"
)

func (a *app) cloneCmd() *cobra.Command {
	var opts machine.CloneOptions
	cmd := &cobra.Command{
		Use:   "clone SRC DST",
		Short: "Copy a stopped VM under a new name (full copy, or --linked: thin overlays)",
		Long: `Clone makes DST with SRC's settings, new MAC addresses and its own UEFI variables.
A full clone copies the disks. A linked clone's disks are thin overlays on a frozen, read-only
base of SRC's disks kept in SRC's folder: SRC stays fully usable (and snapshottable) and cannot
corrupt the clone, and SRC cannot be deleted while a linked clone exists. Cloning the current
state of a VM without snapshots copies at most what SRC wrote since its last linked clone: SRC's
disk files become the base and SRC goes on in new overlays on them. A clone of a snapshot, or of
a VM with snapshots, copies SRC's used data once into a base that every later linked clone of
that same state shares. --snapshot clones the disks as they were at that snapshot.`,
		Example: `  vlab clone deb deb-test
  vlab clone deb deb-lab1 --linked --snapshot clean-install`,
		Args: exactArgs("SRC", "DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := machine.ValidateName(args[1]); err != nil {
				return usageError{err}
			}
			if opts.Snapshot != "" {
				if err := machine.ValidateTag(opts.Snapshot); err != nil {
					return usageError{fmt.Errorf("--snapshot: %w", err)}
				}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), "copying disks")
			opts.Progress = bar.update
			err = s.Clone(cmd.Context(), args[0], args[1], opts)
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return a.printVM(cmd, s, args[1], "cloned", "")
			}
			what := "full copy"
			if opts.Linked {
				what = "linked: " + args[0] + " cannot be deleted while " + args[1] + " exists"
			}
			if opts.Snapshot != "" {
				what += ", disks as at snapshot " + opts.Snapshot
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cloned %s to %s (%s); start it with `vlab start %s`\n", args[0], args[1], what, args[1])
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Linked, "linked", false, "thin clone: overlays on a frozen base of SRC's disks")
	cmd.Flags().StringVar(&opts.Snapshot, "snapshot", "", "clone the disks as they were at this snapshot of SRC")
	cmd.Flags().BoolVar(&a.json, "json", false, "print the new VM as JSON")
	return cmd
}
