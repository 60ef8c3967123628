package main

import (
	"github.com/spf13/cobra"
)

// runTUI opens the TUI over the library.
func (a *app) runTUI(cmd *cobra.Command) error {
	return cmd.Help()
}
