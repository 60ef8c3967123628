package emulator

import (
	"errors"
	"fmt"
)

const (
	// AgentChardevID is the chardev of the guest agent's channel.
	AgentChardevID = "qga0"
	// AgentSerialID is the virtio-serial controller the channel sits on.
	AgentSerialID = "vser0"
	// AgentChannel is the port name qemu-guest-agent looks for
	// (/dev/virtio-ports/org.qemu.guest_agent.0 in the guest).
	AgentChannel = "org.qemu.guest_agent.0"
)

// AgentSupported reports whether a guest of arch on machine ("" = the
// arch's default) can have the guest agent channel: it needs a PCI bus
// for virtio-serial-pci (every board vlab knows but isapc has one).
func AgentSupported(arch Arch, machine string) bool {
	if machine == "" {
		info, ok := archTable[arch]
		if !ok {
			return false
		}
		machine = info.machines[0]
	}
	b, ok := boardFor(arch, machine)
	return ok && b.pci
}

// addAgent puts the guest agent channel on the command line: a unix
// socket server in the VM's private runtime folder (never TCP: the agent
// runs commands as root in the guest), a virtio-serial controller and the
// port qemu-ga opens. Recorded and replayed runs get none: a host socket
// feeding the guest is input the replay cannot reproduce.
func (b *builder) addAgent() error {
	cfg := b.cfg
	if !cfg.Agent || cfg.Instrument.Replay.Mode != ReplayOff {
		return nil
	}
	if cfg.Paths.Agent == "" {
		return errors.New("the guest agent channel needs a socket path (Paths.Agent)")
	}
	if len(cfg.Paths.Agent) > maxSocketPath {
		return fmt.Errorf("guest agent socket path %s is longer than %d bytes", cfg.Paths.Agent, maxSocketPath)
	}
	if !b.board.pci {
		return fmt.Errorf("machine %s has no PCI bus for the guest agent's virtio-serial channel: set agent off (vlab edit %s --agent off)", b.machine, cfg.Name)
	}
	b.add(socketChardev{id: AgentChardevID, path: cfg.Paths.Agent}.args()...)
	b.add("-device", newOpt("virtio-serial-pci").set("id", AgentSerialID).String(),
		"-device", newOpt("virtserialport").set("chardev", AgentChardevID).set("name", AgentChannel).String())
	return nil
}
