package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// galleryJSON is `vlab gallery --json`.
type galleryJSON struct {
	Source string                 `json:"source"`
	Images []machine.GalleryEntry `json:"images"`
}

func (a *app) galleryCmd() *cobra.Command {
	var arch string
	cmd := &cobra.Command{
		Use:   "gallery",
		Short: "List the OS gallery: installer ISOs and cloud images vlab can fetch by id",
		Long: `The gallery is a catalogue of OS downloads with their checksums. Use an id with
` + "`vlab create NAME --image ID`" + ` (cloud images) or ` + "`vlab create NAME --os ID`" + ` (installer ISOs).
` + "`vlab gallery update URL`" + ` replaces the built-in catalogue with a newer one; VLAB_GALLERY=FILE overrides both.`,
		Example: `  vlab gallery
  vlab create dev --image debian-12 --disk 20G
  vlab gallery update https://example.org/vlab/gallery.toml`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			g, err := s.Gallery()
			if err != nil {
				return err
			}
			var shown []machine.GalleryEntry
			for _, e := range g.Entries {
				if arch == "" || e.Arch == arch {
					shown = append(shown, e)
				}
			}
			if a.json {
				if shown == nil {
					shown = []machine.GalleryEntry{}
				}
				return printResult(cmd.OutOrStdout(), galleryJSON{Source: g.Source, Images: shown})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tARCH\tKIND\tPROFILE\tTITLE")
			for _, e := range shown {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Arch, e.Kind, e.Profile, e.Title)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "gallery: %s\n", g.Source)
			return nil
		},
	}
	cmd.Flags().StringVar(&arch, "arch", "", "only this guest arch")
	cmd.Flags().BoolVar(&a.json, "json", false, "print the gallery as JSON")
	cmd.AddCommand(a.galleryUpdateCmd())
	return cmd
}

func (a *app) galleryUpdateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update [URL]",
		Short: "Replace the gallery with a newer one from URL (default: where the last update came from)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("gallery update takes at most one URL (got %d arguments): see `%s --help`", len(args), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			url := ""
			if len(args) == 1 {
				url = args[0]
			}
			g, err := s.UpdateGallery(cmd.Context(), url, nil)
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), map[string]any{"source": g.Source, "images": len(g.Entries)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gallery updated: %s, kept in %s\n", count(len(g.Entries), "image", "images"), g.Source)
			return nil
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print the result as JSON")
	return cmd
}
