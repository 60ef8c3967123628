//go:build mangen

package main

// The man pages are generated at build time by a vlab built with
// `-tags mangen` (scripts/release-files.sh, make man): cobra's man page
// generator brings a Markdown and a YAML parser whose package
// initialisation every run of the shipped binary would otherwise pay.

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() {
	buildTools = append(buildTools, topCommand{names: []string{"man"}, build: manCmd, tree: true})
}

func manCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write man pages for every command into DIR",
		Hidden: true,
		Args:   exactArgs("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			hdr := &doc.GenManHeader{Title: "VLAB", Section: "1", Source: "vlab " + version}
			return doc.GenManTree(cmd.Root(), hdr, args[0])
		},
	}
}
