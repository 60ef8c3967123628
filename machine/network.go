package machine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// netFile is the runtime record of a running VM's network: the host ports
// its forwards were actually bound to.
const netFile = "net.json"

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

// ForwardInfo is one forward of a VM as it is now.
type ForwardInfo struct {
	Rule      Forward `json:"-"`
	Spec      string  `json:"rule"`      // as written in machine.toml, e.g. tcp:127.0.0.1:auto:22
	Proto     string  `json:"proto"`     // tcp or udp
	HostAddr  string  `json:"host_addr"` // 127.0.0.1 unless set
	HostPort  int     `json:"host_port"` // the bound port; 0 when not running (or not bound)
	GuestPort int     `json:"guest_port"`
	Auto      bool    `json:"auto"`              // the host port is picked at each start
	Active    bool    `json:"active"`            // QEMU has it bound now
	Note      string  `json:"note,omitempty"`    // e.g. "applied at next start"
	Addr      string  `json:"address,omitempty"` // host:port to connect to, when bound
}

// String describes the forward for people: "tcp 127.0.0.1:41234 -> 22 (auto)".
func (f ForwardInfo) String() string {
	port := strconv.Itoa(f.HostPort)
	if f.HostPort == 0 {
		port = AutoPort
	}
	s := fmt.Sprintf("%s %s:%s -> %d", f.Proto, f.HostAddr, port, f.GuestPort)
	if f.Auto && f.HostPort != 0 {
		s += " (auto)"
	}
	if f.Note != "" {
		s += " (" + f.Note + ")"
	}
	return s
}

// NICInfo is one NIC of a VM as it is now.
type NICInfo struct {
	ID            string        `json:"id"`   // netdev id, e.g. net0
	Mode          string        `json:"mode"` // user, isolated, bridge:br0, tap:tap0, lab:NAME
	Model         string        `json:"model,omitempty"`
	MAC           string        `json:"mac"`
	Isolated      bool          `json:"isolated"`
	Bridge        string        `json:"bridge,omitempty"`
	Tap           string        `json:"tap,omitempty"`
	Lab           string        `json:"lab,omitempty"`
	Forwards      []ForwardInfo `json:"forwards"`
	GuestIP       string        `json:"guest_ip,omitempty"`
	GuestIPSource string        `json:"guest_ip_source,omitempty"` // how vlab knows the address
}

// NetInfo is a VM's network: its NICs, forwards with the host ports they
// are bound to, and guest addresses where vlab knows them.
type NetInfo struct {
	Name    string    `json:"name"`
	Running bool      `json:"running"`
	NICs    []NICInfo `json:"nics"`
}

// netRecord is netFile: the forwards of a running VM as QEMU bound them.
type netRecord struct {
	PID  int                   `json:"pid"` // the QEMU the ports belong to
	NICs map[string][]boundFwd `json:"nics"`
}

// boundFwd is one forward QEMU has bound.
type boundFwd struct {
	Proto     string `json:"proto"`
	HostAddr  string `json:"host_addr"`
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
}

// usernetRow is one socket line of HMP `info usernet`.
type usernetRow struct {
	Proto, State     string
	SrcAddr, DstAddr string
	SrcPort, DstPort int
}

// hostForward reports whether the row is a forward listening on the host.
func (r usernetRow) hostForward() bool { return r.State == "HOST_FORWARD" }

// parseUsernet parses HMP `info usernet` into rows per netdev id:
//
//	Hub -1 (net0):
//	  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
//	  TCP[HOST_FORWARD]   8       127.0.0.1 33677       10.0.2.15    22     0     0
//	  UDP[236 sec]       ...
func parseUsernet(out string) map[string][]usernetRow {
	res := map[string][]usernetRow{}
	id := ""
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r", ""), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasSuffix(t, "):") {
			if i := strings.LastIndex(t, "("); i >= 0 {
				id = t[i+1 : len(t)-2]
				res[id] = res[id]
			}
			continue
		}
		open, closeB := strings.Index(t, "["), strings.Index(t, "]")
		if id == "" || open <= 0 || closeB < open {
			continue
		}
		f := strings.Fields(t[closeB+1:])
		if len(f) < 5 {
			continue
		}
		sp, err1 := strconv.Atoi(f[2])
		dp, err2 := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil {
			continue
		}
		res[id] = append(res[id], usernetRow{
			Proto: strings.ToLower(t[:open]), State: t[open+1 : closeB],
			SrcAddr: f[1], SrcPort: sp, DstAddr: f[3], DstPort: dp,
		})
	}
	return res
}

// hmp runs one human monitor command on mon and returns its output.
func hmp(ctx context.Context, mon *emulator.Monitor, line string) (string, error) {
	var out string
	if err := mon.Execute(ctx, "human-monitor-command", map[string]string{"command-line": line}, &out); err != nil {
		return "", err
	}
	return out, nil
}

// usernet asks a running QEMU for its user-mode sockets.
func usernet(ctx context.Context, mon *emulator.Monitor) (map[string][]usernetRow, error) {
	out, err := hmp(ctx, mon, "info usernet")
	if err != nil {
		return nil, fmt.Errorf("info usernet: %w", err)
	}
	return parseUsernet(out), nil
}

// bindForwards matches spec's forwards to the host-forward rows QEMU has, in
// order: a fixed port matches its own row, an auto port the row forwarding
// to its guest port from its address that no other forward claimed.
func bindForwards(fwds []Forward, rows []usernetRow) []boundFwd {
	out := make([]boundFwd, len(fwds))
	used := make([]bool, len(rows))
	claim := func(i int, match func(r usernetRow) bool) {
		for k, r := range rows {
			if !used[k] && r.hostForward() && match(r) {
				used[k] = true
				out[i] = boundFwd{Proto: fwds[i].Proto, HostAddr: fwds[i].HostAddr, HostPort: r.SrcPort, GuestPort: fwds[i].GuestPort}
				return
			}
		}
	}
	for i, f := range fwds {
		if f.HostPort != 0 {
			claim(i, func(r usernetRow) bool {
				return r.Proto == f.Proto && sameAddr(r.SrcAddr, f.HostAddr) && r.SrcPort == f.HostPort
			})
		}
	}
	for i, f := range fwds {
		if f.HostPort == 0 {
			claim(i, func(r usernetRow) bool {
				return r.Proto == f.Proto && sameAddr(r.SrcAddr, f.HostAddr) && r.DstPort == f.GuestPort
			})
		}
	}
	return out
}

func sameAddr(a, b string) bool {
	if b == "" {
		b = "127.0.0.1"
	}
	return a == b
}

// recordNetwork asks the QEMU that just started for the ports its forwards
// got and records them in the runtime dir. QMP answering also means QEMU
// has finished creating its netdevs: every forward is bound by then.
func (s *Store) recordNetwork(ctx context.Context, spec *Spec, pid int) error {
	p := s.Paths(spec.Name)
	rec := netRecord{PID: pid, NICs: map[string][]boundFwd{}}
	auto := false
	for i, n := range spec.NICs {
		if n.Mode != emulator.NetUser {
			continue
		}
		fixed := make([]boundFwd, len(n.Forwards))
		for k, f := range n.Forwards {
			auto = auto || f.HostPort == 0 // auto
			fixed[k] = boundFwd{Proto: f.Proto, HostAddr: f.HostAddr, HostPort: f.HostPort, GuestPort: f.GuestPort}
		}
		rec.NICs[nicID(i)] = fixed
	}
	if len(rec.NICs) == 0 {
		return nil // no user-mode NIC: no forwards to record
	}
	if !auto {
		// QEMU is up, so it bound every fixed port (it exits when it
		// cannot): no need to ask it, which keeps `vlab start` fast.
		return writeRecord(p.netRecord(), rec)
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mon, err := emulator.DialAny(qctx, p.QMP)
	if err != nil {
		return fmt.Errorf("record forwards of %q: %w", spec.Name, err)
	}
	defer mon.Close()
	rows, err := usernet(qctx, mon)
	if err != nil {
		return fmt.Errorf("record forwards of %q: %w", spec.Name, err)
	}
	for i, n := range spec.NICs {
		if n.Mode == emulator.NetUser {
			rec.NICs[nicID(i)] = bindForwards(n.Forwards, rows[nicID(i)])
		}
	}
	return writeRecord(p.netRecord(), rec)
}

// netRecord is the path of the runtime network record.
func (p Paths) netRecord() string { return filepath.Join(p.Run, netFile) }

// readNetRecord returns the record of the QEMU now running as pid, if any.
func (s *Store) readNetRecord(name string, pid int) (netRecord, bool) {
	var rec netRecord
	if pid == 0 || readJSON(s.Paths(name).netRecord(), &rec) != nil || rec.PID != pid {
		return netRecord{}, false
	}
	return rec, true
}

// Network returns VM name's NICs, forwards and guest addresses. While the
// VM runs, forwards carry the host ports QEMU bound (asked live through
// QMP, or from the runtime record when every monitor is busy).
func (s *Store) Network(ctx context.Context, name string) (NetInfo, error) {
	spec, err := s.Load(name)
	if err != nil {
		return NetInfo{}, err
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return NetInfo{}, err
	}
	return s.NetworkOf(ctx, spec, st), nil
}

// NetworkOf is Network for a caller that already holds the VM's spec and
// status (from Load and Status), so neither is read again.
func (s *Store) NetworkOf(ctx context.Context, spec *Spec, st Status) NetInfo {
	name := spec.Name
	info := NetInfo{Name: name, Running: st.State.Active(), NICs: []NICInfo{}}
	// Only user-mode NICs have forwards and a connection table to ask for.
	var rows map[string][]usernetRow
	if info.Running && slices.ContainsFunc(spec.NICs, func(n NICSpec) bool { return n.Mode == emulator.NetUser }) {
		qctx, cancel := context.WithTimeout(ctx, qmpTimeout)
		if mon, err := emulator.DialAny(qctx, s.Paths(name).QMP); err == nil {
			rows, _ = usernet(qctx, mon)
			mon.Close()
		}
		cancel()
	}
	var rec netRecord
	haveRec := false
	// QEMU could not be asked, or passt bound them: the record says.
	if rows == nil || slices.ContainsFunc(spec.NICs, func(n NICSpec) bool { return n.Mode == emulator.NetSandbox }) {
		rec, haveRec = s.readNetRecord(name, st.PID)
	}
	for i, n := range spec.NICs {
		ni := NICInfo{
			ID: nicID(i), Mode: n.ModeString(), Model: n.Model, MAC: n.MAC, Isolated: n.Restrict,
			Bridge: n.Bridge, Tap: n.Tap, Lab: n.Lab, Forwards: []ForwardInfo{},
		}
		if ni.MAC == "" {
			ni.MAC = StableMAC(name, i)
		}
		var bound []boundFwd
		switch {
		case rows != nil && n.Mode == emulator.NetUser:
			bound = bindForwards(n.Forwards, rows[ni.ID])
		case haveRec:
			bound = rec.NICs[ni.ID]
		}
		for k, f := range n.Forwards {
			fi := forwardInfo(f)
			if k < len(bound) && bound[k].HostPort != 0 {
				fi.HostPort, fi.Active = bound[k].HostPort, true
				fi.Addr = net.JoinHostPort(fi.HostAddr, strconv.Itoa(fi.HostPort))
			} else if info.Running && (n.Mode == emulator.NetUser && rows != nil || hasForwards(n.Mode) && haveRec) {
				fi.Note = "applied at next start"
			}
			ni.Forwards = append(ni.Forwards, fi)
		}
		if info.Running {
			ni.GuestIP, ni.GuestIPSource = s.guestIP(spec, i, ni.MAC, rows[ni.ID])
		} else if n.Mode == NetLab {
			if ip := s.labLease(n.Lab, ni.MAC); ip != "" {
				ni.GuestIP, ni.GuestIPSource = ip, "lab "+n.Lab+" dhcp lease (last run)"
			}
		}
		info.NICs = append(info.NICs, ni)
	}
	return info
}

func forwardInfo(f Forward) ForwardInfo {
	addr := f.HostAddr
	if addr == "" {
		addr = "127.0.0.1"
	}
	return ForwardInfo{Rule: f, Spec: f.String(), Proto: f.Proto, HostAddr: addr, HostPort: f.HostPort, GuestPort: f.GuestPort, Auto: f.HostPort == 0}
}

// guestIP says what vlab knows of NIC i's guest address: for user mode the
// address a guest-opened connection came from, else the one slirp's DHCP
// leases (and forwards go to); for a lab, the switch's DHCP lease.
func (s *Store) guestIP(spec *Spec, i int, mac string, rows []usernetRow) (ip, source string) {
	n := spec.NICs[i]
	switch n.Mode {
	case emulator.NetUser:
		for _, r := range rows {
			if !r.hostForward() && strings.HasPrefix(r.SrcAddr, "10.0.2.") {
				return r.SrcAddr, "seen in QEMU's user-mode connection table"
			}
		}
		return slirpGuestIP, "user-mode DHCP address (where forwards go)"
	case NetLab:
		if ip := s.labLease(n.Lab, mac); ip != "" {
			return ip, "lab " + n.Lab + " dhcp lease"
		}
	}
	return "", ""
}

// ErrNoUserNIC is returned for forward changes on a VM without a user-mode
// NIC (forwards belong to QEMU's user-mode network).
var ErrNoUserNIC = errors.New("vm has no user-mode nic")

// userNIC returns the index of the NIC forwards go to: nic when >= 0, else
// the first user-mode NIC.
func userNIC(spec *Spec, nic int) (int, error) {
	if nic >= 0 {
		if nic >= len(spec.NICs) {
			return 0, fmt.Errorf("vm %q has no nic %d (it has %d)", spec.Name, nic, len(spec.NICs))
		}
		if !hasForwards(spec.NICs[nic].Mode) {
			return 0, fmt.Errorf("nic %d of vm %q is %s: forwards need a user or sandbox nic", nic, spec.Name, spec.NICs[nic].ModeString())
		}
		return nic, nil
	}
	for i, n := range spec.NICs {
		if hasForwards(n.Mode) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("vm %q: %w: add one with `vlab edit %s --net user`", spec.Name, ErrNoUserNIC, spec.Name)
}

// AddForward adds f to NIC nic of VM name (-1: its first user-mode NIC) and
// saves it. On a running VM it is also bound at once through QMP
// (hostfwd_add); the result says the port QEMU bound, or carries the note
// "applied at next start" when QEMU could not be asked.
func (s *Store) AddForward(ctx context.Context, name string, nic int, f Forward) (ForwardInfo, error) {
	if f.HostAddr == "" {
		f.HostAddr = "127.0.0.1"
	}
	var fi ForwardInfo
	var st Status
	var i int
	err := s.Update(ctx, name, func(spec *Spec) error { // the whole change under the VM lock
		var err error
		if i, err = userNIC(spec, nic); err != nil {
			return fmt.Errorf("add forward %s: %w", f, err)
		}
		spec.NICs[i].Forwards = append(spec.NICs[i].Forwards, f)
		if err := spec.Validate(); err != nil {
			return fmt.Errorf("add forward %s to %q: %s", f, name, oneLine(err.Error()))
		}
		fi = forwardInfo(f)
		if st, err = s.Status(ctx, name); err != nil {
			return err
		}
		if st.State.Active() && spec.NICs[i].Mode == emulator.NetSandbox {
			fi.Note = errSandboxLive.Error()
		} else if st.State.Active() {
			if f.HostPort != 0 {
				if err := checkForwards(&Spec{NICs: []NICSpec{{Forwards: []Forward{f}}}}); err != nil {
					return fmt.Errorf("add forward to %q: %w", name, err)
				}
			}
			port, err := s.hostfwdAdd(ctx, name, nicID(i), f)
			switch {
			case errors.Is(err, errHMP):
				return fmt.Errorf("add forward %s to %q: %w", f, name, err)
			case err != nil:
				fi.Note = "applied at next start: " + err.Error()
			default:
				fi.HostPort, fi.Active = port, true
				fi.Addr = net.JoinHostPort(fi.HostAddr, strconv.Itoa(port))
			}
		}
		return nil
	})
	if err != nil {
		if fi.Active { // bound, but the definition was not saved
			_ = s.hostfwdRemove(ctx, name, nicID(i), f.Proto, f.HostAddr, fi.HostPort)
		}
		return ForwardInfo{}, err
	}
	if fi.Active {
		s.updateNetRecord(name, st.PID, nicID(i), func(b []boundFwd) []boundFwd {
			return append(b, boundFwd{Proto: f.Proto, HostAddr: f.HostAddr, HostPort: fi.HostPort, GuestPort: f.GuestPort})
		})
	}
	return fi, nil
}

// RemoveForward removes the forward of VM name matching f from NIC nic (-1:
// any NIC) and saves the spec; on a running VM the port is released at once
// (hostfwd_remove). f matches a forward with the same protocol, address and
// guest port whose host port is f's, or any when f's is auto; or, on a
// running VM, the forward QEMU bound to f's host port.
func (s *Store) RemoveForward(ctx context.Context, name string, nic int, f Forward) (ForwardInfo, error) {
	var fi ForwardInfo
	err := s.Update(ctx, name, func(spec *Spec) error { // the whole change under the VM lock
		st, err := s.Status(ctx, name)
		if err != nil {
			return err
		}
		info := s.NetworkOf(ctx, spec, st)
		ni, k := -1, -1
		for i, n := range info.NICs {
			if nic >= 0 && i != nic {
				continue
			}
			for j, fw := range n.Forwards {
				if matchForward(fw, f) {
					if ni >= 0 {
						return fmt.Errorf("remove forward %s from %q: it matches more than one forward: give the whole rule, e.g. %s", refString(f), name, fw.Spec)
					}
					ni, k = i, j
				}
			}
		}
		if ni < 0 {
			return fmt.Errorf("remove forward %s from %q: no such forward: see `vlab net forward list %s`", refString(f), name, name)
		}
		fi = info.NICs[ni].Forwards[k]
		spec.NICs[ni].Forwards = append(spec.NICs[ni].Forwards[:k:k], spec.NICs[ni].Forwards[k+1:]...)
		if fi.Active && spec.NICs[ni].Mode == emulator.NetSandbox {
			fi.Note = "still bound until the next start: passt cannot change forwards of a running sandbox"
		} else if fi.Active {
			if err := s.hostfwdRemove(ctx, name, nicID(ni), fi.Proto, fi.HostAddr, fi.HostPort); err != nil {
				if errors.Is(err, errHMP) {
					return fmt.Errorf("remove forward %s from %q: %w", fi.Spec, name, err)
				}
				fi.Note = "still bound until the next start: " + err.Error()
			} else {
				fi.Active = false
				s.updateNetRecord(name, st.PID, nicID(ni), func(b []boundFwd) []boundFwd {
					out := b[:0:0]
					for _, x := range b {
						if !(x.Proto == fi.Proto && x.HostAddr == fi.HostAddr && x.HostPort == fi.HostPort) {
							out = append(out, x)
						}
					}
					return out
				})
			}
		}
		return nil
	})
	if err != nil {
		return ForwardInfo{}, err
	}
	return fi, nil
}

// refString writes a forward reference as the user may have: the whole
// rule, or proto:[hostaddr:]hostport.
func refString(f Forward) string {
	if f.GuestPort != 0 {
		return f.String()
	}
	if f.HostAddr != "" {
		return fmt.Sprintf("%s:%s:%d", f.Proto, f.HostAddr, f.HostPort)
	}
	return fmt.Sprintf("%s:%d", f.Proto, f.HostPort)
}

// matchForward says whether the forward fw (as it is now) is the one the
// user named with f.
func matchForward(fw ForwardInfo, f Forward) bool {
	if fw.Proto != f.Proto || (f.HostAddr != "" && fw.HostAddr != f.HostAddr) {
		return false
	}
	if f.HostPort == 0 {
		return fw.GuestPort == f.GuestPort && fw.Auto
	}
	if fw.Rule.HostPort == f.HostPort || (fw.Active && fw.HostPort == f.HostPort) {
		return f.GuestPort == 0 || f.GuestPort == fw.GuestPort
	}
	return false
}

// ParseForwardRef parses how `vlab net forward rm` names a forward: a whole
// rule (tcp:8080:80, tcp:auto:22) or just proto:[hostaddr:]hostport, where
// hostport may be the port an auto forward is bound to now.
func ParseForwardRef(s string) (Forward, error) {
	if f, err := ParseForward(s); err == nil {
		return f, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) == 2 || len(parts) == 3 {
		f := Forward{Proto: strings.ToLower(parts[0])}
		if len(parts) == 3 {
			if net.ParseIP(parts[1]) == nil {
				return Forward{}, fmt.Errorf("forward %q has a host address that is not an IP: write proto:[hostaddr:]hostport or the whole rule", s)
			}
			f.HostAddr = parts[1]
		}
		port, err := parsePort(parts[len(parts)-1])
		if err == nil && (f.Proto == "tcp" || f.Proto == "udp") {
			f.HostPort = port
			return f, nil
		}
	}
	return Forward{}, fmt.Errorf("forward %q: write the rule (tcp:8080:80, tcp:auto:22) or proto:hostport (tcp:8080)", s)
}

// errHMP marks a forward change QEMU refused (its message follows).
var errHMP = errors.New("qemu refused")

// hostfwdAdd binds f on netdev id of running VM name and returns the host
// port QEMU bound (the kernel's pick for an auto port).
func (s *Store) hostfwdAdd(ctx context.Context, name, id string, f Forward) (int, error) {
	mon, err := s.Monitor(ctx, name)
	if err != nil {
		return 0, err
	}
	defer mon.Close()
	before, err := usernet(ctx, mon)
	if err != nil {
		return 0, err
	}
	if _, ok := before[id]; !ok {
		return 0, fmt.Errorf("qemu has no user-mode netdev %s", id)
	}
	rule := fmt.Sprintf("%s:%s:%d-:%d", f.Proto, f.HostAddr, f.HostPort, f.GuestPort)
	out, err := hmp(ctx, mon, "hostfwd_add "+id+" "+rule)
	if err != nil {
		return 0, err
	}
	if msg := strings.TrimSpace(out); msg != "" {
		return 0, fmt.Errorf("%w: %s", errHMP, oneLine(msg))
	}
	after, err := usernet(ctx, mon)
	if err != nil {
		return 0, err
	}
	seen := map[usernetRow]bool{}
	for _, r := range before[id] {
		seen[r] = true
	}
	for _, r := range after[id] {
		if r.hostForward() && !seen[r] && r.Proto == f.Proto && r.DstPort == f.GuestPort {
			return r.SrcPort, nil
		}
	}
	return 0, fmt.Errorf("the new forward %s is not in qemu's table", rule)
}

// hostfwdRemove releases the forward bound to proto addr:port on netdev id.
func (s *Store) hostfwdRemove(ctx context.Context, name, id, proto, addr string, port int) error {
	mon, err := s.Monitor(ctx, name)
	if err != nil {
		return err
	}
	defer mon.Close()
	out, err := hmp(ctx, mon, fmt.Sprintf("hostfwd_remove %s %s:%s:%d", id, proto, addr, port))
	if err != nil {
		return err
	}
	if msg := strings.TrimSpace(out); !strings.Contains(msg, "removed") {
		return fmt.Errorf("%w: %s", errHMP, oneLine(msg))
	}
	return nil
}

// updateNetRecord edits the forwards of netdev id in the runtime record of
// the QEMU running as pid.
func (s *Store) updateNetRecord(name string, pid int, id string, edit func([]boundFwd) []boundFwd) {
	rec, _ := s.readNetRecord(name, pid)
	rec.PID = pid
	if rec.NICs == nil {
		rec.NICs = map[string][]boundFwd{}
	}
	rec.NICs[id] = edit(rec.NICs[id])
	_ = writeRecord(s.Paths(name).netRecord(), rec)
}

// BridgeACL is the access list qemu-bridge-helper reads (compiled into the
// helper; Debian's path).
var BridgeACL = "/etc/qemu/bridge.conf"

// bridgeHelpers are where distributions install qemu-bridge-helper.
var bridgeHelpers = []string{
	"/usr/lib/qemu/qemu-bridge-helper",      // Debian, Ubuntu
	"/usr/libexec/qemu-bridge-helper",       // Fedora, Arch, openSUSE
	"/usr/local/libexec/qemu-bridge-helper", // built from source
}

// findBridgeHelper returns the path of qemu-bridge-helper and its file
// info, or "" and nil.
func findBridgeHelper() (string, fs.FileInfo) {
	for _, p := range bridgeHelpers {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, fi
		}
	}
	return "", nil
}

// BridgeCheck is what bridged networking through qemu-bridge-helper needs
// from this host, checked for one bridge.
type BridgeCheck struct {
	Bridge       string
	Helper       string // path of qemu-bridge-helper, "" when missing
	Setuid       bool   // the helper is setuid root
	CapNetAdmin  bool   // the helper has cap_net_admin (file capability)
	Root         bool   // vlab runs as root: the helper needs neither
	ACL          string // the access list path
	ACLErr       string // why the list could not be read, "" when it was
	Allowed      bool   // the list allows Bridge
	BridgeExists bool   // the bridge interface exists
	Problems     []string
	Fixes        []string // shell commands that fix the problems, in order
}

// CheckBridge checks that qemu-bridge-helper exists, may create taps (setuid
// root or cap_net_admin, unless vlab runs as root), that its access list
// allows bridge, and that the bridge exists. Problems and the commands that
// fix them are listed in the result.
func CheckBridge(bridge string) BridgeCheck {
	c := checkBridgeHelper()
	c.Bridge = bridge
	switch {
	case c.Helper == "":
		c.Problems = append(c.Problems, "qemu-bridge-helper is not installed")
		c.Fixes = append(c.Fixes, "sudo apt-get install qemu-system-common")
	case !c.helperMayCreateTaps():
		c.Problems = append(c.Problems, c.Helper+" is neither setuid root nor has cap_net_admin")
		c.Fixes = append(c.Fixes, "sudo chmod u+s "+c.Helper)
	}
	allowed, err := bridgeAllowed(c.ACL, bridge, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.ACLErr = "missing"
	case errors.Is(err, fs.ErrPermission):
		c.ACLErr = "not readable by vlab"
	case err != nil:
		c.ACLErr = err.Error()
	}
	c.Allowed = allowed
	switch {
	case c.ACLErr == "not readable by vlab":
		// The helper (root) reads it; vlab cannot tell. QEMU says if it denies.
	case c.ACLErr != "":
		c.Problems = append(c.Problems, fmt.Sprintf("%s is %s, so the helper allows no bridge", c.ACL, c.ACLErr))
		c.Fixes = append(c.Fixes, aclFix(c.ACL, bridge))
	case !allowed:
		c.Problems = append(c.Problems, fmt.Sprintf("%s does not allow bridge %s", c.ACL, bridge))
		c.Fixes = append(c.Fixes, aclFix(c.ACL, bridge))
	}
	if _, err := os.Stat("/sys/class/net/" + bridge + "/bridge"); err == nil {
		c.BridgeExists = true
	} else if _, err := os.Stat("/sys/class/net/" + bridge); err == nil {
		c.Problems = append(c.Problems, "interface "+bridge+" is not a bridge")
		c.Fixes = append(c.Fixes, "pick a bridge from `ip -br link show type bridge`")
	} else {
		c.Problems = append(c.Problems, "bridge "+bridge+" does not exist")
		c.Fixes = append(c.Fixes, "sudo ip link add "+bridge+" type bridge && sudo ip link set "+bridge+" up")
	}
	return c
}

// checkBridgeHelper fills in the helper half of a BridgeCheck: where
// qemu-bridge-helper is and what lets it create taps.
func checkBridgeHelper() BridgeCheck {
	c := BridgeCheck{ACL: BridgeACL, Root: os.Geteuid() == 0}
	helper, fi := findBridgeHelper()
	if helper == "" {
		return c
	}
	c.Helper = helper
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		c.Setuid = fi.Mode()&os.ModeSetuid != 0 && st.Uid == 0
	}
	c.CapNetAdmin = hasCapNetAdmin(helper)
	return c
}

// helperMayCreateTaps reports whether the helper can create taps for vlab:
// setuid root, cap_net_admin, or vlab itself runs as root.
func (c BridgeCheck) helperMayCreateTaps() bool { return c.Setuid || c.CapNetAdmin || c.Root }

// BridgeHelperStatus sums up bridged networking for `vlab doctor`: whether
// qemu-bridge-helper can create taps for vlab's user, which bridges its
// access list allows, and the commands that fix what is missing.
func BridgeHelperStatus() (ok bool, info, fix string) {
	c := checkBridgeHelper()
	var fixes []string
	switch {
	case c.Helper == "":
		return false, "qemu-bridge-helper missing (bridged nics cannot work)", "sudo apt-get install qemu-system-common"
	case c.Setuid:
		info = c.Helper + " (setuid root)"
	case c.CapNetAdmin:
		info = c.Helper + " (cap_net_admin)"
	case c.Root:
		info = c.Helper + " (not setuid; fine while vlab runs as root)"
	default:
		info = c.Helper + " is neither setuid root nor has cap_net_admin"
		fixes = append(fixes, "sudo chmod u+s "+c.Helper)
	}
	rules, err := aclRules(c.ACL, 0)
	switch {
	case err == nil:
		var allowed []string
		for _, r := range rules {
			if r[0] == "allow" {
				allowed = append(allowed, r[1])
			}
		}
		if len(allowed) == 0 {
			info += "; " + c.ACL + " allows no bridge"
			fixes = append(fixes, aclFix(c.ACL, "br0"))
		} else {
			info += "; " + c.ACL + " allows " + strings.Join(allowed, ", ")
		}
	case errors.Is(err, fs.ErrPermission):
		info += "; " + c.ACL + " is not readable by vlab (the helper reads it as root)"
	case errors.Is(err, fs.ErrNotExist):
		info += "; " + c.ACL + " is missing, so the helper allows no bridge"
		fixes = append(fixes, aclFix(c.ACL, "br0"))
	default:
		info += "; " + c.ACL + ": " + err.Error()
	}
	return len(fixes) == 0, info, strings.Join(fixes, " && ")
}

func aclFix(acl, bridge string) string {
	dir := acl[:strings.LastIndex(acl, "/")+1]
	return fmt.Sprintf("sudo mkdir -p %s && echo 'allow %s' | sudo tee -a %s && sudo chmod 0644 %s", strings.TrimSuffix(dir, "/"), bridge, acl, acl)
}

// OK reports whether nothing stands in the way.
func (c BridgeCheck) OK() bool { return len(c.Problems) == 0 }

// Err returns nil when c is OK, else one line naming the problems and the
// exact commands that fix them.
func (c BridgeCheck) Err() error {
	if c.OK() {
		return nil
	}
	return fmt.Errorf("bridge %s: %s: fix: %s", c.Bridge, strings.Join(c.Problems, "; "), strings.Join(c.Fixes, " && "))
}

// bridgeAllowed evaluates qemu-bridge-helper's access list for bridge the
// way the helper does: allowed when an allow line matches it (or "allow
// all") and no deny line does; "include FILE" reads FILE in place.
func bridgeAllowed(path, bridge string, depth int) (bool, error) {
	rules, err := aclRules(path, depth)
	if err != nil {
		return false, err
	}
	allow, deny := false, false
	for _, r := range rules {
		match := r[1] == "all" || r[1] == bridge
		switch r[0] {
		case "allow":
			allow = allow || match
		case "deny":
			deny = deny || match
		}
	}
	return allow && !deny, nil
}

// aclRules reads the allow and deny lines of an access list, with its
// includes expanded.
func aclRules(path string, depth int) ([][2]string, error) {
	if depth > 8 {
		return nil, fmt.Errorf("%s: includes nest too deep", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rules [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "allow", "deny":
			rules = append(rules, [2]string{f[0], f[1]})
		case "include":
			sub, err := aclRules(f[1], depth+1)
			if err != nil {
				return nil, err
			}
			rules = append(rules, sub...)
		}
	}
	return rules, nil
}

// capNetAdmin is CAP_NET_ADMIN's bit number.
const capNetAdmin = 12

// hasCapNetAdmin reads the file capabilities of path (the security.capability
// extended attribute) and reports whether cap_net_admin is permitted and
// effective.
func hasCapNetAdmin(path string) bool {
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(path, "security.capability", buf)
	if err != nil {
		return false
	}
	return capsHaveNetAdmin(buf[:n])
}

// capsHaveNetAdmin decodes a vfs_cap_data value: a little-endian magic
// word whose low bit is the effective flag, then permitted/inheritable
// words (low 32 capabilities first).
func capsHaveNetAdmin(b []byte) bool {
	if len(b) < 12 {
		return false
	}
	effective := binary.LittleEndian.Uint32(b[0:])&1 != 0
	permitted := binary.LittleEndian.Uint32(b[4:])
	return effective && permitted&(1<<capNetAdmin) != 0
}

// CheckTap checks that a pre-created tap interface exists and that vlab's
// user may open it; the error names the command that creates it.
func CheckTap(tap string) error {
	fix := fmt.Sprintf("sudo ip tuntap add dev %s mode tap user %s && sudo ip link set %s up", tap, currentUser(), tap)
	dir := "/sys/class/net/" + tap
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("tap %s does not exist: fix: %s", tap, fix)
	}
	if _, err := os.Stat(dir + "/tun_flags"); err != nil {
		return fmt.Errorf("interface %s is not a tap device: fix: %s (with another name)", tap, fix)
	}
	if os.Geteuid() == 0 {
		return nil
	}
	owner := readSysInt(dir + "/owner")
	if owner >= 0 && owner != os.Geteuid() {
		return fmt.Errorf("tap %s belongs to uid %d, not you: fix: sudo ip tuntap del dev %s mode tap && %s", tap, owner, tap, fix)
	}
	if owner < 0 {
		group := readSysInt(dir + "/group")
		if group < 0 || !inGroup(group) {
			return fmt.Errorf("tap %s has no owner, so only root may use it: fix: sudo ip tuntap del dev %s mode tap && %s", tap, tap, fix)
		}
	}
	return nil
}

func readSysInt(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return -1
	}
	return v
}

func inGroup(gid int) bool {
	if os.Getegid() == gid {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}
