package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"vlab/emulator"
	"vlab/machine"
	"vlab/profiles"
)

// completer lists candidates for one argument or flag value.
type completer func(ctx context.Context, a *app, args []string) []string

// argCompletion says, per command path, what each positional argument
// completes to; the last entry repeats for later arguments only if nil.
var argCompletion = map[string][]completer{
	"start":            {vmsIn(stateStopped)},
	"stop":             {vmsIn(stateActive)},
	"pause":            {vmsIn(stateRunning)},
	"resume":           {vmsIn(statePaused)},
	"reset":            {vmsIn(stateActive)},
	"console":          {vmsIn(stateActive)},
	"vnc":              {vmsIn(stateActive)},
	"qmp":              {vmsIn(stateActive)},
	"screenshot":       {vmsIn(stateActive)},
	"show":             {vmsIn(nil)},
	"edit":             {vmsIn(stateStopped)},
	"delete":           {vmsIn(nil)},
	"cmdline":          {vmsIn(nil)},
	"clone":            {vmsIn(stateStopped)},
	"profiles":         {profileNames},
	"snapshot create":  {vmsIn(nil)},
	"snapshot list":    {vmsIn(nil)},
	"snapshot restore": {vmsIn(nil), snapshotTags},
	"snapshot delete":  {vmsIn(nil), snapshotTags},
	"disk add":         {vmsIn(stateStopped)},
	"disk rm":          {vmsIn(stateStopped)},
	"disk resize":      {vmsIn(stateStopped)},
	"disk import":      {vmsIn(stateStopped)},
	"disk convert":     {vmsIn(stateStopped)},
	"net show":         {vmsIn(nil)},
	"net forward add":  {vmsIn(nil)},
	"net forward rm":   {vmsIn(nil)},
	"net forward list": {vmsIn(nil)},
	"net lab rm":       {labNames},
	"cdrom insert":     {vmsIn(nil), isoNames},
	"cdrom eject":      {vmsIn(nil)},
	"iso rm":           {isoNames},
}

// flagCompletion says what a flag's value completes to, on every command
// that has the flag.
var flagCompletion = map[string]completer{
	"profile":  profileNames,
	"arch":     func(context.Context, *app, []string) []string { return emulator.ArchNames() },
	"accel":    fixed("auto", "kvm", "tcg"),
	"display":  fixed("vnc", "none"),
	"firmware": fixed("bios", "uefi"),
	"format":   fixed("qcow2", "raw"),
	"bus":      fixed("virtio", "ide", "sata", "scsi", "nvme"),
	"snapshot": func(ctx context.Context, a *app, args []string) []string {
		return snapshotTags(ctx, a, args[:min(len(args), 1)])
	},
	"iso": isoNames,
}

// wireCompletion attaches the completers above to the tree.
func (a *app) wireCompletion(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if comps, ok := argCompletion[path]; ok {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) >= len(comps) {
					return nil, cobra.ShellCompDirectiveDefault // files
				}
				return comps[len(args)](cmd.Context(), a, args), cobra.ShellCompDirectiveNoFileComp
			}
		}
		for name, comp := range flagCompletion {
			if c.LocalFlags().Lookup(name) == nil {
				continue
			}
			comp := comp
			_ = c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				dir := cobra.ShellCompDirectiveNoFileComp
				if name == "iso" {
					dir = cobra.ShellCompDirectiveDefault // a library name or a file
				}
				return comp(cmd.Context(), a, args), dir
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func fixed(vals ...string) completer {
	return func(context.Context, *app, []string) []string { return vals }
}

type stateFilter func(machine.State) bool

var (
	stateStopped stateFilter = func(s machine.State) bool { return !s.Active() }
	stateActive  stateFilter = func(s machine.State) bool { return s.Active() }
	stateRunning stateFilter = func(s machine.State) bool { return s == machine.StateRunning }
	statePaused  stateFilter = func(s machine.State) bool { return s == machine.StatePaused }
)

// vmsIn completes VM names, only those in a state keep accepts (all when nil).
func vmsIn(keep stateFilter) completer {
	return func(ctx context.Context, a *app, _ []string) []string {
		s, err := a.open()
		if err != nil {
			return nil
		}
		names, _ := s.Names()
		var out []string
		for _, n := range names {
			if keep != nil {
				st, err := s.Status(ctx, n)
				if err != nil || !keep(st.State) {
					continue
				}
			}
			out = append(out, n)
		}
		return out
	}
}

func snapshotTags(ctx context.Context, a *app, args []string) []string {
	if len(args) == 0 {
		return nil
	}
	s, err := a.open()
	if err != nil {
		return nil
	}
	tree, err := s.Snapshots(ctx, args[0])
	if err != nil {
		return nil
	}
	var out []string
	for _, sn := range tree.Snapshots {
		out = append(out, sn.Tag+"\t"+sn.Description)
	}
	return out
}

func profileNames(context.Context, *app, []string) []string {
	var out []string
	for _, p := range profiles.List() {
		out = append(out, p.Name+"\t"+p.Title)
	}
	return out
}

func labNames(_ context.Context, a *app, _ []string) []string {
	s, err := a.open()
	if err != nil {
		return nil
	}
	labs, _ := s.Labs()
	var out []string
	for _, l := range labs {
		out = append(out, l.Name)
	}
	return out
}

func isoNames(_ context.Context, a *app, _ []string) []string {
	s, err := a.open()
	if err != nil {
		return nil
	}
	list, _ := s.ISOs().List()
	var out []string
	for _, e := range list {
		out = append(out, e.Name)
	}
	return out
}
