package machine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"vlab/emulator"
)

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

// usernet asks a running QEMU for its user-mode sockets.
func usernet(ctx context.Context, mon *emulator.Monitor) (map[string][]usernetRow, error) {
	out, err := mon.HumanMonitorCommand(ctx, emulator.HMPInfoUsernet)
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
	rule := emulator.HostfwdRule(f.Proto, f.HostAddr, f.HostPort, f.GuestPort)
	out, err := mon.HumanMonitorCommand(ctx, emulator.HMPHostfwdAdd(id, rule))
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
	out, err := mon.HumanMonitorCommand(ctx, emulator.HMPHostfwdRemove(id, proto, addr, port))
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
