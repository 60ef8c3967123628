package machine

import (
	"strings"
	"testing"

	"vlab/emulator"
)

func TestParseSize(t *testing.T) {
	good := map[string]Size{
		"512M": 512 * MiB, "2G": 2 * GiB, "20G": 20 * GiB, "1.5G": 3 * GiB / 2,
		"64k": 64 * KiB, "1T": TiB, "20GiB": 20 * GiB, " 8 G ": 8 * GiB, "100MB": 100 * MiB,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"-1G": "positive", "0": "no unit", "0G": "positive", "1Q": "unknown unit", "1.5B": "whole", "": "empty",
		"G": "not a number", "1..2G": "not a number", "99999999999T": "too large", "512": "no unit",
	}
	for in, want := range bad {
		_, err := ParseSize(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSize(%q) error = %v; want it to mention %q", in, err, want)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, c := range []struct {
		z    Size
		want string
	}{{512 * MiB, "512M"}, {2 * GiB, "2G"}, {1536 * MiB, "1536M"}, {TiB, "1T"}, {100, "100B"}} {
		if got := c.z.String(); got != c.want {
			t.Errorf("%d.String() = %q; want %q", int64(c.z), got, c.want)
		}
		back, err := ParseSize(c.want)
		if err != nil || back != c.z {
			t.Errorf("round trip of %q = %v, %v", c.want, back, err)
		}
	}
	if got := (1536 * MiB).Human(); got != "1.5G" {
		t.Errorf("Human = %q", got)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"debian-12.test_1", "a", "Win98", "x86_64-vm"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "..", ".", "../x", "has space", "tab\there", "nl\nx", "-dash",
		".hidden", strings.Repeat("a", 201), "é", "a:b"} {
		err := ValidateName(bad)
		if err == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ValidateName(%q) error is not one line: %q", bad, err)
		}
	}
}

func TestParseForward(t *testing.T) {
	f, err := ParseForward("tcp:2222:22")
	if err != nil || f != (Forward{"tcp", "127.0.0.1", 2222, 22}) {
		t.Fatalf("got %+v, %v", f, err)
	}
	f, err = ParseForward("udp:0.0.0.0:5353:53")
	if err != nil || f != (Forward{"udp", "0.0.0.0", 5353, 53}) {
		t.Fatalf("got %+v, %v", f, err)
	}
	for _, bad := range []string{"tcp:22", "sctp:1:2", "tcp:0:22", "tcp:70000:22", "tcp:host:1:2", "tcp:a:b", ""} {
		if _, err := ParseForward(bad); err == nil {
			t.Errorf("ParseForward(%q) accepted", bad)
		}
	}
}

func TestValidateJoinsAllErrors(t *testing.T) {
	s := &Spec{Name: "bad name", CPUs: 0, Memory: MiB, Display: "sdl", Boot: Boot{Initrd: "x"},
		Disks: []DiskSpec{{File: "d.qcow2", Size: 0}}, NICs: []NICSpec{{Mode: "wifi"}}}
	err := s.Validate()
	if err == nil {
		t.Fatal("invalid spec accepted")
	}
	for _, want := range []string{"vm name", "arch is missing", "cpus 0", "memory", "display", "need a kernel", "disk 0 size", "mode \"wifi\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	good := NewSpec("ok", emulator.ArchAArch64)
	if err := good.Validate(); err != nil {
		t.Fatalf("NewSpec invalid: %v", err)
	}
	if good.Machine != "virt" {
		t.Errorf("aarch64 default machine = %q", good.Machine)
	}
}

func TestSpecTOMLRoundTrip(t *testing.T) {
	s := NewSpec("rt", emulator.ArchPPC64)
	s.Boot = Boot{Kernel: "/k with space/vmlinuz", Append: "console=hvc0 quiet"}
	s.Disks = []DiskSpec{{File: "disk0.qcow2", Size: 20 * GiB, Format: "qcow2"}}
	s.NICs[0].MAC = "52:54:00:aa:bb:cc"
	s.NICs[0].Forwards = []Forward{{"tcp", "127.0.0.1", 8080, 80}}
	data, err := encodeSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeSpec("rt", "machine.toml", data)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, data)
	}
	if back.Arch != emulator.ArchPPC64 || back.Memory != GiB || back.Boot.Kernel != s.Boot.Kernel ||
		back.Disks[0].Size != 20*GiB || back.NICs[0].Forwards[0] != s.NICs[0].Forwards[0] {
		t.Fatalf("round trip lost data:\n%s\n%+v", data, back)
	}
	if !strings.Contains(string(data), `memory = "1G"`) || !strings.Contains(string(data), `arch = "ppc64"`) {
		t.Errorf("machine.toml not human-readable:\n%s", data)
	}
}

func TestDecodeSpecRejectsCorruption(t *testing.T) {
	cases := map[string]string{
		"garbage":      "this is = = not toml [[[",
		"unknown key":  "name = \"x\"\narch = \"x86_64\"\ncpus = 1\nmemory = \"1G\"\ndisplay = \"vnc\"\nturbo = true\n",
		"bad size":     "name = \"x\"\narch = \"x86_64\"\ncpus = 1\nmemory = \"1Q\"\ndisplay = \"vnc\"\n",
		"wrong name":   "name = \"y\"\narch = \"x86_64\"\ncpus = 1\nmemory = \"1G\"\ndisplay = \"vnc\"\n",
		"newer schema": "schema = 99\nname = \"x\"\narch = \"x86_64\"\ncpus = 1\nmemory = \"1G\"\ndisplay = \"vnc\"\n",
	}
	for what, data := range cases {
		_, err := decodeSpec("x", "/lib/x/machine.toml", []byte(data))
		if err == nil {
			t.Errorf("%s: accepted", what)
			continue
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "machine.toml") {
			t.Errorf("%s: error should be one line naming the file: %q", what, err)
		}
	}
}

func TestPathsForLongRuntimeDir(t *testing.T) {
	d := Dirs{Data: "/d", Runtime: "/" + strings.Repeat("deep/", 25) + "vlab", State: "/s"}
	p := d.PathsFor("debian-12.test_1")
	for _, sock := range append(p.QMP, p.VNC, p.Serial, p.GDB) {
		if len(sock)+len(".lock") > maxSockPath {
			t.Errorf("socket path %d bytes: %s", len(sock), sock)
		}
	}
	short := Dirs{Data: "/d", Runtime: "/run/user/1000/vlab", State: "/s"}.PathsFor("a")
	if short.Run != "/run/user/1000/vlab/a" {
		t.Errorf("short runtime dir moved: %s", short.Run)
	}
	if p2 := d.PathsFor("debian-12.test_1"); p2.Run != p.Run {
		t.Error("fallback runtime dir is not deterministic")
	}
}
