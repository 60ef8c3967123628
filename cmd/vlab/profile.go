package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"vlab/emulator"
	"vlab/machine"
	"vlab/profiles"
)

func (a *app) profilesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profiles [NAME]",
		Short: "List the OS profiles (virtual hardware presets), or show one",
		Example: `  vlab profiles
  vlab profiles win98
  vlab create retro --profile win98 --iso win98se.iso`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 1 {
				p, err := profiles.Get(args[0])
				if err != nil {
					return err
				}
				if a.json {
					return printResult(out, p)
				}
				return printProfile(cmd, p)
			}
			list := profiles.List()
			if a.json {
				return printJSON(out, list)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tARCH\tMACHINE\tFIRMWARE\tMEMORY\tDISK\tOS")
			for _, p := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Arch, machineLabel(p), p.Firmware,
					machine.Size(p.MemoryBytes()), machine.Size(p.DiskBytes()), p.Title)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON")
	return cmd
}

func machineLabel(p profiles.Profile) string {
	if len(p.MachineOpts) == 0 {
		return p.Machine
	}
	return p.Machine + "," + strings.Join(p.MachineOpts, ",")
}

func printProfile(cmd *cobra.Command, p profiles.Profile) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	row("name", p.Name)
	row("os", p.Title)
	row("arch", p.Arch.String())
	row("machine", machineLabel(p))
	row("cpu", p.CPU)
	row("cpus", fmt.Sprint(p.CPUs))
	row("memory", machine.Size(p.MemoryBytes()).String())
	row("disk", fmt.Sprintf("%s (%s)", machine.Size(p.DiskBytes()), p.DiskBus))
	row("firmware", p.Firmware)
	if p.Net != "" {
		row("nic", p.NICModel+", "+string(p.Net)+" network")
	} else {
		row("nic", p.NICModel)
	}
	row("display", p.VGA)
	row("input", string(p.Input))
	row("sound", p.Sound)
	if p.RTCLocalTime {
		row("clock", "local time")
	}
	row("boot order", p.BootOrder)
	if p.Accel != emulator.AccelAuto {
		row("accel", p.Accel.String())
	}
	row("console", p.Console)
	if err := w.Flush(); err != nil {
		return err
	}
	for _, n := range p.Notes {
		fmt.Fprintf(cmd.OutOrStdout(), "note: %s\n", n)
	}
	return nil
}

// detectJSON is the `vlab detect --json` object.
type detectJSON struct {
	Path          string   `json:"path"`
	VolumeID      string   `json:"volume_id"`
	SystemID      string   `json:"system_id"`
	PublisherID   string   `json:"publisher_id"`
	ApplicationID string   `json:"application_id"`
	Bootable      bool     `json:"bootable"`
	Platforms     []string `json:"platforms"`
	OS            string   `json:"os"`      // short id, or "unknown"
	OSName        string   `json:"os_name"` // or "unknown"
	Arch          string   `json:"arch"`    // or "unknown"
	Profile       string   `json:"profile"` // or "unknown"
	Source        string   `json:"source"`  // osinfo-db, built-in or ""
	Candidates    []string `json:"candidates,omitempty"`
}

func (a *app) detectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "detect ISO",
		Short: "Identify an installer ISO and the profile it maps to",
		Long: `detect reads the ISO's volume descriptor (volume, system, publisher and application ids,
El Torito boot entries) and matches it against osinfo-db (/usr/share/osinfo, or $OSINFO_SYSTEM_DIR)
and vlab's built-in rules. An ISO neither knows is reported as unknown, never guessed.`,
		Args: exactArgs("ISO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			iso, err := a.resolveISO(args[0])
			if err != nil {
				return err
			}
			d, err := profiles.Detect(iso)
			if err != nil {
				return err
			}
			v := detectJSON{
				Path: iso, VolumeID: d.Media.VolumeID, SystemID: d.Media.SystemID, PublisherID: d.Media.PublisherID,
				ApplicationID: d.Media.ApplicationID, Bootable: d.Media.Bootable, Platforms: d.Media.Platforms,
				OS: d.OS, OSName: d.OSLabel(), Arch: d.Arch.String(), Profile: d.ProfileName(), Source: d.Source,
				Candidates: d.Candidates,
			}
			if v.OS == "" {
				v.OS = profiles.Unknown
			}
			if v.Platforms == nil {
				v.Platforms = []string{}
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), v)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "iso:\t%s\n", iso)
			fmt.Fprintf(w, "volume id:\t%q\n", v.VolumeID)
			for _, f := range []struct{ k, v string }{{"system id", v.SystemID}, {"publisher", v.PublisherID}, {"application", v.ApplicationID}} {
				if f.v != "" {
					fmt.Fprintf(w, "%s:\t%q\n", f.k, f.v)
				}
			}
			boot := "no (not bootable as a CD)"
			if v.Bootable {
				boot = strings.Join(v.Platforms, ", ")
			}
			fmt.Fprintf(w, "boots:\t%s\n", boot)
			osLabel := v.OSName
			if d.Source != "" && d.OS != "" {
				osLabel += " (" + d.OS + ", " + d.Source + ")"
			}
			fmt.Fprintf(w, "os:\t%s\n", osLabel)
			if d.Arch != emulator.ArchUnknown {
				fmt.Fprintf(w, "arch:\t%s\n", v.Arch)
			}
			prof := v.Profile
			if !d.Known() {
				prof += ": pick one with --profile (see `vlab profiles`)"
			}
			fmt.Fprintf(w, "profile:\t%s\n", prof)
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, "print JSON")
	return cmd
}

// createProfile holds the profile and cloud-init flags of `vlab create`.
type createProfile struct {
	name      string
	cloudInit string
	osID      string // --os: a gallery ISO entry

	profile *profiles.Profile // resolved by prepare
	why     string            // "detected from the ISO" or ""
	ci      *machine.CloudInit
}

func (cp *createProfile) register(f *pflag.FlagSet) {
	f.StringVar(&cp.name, "profile", "", "OS profile with the right virtual hardware, see `vlab profiles` (default: detected from --iso)")
	f.StringVar(&cp.cloudInit, "cloud-init", "", "cloud-init user-data file: builds a NoCloud seed ISO (volume id cidata) attached read-only")
	f.StringVar(&cp.osID, "os", "", "install from the gallery: the installer ISO of this id (`vlab gallery`) is downloaded once, checksum-verified, and put in the CD drive with its OS profile")
}

// galleryISO resolves --os ID: the gallery entry for arch (an installer
// ISO), downloaded into the ISO library unless it is there (resumed,
// checked, with a progress bar on stderr). It returns the ISO's path; the
// entry's profile becomes the VM's unless --profile names another.
func (cp *createProfile) galleryISO(cmd *cobra.Command, a *app, arch emulator.Arch) (string, error) {
	for _, other := range []string{"iso", "image"} {
		if cmd.Flags().Changed(other) {
			return "", usageError{fmt.Errorf("--os and --%s both give the VM's system: use one", other)}
		}
	}
	s, err := a.open()
	if err != nil {
		return "", err
	}
	g, err := s.Gallery()
	if err != nil {
		return "", err
	}
	e, err := g.Find(cp.osID, arch.String())
	if err != nil {
		return "", usageError{err}
	}
	if e.Kind != machine.KindISO {
		return "", usageError{fmt.Errorf("gallery: %s is a cloud image, not an installer ISO: use --image %s", e.ID, e.ID)}
	}
	if cp.name == "" {
		cp.name, cp.why = e.Profile, "from gallery entry "+e.ID
	}
	bar := newProgressBar(cmd.ErrOrStderr(), "downloading")
	p, err := s.FetchGallery(cmd.Context(), e, machine.FetchOptions{Progress: bar.download})
	bar.finish()
	if err != nil {
		return "", err
	}
	return p, nil
}

// prepare resolves the profile (given, or detected from the ISO) and reads
// the cloud-init file, and returns the arch the VM gets: --arch when given
// (it must suit the profile), else the profile's.
func (cp *createProfile) prepare(cmd *cobra.Command, a *app, sf *specFlags) (emulator.Arch, error) {
	if cp.osID != "" {
		ar, err := emulator.ParseArch(sf.arch)
		if err != nil {
			return emulator.ArchUnknown, usageError{err}
		}
		iso, err := cp.galleryISO(cmd, a, ar)
		if err != nil {
			return emulator.ArchUnknown, err
		}
		if err := cmd.Flags().Set("iso", iso); err != nil { // as if given: --iso PATH
			return emulator.ArchUnknown, err
		}
	}
	if sf.iso != "" {
		iso, err := a.resolveISO(sf.iso)
		if err != nil {
			return emulator.ArchUnknown, err
		}
		sf.iso = iso
	}
	ar, err := emulator.ParseArch(sf.arch)
	if err != nil {
		return emulator.ArchUnknown, usageError{err}
	}
	archSet := cmd.Flags().Changed("arch")
	switch {
	case cp.name != "":
		p, err := profiles.Get(cp.name)
		if err != nil {
			return emulator.ArchUnknown, usageError{err}
		}
		cp.profile = &p
	case sf.iso != "" && sf.kernel == "":
		if d, err := profiles.Detect(sf.iso); err == nil && d.Known() {
			if p, err := profiles.Get(d.Profile); err == nil && (!archSet || machine.ProfileFits(ar, p)) {
				cp.profile, cp.why = &p, "detected "+d.OSLabel()+" from the ISO"
			}
		}
	}
	if cp.cloudInit != "" {
		data, err := os.ReadFile(cp.cloudInit)
		if err != nil {
			return emulator.ArchUnknown, usageError{fmt.Errorf("--cloud-init: %w", err)}
		}
		ci := machine.CloudInit{UserData: data}
		if err := ci.Validate(); err != nil {
			return emulator.ArchUnknown, usageError{fmt.Errorf("--cloud-init %s: %w", cp.cloudInit, err)}
		}
		cp.ci = &ci
	}
	if cp.profile == nil {
		return ar, nil
	}
	if !archSet {
		return cp.profile.Arch, nil
	}
	if !machine.ProfileFits(ar, *cp.profile) {
		return emulator.ArchUnknown, usageError{fmt.Errorf("--arch %s does not suit profile %s (a %s profile): drop --arch or pick another profile", ar, cp.profile.Name, cp.profile.Arch)}
	}
	return ar, nil
}

// finish attaches the cloud-init seed to the created VM, deleting the VM
// again when that fails.
func (cp *createProfile) finish(cmd *cobra.Command, s *machine.Store, spec *machine.Spec) error {
	if cp.ci != nil {
		if err := s.SetCloudInit(cmd.Context(), spec.Name, *cp.ci); err != nil {
			_ = s.Delete(cmd.Context(), spec.Name)
			return err
		}
	}
	return nil
}

// report prints what the profile chose and its notes (not in --json mode).
func (cp *createProfile) report(cmd *cobra.Command, spec *machine.Spec) {
	out := cmd.OutOrStdout()
	if cp.profile != nil {
		how := ""
		if cp.why != "" {
			how = " (" + cp.why + ")"
		}
		fmt.Fprintf(out, "profile %s%s: %s\n", cp.profile.Name, how, cp.profile.Title)
		for _, n := range cp.profile.Notes {
			fmt.Fprintf(out, "note: %s\n", n)
		}
	}
	if cp.ci != nil {
		fmt.Fprintf(out, "cloud-init: seed %s attached read-only\n", machine.SeedFile)
	}
	if spec.Boot.Kernel != "" && !strings.Contains(spec.Boot.Append, "console=") {
		if c := machine.ConsoleFor(spec); c != "" {
			fmt.Fprintf(out, "hint: add console=%s to --append to see the kernel on the serial console (`vlab console %s`)\n", c, spec.Name)
		}
	}
}
