package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"vlab/emulator"
	"vlab/machine"
)

// specFlags are the hardware flags `create` and `edit` share. apply changes
// only what the user gave, so `edit` leaves every other setting alone and
// `create` keeps NewSpec's defaults.
type specFlags struct {
	arch, mach, cpu, memory, disk, iso, kernel, initrd, appendArgs, dtb string
	accel, display, netMode, firmware, boot                             string
	cpus                                                                int
	gdb                                                                 bool
	agent                                                               string // --agent on|off
	forwards                                                            []string
	restrict                                                            bool
	nics                                                                []string // --nic (issue 6, network.go)
	shares, unshare                                                     []string // --share, --unshare TAG (machine/share.go)
}

func (sf *specFlags) register(f *pflag.FlagSet, create bool) {
	f.StringVar(&sf.mach, "machine", "", "QEMU machine type (default: the arch's: q35, pc, virt, pseries, mac99)")
	f.StringVar(&sf.cpu, "cpu", "", "QEMU CPU model (default: host with KVM, the arch's default with TCG)")
	f.IntVar(&sf.cpus, "cpus", 1, "virtual CPUs")
	f.StringVar(&sf.memory, "memory", "1G", "memory, e.g. 512M or 2G")
	if create {
		f.StringVar(&sf.disk, "disk", "", "create a qcow2 disk of this size, e.g. 20G (default 20G with --iso, none otherwise)")
	}
	f.StringVar(&sf.iso, "iso", "", "installer or live ISO to put in the CD drive")
	f.StringVar(&sf.kernel, "kernel", "", "boot this kernel directly")
	f.StringVar(&sf.initrd, "initrd", "", "initrd for --kernel")
	f.StringVar(&sf.appendArgs, "append", "", "kernel command line for --kernel (e.g. console=ttyS0)")
	f.StringVar(&sf.dtb, "dtb", "", "device tree blob for --kernel (ARM)")
	f.StringVar(&sf.boot, "boot", "", "boot order in QEMU letters: c disk, d cdrom, n network (default: disk, then cdrom)")
	f.StringVar(&sf.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	f.StringVar(&sf.display, "display", "vnc", "graphical console: vnc (with a USB tablet) or none")
	f.StringVar(&sf.firmware, "firmware", "", "firmware: bios or uefi (default: the arch's)")
	f.StringVar(&sf.netMode, "net", "user", "network: user (NAT; the guest also reaches the host's loopback as 10.0.2.2), sandbox (internet but not the host, through passt), isolated, bridge:BR, tap:IF, lab:NAME or none")
	f.StringArrayVar(&sf.nics, "nic", nil, "a NIC as MODE[,model=MODEL][,mac=MAC], MODE as for --net (repeatable; replaces the list)")
	f.StringArrayVar(&sf.forwards, "forward", nil, "port forward proto:[hostaddr:]hostport:guestport, e.g. tcp:2222:22 (repeatable; replaces the list)")
	f.BoolVar(&sf.restrict, "isolated", false, "user network with restrict=on: the guest reaches nothing outside; forwards still work")
	f.StringArrayVar(&sf.shares, "share", nil, "share a host folder: HOSTDIR[,tag=TAG][,ro][,9p|,virtiofs][,mount=/PATH] (repeatable; the tag defaults to the folder's name; cloud images mount it at /mnt/TAG)")
	if !create {
		f.StringArrayVar(&sf.unshare, "unshare", nil, "stop sharing the folder with this tag (repeatable)")
	}
	registerGDB(f, &sf.gdb)
	f.StringVar(&sf.agent, "agent", "", "QEMU guest agent channel: on or off (default: on for Linux profiles and cloud images; used by exec, cp, snapshot freeze and stop)")
}

// agentChoice is --agent: nil when not given.
func (sf *specFlags) agentChoice(cmd *cobra.Command) (*bool, error) {
	if !cmd.Flags().Changed("agent") {
		return nil, nil
	}
	var on bool
	switch sf.agent {
	case "on", "true", "yes":
		on = true
	case "off", "false", "no":
	default:
		return nil, usageError{fmt.Errorf("--agent %q: use on or off", sf.agent)}
	}
	return &on, nil
}

// applyAgent writes --agent into spec (create gives it to machine.Build,
// which applies it after the profile's default).
func (sf *specFlags) applyAgent(cmd *cobra.Command, spec *machine.Spec) error {
	on, err := sf.agentChoice(cmd)
	if on != nil {
		spec.Agent = *on
	}
	return err
}

// applyShares removes the --unshare tags and adds the --share folders.
func (sf *specFlags) applyShares(cmd *cobra.Command, spec *machine.Spec) error {
	for _, tag := range sf.unshare {
		i := slices.IndexFunc(spec.Shares, func(s machine.Share) bool { return s.Tag == tag })
		if i < 0 {
			var tags []string
			for _, s := range spec.Shares {
				tags = append(tags, s.Tag)
			}
			have := "it shares no folder"
			if len(tags) > 0 {
				have = "its tags: " + strings.Join(tags, ", ")
			}
			return usageError{fmt.Errorf("--unshare %s: %s has no share with that tag (%s)", tag, spec.Name, have)}
		}
		spec.Shares = slices.Delete(spec.Shares, i, i+1)
	}
	for _, v := range sf.shares {
		sh, err := machine.ParseShare(v)
		if err != nil {
			return usageError{fmt.Errorf("--share: %w", err)}
		}
		spec.Shares = append(spec.Shares, sh)
	}
	if cmd.Flags().Changed("share") {
		if err := machine.CheckShares(spec.Shares); err != nil {
			return usageError{fmt.Errorf("--share: %w", err)}
		}
	}
	return nil
}

// apply writes the flags the user set into spec.
func (sf *specFlags) apply(cmd *cobra.Command, spec *machine.Spec) error {
	for _, step := range []func(*cobra.Command, *machine.Spec) error{sf.applyHardware, sf.applyAgent, sf.applyBoot, sf.applyNetwork, sf.applyShares} {
		if err := step(cmd, spec); err != nil {
			return err
		}
	}
	return nil
}

// applyHardware writes the machine, CPU, memory, accelerator, display and
// firmware flags.
func (sf *specFlags) applyHardware(cmd *cobra.Command, spec *machine.Spec) error {
	set := cmd.Flags().Changed
	var err error
	if set("machine") {
		spec.Machine = sf.mach
	}
	if set("cpu") {
		spec.CPU = sf.cpu
	}
	if set("cpus") {
		spec.CPUs = sf.cpus
	}
	if set("gdb") {
		spec.GDB = sf.gdb
	}
	if set("memory") {
		if spec.Memory, err = machine.ParseSize(sf.memory); err != nil {
			return usageError{fmt.Errorf("--memory: %w", err)}
		}
	}
	if set("accel") {
		if spec.Accel, err = emulator.ParseAccel(sf.accel); err != nil {
			return usageError{fmt.Errorf("--accel: %w", err)}
		}
	}
	if set("display") {
		switch sf.display {
		case "vnc", "none":
			spec.Display = emulator.Display(sf.display)
		default:
			return usageError{fmt.Errorf("--display %q unknown: use vnc or none", sf.display)}
		}
	}
	if set("firmware") {
		switch sf.firmware {
		case "", "bios", "uefi":
			spec.Firmware = emulator.Firmware(sf.firmware)
		default:
			return usageError{fmt.Errorf("--firmware %q unknown: use bios or uefi", sf.firmware)}
		}
	}
	return nil
}

// applyBoot writes the boot media, direct-boot files, boot order and disk.
func (sf *specFlags) applyBoot(cmd *cobra.Command, spec *machine.Spec) error {
	set := cmd.Flags().Changed
	var err error
	for _, b := range []struct {
		flag string
		dst  *string
		val  string
	}{{"iso", &spec.Boot.ISO, sf.iso}, {"kernel", &spec.Boot.Kernel, sf.kernel}, {"initrd", &spec.Boot.Initrd, sf.initrd},
		{"append", &spec.Boot.Append, sf.appendArgs}, {"dtb", &spec.Boot.DTB, sf.dtb}, {"boot", &spec.Boot.Order, sf.boot}} {
		if !set(b.flag) {
			continue
		}
		*b.dst = b.val
		if b.flag == "iso" || b.flag == "kernel" || b.flag == "initrd" || b.flag == "dtb" {
			// Absolute now: a later `vlab start` may run in another folder.
			if *b.dst, err = machine.AbsPath(b.val); err != nil {
				return usageError{fmt.Errorf("--%s: %w", b.flag, err)}
			}
		}
	}
	if set("disk") {
		size, err := machine.ParseSize(sf.disk)
		if err != nil {
			return usageError{fmt.Errorf("--disk: %w", err)}
		}
		spec.Disks = []machine.DiskSpec{{File: "disk0.qcow2", Size: size, Format: "qcow2"}}
	}
	return nil
}

// applyNetwork writes --net or --nic, then --isolated and --forward onto
// the first NIC.
func (sf *specFlags) applyNetwork(cmd *cobra.Command, spec *machine.Spec) error {
	set := cmd.Flags().Changed
	if set("net") {
		switch sf.netMode {
		case "user":
			if len(spec.NICs) == 0 || spec.NICs[0].Mode != emulator.NetUser {
				n := machine.NICSpec{Mode: emulator.NetUser}
				if len(spec.NICs) > 0 && spec.NICs[0].Mode == emulator.NetSandbox {
					n.MAC, n.Forwards = spec.NICs[0].MAC, spec.NICs[0].Forwards // sandbox → user keeps them
				}
				spec.NICs = []machine.NICSpec{n}
			}
		case "none":
			spec.NICs = nil
		default:
			n, err := machine.ParseNIC(sf.netMode)
			if err != nil {
				return usageError{fmt.Errorf("--net: %w", err)}
			}
			if len(spec.NICs) > 0 && n.MAC == "" {
				n.MAC = spec.NICs[0].MAC
			}
			if len(spec.NICs) > 0 && n.Mode == emulator.NetSandbox && spec.NICs[0].Mode == emulator.NetUser {
				n.Forwards = spec.NICs[0].Forwards // user → sandbox keeps the forwards
			}
			spec.NICs = []machine.NICSpec{n}
		}
	}
	if set("nic") {
		if set("net") {
			return usageError{errors.New("--net and --nic both set the NICs: use one")}
		}
		old := spec.NICs
		spec.NICs = nil
		for i, s := range sf.nics {
			n, err := machine.ParseNIC(s)
			if err != nil {
				return usageError{fmt.Errorf("--nic: %w", err)}
			}
			if n.MAC == "" && i < len(old) {
				n.MAC = old[i].MAC // a NIC keeps its MAC across edits
			}
			if n.MAC == "" {
				n.MAC = machine.NewMAC()
			}
			spec.NICs = append(spec.NICs, n)
		}
	}
	if set("isolated") && !set("net") && !set("nic") && len(spec.NICs) > 0 && spec.NICs[0].Mode == emulator.NetSandbox {
		spec.NICs[0].Mode = emulator.NetUser // --isolated on a profile's sandbox default
	}
	if set("forward") || set("isolated") {
		sandboxFwd := len(spec.NICs) > 0 && spec.NICs[0].Mode == emulator.NetSandbox && !set("isolated")
		if !sandboxFwd && (len(spec.NICs) == 0 || spec.NICs[0].Mode != emulator.NetUser) {
			return usageError{errors.New("--forward needs --net user or sandbox, --isolated needs --net user")}
		}
		nic := &spec.NICs[0]
		if set("isolated") {
			nic.Restrict = sf.restrict
		}
		if set("forward") {
			nic.Forwards = nil
			for _, f := range sf.forwards {
				fw, err := machine.ParseForward(f)
				if err != nil {
					return usageError{fmt.Errorf("--forward: %w", err)}
				}
				nic.Forwards = append(nic.Forwards, fw)
			}
		}
	}
	return nil
}
