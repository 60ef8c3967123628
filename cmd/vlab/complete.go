package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"vlab/emulator"
	"vlab/machine"
	"vlab/profiles"
)

// completer lists candidates for one argument or flag value. cmd is the
// command being completed (its flags are parsed: --arch, --profile).
type completer func(cmd *cobra.Command, a *app, args []string) []string

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
	"debug":            {vmsIn(nil)}, // a stopped VM is started for it
	"monitor":          {vmsIn(stateActive)},
	"trace":            {vmsIn(stateActive)},
	"replay":           {vmsIn(nil), runIDs}, // --list and --rm work on any
	"ssh":              {vmsIn(stateRunning)},
	"exec":             {vmsIn(stateRunning)},
	"export":           {vmsIn(stateStopped)},
	"import":           {}, // FILE.ova|FILE.ovf: the shell completes paths
	"lab up":           {}, // FILE.toml: the shell completes paths
	"lab down":         {},
	"lab reset":        {},
}

// argFuncs are commands whose arguments need more than one completer per
// position (cp's NAME:PATH words).
var argFuncs = map[string]func(a *app) cobra.CompletionFunc{
	"cp": cpCompletion,
}

// flagCompletion says what a flag's value completes to, on every command
// that has the flag.
var flagCompletion = map[string]completer{
	"profile":  profileNames,
	"arch":     func(*cobra.Command, *app, []string) []string { return emulator.ArchNames() },
	"accel":    fixed("auto", "kvm", "tcg"),
	"display":  fixed("vnc", "none"),
	"firmware": fixed("bios", "uefi"),
	"format":   fixed("qcow2", "raw"),
	"bus":      fixed("virtio", "ide", "sata", "scsi", "nvme"),
	"snapshot": func(cmd *cobra.Command, a *app, args []string) []string {
		return snapshotTags(cmd, a, args[:min(len(args), 1)])
	},
	"iso":     isoNames,
	"machine": machineTypes,
	"image":   galleryImages,
}

// flagOverride replaces flagCompletion for one command's flag of the same
// name but another meaning, keyed "COMMAND PATH --FLAG".
var flagOverride = map[string]completer{
	"export --format":      fixed("ova", "ovf", "libvirt"),
	"disk import --format": fixed(machine.ImportFormats...),
	"replay --rm":          runIDs,
}

// fileFlags may also name a file (or URL), so the shell's path completion
// stays on beside the candidates.
var fileFlags = map[string]bool{"iso": true, "image": true}

// wireCompletion attaches the completers above to the tree.
func (a *app) wireCompletion(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if f, ok := argFuncs[path]; ok {
			c.ValidArgsFunction = f(a)
		} else if comps, ok := argCompletion[path]; ok {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) >= len(comps) {
					return nil, cobra.ShellCompDirectiveDefault // files
				}
				return comps[len(args)](cmd, a, args), cobra.ShellCompDirectiveNoFileComp
			}
		}
		// One pass over the command's own flags: LocalFlags builds a new
		// set on every call, and this runs for every command at start-up.
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			name := f.Name
			comp, ok := flagOverride[path+" --"+name]
			dir := cobra.ShellCompDirectiveNoFileComp
			if general, isGeneral := flagCompletion[name]; isGeneral {
				if !ok {
					comp = general
				}
				ok = true
				if fileFlags[name] {
					dir = cobra.ShellCompDirectiveDefault // a library name or a file
				}
			}
			if !ok {
				return
			}
			_ = c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				return comp(cmd, a, args), dir
			})
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func fixed(vals ...string) completer {
	return func(*cobra.Command, *app, []string) []string { return vals }
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
	return func(cmd *cobra.Command, a *app, _ []string) []string {
		ctx := cmd.Context()
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

func snapshotTags(cmd *cobra.Command, a *app, args []string) []string {
	if len(args) == 0 {
		return nil
	}
	s, err := a.open()
	if err != nil {
		return nil
	}
	tree, err := s.Snapshots(cmd.Context(), args[0])
	if err != nil {
		return nil
	}
	var out []string
	for _, sn := range tree.Snapshots {
		out = append(out, sn.Tag+"\t"+sn.Description)
	}
	return out
}

func profileNames(*cobra.Command, *app, []string) []string {
	var out []string
	for _, p := range profiles.List() {
		out = append(out, p.Name+"\t"+p.Title)
	}
	return out
}

func labNames(_ *cobra.Command, a *app, _ []string) []string {
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

func isoNames(_ *cobra.Command, a *app, _ []string) []string {
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

// runIDs completes the recorded runs of the VM named by args[0].
func runIDs(_ *cobra.Command, a *app, args []string) []string {
	if len(args) == 0 {
		return nil
	}
	s, err := a.open()
	if err != nil {
		return nil
	}
	runs, _ := s.Runs(args[0])
	var out []string
	for _, r := range runs {
		out = append(out, r.ID+"\trecorded "+r.Time.Local().Format("2006-01-02 15:04:05"))
	}
	return out
}

// cpCompletion completes `vlab cp [NAME:]SRC [NAME:]DST`: a word without a
// colon may start a VM side, so the running VMs are offered as "NAME:"
// (no space after: the guest path follows); when none matches, or the
// word is a host path, the shell completes files. A guest path is not
// completed (that would mean an SSH round trip per Tab).
func cpCompletion(a *app) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) >= 2 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		if len(args) == 1 {
			if _, _, remote := splitVMPath(args[0]); remote {
				return nil, cobra.ShellCompDirectiveDefault // exactly one side is in a VM: DST is a host path
			}
		}
		if _, _, remote := splitVMPath(toComplete); remote {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, n := range vmsIn(stateRunning)(cmd, a, args) {
			if strings.HasPrefix(n, toComplete) {
				out = append(out, n+":")
			}
		}
		if len(out) == 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return out, cobra.ShellCompDirectiveNoSpace
	}
}

// completionArch is the arch the VM being created or edited gets, as far
// as the command line so far says: --arch, else edit's VM's, else
// --profile's, else --arch's default.
func completionArch(cmd *cobra.Command, a *app, args []string) emulator.Arch {
	flags := cmd.Flags()
	if f := flags.Lookup("arch"); f != nil && f.Changed {
		ar, _ := emulator.ParseArch(f.Value.String())
		return ar
	}
	if cmd.Name() == "edit" && len(args) > 0 {
		if s, err := a.open(); err == nil {
			if spec, err := s.Load(args[0]); err == nil {
				return spec.Arch
			}
		}
		return emulator.ArchUnknown
	}
	if f := flags.Lookup("profile"); f != nil && f.Value.String() != "" {
		if p, err := profiles.Get(f.Value.String()); err == nil {
			return p.Arch
		}
	}
	if f := flags.Lookup("arch"); f != nil {
		ar, _ := emulator.ParseArch(f.DefValue)
		return ar
	}
	return emulator.HostArch()
}

// machineTypes completes --machine: the machine types the installed QEMU
// for the guest's arch lists (from the cached host probe: a cache hit runs
// no QEMU) that vlab supports, the plain families (q35, pc, virt...) first.
// Without a probed list, the arch's default.
func machineTypes(cmd *cobra.Command, a *app, args []string) []string {
	arch := completionArch(cmd, a, args)
	if arch == emulator.ArchUnknown {
		return nil
	}
	s, err := a.open()
	if err != nil {
		return nil
	}
	h, err := s.Host(cmd.Context())
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range h.Binaries[arch].Machines {
		if emulator.CheckMachine(arch, m) == nil {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return []string{emulator.DefaultMachine(arch)}
	}
	slices.SortStableFunc(out, func(x, y string) int {
		fx, fy := strings.Contains(x, "-"), strings.Contains(y, "-")
		switch {
		case fx == fy:
			return strings.Compare(x, y)
		case fy:
			return -1
		default:
			return 1
		}
	})
	return out
}

// galleryImages completes --image: the gallery's cloud images for the
// guest's arch, described by their title.
func galleryImages(cmd *cobra.Command, a *app, args []string) []string {
	s, err := a.open()
	if err != nil {
		return nil
	}
	g, err := s.Gallery()
	if err != nil {
		return nil
	}
	arch := completionArch(cmd, a, args).String()
	var out []string
	for _, e := range g.Entries {
		if e.Kind == machine.KindCloud && e.Arch == arch {
			out = append(out, e.ID+"\t"+e.Title)
		}
	}
	return out
}
