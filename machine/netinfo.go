package machine

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"vlab/emulator"
)

// netFile is the runtime record of a running VM's network: the host ports
// its forwards were actually bound to.
const netFile = "net.json"

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
