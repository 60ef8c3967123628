package emulator

import (
	"errors"
	"fmt"
	"strconv"
)

// ReplayMode says whether a run records or replays.
type ReplayMode int

const (
	ReplayOff ReplayMode = iota
	ReplayRecord
	ReplayPlay
)

func (m ReplayMode) String() string {
	switch m {
	case ReplayRecord:
		return "record"
	case ReplayPlay:
		return "replay"
	}
	return "off"
}

// ReplayShift is the icount shift of recorded runs: one instruction per
// 2^shift ns of virtual time. A fixed shift (not "auto") keeps the guest's
// sense of time the same in record and replay; 7 (128 ns a instruction,
// ~8 M instructions a virtual second) boots the fixture kernels in seconds.
const ReplayShift = 7

// Replay is QEMU's deterministic record/replay for one run (QEMU's
// docs/devel/replay.rst): every nondeterministic input (clocks, interrupts,
// serial input, disk completions) is written to File when recording and read
// back when replaying, with TCG counting instructions (-icount).
type Replay struct {
	Mode ReplayMode
	File string // the replay log (rrfile), in the run's folder
	// Snapshot names the snapshot QEMU takes at record start and loads at
	// replay start (rrsnapshot): reverse debugging needs it; "" = none.
	Snapshot string
	// State is the qcow2 image that holds the snapshot's VM state (RAM,
	// devices), attached to no device. The guest's own disks cannot hold
	// it: QEMU 7.2 writes the state through the first block backend it
	// finds, a disk's blkreplay node, whose flush waits for a replay event
	// that is only handled once the guest runs, and the record hangs
	// before the first instruction. Required with Snapshot.
	State string
}

// ReplayStateID is the block backend of a run's snapshot state image.
const ReplayStateID = "rr-state"

// args returns -icount for the run; nothing when off.
func (r Replay) args() []string {
	if r.Mode == ReplayOff {
		return nil
	}
	o := newOpt("shift="+strconv.Itoa(ReplayShift)).raw("rr="+r.Mode.String()).set("rrfile", r.File)
	if r.Snapshot == "" {
		return []string{"-icount", o.String()}
	}
	o.set("rrsnapshot", r.Snapshot)
	// A -drive, not a -blockdev: QEMU keeps the VM state on the first
	// snapshot-capable block backend, and -drive backends exist before
	// any device attaches one to a disk's node.
	state := newOpt("if=none").set("id", ReplayStateID).set("file", r.State).raw("format=qcow2")
	return []string{"-icount", o.String(), "-drive", state.String()}
}

// CheckReplay refuses a configuration QEMU's record/replay cannot make
// deterministic, with the reason a person can act on.
func CheckReplay(cfg Config) error {
	r := cfg.Instrument.Replay
	if r.Mode == ReplayOff {
		return nil
	}
	if r.File == "" {
		return errors.New("record/replay needs a log file (Instrument.Replay.File)")
	}
	if r.Snapshot != "" && r.State == "" {
		return errors.New("record/replay snapshot needs a state image (Instrument.Replay.State)")
	}
	if cfg.Accel.Accel == AccelKVM {
		return errors.New("record/replay needs TCG: KVM runs instructions QEMU cannot count; use --accel tcg")
	}
	if cfg.Accel.MultiThread {
		return errors.New("record/replay needs single-threaded TCG (thread=single)")
	}
	if cfg.Sound != "" {
		return fmt.Errorf("record/replay cannot replay sound card %q: remove it with `vlab edit NAME --sound none`", cfg.Sound)
	}
	for _, n := range cfg.NICs {
		if n.Mode != NetNone {
			return fmt.Errorf("record/replay cannot replay NIC %q (%s network): QEMU replays network traffic only through filter-replay, which vlab does not wire yet; remove the NIC for the recording", n.ID, n.Mode)
		}
	}
	for _, c := range cfg.CDROMs {
		if c.Path == "" {
			continue // an empty tray reads nothing
		}
		return errors.New("record/replay cannot replay CD-ROM media (removable, not through blkreplay): eject them with `vlab cdrom eject`")
	}
	if cfg.Display == DisplayVNC && (cfg.Input == InputAuto || cfg.Input == InputUSBTablet) {
		return errors.New("record/replay cannot replay USB devices (the VNC tablet): record with `vlab edit NAME --display none`")
	}
	return nil
}

// blkreplaySuffix names the blkreplay node over a disk's format node.
const blkreplaySuffix = "-rr"

// blkreplay puts a blkreplay node over disk node when the run records or
// replays (disk requests then complete in the recorded order) and attaches
// dev to it instead; otherwise it returns dev unchanged.
func (b *builder) blkreplay(node string, dev device) device {
	if b.cfg.Instrument.Replay.Mode == ReplayOff {
		return dev
	}
	rr := node + blkreplaySuffix
	b.add("-blockdev", newOpt("driver=blkreplay").set("node-name", rr).set("image", node).String())
	out := device{driver: dev.driver}
	for _, p := range dev.props {
		if p[0] == "drive" && p[1] == node {
			p[1] = rr
		}
		out.props = append(out.props, p)
	}
	return out
}
