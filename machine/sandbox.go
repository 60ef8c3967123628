package machine

// The sandbox network (--net sandbox): internet yes, host no. Each sandbox
// NIC gets its own passt process, started by vlab just before QEMU, and a
// sandbox filter (sandboxfilter.go: `vlab net sandbox-filter`) that QEMU
// reaches through a unix socket in the VM's 0700 runtime dir (-netdev
// stream) and that relays to passt's socket beside it, dropping the guest's
// frames addressed to the host. passt runs with:
//
//   - --no-map-gw: the gateway address is the real gateway, never the
//     host's loopback (slirp's 10.0.2.2 is);
//   - --runas the uid:gid vlab runs as: as root passt would otherwise drop to
//     nobody before binding its socket, and nobody cannot write into the
//     0700 runtime dir; a nobody-writable socket folder would let any other
//     nobody process connect to the guest's network or replace the socket.
//     passt still drops every capability and moves into empty namespaces;
//   - --foreground --one-off: it quits when QEMU's connection closes, so it
//     never outlives its guest; vlab also kills it whenever it cleans up a
//     run (failed start, stop, stop --force, a crash found later);
//   - -t/-u ADDR/HOST:GUEST per forward (passt cannot add forwards to a
//     running instance: forwards added while the VM runs apply at the next
//     start), and -u none when there are no UDP forwards (passt would
//     otherwise mirror every TCP forward's port for UDP);
//   - --outbound-if4 IF, IF the interface of the host's default route: passt's
//     sockets are bound to it (SO_BINDTODEVICE), so a connection the guest
//     opens to an address of another host interface (a docker or libvirt
//     bridge, a VPN, the loopback) is routed out to the gateway instead of
//     being delivered to the host's own services;
//   - --ipv4-only: these guarantees are tested for IPv4 (e2e TestNetSandbox).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vlab/emulator"
)

// ErrNoPasst is returned when a sandbox NIC needs passt and it is missing.
var ErrNoPasst = errors.New("passt is not installed (--net sandbox needs it): install it with `sudo apt-get install passt`")

// passtBin is the passt executable looked up on PATH.
var passtBin = "passt"

// passtReady bounds the wait for passt's socket.
const passtReady = 10 * time.Second

const passtRecordFile = "passt.json"

// FindPasst returns the path of passt, or ErrNoPasst.
func FindPasst() (string, error) {
	p, err := exec.LookPath(passtBin)
	if err != nil {
		return "", ErrNoPasst
	}
	return p, nil
}

// passtSocket is where the passt of NIC i listens.
func (p Paths) passtSocket(i int) string {
	return filepath.Join(p.Run, "passt-"+strconv.Itoa(i)+".sock")
}

// passtInner is where the passt of NIC i listens for the sandbox filter
// (sandboxfilter.go), which QEMU reaches at passtSocket.
func (p Paths) passtInner(i int) string { return filepath.Join(p.Run, "pst-"+strconv.Itoa(i)+".sock") }

// passtLog is the log of the passt of NIC i.
func (p Paths) passtLog(i int) string { return filepath.Join(p.LogDir, "passt-"+nicID(i)+".log") }

func (p Paths) passtRecord() string { return filepath.Join(p.Run, passtRecordFile) }

// passtProc is one passt vlab started, as recorded in the runtime dir.
type passtProc struct {
	NIC    string `json:"nic"`
	Socket string `json:"socket"`
	emulator.Process
}

// sandboxRun is the passt processes of one start.
type sandboxRun struct {
	s     *Store
	name  string
	procs []passtProc
	bound map[string][]boundFwd // NIC id → forwards with their host ports
}

// pickPort asks the kernel for a free port on addr for an auto forward.
// passt cannot bind port 0 and tell which it got, so vlab picks one; a
// program grabbing it in between makes passt fail with a clear error.
func pickPort(proto, addr string) (int, error) {
	hp := net.JoinHostPort(addr, "0")
	if proto == "udp" {
		c, err := net.ListenPacket("udp", hp)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", hp)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startSandbox starts one passt per sandbox NIC of spec and waits until
// each listens. On error every passt it started is stopped again.
func (s *Store) startSandbox(ctx context.Context, spec *Spec) (*sandboxRun, error) {
	run := &sandboxRun{s: s, name: spec.Name, bound: map[string][]boundFwd{}}
	for i, n := range spec.NICs {
		if n.Mode != emulator.NetSandbox {
			continue
		}
		if err := run.start(ctx, spec, i); err != nil {
			run.stop()
			return nil, err
		}
	}
	return run, nil
}

func (r *sandboxRun) start(ctx context.Context, spec *Spec, i int) error {
	bin, err := FindPasst()
	if err != nil {
		return err
	}
	p := r.s.Paths(spec.Name)
	id := nicID(i)
	cfg := emulator.PasstConfig{Bin: bin, Socket: p.passtInner(i), Log: p.passtLog(i), UID: os.Geteuid(), GID: os.Getegid(),
		OutIf: defaultRouteIf()}
	var bound []boundFwd
	for _, f := range spec.NICs[i].Forwards {
		if f.HostAddr == "" {
			f.HostAddr = "127.0.0.1"
		}
		if f.HostPort == 0 {
			if f.HostPort, err = pickPort(f.Proto, f.HostAddr); err != nil {
				return fmt.Errorf("forward %s: pick a free port: %w", f, err)
			}
		}
		cfg.Forwards = append(cfg.Forwards, emulator.Forward{Proto: f.Proto, HostAddr: f.HostAddr, HostPort: f.HostPort, GuestPort: f.GuestPort})
		bound = append(bound, boundFwd{Proto: f.Proto, HostAddr: f.HostAddr, HostPort: f.HostPort, GuestPort: f.GuestPort})
	}
	// Never dial a leftover socket to test it: a live passt serves one
	// client only. cleanRuntime has stopped any passt of ours already.
	if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sandbox nic %s: remove old socket: %w", id, err)
	}
	os.Remove(p.passtSocket(i))
	if err := os.MkdirAll(p.LogDir, 0o700); err != nil {
		return fmt.Errorf("sandbox nic %s: %w", id, err)
	}
	logf, err := os.OpenFile(cfg.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("sandbox nic %s: open passt log: %w", id, err)
	}
	defer logf.Close()
	if err := r.spawn(ctx, "sandbox nic "+id, id, "passt", emulator.PasstArgv(cfg), logf, cfg.Socket, cfg.Log); err != nil {
		return err
	}
	fargv, err := SandboxFilterCommand(p.passtSocket(i), cfg.Socket)
	if err != nil {
		return fmt.Errorf("sandbox nic %s: %w", id, err)
	}
	if err := r.spawn(ctx, "sandbox nic "+id, id+"-filter", "sandbox filter", fargv, logf, p.passtSocket(i), cfg.Log); err != nil {
		return err
	}
	r.bound[id] = bound
	return nil
}

// spawn starts argv in its own session, records it under id, and waits
// until it listens on sock. Errors start with who ("sandbox nic n0").
func (r *sandboxRun) spawn(ctx context.Context, who, id, what string, argv []string, logf *os.File, sock, logPath string) error {
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Dir: "/", Stdout: logf, Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start %s: %w", who, what, err)
	}
	exited := make(chan struct{})
	go func() { // reap it while this vlab runs
		_ = cmd.Wait()
		close(exited)
	}()
	proc, err := emulator.Identify(cmd.Process.Pid, argv[0])
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s: %w", who, err)
	}
	r.procs = append(r.procs, passtProc{NIC: id, Socket: sock, Process: proc})
	// Recorded before QEMU starts: a vlab killed in between leaves a passt
	// that the next start or status check finds and stops.
	if err := writeRecord(r.s.Paths(r.name).passtRecord(), r.procs); err != nil {
		return fmt.Errorf("%s: record %s: %w", who, what, err)
	}
	deadline := time.NewTimer(passtReady)
	defer deadline.Stop()
	for !unixListening(sock) {
		select {
		case <-exited:
			tail, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s: %s exited: %s (log %s)", who, what, oneLine(lastLine(string(tail))), logPath)
		case <-deadline.C:
			return fmt.Errorf("%s: %s opened no socket within %s (log %s)", who, what, passtReady, logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// unixListening reports whether a unix stream socket bound to path listens,
// from /proc/net/unix: connecting to find out would use up passt's only
// client.
func unixListening(path string) bool {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		_, err := os.Stat(path)
		return err == nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path (the path as is,
		// spaces included)
		line := sc.Text()
		fl := strings.Fields(line)
		if len(fl) < 8 || !strings.HasSuffix(line, " "+path) {
			continue
		}
		flags, err := strconv.ParseUint(fl[3], 16, 32)
		if err == nil && flags&0x10000 != 0 { // __SO_ACCEPTCON: listening
			return true
		}
	}
	return false
}

// record puts the sandbox forwards into the network record of the QEMU
// running as pid, so `vlab net show` tells their host ports.
func (r *sandboxRun) record(pid int) {
	for id, b := range r.bound {
		r.s.updateNetRecord(r.name, pid, id, func([]boundFwd) []boundFwd { return b })
	}
}

// stop ends the passt processes of a start that failed.
func (r *sandboxRun) stop() {
	for _, pp := range r.procs {
		stopPasst(pp)
	}
	removePasstSockets(r.s.Paths(r.name))
}

// stopPasst ends one recorded passt if it still runs.
func stopPasst(pp passtProc) {
	if pp.Check() == emulator.LiveRunning {
		_ = syscall.Kill(pp.PID, syscall.SIGTERM)
		for try := 0; try < 100 && pp.Check() == emulator.LiveRunning; try++ {
			time.Sleep(10 * time.Millisecond)
		}
		if pp.Check() == emulator.LiveRunning {
			_ = syscall.Kill(pp.PID, syscall.SIGKILL)
		}
	}
}

// removePasstSockets removes the passt sockets of a finished run.
func removePasstSockets(p Paths) {
	ents, _ := os.ReadDir(p.Run)
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".sock") && (strings.HasPrefix(n, "passt-") || strings.HasPrefix(n, "pst-") ||
			strings.HasPrefix(n, "vfs-")) { // vfs-: virtiofsd.go
			os.Remove(filepath.Join(p.Run, n))
		}
	}
	os.Remove(p.passtRecord())
}

// cleanSandbox stops what is left of a run's passt processes (one-off
// passt quits with QEMU by itself; this covers a QEMU that never connected
// and a vlab killed mid-start) and removes their sockets and record.
func (s *Store) cleanSandbox(p Paths) {
	var procs []passtProc
	if readJSON(p.passtRecord(), &procs) == nil {
		for _, pp := range procs {
			stopPasst(pp)
		}
	}
	removePasstSockets(p)
}

// errSandboxLive is the note on a forward added to a running sandbox VM.
var errSandboxLive = errors.New("applied at next start: passt cannot add forwards to a running sandbox")

// hasForwards reports whether NICs of mode take port forwards: user mode
// (QEMU's hostfwd) and sandbox (passt's -t/-u).
func hasForwards(m emulator.NetMode) bool { return m == emulator.NetUser || m == emulator.NetSandbox }

// defaultRouteIf returns the interface of the host's first IPv4 default
// route (from /proc/net/route), or "" when there is none.
func defaultRouteIf() string {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	return parseDefaultRoute(string(data))
}

// parseDefaultRoute finds the default route in /proc/net/route: the first
// line, after the header, whose destination and mask are 0 and that is up
// (flag 1).
func parseDefaultRoute(table string) string {
	lines := strings.Split(table, "\n")
	for _, l := range lines[min(1, len(lines)):] {
		f := strings.Fields(l)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&1 != 0 {
			return f[0]
		}
	}
	return ""
}
