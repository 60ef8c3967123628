package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"vlab/machine"
)

// imageFlags are `vlab create --image SOURCE` and its companions.
type imageFlags struct {
	image, format, sha256, user, diskSize string
}

func (f *imageFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.image, "image", "", "make the VM from a cloud image: a gallery id (`vlab gallery`), an http(s) URL or a qcow2/raw/vmdk file; gets a login user, your SSH key and an SSH forward; an image without a boot loader boots with --kernel/--initrd/--append")
	fs.StringVar(&f.format, "image-format", "", "the --image file's format when it cannot be detected (raw)")
	fs.StringVar(&f.sha256, "image-sha256", "", "expected SHA-256 of an --image URL")
	fs.StringVar(&f.user, "user", machine.DefaultUser, "login user of an --image VM")
}

// run creates spec from the image instead of `Store.Create`: --disk grows
// the image's copy, --cloud-init is merged into vlab's seed.
func (f *imageFlags) run(cmd *cobra.Command, a *app, s *machine.Store, spec *machine.Spec, sf *specFlags, cp *createProfile) error {
	o := machine.ImageCreate{Format: f.format, User: f.user}
	if f.diskSize != "" {
		size, err := machine.ParseSize(f.diskSize)
		if err != nil {
			return usageError{fmt.Errorf("--disk: %w", err)}
		}
		o.Disk = size
	}
	if err := machine.ValidateUser(f.user); err != nil {
		return usageError{fmt.Errorf("--user: %w", err)}
	}
	if cp.ci != nil {
		o.UserData = cp.ci.UserData
	}
	if _, err := s.Load(spec.Name); err == nil {
		return fmt.Errorf("create vm %q: %w: pick another name or `vlab delete %s` first", spec.Name, machine.ErrExists, spec.Name)
	}
	bar := newProgressBar(cmd.ErrOrStderr(), "downloading")
	img, _, err := s.ResolveImage(cmd.Context(), f.image, spec.Arch.String(), f.sha256, machine.FetchOptions{Progress: bar.download})
	bar.finish()
	if errors.Is(err, machine.ErrNoGalleryEntry) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	o.Image = img // the SSH forward and agent channel: machine.Build (Request.Image)
	conv := newProgressBar(cmd.ErrOrStderr(), "converting")
	o.Progress = conv.update
	err = s.CreateFromImage(cmd.Context(), spec, o)
	conv.finish()
	if err != nil {
		return err
	}
	if a.json {
		return a.printShow(cmd, s, spec.Name)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "created %s from %s (user %s, ssh forward on a free loopback port); start it with `vlab start %s`, then `vlab ssh %s`\n",
		spec.Name, f.image, f.user, spec.Name, spec.Name)
	for _, sh := range spec.Shares {
		fmt.Fprintf(cmd.OutOrStdout(), "share %s -> %s%s\n", sh.HostDir, sh.GuestPath(), map[bool]string{true: " (read-only)"}[sh.ReadOnly])
	}
	return nil
}

// disk takes --disk away from the spec flags (which would add an empty
// disk) and keeps it as the image's new size.
func (f *imageFlags) disk(cmd *cobra.Command, v string) string {
	f.diskSize = v
	if fl := cmd.Flags().Lookup("disk"); fl != nil {
		fl.Changed = false
	}
	return ""
}
