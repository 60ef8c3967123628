package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// commandInfo is one line of `vlab __commands`: a leaf command a person can
// run, and whether it has --json. The CLI contract test (e2e/contract_test.go)
// walks the tree through it, so a command without a test row fails there.
type commandInfo struct {
	Path string `json:"path"` // without "vlab ", e.g. "snapshot create"
	JSON bool   `json:"json"`
}

func commandsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__commands",
		Short:  "List every leaf command as JSON (for the CLI contract test)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printJSON(cmd.OutOrStdout(), leafCommands(cmd.Root()))
		},
	}
}

// leafCommands lists the visible commands without subcommands under root.
func leafCommands(root *cobra.Command) []commandInfo {
	var out []commandInfo
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if !c.HasSubCommands() {
			path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
			out = append(out, commandInfo{Path: path, JSON: c.Flags().Lookup("json") != nil})
			return
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}
