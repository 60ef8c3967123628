package emulator

import (
	"math/rand"
	"slices"
	"strings"
	"testing"

	"vlab/internal/fakeqemu"
)

// optionFlags are the arguments QEMU parses as key=value option strings.
var optionFlags = map[string]bool{
	"-name": true, "-accel": true, "-machine": true, "-cpu": true, "-chardev": true, "-mon": true,
	"-blockdev": true, "-device": true, "-netdev": true, "-vnc": true, "-audiodev": true, "-boot": true,
}

// optionShape is argv with every option string reduced to its list of keys
// (split on unescaped commas, as QEMU does): two command lines with the same
// shape set the same options, whatever their values.
func optionShape(argv []string) []string {
	var out []string
	for i := 1; i < len(argv); i++ {
		if !optionFlags[argv[i-1]] {
			if strings.HasPrefix(argv[i], "-") {
				out = append(out, argv[i])
			}
			continue
		}
		parts := fakeqemu.SplitOpts(argv[i])
		keys := []string{"<head>"}
		for _, p := range parts[1:] {
			k, _, _ := strings.Cut(p, "=")
			keys = append(keys, k)
		}
		out = append(out, argv[i-1]+" "+strings.Join(keys, ","))
	}
	return out
}

// hostileStrings are values a downloaded machine.toml or a user's path may
// carry: commas, '=', option names, escapes, quotes, spaces, newlines.
func hostileStrings() []string {
	out := []string{
		",", ",,", ",,,", "=", "a=b", "a,b=c", ",romfile=/etc/shadow", "e1000,romfile=/etc/shadow",
		"x,,y", "x,,,y=z", "x\ny", "x y", "'", "\"", "\\", "a\\,b=c", ",id=evil", "==,,==", "é,ü=1",
		"br0,helper=/bin/sh", "max,+x", "pmu,dumpdtb=/tmp/x",
	}
	r := rand.New(rand.NewSource(1))
	const alphabet = "a,=/ .\\x"
	for i := 0; i < 400; i++ {
		b := make([]byte, 1+r.Intn(10))
		for j := range b {
			b[j] = alphabet[r.Intn(len(alphabet))]
		}
		out = append(out, string(b))
	}
	return out
}

// TestNoUserStringAddsAnOption: for many hostile strings in every
// user-controlled field, the command line either is refused or sets exactly
// the options it sets for a harmless value: no string can add an option.
func TestNoUserStringAddsAnOption(t *testing.T) {
	h := goldenHost(t)
	fields := []struct {
		name string
		set  func(*Config, string)
	}{
		{"name", func(c *Config, s string) { c.Name = s }},
		{"qmp path", func(c *Config, s string) { c.Paths.QMP[0] = "/r/" + s }},
		{"vnc path", func(c *Config, s string) { c.Paths.VNC = "/r/" + s }},
		{"serial path", func(c *Config, s string) { c.Paths.Serial = "/r/" + s }},
		{"serial log", func(c *Config, s string) { c.Paths.SerialLog = "/r/" + s }},
		{"disk path", func(c *Config, s string) { c.Disks[0].Path = "/d/" + s }},
		{"cdrom path", func(c *Config, s string) { c.CDROMs[0].Path = "/d/" + s }},
		{"efi vars", func(c *Config, s string) { c.Paths.EFIVars = "/d/" + s }},
		{"nic model", func(c *Config, s string) { c.NICs[0].Model = s }},
		{"cpu", func(c *Config, s string) { c.CPU = s }},
		{"machine", func(c *Config, s string) { c.Machine = s }},
		{"machine opt", func(c *Config, s string) { c.MachineOpts = []string{"via=" + s} }},
		{"vga", func(c *Config, s string) { c.VGA = s }},
		{"sound", func(c *Config, s string) { c.Sound = s }},
		{"bridge", func(c *Config, s string) { c.NICs[1] = NIC{Mode: NetBridge, Bridge: s, Helper: "/h"} }},
		{"bridge helper", func(c *Config, s string) { c.NICs[1] = NIC{Mode: NetBridge, Bridge: "br0", Helper: "/h/" + s} }},
		{"tap", func(c *Config, s string) { c.NICs[1] = NIC{Mode: NetTap, Tap: s} }},
		{"lab socket", func(c *Config, s string) {
			c.NICs[1] = NIC{Mode: NetSocket, Socket: UnixDgramNetdev("/r/"+s, "/l/"+s)}
		}},
		{"forward address", func(c *Config, s string) {
			c.NICs[0].Forwards = []Forward{{Proto: "tcp", HostAddr: s, HostPort: 2222, GuestPort: 22}}
		}},
	}
	base := func(s string) Config {
		c := baseConfig("/r", "vm", ArchX86_64)
		c.Firmware = FirmwareUEFI
		c.Paths.EFIVars = "/d/vars.qcow2"
		c.Display = DisplayVNC
		c.Disks = []Disk{{Path: "/d/disk.qcow2"}}
		c.CDROMs = []CDROM{{Path: "/d/x.iso"}}
		c.NICs = []NIC{{Mode: NetUser, Model: "e1000"}, {Mode: NetTap, Tap: "tap0"}}
		return c
	}
	for _, f := range fields {
		harmless := base("")
		f.set(&harmless, harmlessValue(f.name))
		want, err := Cmdline(harmless, h)
		if err != nil {
			t.Fatalf("%s: the harmless command line fails: %v", f.name, err)
		}
		refused := 0
		for _, s := range hostileStrings() {
			cfg := base(s)
			f.set(&cfg, s)
			if f.name == "cpu" && CheckCPU(s) == nil {
				continue // "+feat", "-feat", "key=value": a CPU's own features, plain words by CheckCPU
			}
			got, err := Cmdline(cfg, h)
			if err != nil {
				refused++
				continue
			}
			if !slices.Equal(optionShape(got), optionShape(want)) {
				t.Errorf("%s %q changes the options QEMU reads:\n got  %q\n want %q", f.name, s, optionShape(got), optionShape(want))
				break
			}
		}
		t.Logf("%s: %d hostile values refused, the rest escaped", f.name, refused)
	}
}

// harmlessValue is an ordinary value of each field.
func harmlessValue(field string) string {
	switch field {
	case "nic model":
		return "rtl8139"
	case "cpu":
		return "max"
	case "machine":
		return "q35"
	case "machine opt":
		return "pmu"
	case "vga":
		return "cirrus"
	case "sound":
		return "hda"
	case "bridge", "tap":
		return "br0"
	case "forward address":
		return "127.0.0.1"
	}
	return "plain"
}
