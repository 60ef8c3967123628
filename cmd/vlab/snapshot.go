package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"vlab/machine"
)

func (a *app) snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"snap"},
		Short:   "Take, list, restore and delete snapshots (a tree; live while the VM runs)",
		Long: `Snapshots of a running VM are live: RAM, device state and every disk (UEFI variables
included), and restoring one puts the guest back exactly where it was. Snapshots of a stopped VM
hold the disks only. Each snapshot's parent is the one current when it was taken, so taking a
snapshot after restoring an older one starts a branch.`,
		Example: `  vlab snapshot create deb before-upgrade --description "clean install"
  vlab snapshot list deb
  vlab snapshot restore deb before-upgrade
  vlab snapshot delete deb before-upgrade`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.snapshotCreateCmd(), a.snapshotListCmd(), a.snapshotRestoreCmd(), a.snapshotDeleteCmd())
	return cmd
}

func (a *app) snapshotCreateCmd() *cobra.Command {
	var desc string
	cmd := &cobra.Command{
		Use:   "create NAME TAG",
		Short: "Take a snapshot (live with RAM when the VM runs, disks only when stopped)",
		Args:  exactArgs("NAME", "TAG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := machine.ValidateTag(args[1]); err != nil {
				return usageError{err}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newStepBar(cmd.ErrOrStderr(), "saving snapshot") // a live snapshot's QEMU job
			sn, err := s.SnapshotCreate(cmd.Context(), args[0], args[1], machine.SnapshotOptions{Description: desc, Progress: bar.update})
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printSnapshot(cmd, s, "created", args[0], sn)
			}
			kind := "disks only: the vm is stopped"
			if sn.RAM {
				kind = "live: RAM state " + machine.Size(sn.Size).Human() + " and disks"
			}
			if sn.Frozen > 0 {
				kind += fmt.Sprintf("; filesystems frozen: %d, by the guest agent", sn.Frozen)
			}
			parent := ""
			if sn.Parent != "" {
				parent = ", after " + sn.Parent
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created snapshot %s of %s (%s%s)\n", sn.Tag, args[0], kind, parent)
			return nil
		},
	}
	cmd.Flags().StringVarP(&desc, "description", "d", "", "what this snapshot is, e.g. \"before the upgrade\"")
	cmd.Flags().BoolVar(&a.json, "json", false, "print the new snapshot as JSON")
	return cmd
}

func (a *app) snapshotListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list NAME",
		Aliases: []string{"ls"},
		Short:   "Show a VM's snapshot tree (* marks the current one)",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			tree, err := s.Snapshots(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				if tree.Snapshots == nil {
					tree.Snapshots = []machine.Snapshot{}
				}
				return printResult(cmd.OutOrStdout(), tree)
			}
			if len(tree.Snapshots) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s has no snapshots; take one with `vlab snapshot create %s TAG`\n", args[0], args[0])
				return nil
			}
			return printSnapshotTree(cmd.OutOrStdout(), tree)
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print the tree as JSON (each snapshot with its parent; current)")
	return cmd
}

// printSnapshotTree draws the snapshot tree with box-drawing branches.
func printSnapshotTree(w io.Writer, tree machine.Tree) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TAG\tTAKEN\tSTATE\tDESCRIPTION")
	var walk func(parent, indent string)
	walk = func(parent, indent string) {
		kids := tree.Children(parent)
		for i, sn := range kids {
			branch, next := "├─ ", "│  "
			if i == len(kids)-1 {
				branch, next = "└─ ", "   "
			}
			if parent == "" {
				branch, next = "", ""
			}
			mark := " "
			if sn.Current {
				mark = "*"
			}
			state := "disks"
			if sn.RAM {
				state = "live " + machine.Size(sn.Size).Human()
			}
			var notes []string
			switch {
			case sn.Pending:
				notes = append(notes, "in progress")
			case !sn.Restorable:
				notes = append(notes, "NOT RESTORABLE: missing in "+strings.Join(sn.Missing, ", "))
			}
			if sn.External {
				notes = append(notes, "made outside vlab")
			}
			desc := sn.Description
			if len(notes) > 0 {
				desc = strings.TrimSpace(desc + " (" + strings.Join(notes, "; ") + ")")
			}
			fmt.Fprintf(tw, "%s %s%s%s\t%s\t%s\t%s\n", mark, indent, branch, sn.Tag, sn.Time.Local().Format("2006-01-02 15:04:05"), state, desc)
			walk(sn.Tag, indent+next)
		}
	}
	walk("", "")
	return tw.Flush()
}

// askYes asks a yes/no question on stderr and reads the answer from stdin.
func askYes(cmd *cobra.Command, question string) bool {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N]: ", question)
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// confirmSnapshot looks tag up in VM name's tree and, unless yes, asks
// question; op ("restore", "delete") names the operation in its errors.
func confirmSnapshot(cmd *cobra.Command, s *machine.Store, op, name, tag string, yes bool, question string) (machine.Snapshot, error) {
	tree, err := s.Snapshots(cmd.Context(), name)
	if err != nil {
		return machine.Snapshot{}, err
	}
	sn, ok := tree.Get(tag)
	if !ok {
		return sn, fmt.Errorf("%s snapshot %q of vm %q: %w: see `vlab snapshot list %s`", op, tag, name, machine.ErrSnapshotNotFound, name)
	}
	if !yes && !askYes(cmd, question) {
		return sn, fmt.Errorf("%s snapshot %q of vm %q: not confirmed, nothing changed (answer y, or pass --yes)", op, tag, name)
	}
	return sn, nil
}

func (a *app) snapshotRestoreCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore NAME TAG",
		Short: "Revert a VM to a snapshot (a live snapshot of a stopped VM starts it into that moment)",
		Args:  exactArgs("NAME", "TAG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name, tag := args[0], args[1]
			sn, err := confirmSnapshot(cmd, s, "restore", name, tag, yes,
				fmt.Sprintf("Revert %s to snapshot %s? What changed since is lost unless you take a snapshot first.", name, tag))
			if err != nil {
				return err
			}
			bar := newStepBar(cmd.ErrOrStderr(), "loading snapshot") // a live snapshot's QEMU job
			err = s.SnapshotRestore(cmd.Context(), name, tag, machine.SnapshotOptions{Progress: bar.update})
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printSnapshot(cmd, s, "restored", name, sn)
			}
			how := "disks reverted"
			if sn.RAM {
				how = "running from the snapshot's moment"
				if st, err := s.Status(cmd.Context(), name); err == nil && st.State == machine.StatePaused {
					how = "paused at the snapshot's moment"
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s to snapshot %s (%s)\n", name, tag, how)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	a.jsonFlag(cmd, "print the snapshot as JSON")
	return cmd
}

func (a *app) snapshotDeleteCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "delete NAME TAG",
		Aliases: []string{"rm"},
		Short:   "Delete a snapshot (its children move up to its parent)",
		Args:    exactArgs("NAME", "TAG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name, tag := args[0], args[1]
			sn, err := confirmSnapshot(cmd, s, "delete", name, tag, yes,
				fmt.Sprintf("Delete snapshot %s of %s? It cannot be restored afterwards.", tag, name))
			if err != nil {
				return err
			}
			if err := s.SnapshotDelete(cmd.Context(), name, tag, machine.SnapshotOptions{}); err != nil {
				return err
			}
			if a.json {
				sn.Current = false
				return printSnapshot(cmd, s, "deleted", name, sn)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted snapshot %s of %s\n", tag, name)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	a.jsonFlag(cmd, "print the snapshot as JSON")
	return cmd
}

// printSnapshot prints a snapshot command's --json: sn as the tree holds it
// now (when it still exists) with the VM's state.
func printSnapshot(cmd *cobra.Command, s *machine.Store, action, name string, sn machine.Snapshot) error {
	if tree, err := s.Snapshots(cmd.Context(), name); err == nil {
		if now, ok := tree.Get(sn.Tag); ok {
			sn = now
		}
	}
	state := ""
	if st, err := s.Status(cmd.Context(), name); err == nil {
		state = st.State.String()
	}
	return printResult(cmd.OutOrStdout(), snapshotResult{Action: action, VM: name, State: state, Snapshot: sn})
}
