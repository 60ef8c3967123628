package machine

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"

	"vlab/emulator"
	"vlab/internal/fuzzseed"
)

// Fuzz targets for what machine decodes from untrusted bytes: Ethernet and
// DHCP frames a guest sends the lab switch, machine.toml (hand-edited or
// downloaded), QEMU's `info usernet` output, forward and NIC rules, sizes,
// and an HTTP server's Content-Range. Run them with scripts/fuzz.sh.

func FuzzDHCP(f *testing.F) {
	mac, _ := net.ParseMAC("52:54:00:00:00:0a")
	fuzzseed.Add(f,
		[]any{dhcpClientFrame(mac, dhcpDiscover, nil, nil)},
		[]any{dhcpClientFrame(mac, dhcpRequest, net.ParseIP("10.77.3.10"), net.ParseIP("10.77.3.1"))},
		[]any{dhcpClientFrame(mac, dhcpRequest, net.ParseIP("10.77.3.99"), nil)},
	)
	d, err := newDHCPServer("10.77.3.0/29", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		reply := d.handle(frame)
		if reply == nil {
			return
		}
		if len(reply) < 14+20+8+bootpFixedLen+4 || !bytes.Equal(reply[6:12], switchMAC[:]) {
			t.Fatalf("malformed reply of %d bytes", len(reply))
		}
		if ipChecksum(reply[14:34]) != 0 {
			t.Fatal("reply with a bad IPv4 checksum")
		}
		if yi := net.IP(reply[14+20+8+16 : 14+20+8+20]); !yi.Equal(net.IPv4zero) && !d.subnet.Contains(yi) {
			t.Fatalf("leased %s outside %s", yi, d.subnet)
		}
	})
}

// FuzzLabSwitch feeds frames from the three ports of a lab switch (the
// first byte picks the port): it must not panic, send DHCP replies anywhere
// but the asking port, or grow its MAC table past its bound.
func FuzzLabSwitch(f *testing.F) {
	macA, _ := net.ParseMAC("52:54:00:00:00:0a")
	macB, _ := net.ParseMAC("52:54:00:00:00:0b")
	bcast, _ := net.ParseMAC("ff:ff:ff:ff:ff:ff")
	fuzzseed.Add(f,
		[]any{uint8(0), dhcpClientFrame(macA, dhcpDiscover, nil, nil)},
		[]any{uint8(1), dhcpClientFrame(macA, dhcpDiscover, nil, nil)},
		[]any{uint8(2), dhcpClientFrame(macB, dhcpRequest, net.ParseIP("10.66.0.10"), nil)},
		[]any{uint8(0), frame(bcast, macA, "arp who-has")},
		[]any{uint8(1), frame(macA, macB, "unicast")},
	)
	dir := f.TempDir()
	for name, content := range map[string]string{"a.net0": "/pa\n52:54:00:00:00:0a\n", "b.net0": "/pb\n52:54:00:00:00:0b\n", "c.net0": "/pc"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	sw, err := newLabSwitch(switchConf{Ports: dir, Lab: Lab{Name: "l", Subnet: "10.66.0.0/24", DHCP: true}})
	if err != nil {
		f.Fatal(err)
	}
	ports := []string{"/pa", "/pb", "/pc"}
	f.Fuzz(func(t *testing.T, port uint8, fr []byte) {
		src := ports[int(port)%len(ports)]
		for _, d := range sw.handle(fr, src) {
			if d.to == src {
				if !bytes.Equal(d.frame[6:12], switchMAC[:]) {
					t.Fatalf("a frame from %s was sent back to it", src)
				}
			} else if bytes.Equal(d.frame[6:12], switchMAC[:]) {
				t.Fatalf("a DHCP reply for %s went to %s", src, d.to)
			}
		}
		if n := len(sw.macs); n > len(ports)*maxMACsPerPort {
			t.Fatalf("MAC table holds %d entries", n)
		}
	})
}

// specSeeds are valid machine.toml files.
func specSeeds(f *testing.F) [][]any {
	var out [][]any
	a := NewSpec("vm", emulator.ArchX86_64)
	b := NewSpec("vm", emulator.ArchPPC)
	b.Disks = []DiskSpec{{File: "disk0.qcow2", Size: 4 * GiB}}
	b.NICs = []NICSpec{{Mode: NetLab, Lab: "lab1", MAC: "52:54:00:00:00:01"}}
	c := NewSpec("vm", emulator.ArchAArch64)
	c.Boot = Boot{Kernel: "/boot/vmlinuz", Append: "console=ttyAMA0"}
	for _, s := range []*Spec{a, b, c} {
		data, err := encodeSpec(s)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, []any{string(data)})
	}
	return append(out, []any{"name = \"vm\"\narch = \"x86_64\"\nmemory = \"-1G\"\n"})
}

func FuzzSpecTOML(f *testing.F) {
	fuzzseed.Add(f, specSeeds(f)...)
	f.Fuzz(func(t *testing.T, data string) {
		spec, err := decodeSpec("vm", "machine.toml", []byte(data))
		if err != nil {
			return
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("decodeSpec returned a spec Validate refuses: %v", err)
		}
		if _, err := encodeSpec(spec); err != nil {
			t.Fatalf("a loaded spec does not encode: %v", err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	fuzzseed.Add(f, []any{"512M"}, []any{"1.5G"}, []any{"20GiB"}, []any{"4096B"}, []any{"-1G"}, []any{"9999T"})
	f.Fuzz(func(t *testing.T, s string) {
		z, err := ParseSize(s)
		if err != nil {
			return
		}
		if z <= 0 {
			t.Fatalf("ParseSize(%q) = %d", s, z)
		}
		if back, err := ParseSize(z.String()); err != nil || back != z {
			t.Fatalf("ParseSize(%q) = %d, formatted %q, read back %d, %v", s, z, z.String(), back, err)
		}
	})
}

func FuzzParseForward(f *testing.F) {
	fuzzseed.Add(f, []any{"tcp:2222:22"}, []any{"udp:127.0.0.1:auto:53"}, []any{"tcp:0.0.0.0:8080:80"}, []any{"tcp:auto"})
	f.Fuzz(func(t *testing.T, s string) {
		fw, err := ParseForward(s)
		if err == nil {
			if back, err := ParseForward(fw.String()); err != nil || back != fw {
				t.Fatalf("ParseForward(%q) = %+v, formatted %q, read back %+v, %v", s, fw, fw.String(), back, err)
			}
		}
		_, _ = ParseForwardRef(s)
		_, _ = ParseNIC(s)
	})
}

func FuzzParseUsernet(f *testing.F) {
	fuzzseed.Add(f, []any{usernetOut}, []any{"Hub -1 (net0):\n  TCP[HOST_FORWARD]  8  127.0.0.1 2222  10.0.2.15 22 0 0\n"})
	f.Fuzz(func(t *testing.T, out string) {
		for id, rows := range parseUsernet(out) {
			for _, r := range rows {
				_ = r.hostForward()
				_ = id
			}
		}
	})
}

func FuzzContentRange(f *testing.F) {
	fuzzseed.Add(f,
		[]any{"bytes 100-199/200", int64(100), int64(100)},
		[]any{"bytes 100-199/*", int64(100), int64(-1)},
		[]any{"bytes 100-299/150", int64(100), int64(200)},
	)
	f.Fuzz(func(t *testing.T, cr string, have, clen int64) {
		size, err := checkResume(have, cr, clen)
		if err != nil {
			return
		}
		if size != -1 && size <= have {
			t.Fatalf("checkResume(%d, %q, %d) accepted a file of %d bytes", have, cr, clen, size)
		}
		if clen >= 0 && size >= 0 && clen != size-have {
			t.Fatalf("checkResume(%d, %q, %d) accepted a body of %d for %d remaining", have, cr, clen, clen, size-have)
		}
	})
}
