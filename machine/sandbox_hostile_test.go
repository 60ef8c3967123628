package machine

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fixture"
)

// hostileNetnsEnv names the network namespace the hostile-guest test was
// re-run in.
const hostileNetnsEnv = "VLAB_TEST_SANDBOX_NETNS"

// TestPasstHostileGuest plays a hostile guest against passt started with
// vlab's own argv: instead of QEMU it speaks QEMU's stream protocol on
// passt's socket and sends hand-made TCP SYNs, to destinations a well-behaved
// guest kernel never sends out of its NIC (the host's loopback address
// itself, 0.0.0.0, the host's LAN and bridge addresses). Servers on the host
// count connections; a server in an "outside" namespace must see the
// control SYN, so the test can tell blocked from broken. It runs in network
// namespaces it creates (root only).
func TestPasstHostileGuest(t *testing.T) {
	fixture.Program(t, "passt")
	if os.Getenv(hostileNetnsEnv) == "" {
		if os.Geteuid() != 0 {
			fixture.Need(t, "the hostile-guest test builds network namespaces, which needs root (CI runs as root)")
		}
		ns := fmt.Sprintf("vlabsb-%d", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		defer exec.Command("ip", "netns", "del", ns).Run()
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestPasstHostileGuest$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), hostileNetnsEnv+"="+ns)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestPasstHostileGuest") {
			t.Fatalf("in namespace %s: %v\n%s", ns, err, out)
		}
		t.Logf("in namespace %s:\n%s", ns, out)
		return
	}
	ns := os.Getenv(hostileNetnsEnv)
	out := ns + "-out"
	ip := func(args ...string) {
		t.Helper()
		if o, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, o)
		}
	}
	ip("link", "set", "lo", "up")
	ip("netns", "add", out)
	defer exec.Command("ip", "netns", "del", out).Run()
	ip("link", "add", "hsb0", "type", "veth", "peer", "name", "hsb1")
	ip("link", "set", "hsb1", "netns", out)
	ip("addr", "add", "10.78.0.2/24", "dev", "hsb0")
	ip("link", "set", "hsb0", "up")
	ip("route", "add", "default", "via", "10.78.0.1")
	ip("-n", out, "link", "set", "lo", "up")
	ip("-n", out, "addr", "add", "10.78.0.1/24", "dev", "hsb1")
	ip("-n", out, "link", "set", "hsb1", "up")
	ip("-n", out, "addr", "add", "203.0.113.81/32", "dev", "lo")
	ip("link", "add", "hsbbr", "type", "bridge")
	ip("addr", "add", "10.98.0.1/24", "dev", "hsbbr")
	ip("link", "set", "hsbbr", "up")

	// Host servers: one on every address (loopback, LAN, bridge, and what
	// 0.0.0.0 reaches), counting connections; the control server outside.
	var hostConns atomic.Int64
	host := countingListener(t, "0.0.0.0:0", &hostConns)
	hostPort := host.Addr().(*net.TCPAddr).Port
	var outConns atomic.Int64
	outside := listenIn(t, out, "203.0.113.81:0")
	go acceptCount(outside, &outConns)
	outPort := outside.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	sock := filepath.Join(dir, "passt.sock")
	bin, _ := FindPasst()
	argv := emulator.PasstArgv(emulator.PasstConfig{Bin: bin, Socket: sock, Log: filepath.Join(dir, "passt.log"), UID: os.Geteuid(), GID: os.Getegid(), OutIf: defaultRouteIf()})
	if !strings.Contains(strings.Join(argv, " "), "--outbound-if4 hsb0") {
		t.Fatalf("passt argv lacks the default route's interface: %q", argv)
	}
	p := exec.Command(argv[0], argv[1:]...)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { p.Process.Kill(); p.Wait() }()
	for i := 0; !unixListening(sock); i++ {
		if i > 1000 {
			logData, _ := os.ReadFile(filepath.Join(dir, "passt.log"))
			t.Fatalf("passt did not listen: %s", logData)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The filter vlab puts between QEMU and passt (sandboxfilter.go).
	fsock := filepath.Join(dir, "filter.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeSandboxFilter(ctx, fsock, sock)
	for i := 0; !unixListening(fsock); i++ {
		if i > 1000 {
			t.Fatal("the sandbox filter did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := net.Dial("unix", fsock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { // drain what passt sends the "guest"
		buf := make([]byte, 1<<16)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	guestMAC := net.HardwareAddr{0x52, 0x54, 0x00, 0x66, 0x66, 0x66}
	send := func(src, dst string, dport int) {
		t.Helper()
		f := synFrame(guestMAC, net.ParseIP(src).To4(), net.ParseIP(dst).To4(), 40000+uint16(dport%20000), uint16(dport))
		hdr := make([]byte, 4)
		binary.BigEndian.PutUint32(hdr, uint32(len(f)))
		if _, err := c.Write(append(hdr, f...)); err != nil {
			t.Fatal(err)
		}
	}
	waitConn := func(n *atomic.Int64, want int64) bool {
		for i := 0; i < 40 && n.Load() < want; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		return n.Load() >= want
	}
	// The guest's address is the host's (passt's DHCP would hand it out).
	send("10.78.0.2", "203.0.113.81", outPort)
	if !waitConn(&outConns, 1) {
		logData, _ := os.ReadFile(filepath.Join(dir, "passt.log"))
		t.Fatalf("control: the hand-made SYN to the outside server made no connection: passt log:\n%s", logData)
	}
	for _, dst := range []struct{ src, dst, what string }{
		{"10.78.0.2", "127.0.0.1", "the host's loopback address"},
		{"10.78.0.2", "0.0.0.0", "0.0.0.0 (the host itself in Linux)"},
		{"10.78.0.2", "10.98.0.1", "the host's bridge address"},
		{"10.78.0.99", "10.78.0.2", "the host's LAN address"},
		{"10.78.0.2", "10.78.0.1", "the gateway, on the host's port"},
	} {
		send(dst.src, dst.dst, hostPort)
		if waitConn(&hostConns, 1) {
			t.Errorf("a SYN from the guest to %s (%s) reached a host server", dst.dst, dst.what)
			hostConns.Store(0)
		}
	}
	// UDP the same way: a host socket on every address counts datagrams.
	var hostUDP, outUDP atomic.Int64
	hu, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hu.Close()
	go countPackets(hu, &hostUDP)
	ou := listenPacketIn(t, out, "203.0.113.81:0")
	go countPackets(ou, &outUDP)
	sendUDP := func(src, dst string, dport int) {
		t.Helper()
		f := udpFrame(guestMAC, net.ParseIP(src).To4(), net.ParseIP(dst).To4(), 41000, uint16(dport), []byte("hostile"))
		hdr := make([]byte, 4)
		binary.BigEndian.PutUint32(hdr, uint32(len(f)))
		if _, err := c.Write(append(hdr, f...)); err != nil {
			t.Fatal(err)
		}
	}
	sendUDP("10.78.0.2", "203.0.113.81", ou.LocalAddr().(*net.UDPAddr).Port)
	if !waitConn(&outUDP, 1) {
		t.Fatal("control: the hand-made datagram to the outside socket never arrived")
	}
	uport := hu.LocalAddr().(*net.UDPAddr).Port
	for _, dst := range []struct{ src, dst string }{
		{"10.78.0.2", "127.0.0.1"}, {"10.78.0.2", "0.0.0.0"}, {"10.78.0.2", "10.98.0.1"}, {"10.78.0.99", "10.78.0.2"}, {"10.78.0.2", "255.255.255.255"},
	} {
		sendUDP(dst.src, dst.dst, uport)
		if waitConn(&hostUDP, 1) {
			t.Errorf("a datagram from the guest to %s reached a host socket", dst.dst)
			hostUDP.Store(0)
		}
	}

	// The control again: the relay still forwards after all that.
	send("10.78.0.2", "203.0.113.81", outPort)
	if !waitConn(&outConns, 2) {
		t.Errorf("control: the second SYN to the outside server made no connection")
	}
}

func countPackets(c net.PacketConn, n *atomic.Int64) {
	buf := make([]byte, 2048)
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			return
		}
		n.Add(1)
	}
}

// listenPacketIn opens a UDP socket inside network namespace ns.
func listenPacketIn(t *testing.T, ns, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	inNetns(t, ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err })
	t.Cleanup(func() { pc.Close() })
	return pc
}

// inNetns runs f on a thread switched into network namespace ns.
func inNetns(t *testing.T, ns string, f func() error) {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked if switching back fails: the thread dies
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			ch <- err
			return
		}
		defer target.Close()
		if _, _, e := syscall.RawSyscall(sysSetns(), target.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			ch <- e
			return
		}
		ferr := f()
		if _, _, e := syscall.RawSyscall(sysSetns(), self.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			panic("cannot return to the test's network namespace")
		}
		runtime.UnlockOSThread()
		ch <- ferr
	}()
	if err := <-ch; err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// udpFrame builds an Ethernet frame holding a UDP datagram (checksum 0:
// none, as IPv4 allows).
func udpFrame(mac net.HardwareAddr, src, dst net.IP, sport, dport uint16, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	iph := make([]byte, 20)
	iph[0] = 0x45
	binary.BigEndian.PutUint16(iph[2:], uint16(20+len(udp)))
	iph[8], iph[9] = 64, 17
	copy(iph[12:], src)
	copy(iph[16:], dst)
	binary.BigEndian.PutUint16(iph[10:], csum(iph))
	eth := append(append(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac...), 0x08, 0x00)
	return append(append(eth, iph...), udp...)
}

func countingListener(t *testing.T, addr string, n *atomic.Int64) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go acceptCount(l, n)
	return l
}

func acceptCount(l net.Listener, n *atomic.Int64) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		n.Add(1)
		c.Close()
	}
}

// sysSetns is setns(2)'s number (package syscall does not name it).
func sysSetns() uintptr {
	switch runtime.GOARCH {
	case "amd64":
		return 308
	case "arm64", "riscv64":
		return 268
	case "386":
		return 346
	case "ppc64", "ppc64le":
		return 350
	}
	panic("setns: unknown syscall number on " + runtime.GOARCH)
}

// listenIn opens a TCP listener inside network namespace ns.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	type res struct {
		l   net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies if it cannot switch back
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer target.Close()
		if _, _, e := syscall.RawSyscall(sysSetns(), target.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			ch <- res{err: e}
			return
		}
		l, err := net.Listen("tcp4", addr)
		if _, _, e := syscall.RawSyscall(sysSetns(), self.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			panic("cannot return to the test's network namespace")
		}
		runtime.UnlockOSThread()
		ch <- res{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s: %v", ns, r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	return r.l
}

// synFrame builds an Ethernet frame holding a TCP SYN from src:sport to
// dst:dport, checksums included.
func synFrame(mac net.HardwareAddr, src, dst net.IP, sport, dport uint16) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 0x1000)
	tcp[12] = 5 << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	pseudo := append(append(append([]byte{}, src...), dst...), 0, 6, 0, 20)
	binary.BigEndian.PutUint16(tcp[16:], csum(append(pseudo, tcp...)))
	iph := make([]byte, 20)
	iph[0] = 0x45
	binary.BigEndian.PutUint16(iph[2:], 40)
	iph[8], iph[9] = 64, 6
	copy(iph[12:], src)
	copy(iph[16:], dst)
	binary.BigEndian.PutUint16(iph[10:], csum(iph))
	eth := append(append(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac...), 0x08, 0x00)
	return append(append(eth, iph...), tcp...)
}

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
