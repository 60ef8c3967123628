package machine

// The sandbox filter sits between QEMU and passt. passt (2023) with
// --no-map-gw and --outbound-if4 keeps a well-behaved guest off the host,
// but connects wherever a hand-made packet points: a guest that puts
// 127.0.0.1, 0.0.0.0 or the host's own LAN address in a SYN reaches the
// host's services (TestPasstHostileGuest). So QEMU talks to this filter,
// which forwards the guest's frames to passt only when they are ARP or
// IPv4 to an address that is not the host's: never loopback, 0.0.0.0/8,
// multicast, broadcast (but DHCP's), nor any address on a host interface.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// SandboxFilterCommand returns the argv that runs the filter of one sandbox
// NIC: by default this very program, `vlab net sandbox-filter QEMU PASST`.
// Tests replace it.
var SandboxFilterCommand = func(qemuSock, passtSock string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the vlab binary: %w", err)
	}
	return []string{exe, "net", "sandbox-filter", qemuSock, passtSock}, nil
}

// maxFrame bounds one frame of QEMU's stream protocol (passt's MTU is
// 65520; an Ethernet header on top).
const maxFrame = 65535 + 14

// hostAddrs is the set of this host's IPv4 addresses, refreshed while the
// filter runs (interfaces come and go).
type hostAddrs struct {
	set atomic.Pointer[map[[4]byte]bool]
}

func (h *hostAddrs) refresh() {
	m := map[[4]byte]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if v4 := n.IP.To4(); v4 != nil {
				m[[4]byte(v4)] = true
			}
		}
	}
	h.set.Store(&m)
}

func (h *hostAddrs) has(ip [4]byte) bool {
	m := h.set.Load()
	return m != nil && (*m)[ip]
}

// guestFrameAllowed says whether a frame the guest sent may reach passt.
func guestFrameAllowed(f []byte, host *hostAddrs) bool {
	if len(f) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0806: // ARP
		return true
	case 0x0800: // IPv4
	default:
		return false // IPv6 is off in sandbox mode; nothing else is routed
	}
	ipv4 := f[14:]
	if len(ipv4) < 20 || ipv4[0]>>4 != 4 {
		return false
	}
	dst := [4]byte(ipv4[16:20])
	switch {
	case dst == [4]byte{255, 255, 255, 255}:
		// Only DHCP may broadcast: UDP to port 67.
		ihl := int(ipv4[0]&0x0f) * 4
		return ipv4[9] == 17 && len(ipv4) >= ihl+4 && binary.BigEndian.Uint16(ipv4[ihl+2:]) == 67
	case dst[0] == 127, dst[0] == 0, dst[0] >= 224:
		return false // loopback, "this host", multicast and reserved
	case host.has(dst):
		return false // an address of the host itself
	}
	return true
}

// ServeSandboxFilter connects to passt at passtSock, listens on qemuSock
// for QEMU, and relays frames until either side closes: passt's to QEMU as
// they are, the guest's to passt when guestFrameAllowed. It serves one
// QEMU, like passt.
func ServeSandboxFilter(ctx context.Context, qemuSock, passtSock string) error {
	up, err := net.Dial("unix", passtSock)
	if err != nil {
		return fmt.Errorf("sandbox filter: connect to passt: %w", err)
	}
	defer up.Close()
	os.Remove(qemuSock)
	l, err := net.Listen("unix", qemuSock)
	if err != nil {
		return fmt.Errorf("sandbox filter: %w", err)
	}
	var host hostAddrs
	host.refresh()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				l.Close()
				return
			case <-t.C:
				host.refresh()
			}
		}
	}()
	down, err := l.Accept()
	l.Close()
	os.Remove(qemuSock)
	if err != nil {
		return fmt.Errorf("sandbox filter: accept qemu: %w", err)
	}
	defer down.Close()
	go func() { <-ctx.Done(); down.Close(); up.Close() }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // passt → guest
		defer wg.Done()
		io.Copy(down, up)
		cancel()
	}()
	err = relayGuestFrames(up, down, &host)
	cancel()
	wg.Wait()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// relayGuestFrames copies length-prefixed frames from the guest to passt,
// dropping those guestFrameAllowed refuses.
func relayGuestFrames(dst io.Writer, src io.Reader, host *hostAddrs) error {
	buf := make([]byte, 4+maxFrame)
	for {
		if _, err := io.ReadFull(src, buf[:4]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(buf[:4]))
		if n > maxFrame {
			return fmt.Errorf("sandbox filter: frame of %d bytes from the guest", n)
		}
		if _, err := io.ReadFull(src, buf[4:4+n]); err != nil {
			return err
		}
		if !guestFrameAllowed(buf[4:4+n], host) {
			continue
		}
		if _, err := dst.Write(buf[:4+n]); err != nil {
			return err
		}
	}
}
