package machine

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// boundSwitch is a lab switch with DHCP on 10.66.0.0/24 whose registry
// holds: VM a (port /pa, MAC 52:54:00:00:00:0a), VM b (port /pb, MAC
// 52:54:00:00:00:0b) and an entry of an older vlab without a MAC (port
// /pc).
func boundSwitch(t *testing.T) (*labSwitch, string) {
	t.Helper()
	dir := t.TempDir()
	ports := filepath.Join(dir, "ports")
	os.Mkdir(ports, 0o700)
	for name, content := range map[string]string{
		"a.net0": "/pa\n52:54:00:00:00:0a\n",
		"b.net0": "/pb\n52:54:00:00:00:0b\n",
		"c.net0": "/pc",
	} {
		if err := os.WriteFile(filepath.Join(ports, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	leases := filepath.Join(dir, "leases.json")
	sw, err := newLabSwitch(switchConf{Ports: ports, Leases: leases, Lab: Lab{Name: "l", Subnet: "10.66.0.0/24", DHCP: true}})
	if err != nil {
		t.Fatal(err)
	}
	return sw, leases
}

func randomMAC(rng *rand.Rand) net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	rng.Read(m)
	m[0] &^= 1 // unicast
	return m
}

// fromSwitch keeps the deliveries the switch itself sent (its DHCP
// replies), dropping frames it forwards (a refused DISCOVER is still a
// broadcast other guests may answer).
func fromSwitch(ds []delivery) []delivery {
	var out []delivery
	for _, d := range ds {
		if bytes.Equal(d.frame[6:12], switchMAC[:]) {
			out = append(out, d)
		}
	}
	return out
}

// offered returns the address offered in the one reply of ds (nil: none).
func offered(t *testing.T, ds []delivery, port string) net.IP {
	t.Helper()
	ds = fromSwitch(ds)
	if len(ds) == 0 {
		return nil
	}
	if len(ds) != 1 || ds[0].to != port {
		t.Fatalf("DHCP reply went to %d ports (first %q), want only %s", len(ds), ds[0].to, port)
	}
	typ, ip, _, _ := dhcpReply(t, ds[0].frame)
	if typ != dhcpOffer && typ != dhcpAck {
		return nil
	}
	return ip
}

// TestLabDHCPForgedDiscoverFlood: a guest on the lab sends DISCOVERs for
// thousands of made-up MACs; the switch serves DHCP only to its members'
// MACs (each from its own port), so the pool is not exhausted, the real
// member still gets its lease, and only members' leases are written to
// leases.json. A port whose MAC vlab does not know gets a few leases only.
func TestLabDHCPForgedDiscoverFlood(t *testing.T) {
	sw, leases := boundSwitch(t)
	rng := rand.New(rand.NewSource(1))
	answered := 0
	for i := 0; i < 5000; i++ {
		mac := randomMAC(rng)
		if ds := fromSwitch(sw.handle(dhcpClientFrame(mac, dhcpDiscover, nil, nil), "/pb")); len(ds) > 0 {
			answered++
		}
	}
	if answered > 0 {
		t.Errorf("the switch answered %d DISCOVERs for MACs that are no member's", answered)
	}
	// b may not take a's lease either.
	macA, _ := net.ParseMAC("52:54:00:00:00:0a")
	if ds := fromSwitch(sw.handle(dhcpClientFrame(macA, dhcpDiscover, nil, nil), "/pb")); len(ds) > 0 {
		t.Error("the switch answered a DISCOVER for a's MAC sent from b's port")
	}
	// Flooding from the port of unknown MAC is capped per port.
	fromC := 0
	for i := 0; i < 1000; i++ {
		if ip := offered(t, sw.handle(dhcpClientFrame(randomMAC(rng), dhcpDiscover, nil, nil), "/pc"), "/pc"); ip != nil {
			fromC++
		}
	}
	if fromC == 0 || fromC > maxLeasesPerPort {
		t.Errorf("a port without a known MAC got %d leases, want 1..%d", fromC, maxLeasesPerPort)
	}
	if ip := offered(t, sw.handle(dhcpClientFrame(macA, dhcpDiscover, nil, nil), "/pa"), "/pa"); ip == nil || !sw.dhcp.subnet.Contains(ip) {
		t.Fatalf("member a got no offer after the flood (offer %v)", ip)
	}
	var saved map[string]string
	if err := readJSON(leases, &saved); err != nil {
		t.Fatal(err)
	}
	for mac := range saved {
		if mac != "52:54:00:00:00:0a" {
			t.Errorf("leases.json holds %s, not a member's MAC (%d entries)", mac, len(saved))
			break
		}
	}
}

// TestLabSwitchMACTableBounded: a guest sending frames from a million
// source MACs leaves the switch's MAC table bounded, and the other ports'
// addresses stay learned.
func TestLabSwitchMACTableBounded(t *testing.T) {
	sw, _ := boundSwitch(t)
	macA, _ := net.ParseMAC("52:54:00:00:00:0a")
	macX, _ := net.ParseMAC("52:54:00:00:00:99")
	sw.handle(frame(macX, macA, "hello"), "/pa")
	rng := rand.New(rand.NewSource(2))
	f := frame(macA, macA, "flood")
	for i := 0; i < 1_000_000; i++ {
		binary.LittleEndian.PutUint32(f[6+1:], rng.Uint32())
		f[6] = byte(rng.Intn(128)) &^ 1
		sw.handle(f, "/pb")
	}
	if n := len(sw.macs); n > 3*maxMACsPerPort {
		t.Errorf("MAC table holds %d entries after a flood of 1e6 source MACs, want at most %d", n, 3*maxMACsPerPort)
	}
	ds := sw.handle(frame(macA, macX, "to a"), "/pc")
	if len(ds) != 1 || ds[0].to != "/pa" {
		t.Errorf("after the flood a frame for a went to %v, want /pa only", ds)
	}
}

// TestLabDHCPLeaseExpiry: a lease not renewed by a REQUEST within the lease
// time is given to another client when the pool is full; a renewed one
// stays.
func TestLabDHCPLeaseExpiry(t *testing.T) {
	d, err := newDHCPServer("10.9.9.0/29", "") // .2-.6: five addresses
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	d.now = func() time.Time { return now }
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 2, byte(i)} }
	ips := map[int]net.IP{}
	for i := 0; i < 5; i++ {
		_, ip, server, _ := dhcpReply(t, d.handle(dhcpClientFrame(mac(i), dhcpDiscover, nil, nil)))
		typ, ip2, _, _ := dhcpReply(t, d.handle(dhcpClientFrame(mac(i), dhcpRequest, ip, server)))
		if typ != dhcpAck || !ip2.Equal(ip) {
			t.Fatalf("client %d: %d %s", i, typ, ip2)
		}
		ips[i] = ip
	}
	if r := d.handle(dhcpClientFrame(mac(5), dhcpDiscover, nil, nil)); r != nil {
		t.Fatal("a sixth client got an address from a full /29")
	}
	// Half the lease time later clients 1-4 renew; client 0 is gone.
	now = now.Add(dhcpLeaseTime / 2)
	for i := 1; i < 5; i++ {
		if typ, _, _, _ := dhcpReply(t, d.handle(dhcpClientFrame(mac(i), dhcpRequest, ips[i], nil))); typ != dhcpAck {
			t.Fatalf("renewal of client %d: type %d", i, typ)
		}
	}
	now = now.Add(dhcpLeaseTime/2 + time.Second)
	_, ip, _, _ := dhcpReply(t, d.handle(dhcpClientFrame(mac(5), dhcpDiscover, nil, nil)))
	if !ip.Equal(ips[0]) {
		t.Errorf("after client 0's lease expired the sixth client got %s, want %s", ip, ips[0])
	}
	for i := 1; i < 5; i++ {
		if typ, ip, _, _ := dhcpReply(t, d.handle(dhcpClientFrame(mac(i), dhcpRequest, ips[i], nil))); typ != dhcpAck || !ip.Equal(ips[i]) {
			t.Errorf("renewed client %d lost its address: %d %s", i, typ, ip)
		}
	}
}

// TestLabSwitchMACAging: an address not heard from for macMaxAge is
// forgotten (frames for it flood again until it speaks).
func TestLabSwitchMACAging(t *testing.T) {
	sw, _ := boundSwitch(t)
	now := time.Unix(2_000_000, 0)
	sw.now = func() time.Time { return now }
	macA, _ := net.ParseMAC("52:54:00:00:00:0a")
	macB, _ := net.ParseMAC("52:54:00:00:00:0b")
	sw.handle(frame(macB, macA, "hello"), "/pa")
	if ds := sw.handle(frame(macA, macB, "x"), "/pb"); len(ds) != 1 || ds[0].to != "/pa" {
		t.Fatalf("a frame for a learned address went to %v", ds)
	}
	now = now.Add(macMaxAge + time.Second)
	if ds := sw.handle(frame(macA, macB, "x"), "/pb"); len(ds) != 2 {
		t.Errorf("a frame for an address silent for %v went to %v, want a flood to /pa and /pc", macMaxAge, ds)
	}
	if _, ok := sw.macs[[6]byte(macA)]; ok {
		t.Error("the aged address is still in the table")
	}
}
