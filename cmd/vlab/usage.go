package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// wireUsage makes every way of calling a command wrongly a usage error
// (exit status 2, docs/cli.md): an unknown command or subcommand, with the
// commands it may have meant, and wrong arguments to any command. It runs
// once over the whole tree, so commands added later get the same.
func wireUsage(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case c.HasSubCommands():
			c.Args = unknownSubcommand
			if c.Run == nil && c.RunE == nil {
				c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
			}
		case c.Args == nil:
			c.Args = cobra.NoArgs
		}
		// pflag takes `quoted` words in a flag's usage as its value's name
		// ("--profile vlab profiles"): show them as 'quoted' instead.
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { f.Usage = strings.ReplaceAll(f.Usage, "`", "'") })
		args := c.Args
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				if _, ok := err.(usageError); ok {
					return err
				}
				return usageError{fmt.Errorf("%v: see `%s --help`", err, cmd.CommandPath())}
			}
			return nil
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// unknownSubcommand is the Args of a command with subcommands: any argument
// is a subcommand that does not exist.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, applied only in its legacy path
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += ": did you mean " + strings.Join(quoteAll(s), " or ") + "?"
	}
	return usageError{fmt.Errorf("%s (see `%s --help`)", msg, cmd.CommandPath())}
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = "`" + v + "`"
	}
	return out
}
