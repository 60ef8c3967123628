package machine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"strings"

	"vlab/emulator"
	"vlab/profiles"
)

// NetLab is the NIC mode of a lab network: NICSpec.Lab names the network.
// QEMU sees such a NIC as a dgram netdev talking to the lab's switch (see
// lab.go).
const NetLab emulator.NetMode = "lab"

// AutoPort is how a forward's host port is written when vlab picks it: the
// kernel hands QEMU a free port when it binds the forward (host port 0), so
// concurrent starts never collide; the port is read back from QEMU and
// recorded in the runtime dir.
const AutoPort = "auto"

// slirpGuestIP is the address QEMU's user-mode DHCP server leases first, and
// where forwards without a guest address go.
const slirpGuestIP = "10.0.2.15"

// ParseNIC parses a NIC as written on the command line:
// MODE[,model=MODEL][,mac=MAC], where MODE is user, sandbox (internet
// through passt, not the host; sandbox.go), isolated (user mode with
// restrict=on), bridge:BRIDGE, tap:IFNAME or lab:NAME.
func ParseNIC(s string) (NICSpec, error) {
	bad := func(why string) (NICSpec, error) {
		return NICSpec{}, fmt.Errorf("nic %q %s: write MODE[,model=MODEL][,mac=MAC] with MODE user, sandbox, isolated, bridge:BR, tap:IF or lab:NAME", s, why)
	}
	parts := strings.Split(s, ",")
	var n NICSpec
	mode, arg, hasArg := strings.Cut(parts[0], ":")
	switch mode {
	case "user", "nat":
		n.Mode = emulator.NetUser
	case "isolated":
		n.Mode, n.Restrict = emulator.NetUser, true
	case "sandbox":
		n.Mode = emulator.NetSandbox
	case "bridge":
		n.Mode, n.Bridge = emulator.NetBridge, arg
	case "tap":
		n.Mode, n.Tap = emulator.NetTap, arg
	case "lab":
		n.Mode, n.Lab = NetLab, arg
	default:
		return bad("has an unknown mode")
	}
	needsArg := n.Mode == emulator.NetBridge || n.Mode == emulator.NetTap || n.Mode == NetLab
	if needsArg && arg == "" {
		return bad("names no " + mode)
	}
	if !needsArg && hasArg {
		return bad("gives " + mode + " an argument")
	}
	if needsArg && n.Mode != NetLab && !ifaceRE(arg) {
		return bad("has a bad name " + strconv.Quote(arg))
	}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return bad("has an option that is not key=value")
		}
		switch k {
		case "model":
			n.Model = v
		case "mac":
			hw, err := net.ParseMAC(v)
			if err != nil || len(hw) != 6 {
				return bad("has a bad mac (use 52:54:00:12:34:56)")
			}
			if hw[0]&1 != 0 {
				return bad("has a multicast mac (the first byte must be even)")
			}
			n.MAC = hw.String()
		default:
			return bad("has an unknown option " + strconv.Quote(k))
		}
	}
	if n.Mode == NetLab {
		if err := ValidateLabName(n.Lab); err != nil {
			return NICSpec{}, fmt.Errorf("nic %q: %w", s, err)
		}
	}
	return n, nil
}

// ifaceRE accepts Linux interface names (and lab names): 1-15 characters
// without '/', ':', ',', spaces or control characters.
func ifaceRE(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("/:,=", r) {
			return false
		}
	}
	return true
}

// ModeString describes the NIC's mode as ParseNIC reads it: user,
// isolated, bridge:br0, tap:tap0, lab:NAME.
func (n NICSpec) ModeString() string {
	switch n.Mode {
	case emulator.NetUser:
		if n.Restrict {
			return "isolated"
		}
		return "user"
	case emulator.NetBridge:
		return "bridge:" + n.Bridge
	case emulator.NetTap:
		return "tap:" + n.Tap
	case NetLab:
		return "lab:" + n.Lab
	}
	return string(n.Mode)
}

// StableMAC returns the MAC NIC i of VM name gets when its spec has none
// (a hand-written machine.toml): derived from the name, so it is the same
// at every start, in QEMU's locally administered 52:54:00 range.
func StableMAC(name string, i int) string {
	sum := sha256.Sum256([]byte("vlab-mac\x00" + name + "\x00" + strconv.Itoa(i)))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", sum[0], sum[1], sum[2])
}

// nicID is the netdev id of NIC i, shared by the command line and QMP.
func nicID(i int) string { return "net" + strconv.Itoa(i) }

// nicConfig maps NIC i of spec to the emulator's NIC: MAC filled in, lab
// NICs turned into a dgram netdev to the lab's switch, bridged NICs given
// the helper vlab found.
func (s *Store) nicConfig(spec *Spec, i int) (emulator.NIC, error) {
	n := spec.NICs[i]
	nic := emulator.NIC{
		ID:       nicID(i),
		Mode:     n.Mode,
		Model:    n.Model,
		MAC:      n.MAC,
		Restrict: n.Restrict,
		Bridge:   n.Bridge,
		Tap:      n.Tap,
	}
	if nic.MAC == "" {
		nic.MAC = StableMAC(spec.Name, i)
	}
	for _, f := range n.Forwards {
		nic.Forwards = append(nic.Forwards, emulator.Forward{Proto: f.Proto, HostAddr: f.HostAddr, HostPort: f.HostPort, GuestPort: f.GuestPort})
	}
	switch n.Mode {
	case emulator.NetBridge:
		nic.Helper, _ = findBridgeHelper()
	case emulator.NetSandbox: // passt serves the forwards (sandbox.go)
		nic.Passt, nic.Forwards = s.Paths(spec.Name).passtSocket(i), nil
	case NetLab:
		lp := s.labPaths(n.Lab)
		nic.Mode = emulator.NetSocket
		nic.Socket = emulator.UnixDgramNetdev(s.labPortSocket(spec.Name, i), lp.Socket)
	}
	return nic, nil
}

// OfferSSHForward gives spec's first user-mode NIC a forward from an auto
// host port to the guest's SSH port when profile p is a Linux profile and
// no forward reaches guest port 22 yet. It reports whether it added one.
// `vlab create` calls it for the profile it applies.
func OfferSSHForward(spec *Spec, p profiles.Profile) bool {
	if p.Family != "linux" {
		return false
	}
	for i := range spec.NICs {
		n := &spec.NICs[i]
		if !hasForwards(n.Mode) {
			continue
		}
		for _, f := range n.Forwards {
			if f.Proto == "tcp" && f.GuestPort == 22 {
				return false
			}
		}
		n.Forwards = append(n.Forwards, Forward{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 0, GuestPort: 22})
		return true
	}
	return false
}

// prepareNetwork checks, before QEMU starts, everything a spec's NICs need
// from the host, so a failure names the fix instead of QEMU's own error:
// fixed forward ports free, bridges usable through qemu-bridge-helper, tap
// interfaces present, lab networks defined and their switches running.
func (s *Store) prepareNetwork(ctx context.Context, spec *Spec) error {
	if err := checkForwards(spec); err != nil {
		return err
	}
	for i, n := range spec.NICs {
		switch n.Mode {
		case emulator.NetBridge:
			if err := CheckBridge(n.Bridge).Err(); err != nil {
				return err
			}
		case emulator.NetTap:
			if err := CheckTap(n.Tap); err != nil {
				return err
			}
		case emulator.NetSandbox:
			if _, err := FindPasst(); err != nil {
				return err
			}
		case NetLab:
			lab, err := s.LoadLab(n.Lab)
			if err != nil {
				return err
			}
			if err := s.registerLabPort(n.Lab, spec.Name, i, nicMAC(spec, i)); err != nil {
				return err
			}
			if err := s.ensureLabSwitch(ctx, lab); err != nil {
				return err
			}
		}
	}
	return nil
}
