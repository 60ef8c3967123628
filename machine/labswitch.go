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
type labSwitch struct {
	conf switchConf

	mu         sync.Mutex
	macs       map[[6]byte]string // learned: MAC -> port
	registered map[string]string  // registry file -> port
	seen       map[string]bool    // ports that sent us frames
	portsTime  time.Time          // the registry dir's mtime when last read
	dhcp       *dhcpServer
}

func newLabSwitch(conf switchConf) (*labSwitch, error) {
	sw := &labSwitch{conf: conf, macs: map[[6]byte]string{}, registered: map[string]string{}, seen: map[string]bool{}}
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

// refreshPorts re-reads the registry of VM NICs on the lab.
func (sw *labSwitch) refreshPorts() {
	var mtime time.Time
	if fi, err := os.Stat(sw.conf.Ports); err == nil {
		mtime = fi.ModTime()
	}
	ents, _ := os.ReadDir(sw.conf.Ports)
	reg := map[string]string{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f := filepath.Join(sw.conf.Ports, e.Name())
		data, err := os.ReadFile(f)
		if err == nil && len(data) > 0 {
			reg[f] = strings.TrimSpace(string(data))
		}
	}
	sw.mu.Lock()
	sw.registered, sw.portsTime = reg, mtime
	sw.mu.Unlock()
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
		sw.macs[from] = src
		sw.seen[src] = true
	}
	var out []delivery
	if sw.dhcp != nil {
		if reply := sw.dhcp.handle(frame); reply != nil {
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
		if p, ok := sw.macs[dst]; ok {
			if p == src {
				return nil
			}
			return []delivery{{to: p, frame: frame}}
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
	for mac, p := range sw.macs {
		if p == port {
			delete(sw.macs, mac)
		}
	}
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
	dhcpLeaseSecs = 24 * 60 * 60
	bootpFixedLen = 236 // op .. file, before the magic cookie
)

// dhcpServer leases addresses of one subnet, one per MAC, kept across
// restarts so a VM keeps its address.
type dhcpServer struct {
	subnet   *net.IPNet
	server   net.IP // the subnet's first address
	first    uint32 // pool bounds, as integers
	last     uint32
	path     string            // leases.json ("" = not persisted)
	leases   map[string]net.IP // MAC (lower case) -> address
	occupied map[uint32]bool
}

func newDHCPServer(cidr, path string) (*dhcpServer, error) {
	n, err := parseSubnet(cidr)
	if err != nil {
		return nil, err
	}
	base := binary.BigEndian.Uint32(n.IP.To4())
	ones, bits := n.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	d := &dhcpServer{subnet: n, path: path, leases: map[string]net.IP{}, occupied: map[uint32]bool{}}
	d.server = ipFromU32(base + 1)
	d.first, d.last = base+2, base+size-2
	if size >= 64 {
		d.first = base + 10
	}
	var saved map[string]string
	if path != "" && readJSON(path, &saved) == nil {
		for mac, ip := range saved {
			if a := net.ParseIP(ip).To4(); a != nil && n.Contains(a) {
				d.leases[mac] = a
				d.occupied[binary.BigEndian.Uint32(a)] = true
			}
		}
	}
	return d, nil
}

func ipFromU32(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// lease returns mac's address, allocating the lowest free one.
func (d *dhcpServer) lease(mac string) net.IP {
	if ip, ok := d.leases[mac]; ok {
		return ip
	}
	for v := d.first; v <= d.last; v++ {
		if !d.occupied[v] {
			d.occupied[v] = true
			d.leases[mac] = ipFromU32(v)
			d.save()
			return d.leases[mac]
		}
	}
	return nil
}

func (d *dhcpServer) save() {
	if d.path == "" {
		return
	}
	out := map[string]string{}
	for mac, ip := range d.leases {
		out[mac] = ip.String()
	}
	_ = writeJSON(d.path, out)
}

// handle answers a DHCP DISCOVER or REQUEST frame; anything else gets nil.
func (d *dhcpServer) handle(frame []byte) []byte {
	msg, ok := parseDHCP(frame)
	if !ok {
		return nil
	}
	mac := net.HardwareAddr(msg.chaddr[:]).String()
	switch msg.msgType {
	case dhcpDiscover:
		ip := d.lease(mac)
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
		ip := d.lease(mac)
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
		binary.BigEndian.PutUint32(b[len(b)-4:], dhcpLeaseSecs)
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
