package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"vlab/machine"
)

func (a *app) diskCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disk",
		Short: "Add, remove, grow, import and convert a stopped VM's disks",
		Example: `  vlab disk add deb 10G
  vlab disk import deb ~/old/win98.vmdk
  vlab disk resize deb hd0 40G
  vlab disk convert deb disk0.img
  vlab disk rm deb hd1 --delete-file`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.diskAddCmd(), a.diskRmCmd(), a.diskResizeCmd(), a.diskImportCmd(), a.diskConvertCmd())
	return cmd
}

func (a *app) diskAddCmd() *cobra.Command {
	var opts machine.DiskOptions
	cmd := &cobra.Command{
		Use:   "add NAME SIZE",
		Short: "Create a new empty disk (qcow2 by default) and attach it",
		Args:  exactArgs("NAME", "SIZE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			size, err := machine.ParseSize(args[1])
			if err != nil {
				return usageError{err}
			}
			opts.Size = size
			s, err := a.open()
			if err != nil {
				return err
			}
			d, err := s.DiskAdd(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			if a.json {
				return printDisk(cmd, s, args[0], "added", d, false)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s (%s, %s) to %s\n", d.File, d.Format, d.Size, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Format, "format", "qcow2", "qcow2 (snapshots work) or raw")
	cmd.Flags().StringVar(&opts.Bus, "bus", "", "virtio, ide, sata, scsi or nvme (default: the machine's)")
	a.jsonFlag(cmd, "print the disk as JSON")
	return cmd
}

func (a *app) diskRmCmd() *cobra.Command {
	var deleteFile, yes bool
	cmd := &cobra.Command{
		Use:     "rm NAME DISK",
		Aliases: []string{"remove"},
		Short:   "Detach a disk (DISK: index, hdN or file name); --delete-file also deletes it",
		Args:    exactArgs("NAME", "DISK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name := args[0]
			if deleteFile && !yes && !askYes(cmd, fmt.Sprintf("Detach disk %s of %s and delete its file? Its data is lost.", args[1], name)) {
				return fmt.Errorf("remove disk %s of vm %q: not confirmed, nothing changed (answer y, or pass --yes)", args[1], name)
			}
			d, err := s.DiskRemove(cmd.Context(), name, args[1], deleteFile)
			if err != nil {
				return err
			}
			if a.json {
				return printDisk(cmd, s, name, "removed", d, deleteFile)
			}
			if deleteFile {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s from %s and deleted it\n", d.File, name)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "detached %s from %s (the file is kept: %s)\n", d.File, name, s.Paths(name).DiskPath(d.File))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&deleteFile, "delete-file", false, "also delete the image file (only inside the VM folder)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask before deleting the file")
	a.jsonFlag(cmd, "print the removed disk as JSON")
	return cmd
}

func (a *app) diskResizeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resize NAME DISK SIZE",
		Short: "Grow a disk to SIZE (the new total; disks never shrink)",
		Long: `Grow a disk to SIZE, the new total size. The guest sees the larger disk at its next boot;
grow the partition and file system inside the guest afterwards.`,
		Args: exactArgs("NAME", "DISK", "SIZE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.HasPrefix(strings.TrimSpace(args[2]), "+") {
				return usageError{fmt.Errorf("size %q: give the new total size, e.g. 40G", args[2])}
			}
			size, err := machine.ParseSize(args[2])
			if err != nil {
				return usageError{err}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			before, err := s.Load(args[0])
			if err != nil {
				return err
			}
			if err := s.DiskResize(cmd.Context(), args[0], args[1], size); err != nil {
				return err
			}
			if a.json {
				return printDisk(cmd, s, args[0], "resized", resizedDisk(s, before, size), false)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "grew disk %s of %s to %s\n", args[1], args[0], size)
			return nil
		},
	}
	a.jsonFlag(cmd, "print the grown disk as JSON")
	return cmd
}

// resizedDisk finds the disk DiskResize grew: the one whose size changed.
func resizedDisk(s *machine.Store, before *machine.Spec, size machine.Size) machine.DiskSpec {
	after, err := s.Load(before.Name)
	if err != nil {
		return machine.DiskSpec{Size: size}
	}
	for i, d := range after.Disks {
		if i < len(before.Disks) && before.Disks[i].Size != d.Size {
			return d
		}
	}
	for _, d := range after.Disks {
		if d.Size == size {
			return d
		}
	}
	return machine.DiskSpec{Size: size}
}

func (a *app) diskImportCmd() *cobra.Command {
	var opts machine.ImportOptions
	cmd := &cobra.Command{
		Use:   "import NAME IMAGE",
		Short: "Convert an existing image (raw, qcow2, vmdk, vdi, vhdx, vpc) into a new qcow2 disk",
		Long: `Import converts IMAGE into a new qcow2 disk in the VM's folder and attaches it; IMAGE itself is
only read. The format is detected, except raw, which must be named with --format raw. Images with a
backing file, or whose data lives outside their folder, are refused.`,
		Args: exactArgs("NAME", "IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), "converting")
			opts.Progress = bar.update
			d, err := s.DiskImport(cmd.Context(), args[0], args[1], opts)
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printDisk(cmd, s, args[0], "imported", d, false)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s into %s as %s (qcow2, %s)\n", args[1], args[0], d.File, d.Size)
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Format, "format", "", "the image's format: "+strings.Join(machine.ImportFormats, ", ")+" (default: detect; raw must be given)")
	cmd.Flags().StringVar(&opts.Bus, "bus", "", "virtio, ide, sata, scsi or nvme (default: the machine's)")
	a.jsonFlag(cmd, "print the disk as JSON")
	return cmd
}

func (a *app) diskConvertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert NAME DISK",
		Short: "Turn a raw disk into qcow2 (so the VM can take snapshots)",
		Args:  exactArgs("NAME", "DISK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), "converting")
			d, err := s.DiskConvert(cmd.Context(), args[0], args[1], bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printDisk(cmd, s, args[0], "converted", d, false)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "converted disk %s of %s to qcow2: %s\n", args[1], args[0], d.File)
			return nil
		},
	}
	a.jsonFlag(cmd, "print the converted disk as JSON")
	return cmd
}
