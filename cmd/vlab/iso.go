package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// resolveISO turns an --iso argument into a path: an existing file as is,
// else the name of an ISO in the library.
func (a *app) resolveISO(arg string) (string, error) {
	if arg == "" {
		return "", nil
	}
	if _, err := os.Stat(arg); err == nil || strings.ContainsRune(arg, filepath.Separator) {
		return arg, nil
	}
	s, err := a.open()
	if err != nil {
		return "", err
	}
	if e, err := s.ISOs().Get(arg); err == nil {
		return e.Path, nil
	}
	return arg, nil // let the caller's check say the file does not exist
}

func (a *app) isoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "iso",
		Short: "The ISO library: installer images kept in the cache with their checksums",
		Long: `The ISO library keeps installer ISOs in $XDG_CACHE_HOME/vlab/isos with their SHA-256.
Library names work wherever vlab takes an ISO (create --iso, detect, cdrom insert).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.isoAddCmd(), a.isoListCmd(), a.isoRmCmd(), a.isoGetCmd())
	return cmd
}

func (a *app) isoAddCmd() *cobra.Command {
	var opts machine.AddOptions
	cmd := &cobra.Command{
		Use:   "add FILE",
		Short: "Add an ISO file to the library (hard link or copy; --link keeps it where it is)",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), "adding")
			opts.Progress = bar.update
			e, err := s.ISOs().Add(cmd.Context(), args[0], opts)
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), isoResult{Action: "added", ISO: e})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s (%s, sha256 %s)\n", e.Name, machine.Size(e.Size).Human(), e.SHA256)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "", "library name (default: the file's name)")
	f.BoolVar(&opts.Symlink, "link", false, "keep the file where it is and link to it")
	f.StringVar(&opts.SHA256, "sha256", "", "refuse the file unless its SHA-256 is this")
	f.BoolVar(&a.json, "json", false, "print the entry as JSON")
	return cmd
}

func (a *app) isoListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the ISOs in the library",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			list, err := s.ISOs().List()
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tSHA256\tSOURCE")
			for _, e := range list {
				src := e.Source
				if e.Linked {
					src += " (linked)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, machine.Size(e.Size).Human(), e.SHA256[:16]+"…", src)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print a JSON array")
	return cmd
}

func (a *app) isoRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove an ISO from the library (refused while a VM's CD drive holds it, unless --force)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			lib := s.ISOs()
			if e, err := lib.Get(args[0]); err == nil && !force {
				users, err := s.ISOUsers(e.Path)
				if err != nil {
					return err
				}
				if len(users) > 0 {
					return fmt.Errorf("remove iso %q: the CD drive of %s holds it: eject it (`vlab cdrom eject %s`) or use --force", args[0], strings.Join(users, ", "), users[0])
				}
			}
			if err := lib.Remove(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), goneResult{Action: "removed", Kind: "iso", Name: args[0]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove it even if a VM's CD drive holds it")
	a.jsonFlag(cmd, `print {"action":"removed","kind":"iso","name":...}`)
	return cmd
}

func (a *app) isoGetCmd() *cobra.Command {
	var opts machine.GetOptions
	cmd := &cobra.Command{
		Use:   "get URL --sha256 SUM",
		Short: "Download an ISO into the library, resuming a partial download and verifying its SHA-256",
		Example: `  vlab iso get https://cdimage.debian.org/debian-cd/current/amd64/iso-cd/debian-12.7.0-amd64-netinst.iso \
      --sha256 8fde79cfc6b20a696200fc5c15219cf6d721e8feb367e9e0e33a79d1cb68fa83`,
		Args: exactArgs("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.SHA256 == "" {
				return usageError{errors.New("--sha256 is required: copy the checksum from the distribution's SHA256SUMS file")}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), "downloading")
			opts.Progress = bar.download
			e, err := s.ISOs().Download(cmd.Context(), args[0], opts)
			bar.finish()
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), isoResult{Action: "downloaded", ISO: e})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "downloaded %s (%s, sha256 verified) to %s\n", e.Name, machine.Size(e.Size).Human(), e.Path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.SHA256, "sha256", "", "the expected SHA-256 (required)")
	f.StringVar(&opts.Name, "name", "", "library name (default: the URL's file name)")
	f.BoolVar(&a.json, "json", false, "print the entry as JSON")
	return cmd
}

func (a *app) cdromCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cdrom",
		Short: "Insert or eject the CD of a VM, running (QMP) or stopped (its definition)",
		Args:  cobra.NoArgs,
	}
	insert := &cobra.Command{
		Use:   "insert NAME ISO",
		Short: "Put an ISO (a path or a library name) in the VM's CD drive",
		Args:  exactArgs("NAME", "ISO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			iso, err := a.resolveISO(args[1])
			if err != nil {
				return err
			}
			live, err := s.InsertCDROM(cmd.Context(), args[0], iso)
			if err != nil {
				return err
			}
			if a.json {
				return a.printVM(cmd, s, args[0], "inserted", liveHow(live))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "inserted %s into %s%s\n", iso, args[0], liveNote(live))
			return nil
		},
	}
	eject := &cobra.Command{
		Use:   "eject NAME",
		Short: "Empty the VM's CD drive",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			live, err := s.EjectCDROM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return a.printVM(cmd, s, args[0], "ejected", liveHow(live))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ejected the CD of %s%s\n", args[0], liveNote(live))
			return nil
		},
	}
	a.jsonFlag(insert, "print the VM as JSON")
	a.jsonFlag(eject, "print the VM as JSON")
	cmd.AddCommand(insert, eject)
	return cmd
}

func liveNote(live bool) string {
	if live {
		return " (running: changed now and kept for the next start)"
	}
	return ""
}

// liveHow is cdrom's "how" in --json: live (running, changed now) or saved.
func liveHow(live bool) string {
	if live {
		return "live"
	}
	return "saved"
}
