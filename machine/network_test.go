package machine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fixture"
	"vlab/profiles"
)

func TestParseNIC(t *testing.T) {
	good := map[string]NICSpec{
		"user":                 {Mode: emulator.NetUser},
		"isolated":             {Mode: emulator.NetUser, Restrict: true},
		"bridge:br0":           {Mode: emulator.NetBridge, Bridge: "br0"},
		"tap:tap3,model=e1000": {Mode: emulator.NetTap, Tap: "tap3", Model: "e1000"},
		"lab:lab-1.a":          {Mode: NetLab, Lab: "lab-1.a"},
		"user,mac=52:54:00:ab:cd:01,model=rtl8139": {Mode: emulator.NetUser, MAC: "52:54:00:ab:cd:01", Model: "rtl8139"},
	}
	for in, want := range good {
		got, err := ParseNIC(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseNIC(%q) = %+v, %v; want %+v", in, got, err, want)
			continue
		}
		back, err := ParseNIC(strings.SplitN(in, ",", 2)[0])
		if err != nil || back.ModeString() != got.ModeString() || got.ModeString() != strings.SplitN(in, ",", 2)[0] {
			t.Errorf("%q: ModeString %q does not read back", in, got.ModeString())
		}
	}
	for _, bad := range []string{"", "wifi", "bridge", "bridge:", "tap:", "lab:", "lab:../x", "lab:a b", "user:x",
		"bridge:a/b", "user,mac=zz", "user,mac=01:00:5e:00:00:01", "user,speed=10", "user,model", "bridge:averyveryverylongname"} {
		if _, err := ParseNIC(bad); err == nil {
			t.Errorf("ParseNIC(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseNIC(%q) error is not one line: %v", bad, err)
		}
	}
}

func TestForwardAuto(t *testing.T) {
	f, err := ParseForward("tcp:auto:22")
	if err != nil || f != (Forward{"tcp", "127.0.0.1", 0, 22}) {
		t.Fatalf("ParseForward(tcp:auto:22) = %+v, %v", f, err)
	}
	if s := f.String(); s != "tcp:127.0.0.1:auto:22" {
		t.Errorf("String = %q", s)
	}
	if g, err := ParseForward(f.String()); err != nil || g != f {
		t.Errorf("round trip = %+v, %v", g, err)
	}
	// TOML keeps it.
	spec := NewSpec("a", emulator.ArchX86_64)
	spec.NICs = []NICSpec{{Mode: emulator.NetUser, MAC: "52:54:00:00:00:01", Forwards: []Forward{f, {"udp", "127.0.0.1", 5353, 53}}},
		{Mode: NetLab, Lab: "lab1", MAC: "52:54:00:00:00:02"}}
	data, err := encodeSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeSpec("a", "machine.toml", data)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(back.NICs, spec.NICs) {
		t.Errorf("toml round trip: %+v, want %+v", back.NICs, spec.NICs)
	}
	// Two auto forwards to the same guest port cannot be told apart; to
	// different ports they can.
	spec.NICs[0].Forwards = []Forward{f, f}
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "auto") {
		t.Errorf("duplicate auto forwards: %v", err)
	}
	spec.NICs[0].Forwards = []Forward{f, {"tcp", "127.0.0.1", 0, 80}, {"udp", "127.0.0.1", 0, 22}}
	if err := spec.Validate(); err != nil {
		t.Errorf("distinct auto forwards: %v", err)
	}
	spec.NICs[1].Lab = "no/slash"
	if err := spec.Validate(); err == nil {
		t.Error("bad lab name accepted")
	}
}

func TestStableMAC(t *testing.T) {
	a, b := StableMAC("vm", 0), StableMAC("vm", 0)
	if a != b {
		t.Fatalf("not stable: %s %s", a, b)
	}
	if StableMAC("vm", 1) == a || StableMAC("vm2", 0) == a {
		t.Error("different NICs share a MAC")
	}
	hw, err := net.ParseMAC(a)
	if err != nil || !strings.HasPrefix(a, "52:54:00:") || hw[0]&1 != 0 {
		t.Errorf("MAC %q is not a unicast 52:54:00 address", a)
	}
}

// usernetOut is HMP `info usernet` as QEMU 7.2 prints it (captured).
const usernetOut = "Hub -1 (net0):\r\n" +
	"  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n" +
	"  TCP[HOST_FORWARD]   9       127.0.0.1 38801       10.0.2.15    80     0     0\r\n" +
	"  TCP[HOST_FORWARD]   8       127.0.0.1 33677       10.0.2.15    22     0     0\r\n" +
	"  UDP[HOST_FORWARD]   3       127.0.0.1 51634       10.0.2.15    53     0     0\r\n" +
	"  TCP[ESTABLISHED]   14       10.0.2.16 40000        10.0.2.2  8000     0     0\r\n" +
	"  UDP[236 sec]       15       10.0.2.16 41000        10.0.2.3    53     0     0\r\n" +
	"Hub -1 (net2):\r\n" +
	"  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"

func TestParseUsernet(t *testing.T) {
	got := parseUsernet(usernetOut)
	if len(got) != 2 || len(got["net0"]) != 5 || len(got["net2"]) != 0 {
		t.Fatalf("parse = %+v", got)
	}
	want := usernetRow{Proto: "udp", State: "236 sec", SrcAddr: "10.0.2.16", SrcPort: 41000, DstAddr: "10.0.2.3", DstPort: 53}
	if got["net0"][4] != want {
		t.Errorf("row with a space in its state = %+v", got["net0"][4])
	}
	fwds := []Forward{
		{"tcp", "127.0.0.1", 0, 80},     // auto
		{"tcp", "127.0.0.1", 33677, 22}, // fixed
		{"udp", "127.0.0.1", 0, 53},     // auto
		{"tcp", "127.0.0.1", 0, 443},    // not bound (QEMU lacks it)
	}
	b := bindForwards(fwds, got["net0"])
	ports := []int{b[0].HostPort, b[1].HostPort, b[2].HostPort, b[3].HostPort}
	if !reflect.DeepEqual(ports, []int{38801, 33677, 51634, 0}) {
		t.Errorf("bound ports = %v", ports)
	}
	s := &Store{}
	spec := &Spec{NICs: []NICSpec{{Mode: emulator.NetUser}}}
	if ip, _ := s.guestIP(spec, 0, "", got["net0"]); ip != "10.0.2.16" {
		t.Errorf("guest ip from the connection table = %q", ip)
	}
	if ip, _ := s.guestIP(spec, 0, "", nil); ip != slirpGuestIP {
		t.Errorf("guest ip without connections = %q", ip)
	}
}

func TestMatchForward(t *testing.T) {
	auto := forwardInfo(Forward{"tcp", "127.0.0.1", 0, 22})
	auto.HostPort, auto.Active = 41234, true
	fixed := forwardInfo(Forward{"tcp", "127.0.0.1", 8080, 80})
	for _, c := range []struct {
		ref  string
		fw   ForwardInfo
		want bool
	}{
		{"tcp:auto:22", auto, true},
		{"tcp:41234", auto, true}, // the port it is bound to now
		{"tcp:auto:23", auto, false},
		{"udp:auto:22", auto, false},
		{"tcp:8080", fixed, true},
		{"tcp:8080:80", fixed, true},
		{"tcp:8080:81", fixed, false},
		{"tcp:10.0.0.1:8080", fixed, false},
		{"tcp:127.0.0.1:8080", fixed, true},
		{"tcp:auto:80", fixed, false},
	} {
		ref, err := ParseForwardRef(c.ref)
		if err != nil {
			t.Fatalf("ParseForwardRef(%q): %v", c.ref, err)
		}
		if got := matchForward(c.fw, ref); got != c.want {
			t.Errorf("match(%s, %q) = %v", c.fw.Spec, c.ref, got)
		}
	}
	for _, bad := range []string{"tcp", "sctp:80", "tcp:x", "tcp:host:80", ""} {
		if _, err := ParseForwardRef(bad); err == nil {
			t.Errorf("ParseForwardRef(%q) accepted", bad)
		}
	}
}

func TestOfferSSHForward(t *testing.T) {
	linux, err := profiles.Get("debian")
	if err != nil {
		t.Fatalf("no debian profile (embedded data): %v", err)
	}
	spec := NewSpec("a", emulator.ArchX86_64)
	if !OfferSSHForward(spec, linux) {
		t.Fatal("no ssh forward for a linux profile")
	}
	if got := spec.NICs[0].Forwards; len(got) != 1 || got[0].String() != "tcp:127.0.0.1:auto:22" {
		t.Fatalf("forwards = %v", got)
	}
	if OfferSSHForward(spec, linux) || len(spec.NICs[0].Forwards) != 1 {
		t.Error("a second ssh forward was added")
	}
	all := profiles.List()
	for _, p := range all {
		if p.Family != "linux" {
			s := NewSpec("b", p.Arch)
			if OfferSSHForward(s, p) {
				t.Errorf("profile %s (%s) got an ssh forward", p.Name, p.Family)
			}
			break
		}
	}
	none := NewSpec("c", emulator.ArchX86_64)
	none.NICs = nil
	if OfferSSHForward(none, linux) {
		t.Error("ssh forward without a user-mode nic")
	}
}

func TestBridgeACL(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inc := write("inc.conf", "allow br2\ndeny br3\n")
	main := write("bridge.conf", "# comment\nallow br0 # trailing\nallow br3\ninclude "+inc+"\n")
	for br, want := range map[string]bool{"br0": true, "br2": true, "br3": false, "br9": false} {
		got, err := bridgeAllowed(main, br, 0)
		if err != nil || got != want {
			t.Errorf("allowed(%s) = %v, %v; want %v", br, got, err, want)
		}
	}
	all := write("all.conf", "allow all\ndeny br1\n")
	if ok, _ := bridgeAllowed(all, "anything", 0); !ok {
		t.Error("allow all did not allow")
	}
	if ok, _ := bridgeAllowed(all, "br1", 0); ok {
		t.Error("deny br1 did not win over allow all")
	}
	loop := write("loop.conf", "include "+filepath.Join(dir, "loop.conf")+"\n")
	if _, err := bridgeAllowed(loop, "br0", 0); err == nil {
		t.Error("include loop not caught")
	}

	old := BridgeACL
	t.Cleanup(func() { BridgeACL = old })
	BridgeACL = filepath.Join(dir, "missing.conf")
	c := CheckBridge("vlabnobr0")
	err := c.Err()
	if err == nil {
		t.Fatal("a missing ACL and bridge passed")
	}
	msg := err.Error()
	for _, want := range []string{"missing.conf is missing", "echo 'allow vlabnobr0' | sudo tee -a " + BridgeACL,
		"bridge vlabnobr0 does not exist", "sudo ip link add vlabnobr0 type bridge"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	BridgeACL = write("deny.conf", "allow otherbr\n")
	if msg := CheckBridge("vlabnobr0").Err().Error(); !strings.Contains(msg, "does not allow bridge vlabnobr0") {
		t.Errorf("denied bridge: %s", msg)
	}
	BridgeACL = write("ok.conf", "allow lo\n")
	c = CheckBridge("lo") // lo exists but is no bridge
	if c.Allowed != true || c.BridgeExists || c.Err() == nil || !strings.Contains(c.Err().Error(), "not a bridge") {
		t.Errorf("lo: %+v", c)
	}
}

func TestCapsHaveNetAdmin(t *testing.T) {
	caps := func(magic, permitted uint32) []byte {
		b := make([]byte, 20)
		binary.LittleEndian.PutUint32(b[0:], magic)
		binary.LittleEndian.PutUint32(b[4:], permitted)
		return b
	}
	const v2 = 0x02000000
	if !capsHaveNetAdmin(caps(v2|1, 1<<capNetAdmin)) {
		t.Error("cap_net_admin+ep not seen")
	}
	if capsHaveNetAdmin(caps(v2, 1<<capNetAdmin)) {
		t.Error("cap_net_admin without the effective flag counted")
	}
	if capsHaveNetAdmin(caps(v2|1, 1<<13)) {
		t.Error("another capability counted as cap_net_admin")
	}
	if capsHaveNetAdmin([]byte{1, 2}) {
		t.Error("short value accepted")
	}
}

func TestCheckTap(t *testing.T) {
	err := CheckTap("vlabnotap0")
	if err == nil || !strings.Contains(err.Error(), "sudo ip tuntap add dev vlabnotap0 mode tap user") {
		t.Errorf("missing tap: %v", err)
	}
	if err := CheckTap("lo"); err == nil || !strings.Contains(err.Error(), "not a tap") {
		t.Errorf("lo as a tap: %v", err)
	}
}

// dhcpClientFrame builds the Ethernet frame of a DHCP client message.
func dhcpClientFrame(mac net.HardwareAddr, typ byte, requested, server net.IP) []byte {
	b := make([]byte, bootpFixedLen+4)
	b[0], b[1], b[2] = 1, 1, 6
	copy(b[4:8], []byte{1, 2, 3, 4})
	copy(b[28:34], mac)
	binary.BigEndian.PutUint32(b[bootpFixedLen:], dhcpMagic)
	b = append(b, optMsgType, 1, typ)
	if requested != nil {
		b = append(b, optRequested, 4)
		b = append(b, requested.To4()...)
	}
	if server != nil {
		b = append(b, optServerID, 4)
		b = append(b, server.To4()...)
	}
	b = append(b, optEnd)
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 68)
	binary.BigEndian.PutUint16(udp[2:], 67)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(b)))
	udp = append(udp, b...)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
	copy(ip[16:], net.IPv4bcast.To4())
	ip = append(ip, udp...)
	eth := append(bytes.Repeat([]byte{0xff}, 6), mac...)
	eth = append(eth, 0x08, 0x00)
	return append(eth, ip...)
}

// dhcpReply decodes a server reply frame: message type, yiaddr, server id
// and subnet mask.
func dhcpReply(t *testing.T, f []byte) (typ byte, yiaddr, server net.IP, mask net.IPMask) {
	t.Helper()
	if f == nil {
		t.Fatal("no reply")
	}
	if !bytes.Equal(f[0:6], bytes.Repeat([]byte{0xff}, 6)) || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		t.Fatalf("reply is not a broadcast IPv4 frame: % x", f[:14])
	}
	ip := f[14:]
	if ipChecksum(ip[:20]) != 0 {
		t.Error("bad IPv4 header checksum")
	}
	udp := ip[20:]
	if binary.BigEndian.Uint16(udp[0:]) != 67 || binary.BigEndian.Uint16(udp[2:]) != 68 || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		t.Fatalf("bad udp header % x", udp[:8])
	}
	b := udp[8:]
	if b[0] != 2 || !bytes.Equal(b[4:8], []byte{1, 2, 3, 4}) {
		t.Fatalf("not a reply to our xid: % x", b[:8])
	}
	yiaddr = net.IP(b[16:20])
	opts := b[bootpFixedLen+4:]
	for i := 0; i < len(opts) && opts[i] != optEnd; i += 2 + int(opts[i+1]) {
		v := opts[i+2 : i+2+int(opts[i+1])]
		switch opts[i] {
		case optMsgType:
			typ = v[0]
		case optServerID:
			server = net.IP(v)
		case optSubnetMask:
			mask = net.IPMask(v)
		}
	}
	return typ, yiaddr, server, mask
}

func TestDHCPServer(t *testing.T) {
	leases := filepath.Join(t.TempDir(), "leases.json")
	d, err := newDHCPServer("10.77.3.0/24", leases)
	if err != nil {
		t.Fatal(err)
	}
	macA, _ := net.ParseMAC("52:54:00:00:00:0a")
	macB, _ := net.ParseMAC("52:54:00:00:00:0b")
	typ, ip, server, mask := dhcpReply(t, d.handle(dhcpClientFrame(macA, dhcpDiscover, nil, nil)))
	if typ != dhcpOffer || ip.String() != "10.77.3.10" || server.String() != "10.77.3.1" || net.IP(mask).String() != "255.255.255.0" {
		t.Fatalf("offer = %d %s %s %s", typ, ip, server, net.IP(mask))
	}
	typ, ip, _, _ = dhcpReply(t, d.handle(dhcpClientFrame(macA, dhcpRequest, ip, server)))
	if typ != dhcpAck || ip.String() != "10.77.3.10" {
		t.Fatalf("ack = %d %s", typ, ip)
	}
	if _, ip, _, _ = dhcpReply(t, d.handle(dhcpClientFrame(macB, dhcpDiscover, nil, nil))); ip.String() != "10.77.3.11" {
		t.Fatalf("second client got %s", ip)
	}
	if typ, _, _, _ = dhcpReply(t, d.handle(dhcpClientFrame(macB, dhcpRequest, net.ParseIP("10.77.3.10"), nil))); typ != dhcpNak {
		t.Errorf("request for another client's address: type %d, want NAK", typ)
	}
	if r := d.handle(dhcpClientFrame(macB, dhcpRequest, net.ParseIP("10.77.3.11"), net.ParseIP("10.77.3.99"))); r != nil {
		t.Error("answered a request meant for another server")
	}
	if r := d.handle([]byte("short")); r != nil {
		t.Error("answered garbage")
	}
	// Leases survive a restart of the switch.
	d2, err := newDHCPServer("10.77.3.0/24", leases)
	if err != nil {
		t.Fatal(err)
	}
	if _, ip, _, _ = dhcpReply(t, d2.handle(dhcpClientFrame(macB, dhcpDiscover, nil, nil))); ip.String() != "10.77.3.11" {
		t.Errorf("after restart client B got %s", ip)
	}
	// A small subnet fills up and then stays silent.
	small, _ := newDHCPServer("10.9.9.0/29", "")
	got := map[string]bool{}
	for i := 0; i < 10; i++ {
		f := small.handle(dhcpClientFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 1, byte(i)}, dhcpDiscover, nil, nil))
		if f == nil {
			continue
		}
		_, ip, _, _ := dhcpReply(t, f)
		got[ip.String()] = true
	}
	if len(got) != 5 || got["10.9.9.1"] || got["10.9.9.7"] || got["10.9.9.0"] {
		t.Errorf("/29 leases = %v, want .2-.6", got)
	}
}

func frame(dst, src net.HardwareAddr, payload string) []byte {
	f := append(append(append([]byte(nil), dst...), src...), 0x88, 0xb5)
	return append(f, payload...)
}

func TestLabSwitchForwarding(t *testing.T) {
	ports := t.TempDir()
	for name, sock := range map[string]string{"a.net0": "/pa", "b.net0": "/pb", "c.net0": "/pc"} {
		os.WriteFile(filepath.Join(ports, name), []byte(sock), 0o600)
	}
	sw, err := newLabSwitch(switchConf{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	macA, _ := net.ParseMAC("52:54:00:00:00:0a")
	macB, _ := net.ParseMAC("52:54:00:00:00:0b")
	bcast, _ := net.ParseMAC("ff:ff:ff:ff:ff:ff")
	to := func(ds []delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.to)
		}
		sort.Strings(out)
		return out
	}
	// Broadcast floods to every registered port but the sender's.
	if got := to(sw.handle(frame(bcast, macA, "hello"), "/pa")); !reflect.DeepEqual(got, []string{"/pb", "/pc"}) {
		t.Errorf("broadcast went to %v", got)
	}
	// Unknown unicast floods too; once B has spoken, frames for B go to B only.
	if got := to(sw.handle(frame(macB, macA, "x"), "/pa")); !reflect.DeepEqual(got, []string{"/pb", "/pc"}) {
		t.Errorf("unknown unicast went to %v", got)
	}
	sw.handle(frame(macA, macB, "reply"), "/pb")
	if got := to(sw.handle(frame(macB, macA, "x"), "/pa")); !reflect.DeepEqual(got, []string{"/pb"}) {
		t.Errorf("learned unicast went to %v", got)
	}
	// A port that stopped listening is forgotten (its registry stays: the
	// VM may start again); one whose socket is gone leaves the registry.
	sw.sendFailed("/pb", errConnRefused())
	if got := to(sw.handle(frame(macB, macA, "x"), "/pa")); !reflect.DeepEqual(got, []string{"/pb", "/pc"}) {
		t.Errorf("after B stopped, frames for B went to %v", got)
	}
	sw.sendFailed("/pc", errNoEnt())
	if _, err := os.Stat(filepath.Join(ports, "c.net0")); err == nil {
		t.Error("registry entry of a deleted socket kept")
	}
	if got := sw.handle([]byte{1, 2, 3}, "/pa"); got != nil {
		t.Errorf("runt frame forwarded: %v", got)
	}
}

// labStore opens a Store under a temp dir whose lab switches run in this
// test process's child (the test binary re-executed, see init below).
func labStore(t *testing.T) *Store {
	t.Helper()
	s := emptyStore(t)
	old := LabSwitchCommand
	LabSwitchCommand = func(conf string) ([]string, error) {
		return []string{os.Args[0], "-test.run=^$", conf}, nil
	}
	t.Setenv(envLabSwitch, "1")
	t.Cleanup(func() {
		LabSwitchCommand = old
		names, _ := s.LabNames()
		for _, n := range names {
			s.RemoveLab(context.Background(), n, true)
		}
	})
	return s
}

// envLabSwitch makes the test binary run a lab switch (its last argument is
// the switch config) instead of the tests.
const envLabSwitch = "VLAB_TEST_LABSWITCH"

func init() {
	if os.Getenv(envLabSwitch) == "1" && len(os.Args) > 1 && strings.HasSuffix(os.Args[len(os.Args)-1], labConf) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := ServeLab(ctx, os.Args[len(os.Args)-1])
		cancel()
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func TestLabCreateListRemove(t *testing.T) {
	s := labStore(t)
	ctx := context.Background()
	a, err := s.CreateLab(ctx, Lab{Name: "lab1", DHCP: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateLab(ctx, Lab{Name: "lab2"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Subnet == "" || a.Subnet == b.Subnet {
		t.Errorf("default subnets %q and %q", a.Subnet, b.Subnet)
	}
	if _, err := s.CreateLab(ctx, Lab{Name: "lab1"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second lab1: %v", err)
	}
	for _, bad := range []Lab{{Name: "../x"}, {Name: ""}, {Name: "ok", Subnet: "10.1.1.1/24"}, {Name: "ok", Subnet: "fe80::/64"}, {Name: "ok", Subnet: "10.0.0.0/31"}} {
		if _, err := s.CreateLab(ctx, bad); err == nil {
			t.Errorf("CreateLab(%+v) accepted", bad)
		}
	}
	if names, _ := s.LabNames(); !reflect.DeepEqual(names, []string{"lab1", "lab2"}) {
		t.Errorf("labs = %v", names)
	}
	// A VM on lab1 keeps it from being removed.
	spec := NewSpec("vm1", emulator.ArchX86_64)
	spec.NICs = []NICSpec{{Mode: NetLab, Lab: "lab1", MAC: "52:54:00:00:00:01"}}
	writeSpec(t, s, spec)
	if err := s.RemoveLab(ctx, "lab1", false); err == nil || !strings.Contains(err.Error(), "vm1") {
		t.Errorf("remove a lab in use: %v", err)
	}
	li, err := s.LabInfo("lab1")
	if err != nil || !reflect.DeepEqual(li.Members, []string{"vm1"}) || li.Switch {
		t.Errorf("lab info = %+v, %v", li, err)
	}
	if err := s.RemoveLab(ctx, "lab2", false); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveLab(ctx, "lab1", true); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.LabNames(); len(names) != 0 {
		t.Errorf("labs after rm = %v", names)
	}
	if _, err := s.LoadLab("lab1"); err == nil || !strings.Contains(err.Error(), "vlab net lab create lab1") {
		t.Errorf("load removed lab: %v", err)
	}
}

// writeSpec saves spec as a VM without creating disks.
func writeSpec(t *testing.T, s *Store, spec *Spec) {
	t.Helper()
	p := s.Paths(spec.Name)
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := encodeSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Spec, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLabSwitchProcess runs a real switch process for two labs and sends
// frames between unix datagram sockets standing in for QEMU: they reach
// the VMs of the same lab only, and the DHCP server answers.
func TestLabSwitchProcess(t *testing.T) {
	s := labStore(t)
	ctx := context.Background()
	if _, err := s.CreateLab(ctx, Lab{Name: "red", Subnet: "10.50.0.0/24", DHCP: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateLab(ctx, Lab{Name: "blue", Subnet: "10.50.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	type vm struct {
		name, lab string
		conn      *net.UnixConn
		mac       net.HardwareAddr
	}
	var vms []*vm
	for _, c := range [][2]string{{"a", "red"}, {"b", "red"}, {"c", "blue"}} {
		spec := NewSpec(c[0], emulator.ArchX86_64)
		spec.NICs = []NICSpec{{Mode: NetLab, Lab: c[1]}}
		writeSpec(t, s, spec)
		if err := s.prepareNetwork(ctx, spec); err != nil {
			t.Fatalf("prepare %s: %v", c[0], err)
		}
		nic, err := s.nicConfig(spec, 0)
		if err != nil {
			t.Fatal(err)
		}
		if nic.Mode != emulator.NetSocket || nic.Socket[0] != "dgram" || !strings.HasPrefix(nic.Socket[2], "local.path=") {
			t.Fatalf("nic config %+v", nic)
		}
		local := strings.TrimPrefix(nic.Socket[2], "local.path=")
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: local, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		mac, _ := net.ParseMAC(StableMAC(c[0], 0))
		vms = append(vms, &vm{name: c[0], lab: c[1], conn: conn, mac: mac})
	}
	send := func(v *vm, f []byte) {
		t.Helper()
		remote := s.labPaths(v.lab).Socket
		if _, err := v.conn.WriteToUnix(f, &net.UnixAddr{Name: remote, Net: "unixgram"}); err != nil {
			t.Fatalf("%s send: %v", v.name, err)
		}
	}
	recv := func(v *vm, wait time.Duration) []byte {
		buf := make([]byte, 2048)
		v.conn.SetReadDeadline(time.Now().Add(wait))
		n, _, err := v.conn.ReadFromUnix(buf)
		if err != nil {
			return nil
		}
		return buf[:n]
	}
	bcast, _ := net.ParseMAC("ff:ff:ff:ff:ff:ff")
	// c on blue speaks first: nobody on red may hear it.
	send(vms[2], frame(bcast, vms[2].mac, "from c"))
	send(vms[0], frame(bcast, vms[0].mac, "from a"))
	if got := recv(vms[1], 5*time.Second); !bytes.HasSuffix(got, []byte("from a")) {
		t.Fatalf("b got %q, want a's broadcast", got)
	}
	if got := recv(vms[1], 500*time.Millisecond); got != nil {
		t.Errorf("b also got %q (from another lab?)", got)
	}
	if got := recv(vms[2], 500*time.Millisecond); got != nil {
		t.Errorf("c on blue got %q from red", got)
	}
	// DHCP on red: a gets an offer from the switch; blue has no DHCP.
	send(vms[0], dhcpClientFrame(vms[0].mac, dhcpDiscover, nil, nil))
	got := recv(vms[0], 5*time.Second)
	typ, ip, _, _ := dhcpReply(t, got)
	if typ != dhcpOffer || ip.String() != "10.50.0.10" {
		t.Errorf("offer = %d %s", typ, ip)
	}
	if got := recv(vms[1], 500*time.Millisecond); got != nil {
		t.Errorf("b saw a's DHCP traffic: %q", got)
	}
	send(vms[2], dhcpClientFrame(vms[2].mac, dhcpDiscover, nil, nil))
	if got := recv(vms[2], time.Second); got != nil {
		t.Errorf("blue (no dhcp) answered: %q", got)
	}
	if lease := s.labLease("red", vms[0].mac.String()); lease != "10.50.0.10" {
		t.Errorf("lease recorded = %q", lease)
	}
	li, _ := s.LabInfo("red")
	if !li.Switch || li.PID == 0 {
		t.Errorf("switch not reported running: %+v", li)
	}
	// Removing the lab stops its switch.
	if err := s.RemoveLab(ctx, "red", true); err != nil {
		t.Fatal(err)
	}
	if _, running := s.labSwitchPID("red"); running {
		t.Error("switch still running after rm")
	}
}

func errConnRefused() error {
	return &net.OpError{Op: "write", Net: "unixgram", Err: os.NewSyscallError("sendto", syscall.ECONNREFUSED)}
}

func errNoEnt() error {
	return &net.OpError{Op: "write", Net: "unixgram", Err: os.NewSyscallError("sendto", syscall.ENOENT)}
}

// realStore opens a Store under a temp dir on the real host's QEMU, failing
// (VLAB_REQUIRE_E2E=1) or skipping when qemu-system-x86_64 is missing.
func realStore(t *testing.T) *Store {
	t.Helper()
	fixture.Program(t, "qemu-system-x86_64")
	s := emptyStore(t)
	t.Cleanup(func() {
		names, _ := s.Names()
		for _, n := range names {
			s.Stop(context.Background(), n, StopOptions{Force: true})
		}
	})
	return s
}

// bound reports whether proto addr is taken (by the QEMU that bound it).
func bound(proto, addr string) bool {
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	}
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
	}
	return err != nil
}

// TestAutoForwardsRealQEMU starts five VMs at once, each with auto TCP and
// UDP forwards, on real QEMU (the guests have no OS: only the host side of
// the forwards matters here), and checks every forward got its own port,
// that QEMU holds it and that vlab recorded it; then adds and removes
// forwards on a running VM.
func TestAutoForwardsRealQEMU(t *testing.T) {
	s := realStore(t)
	ctx := context.Background()
	const n = 5
	for i := 0; i < n; i++ {
		spec := NewSpec(fmt.Sprintf("vm%d", i), emulator.ArchX86_64)
		spec.Memory, spec.Display, spec.Accel = 64*MiB, emulator.DisplayNone, emulator.AccelTCG
		spec.NICs = []NICSpec{{Mode: emulator.NetUser, Restrict: true, Forwards: []Forward{
			{"tcp", "127.0.0.1", 0, 22}, {"udp", "127.0.0.1", 0, 53}}}}
		if err := s.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) { errs <- s.Start(ctx, fmt.Sprintf("vm%d", i), StartOptions{}) }(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	seen := map[string]string{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("vm%d", i)
		info, err := s.Network(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var rec netRecord
		if err := readJSON(s.Paths(name).netRecord(), &rec); err != nil {
			t.Fatalf("%s: no runtime record: %v", name, err)
		}
		for k, f := range info.NICs[0].Forwards {
			if !f.Active || f.HostPort == 0 || !f.Auto {
				t.Fatalf("%s: forward %+v not bound", name, f)
			}
			key := f.Proto + "/" + f.Addr
			if other, dup := seen[key]; dup {
				t.Errorf("%s and %s both got %s", other, name, key)
			}
			seen[key] = name
			if !bound(f.Proto, f.Addr) {
				t.Errorf("%s: %s %s is not held by qemu", name, f.Proto, f.Addr)
			}
			if got := rec.NICs["net0"][k].HostPort; got != f.HostPort {
				t.Errorf("%s: recorded port %d, qemu has %d", name, got, f.HostPort)
			}
		}
	}
	if len(seen) != 2*n {
		t.Fatalf("%d distinct ports for %d forwards", len(seen), 2*n)
	}

	// Hot add: an auto port and a fixed one, bound without a restart.
	st0, _ := s.Status(ctx, "vm0")
	fi, err := s.AddForward(ctx, "vm0", -1, Forward{"tcp", "127.0.0.1", 0, 80})
	if err != nil || !fi.Active || fi.HostPort == 0 || !bound("tcp", fi.Addr) {
		t.Fatalf("hot add auto = %+v, %v", fi, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := l.Addr().(*net.TCPAddr).Port
	if _, err := s.AddForward(ctx, "vm0", -1, Forward{"tcp", "127.0.0.1", busy, 81}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("hot add on a busy port: %v", err)
	}
	l.Close()
	fixed, err := s.AddForward(ctx, "vm0", -1, Forward{"tcp", "127.0.0.1", busy, 81})
	if err != nil || !fixed.Active || fixed.HostPort != busy || !bound("tcp", fixed.Addr) {
		t.Fatalf("hot add fixed = %+v, %v", fixed, err)
	}
	spec, _ := s.Load("vm0")
	if len(spec.NICs[0].Forwards) != 4 {
		t.Errorf("saved forwards = %v", spec.NICs[0].Forwards)
	}
	// Hot remove by the port an auto forward got, and by rule.
	ref, _ := ParseForwardRef(fmt.Sprintf("tcp:%d", fi.HostPort))
	if _, err := s.RemoveForward(ctx, "vm0", -1, ref); err != nil {
		t.Fatal(err)
	}
	if bound("tcp", fi.Addr) {
		t.Error("removed auto forward still bound")
	}
	if _, err := s.RemoveForward(ctx, "vm0", -1, Forward{"tcp", "127.0.0.1", busy, 81}); err != nil {
		t.Fatal(err)
	}
	if bound("tcp", fixed.Addr) {
		t.Error("removed fixed forward still bound")
	}
	if _, err := s.RemoveForward(ctx, "vm0", -1, Forward{"tcp", "127.0.0.1", busy, 81}); err == nil {
		t.Error("removing a removed forward succeeded")
	}
	spec, _ = s.Load("vm0")
	if len(spec.NICs[0].Forwards) != 2 {
		t.Errorf("saved forwards after rm = %v", spec.NICs[0].Forwards)
	}
	if st, _ := s.Status(ctx, "vm0"); st.PID != st0.PID || st.State != StateRunning {
		t.Errorf("vm0 restarted or stopped: %+v (was pid %d)", st, st0.PID)
	}
	// On a stopped VM a forward is saved for the next start.
	if _, err := s.Stop(ctx, "vm1", StopOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	fi, err = s.AddForward(ctx, "vm1", -1, Forward{"tcp", "127.0.0.1", 0, 8080})
	if err != nil || fi.Active || fi.HostPort != 0 {
		t.Fatalf("add to a stopped vm = %+v, %v", fi, err)
	}
	info, _ := s.Network(ctx, "vm1")
	if info.Running || len(info.NICs[0].Forwards) != 3 || info.NICs[0].Forwards[2].Spec != "tcp:127.0.0.1:auto:8080" {
		t.Errorf("stopped vm network = %+v", info)
	}
}
