package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// The table newRootCmd picks one command from must name every top-level
// command exactly as the command itself does, or `vlab NAME` would build
// the wrong command or fall back to the whole tree.
func TestTopCommandNames(t *testing.T) {
	a := &app{}
	seen := map[string]bool{}
	for _, top := range a.topCommands() {
		c := top.build()
		want := append([]string{c.Name()}, c.Aliases...)
		if !slices.Equal(top.names, want) {
			t.Errorf("table names %v, command %q says %v", top.names, c.Use, want)
		}
		for _, n := range top.names {
			if seen[n] {
				t.Errorf("name %q twice in the table", n)
			}
			seen[n] = true
		}
	}
	whole := newRootCmd(nil)
	for _, c := range whole.Commands() {
		if c.Name() != "help" && c.Name() != "completion" && !seen[c.Name()] {
			t.Errorf("command %q is in the tree but not in the table", c.Name())
		}
	}
}

// A command line naming a top-level command builds that command alone, and
// it runs, helps and fails exactly as in the whole tree.
func TestRootBuildsOnlyTheNamedCommand(t *testing.T) {
	root := newRootCmd([]string{"snap", "list", "x"})
	if names := commandNames(root); !slices.Equal(names, []string{"snapshot"}) {
		t.Fatalf("tree for `vlab snap list x` has %v, want only snapshot", names)
	}
	if n := len(commandNames(newRootCmd([]string{"--version"}))); n < 30 {
		t.Errorf("a flag first built %d commands, want the whole tree", n)
	}
	if n := len(commandNames(newRootCmd([]string{"strat"}))); n < 30 {
		t.Errorf("a typo built %d commands, want the whole tree (for suggestions)", n)
	}
	for _, args := range [][]string{{"start", "--help"}, {"help", "start"}} {
		out, err := run(t, args...)
		if err != nil || !strings.Contains(out, "vlab start NAME") || !strings.Contains(out, "--disposable") {
			t.Errorf("vlab %v: %v\n%s", args, err, out)
		}
	}
	// Usage errors are wired on the lone command too: exit status 2 and
	// the help to read.
	_, err := run(t, "start")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "vlab start --help") {
		t.Errorf("vlab start without NAME: %v (exit %d), want a usage error", err, exitCode(err))
	}
	_, err = run(t, "strat")
	if err == nil || !strings.Contains(err.Error(), "did you mean `start`") {
		t.Errorf("vlab strat: %v, want a suggestion", err)
	}
}

func commandNames(root *cobra.Command) []string {
	var names []string
	for _, c := range root.Commands() {
		if c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	return names
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd(args)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}
