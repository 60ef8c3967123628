package machine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// switchConf is what a lab switch process needs, written by the VM start
// that launches it (switch.conf.json in the lab's runtime dir).
type switchConf struct {
	Lab    Lab    `json:"lab"`
	Def    string `json:"def"`    // lab.toml: the switch leaves when it is gone
	Socket string `json:"socket"` // unixgram socket the VMs send to
	Lock   string `json:"lock"`   // held for the switch's whole life
	Record string `json:"record"` // switch.json
	Ports  string `json:"ports"`  // registry: one file per VM NIC holding its socket path
	Leases string `json:"leases"` // leases.json (MAC -> IPv4)
}

// switchRecord is switch.json.
type switchRecord struct {
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
}

// ServeLab runs the switch of one lab network until ctx ends or the lab is
// removed: it receives the Ethernet frames every VM NIC on the lab sends to
// its unix datagram socket, learns which MAC lives behind which NIC, and
// forwards each frame to its destination (or floods broadcast and unknown
// destinations to every NIC on the lab). With DHCP on it answers DHCP
// itself, leasing stable addresses from the lab's subnet. confPath is the
// switch.conf.json a VM start wrote. A second switch for the same lab
// returns nil at once.
func ServeLab(ctx context.Context, confPath string) error {
	var conf switchConf
	if err := readJSON(confPath, &conf); err != nil {
		return fmt.Errorf("lab switch: read %s: %w", confPath, err)
	}
	l, err := tryLock(conf.Lock)
	if errors.Is(err, errLocked) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab switch %q: %w", conf.Lab.Name, err)
	}
	defer l.unlock()
	os.Remove(conf.Socket)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: conf.Socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("lab switch %q: %w", conf.Lab.Name, err)
	}
	defer func() {
		conn.Close()
		os.Remove(conf.Socket)
	}()
	// Bigger buffers absorb bursts while a guest is slow to read.
	_ = conn.SetReadBuffer(1 << 20)
	_ = conn.SetWriteBuffer(1 << 20)
	if err := writeJSON(conf.Record, switchRecord{PID: os.Getpid(), StartedAt: time.Now()}); err != nil {
		return err
	}
	sw, err := newLabSwitch(conf)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := os.Stat(conf.Def); err != nil {
				cancel() // the lab was removed
				return
			}
			sw.refreshPorts()
		}
	}()
	go func() {
		<-ctx.Done()
		conn.SetReadDeadline(time.Now())
	}()
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUnix(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("lab switch %q: %w", conf.Lab.Name, err)
		}
		src := ""
		if from != nil {
			src = from.Name
		}
		sw.refreshIfChanged() // a VM that just registered hears this frame too
		for _, d := range sw.handle(buf[:n], src) {
			conn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := conn.WriteToUnix(d.frame, &net.UnixAddr{Name: d.to, Net: "unixgram"}); err != nil {
				sw.sendFailed(d.to, err)
			}
		}
	}
}

// delivery is one frame for one port.
type delivery struct {
	to    string // the port's socket path
	frame []byte
}

// labSwitch is the forwarding logic of a lab switch, apart from sockets.
//
// What a guest sends is not trusted: the MAC table holds at most
// maxMACsPerPort addresses per port (a port learning more forgets its
// oldest) and forgets an address not heard for macMaxAge; DHCP answers only
// the member VMs' MACs, each from its own port (the registry says which),
// and a port whose MAC is not known gets at most maxLeasesPerPort leases.
type labSwitch struct {
	conf switchConf

	mu         sync.Mutex
	macs       map[[6]byte]macEntry // learned: MAC -> port
	portMACs   map[string][][6]byte // port -> its learned MACs, oldest first
	registered map[string]string    // registry file -> port
	members    map[string]string    // member MAC (lower case) -> its port, from the registry
	anyMAC     map[string]bool      // registered ports whose MAC the registry does not say
	seen       map[string]bool      // ports that sent us frames
	portsTime  time.Time            // the registry dir's mtime when last read
	dhcp       *dhcpServer
	now        func() time.Time
}

// macEntry is one learned address.
type macEntry struct {
	port string
	seen time.Time
}

// Bounds of the MAC table.
const (
	maxMACsPerPort = 64
	macMaxAge      = 5 * time.Minute
)

func newLabSwitch(conf switchConf) (*labSwitch, error) {
	sw := &labSwitch{conf: conf, macs: map[[6]byte]macEntry{}, portMACs: map[string][][6]byte{}, registered: map[string]string{},
		members: map[string]string{}, anyMAC: map[string]bool{}, seen: map[string]bool{}, now: time.Now}
	if conf.Lab.DHCP {
		d, err := newDHCPServer(conf.Lab.Subnet, conf.Leases)
		if err != nil {
			return nil, err
		}
		sw.dhcp = d
	}
	sw.refreshPorts()
	return sw, nil
}

// refreshPorts re-reads the registry of VM NICs on the lab: one file per
// NIC holding its socket path and, on the next line, its MAC.
func (sw *labSwitch) refreshPorts() {
	var mtime time.Time
	if fi, err := os.Stat(sw.conf.Ports); err == nil {
		mtime = fi.ModTime()
	}
	ents, _ := os.ReadDir(sw.conf.Ports)
	reg := map[string]string{}
	members := map[string]string{}
	anyMAC := map[string]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f := filepath.Join(sw.conf.Ports, e.Name())
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		port, mac, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		port = strings.TrimSpace(port)
		reg[f] = port
		if hw, err := net.ParseMAC(strings.TrimSpace(mac)); err == nil {
			members[hw.String()] = port
		} else {
			anyMAC[port] = true // written by an older vlab
		}
	}
	sw.mu.Lock()
	sw.registered, sw.members, sw.anyMAC, sw.portsTime = reg, members, anyMAC, mtime
	sw.mu.Unlock()
}

// dhcpClient says whether the DHCP client mac asking from port src is
// served, and how.
func (sw *labSwitch) dhcpClient(mac, src string) (dhcpClient, bool) {
	if port, ok := sw.members[mac]; ok {
		return dhcpClient{member: true, port: port}, src == "" || src == port
	}
	if src != "" && sw.anyMAC[src] {
		return dhcpClient{port: src}, true
	}
	return dhcpClient{}, false
}

// learn records that from lives behind port src, within the table's bounds.
func (sw *labSwitch) learn(from [6]byte, src string) {
	now := sw.now()
	if e, ok := sw.macs[from]; ok {
		if e.port == src {
			sw.macs[from] = macEntry{port: src, seen: now}
			return
		}
		sw.forget(from) // it moved
	}
	list := sw.portMACs[src]
	if len(list) >= maxMACsPerPort {
		delete(sw.macs, list[0])
		list = list[1:]
	}
	sw.portMACs[src] = append(list, from)
	sw.macs[from] = macEntry{port: src, seen: now}
}

// forget drops mac from the table.
func (sw *labSwitch) forget(mac [6]byte) {
	e, ok := sw.macs[mac]
	if !ok {
		return
	}
	delete(sw.macs, mac)
	list := sw.portMACs[e.port]
	for i, m := range list {
		if m == mac {
			sw.portMACs[e.port] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(sw.portMACs[e.port]) == 0 {
		delete(sw.portMACs, e.port)
	}
}

// refreshIfChanged re-reads the registry when its directory changed (one
// stat per frame).
func (sw *labSwitch) refreshIfChanged() {
	fi, err := os.Stat(sw.conf.Ports)
	if err != nil {
		return
	}
	sw.mu.Lock()
	changed := !fi.ModTime().Equal(sw.portsTime)
	sw.mu.Unlock()
	if changed {
		sw.refreshPorts()
	}
}

// ports returns every port a flood goes to.
func (sw *labSwitch) ports() []string {
	set := map[string]bool{}
	for _, p := range sw.registered {
		set[p] = true
	}
	for p := range sw.seen {
		set[p] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	return out
}

// handle takes one frame from port src and returns where it goes. The
// deliveries share frame's bytes: send them before frame is reused.
func (sw *labSwitch) handle(frame []byte, src string) []delivery {
	if len(frame) < 14 {
		return nil
	}
	var dst, from [6]byte
	copy(dst[:], frame[0:6])
	copy(from[:], frame[6:12])
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if src != "" && from[0]&1 == 0 {
		sw.learn(from, src)
		sw.seen[src] = true
	}
	var out []delivery
	if sw.dhcp != nil {
		if reply := sw.dhcp.serve(frame, func(mac string) (dhcpClient, bool) { return sw.dhcpClient(mac, src) }); reply != nil {
			// The reply is an Ethernet broadcast (the client has no address
			// yet), but only the asking port needs it.
			if src != "" {
				return []delivery{{to: src, frame: reply}}
			}
			for _, p := range sw.ports() {
				out = append(out, delivery{to: p, frame: reply})
			}
			return out
		}
	}
	if dst[0]&1 == 0 {
		if e, ok := sw.macs[dst]; ok && sw.now().Sub(e.seen) < macMaxAge {
			if e.port == src {
				return nil
			}
			return []delivery{{to: e.port, frame: frame}}
		} else if ok {
			sw.forget(dst) // not heard from for too long: flood, relearn
		}
	}
	for _, p := range sw.ports() {
		if p != src {
			out = append(out, delivery{to: p, frame: frame})
		}
	}
	return out
}

// sendFailed forgets a port nobody listens on any more (its VM stopped). A
// registry entry whose socket file is gone (its VM was deleted) goes too.
func (sw *labSwitch) sendFailed(port string, err error) {
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		return // a full queue: drop this frame only
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	delete(sw.seen, port)
	for _, mac := range sw.portMACs[port] {
		delete(sw.macs, mac)
	}
	delete(sw.portMACs, port)
	if errors.Is(err, syscall.ENOENT) {
		for f, p := range sw.registered {
			if p == port {
				os.Remove(f)
				delete(sw.registered, f)
			}
		}
	}
}

// switchMAC is the lab switch's own address (its DHCP server's), locally
// administered.
var switchMAC = [6]byte{0x02, 0x76, 0x6c, 0x61, 0x62, 0x01}

// DHCP message types and option codes (RFC 2131, RFC 2132).
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
	dhcpNak      = 6

	optSubnetMask = 1
	optRequested  = 50
	optLeaseTime  = 51
	optMsgType    = 53
	optServerID   = 54
	optEnd        = 255

	dhcpMagic     = 0x63825363
	bootpFixedLen = 236 // op .. file, before the magic cookie
)

// Lease times. A client renews at half the lease time with a REQUEST; an
// address offered but never requested is held for dhcpOfferHold.
const (
	dhcpLeaseTime    = time.Hour
	dhcpOfferHold    = time.Minute
	maxLeasesPerPort = 4 // leases a port whose MAC vlab does not know may hold
)

// dhcpServer leases addresses of one subnet, one per MAC. Leases expire
// unless renewed; an expired lease keeps its address for its MAC until
// another client needs it. Members' leases (MACs of the lab's VMs) are kept
// across restarts so a VM keeps its address; no other lease is written.
type dhcpServer struct {
	subnet   *net.IPNet
	server   net.IP // the subnet's first address
	first    uint32 // pool bounds, as integers
	last     uint32
	path     string                // leases.json ("" = not persisted)
	leases   map[string]*dhcpLease // MAC (lower case) -> lease
	occupied map[uint32]string     // address -> MAC holding it
	now      func() time.Time
}

// dhcpLease is one address handed out.
type dhcpLease struct {
	ip      net.IP
	expires time.Time
	client  dhcpClient
}

// dhcpClient is who asks: a member VM's MAC, or a MAC behind a port whose
// MAC vlab does not know (capped per port).
type dhcpClient struct {
	member bool
	port   string
}

func newDHCPServer(cidr, path string) (*dhcpServer, error) {
	n, err := parseSubnet(cidr)
	if err != nil {
		return nil, err
	}
	base := binary.BigEndian.Uint32(n.IP.To4())
	ones, bits := n.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	d := &dhcpServer{subnet: n, path: path, leases: map[string]*dhcpLease{}, occupied: map[uint32]string{}, now: time.Now}
	d.server = ipFromU32(base + 1)
	d.first, d.last = base+2, base+size-2
	if size >= 64 {
		d.first = base + 10
	}
	var saved map[string]string
	if path != "" && readJSON(path, &saved) == nil {
		for mac, ip := range saved {
			hw, err := net.ParseMAC(mac)
			a := net.ParseIP(ip).To4()
			if err != nil || a == nil || !n.Contains(a) {
				continue
			}
			v := binary.BigEndian.Uint32(a)
			if v < d.first || v > d.last || d.occupied[v] != "" {
				continue
			}
			// Expired at once: the VM gets it back, unless the pool runs
			// out first.
			d.leases[hw.String()] = &dhcpLease{ip: a, client: dhcpClient{member: true}}
			d.occupied[v] = hw.String()
		}
	}
	return d, nil
}

func ipFromU32(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// lease returns mac's address, allocating the lowest free one (or, when
// none is, the one whose lease expired first), held until hold from now.
// nil: the pool is full, or c's port holds its share already.
func (d *dhcpServer) lease(mac string, c dhcpClient, hold time.Duration) net.IP {
	now := d.now()
	if l, ok := d.leases[mac]; ok {
		l.client = c
		if until := now.Add(hold); until.After(l.expires) {
			l.expires = until
		}
		return l.ip
	}
	if !c.member {
		n := 0
		for _, l := range d.leases {
			if !l.client.member && l.client.port == c.port && now.Before(l.expires) {
				n++
			}
		}
		if n >= maxLeasesPerPort {
			return nil
		}
	}
	pick, found := uint32(0), false
	var oldest time.Time
	for v := d.first; v <= d.last; v++ {
		holder := d.occupied[v]
		if holder == "" {
			pick, found = v, true
			break
		}
		if l := d.leases[holder]; !now.Before(l.expires) && (!found || l.expires.Before(oldest)) {
			pick, found, oldest = v, true, l.expires
		}
	}
	if !found {
		return nil
	}
	if holder := d.occupied[pick]; holder != "" {
		delete(d.leases, holder) // expired: the address goes to mac
	}
	d.occupied[pick] = mac
	d.leases[mac] = &dhcpLease{ip: ipFromU32(pick), expires: now.Add(hold), client: c}
	d.save()
	return d.leases[mac].ip
}

// save writes the members' leases (only theirs: a guest cannot fill the
// file with made-up MACs).
func (d *dhcpServer) save() {
	if d.path == "" {
		return
	}
	out := map[string]string{}
	for mac, l := range d.leases {
		if l.client.member {
			out[mac] = l.ip.String()
		}
	}
	_ = writeJSON(d.path, out)
}

// handle answers a DHCP DISCOVER or REQUEST frame from any client;
// anything else gets nil.
func (d *dhcpServer) handle(frame []byte) []byte {
	return d.serve(frame, func(string) (dhcpClient, bool) { return dhcpClient{member: true}, true })
}

// serve answers a DHCP DISCOVER or REQUEST frame of a client allow admits;
// anything else gets nil.
func (d *dhcpServer) serve(frame []byte, allow func(mac string) (dhcpClient, bool)) []byte {
	msg, ok := parseDHCP(frame)
	if !ok {
		return nil
	}
	mac := net.HardwareAddr(msg.chaddr[:]).String()
	c, ok := allow(mac)
	if !ok {
		return nil // not the lab's: stay silent, as for another server's client
	}
	switch msg.msgType {
	case dhcpDiscover:
		ip := d.lease(mac, c, dhcpOfferHold)
		if ip == nil {
			return nil // pool exhausted: stay silent like a full server
		}
		return d.reply(msg, dhcpOffer, ip)
	case dhcpRequest:
		if msg.serverID != nil && !msg.serverID.Equal(d.server) {
			return nil // the client chose another server
		}
		want := msg.requested
		if want == nil {
			want = msg.ciaddr
		}
		ip := d.lease(mac, c, dhcpLeaseTime)
		if ip == nil || (want != nil && !want.Equal(ip)) {
			return d.reply(msg, dhcpNak, nil)
		}
		return d.reply(msg, dhcpAck, ip)
	}
	return nil
}

// dhcpMsg is the part of a client's DHCP message the server needs.
type dhcpMsg struct {
	xid       [4]byte
	flags     [2]byte
	chaddr    [6]byte
	ciaddr    net.IP
	msgType   byte
	requested net.IP
	serverID  net.IP
}

// parseDHCP decodes an Ethernet frame carrying a BOOTP request to port 67.
func parseDHCP(f []byte) (dhcpMsg, bool) {
	var m dhcpMsg
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return m, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || ip[9] != 17 {
		return m, false
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[2:4]) != 67 {
		return m, false
	}
	b := udp[8:]
	if len(b) < bootpFixedLen+4 || b[0] != 1 || b[1] != 1 || b[2] != 6 {
		return m, false
	}
	if binary.BigEndian.Uint32(b[bootpFixedLen:]) != dhcpMagic {
		return m, false
	}
	copy(m.xid[:], b[4:8])
	copy(m.flags[:], b[10:12])
	if c := net.IP(b[12:16]); !c.Equal(net.IPv4zero) {
		m.ciaddr = append(net.IP(nil), c...)
	}
	copy(m.chaddr[:], b[28:34])
	opts := b[bootpFixedLen+4:]
	for i := 0; i < len(opts); {
		code := opts[i]
		if code == optEnd {
			break
		}
		if code == 0 {
			i++
			continue
		}
		if i+1 >= len(opts) || i+2+int(opts[i+1]) > len(opts) {
			return m, false
		}
		val := opts[i+2 : i+2+int(opts[i+1])]
		switch code {
		case optMsgType:
			if len(val) == 1 {
				m.msgType = val[0]
			}
		case optRequested:
			if len(val) == 4 {
				m.requested = append(net.IP(nil), val...)
			}
		case optServerID:
			if len(val) == 4 {
				m.serverID = append(net.IP(nil), val...)
			}
		}
		i += 2 + int(opts[i+1])
	}
	return m, m.msgType != 0
}

// reply builds the server's answer as a broadcast Ethernet frame.
func (d *dhcpServer) reply(m dhcpMsg, typ byte, yiaddr net.IP) []byte {
	b := make([]byte, bootpFixedLen+4, bootpFixedLen+4+32)
	b[0], b[1], b[2] = 2, 1, 6
	copy(b[4:8], m.xid[:])
	copy(b[10:12], m.flags[:])
	if yiaddr != nil {
		copy(b[16:20], yiaddr.To4())
		copy(b[20:24], d.server.To4())
	}
	copy(b[28:34], m.chaddr[:])
	binary.BigEndian.PutUint32(b[bootpFixedLen:], dhcpMagic)
	b = append(b, optMsgType, 1, typ, optServerID, 4)
	b = append(b, d.server.To4()...)
	if typ != dhcpNak {
		b = append(b, optLeaseTime, 4, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[len(b)-4:], uint32(dhcpLeaseTime/time.Second))
		b = append(b, optSubnetMask, 4)
		b = append(b, d.subnet.Mask...)
	}
	b = append(b, optEnd)
	for len(b) < 300 { // BOOTP's minimum message size
		b = append(b, 0)
	}
	udp := make([]byte, 8, 8+len(b))
	binary.BigEndian.PutUint16(udp[0:2], 67)
	binary.BigEndian.PutUint16(udp[2:4], 68)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(b)))
	udp = append(udp, b...) // checksum 0: none (allowed for UDP over IPv4)
	ip := make([]byte, 20, 20+len(udp))
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+len(udp)))
	copy(ip[12:16], d.server.To4())
	copy(ip[16:20], net.IPv4bcast.To4())
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip))
	ip = append(ip, udp...)
	eth := make([]byte, 14, 14+len(ip))
	copy(eth[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(eth[6:12], switchMAC[:])
	binary.BigEndian.PutUint16(eth[12:14], 0x0800)
	return append(eth, ip...)
}

// ipChecksum is the IPv4 header checksum (RFC 791).
func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
