package e2e

import (
	"testing"
	"time"

	"vlab/internal/fixture"
)

// TestGuestBadInput: the guest workflow's mistakes each get one line that
// names the fix and a non-zero exit: ssh/exec/cp to a stopped VM, to a
// running VM without an SSH forward, to a VM that does not exist, and a
// gallery id with a typo (close matches listed).
func TestGuestBadInput(t *testing.T) {
	e := newEnv(t)

	// Unknown gallery ids (the built-in gallery): close matches, exit 2.
	e.fail([]string{`"debian-13"`, "did you mean", "debian-12", "vlab gallery"}, "create", "x", "--image", "debian-13")
	e.fail([]string{`"ubuntu-24.4"`, "did you mean", "ubuntu-24.04"}, "create", "x", "--os", "ubuntu-24.4")
	e.fail([]string{`"zzzzzz"`, "vlab gallery"}, "create", "x", "--image", "zzzzzz")
	for _, args := range [][]string{{"--image", "debian-13"}, {"--os", "ubuntu-24.4"}} {
		if _, _, code := e.run(append([]string{"create", "x"}, args...)...); code != 2 {
			t.Errorf("create x %v exited %d, want 2", args, code)
		}
	}
	if names := e.vmNames(); len(names) != 0 {
		t.Errorf("refused creates left vms %v", names)
	}

	// No such VM.
	e.fail([]string{"ghost", "no such vm"}, "ssh", "ghost")
	e.fail([]string{"ghost", "no such vm"}, "exec", "ghost", "--", "true")

	// A stopped VM (with an SSH forward): start it first.
	e.ok("create", "off", "--display", "none", "--forward", "tcp:auto:22")
	for _, args := range [][]string{{"ssh", "off"}, {"ssh", "off", "--", "uname"}, {"exec", "off", "--", "true"}, {"cp", e.home, "off:/tmp/"}} {
		e.fail([]string{`"off"`, "stopped", "vlab start off"}, args...)
	}

	// A running VM without a forward to guest port 22: add one.
	g := guests["x86_64"]
	// It has an agent channel, but no agent runs in the guest: the channel
	// stays closed, and auto falls through to SSH.
	e.createGuest("nossh", g, nil, "--display", "none", "--isolated", "--agent", "on")
	e.ok("start", "nossh")
	e.waitSerial("nossh", fixture.MarkerBootOK)
	for _, args := range [][]string{{"ssh", "nossh"}, {"ssh", "nossh", "--", "uname"}, {"exec", "nossh", "--", "true"}, {"cp", "nossh:/etc/hostname", e.home}} {
		e.fail([]string{`"nossh"`, "no ssh forward", "vlab net forward add nossh tcp:auto:22"}, args...)
	}
	e.fail([]string{`"nossh"`, "no guest agent", "not opened the agent's channel", "qemu-guest-agent"}, "exec", "--via", "agent", "nossh", "--", "true")
	e.ok("stop", "--force", "nossh")
	waitFor(t, "nossh to stop", time.Minute, func() bool { return e.state("nossh") == "stopped" })
}
