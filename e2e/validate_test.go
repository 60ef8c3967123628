package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// TestValidateCreateEdit: values QEMU would refuse at start (or silently
// change) are refused when they are given, by create and by edit alike,
// with one line naming the field, the value and the fix, exit status 2
// (a bad flag value), and nothing written.
func TestValidateCreateEdit(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "keeper", "--display", "none", "--disk", "16M")
	spec := filepath.Join(e.show("keeper").Dir, "machine.toml")
	specBefore, _ := os.ReadFile(spec)
	before := e.libraryListing()

	cases := []struct {
		name  string
		flags []string
		wants []string
	}{
		{"boot order repeats a letter", []string{"--boot", "dd"}, []string{"boot order", `"dd"`, "once"}},
		{"boot order unknown letter", []string{"--boot", "cx"}, []string{"boot order", `"cx"`, "c (disk)"}},
		{"unknown machine", []string{"--machine", "nosuch"}, []string{"machine", `"nosuch"`, "q35, pc, isapc"}},
		{"memory not whole MiB", []string{"--memory", "17000001B"}, []string{"memory", "17000001", "whole number of MiB"}},
		{"memory over mac99 limit", []string{"--arch", "ppc", "--memory", "3G"}, []string{"memory", "mac99", "2 GiB"}},
		{"bad nic model", []string{"--nic", "user,model=nosuch"}, []string{"nic 0", "model", `"nosuch"`, "e1000"}},
		{"isa nic on q35 only", []string{"--nic", "user,model=sungem"}, []string{"nic 0", `"sungem"`, "virtio-net-pci"}},
		{"bridge name too long", []string{"--net", "bridge:abcdefghijklmnopq"}, []string{"bridge", "abcdefghijklmnopq"}},
		{"cpu with injected option", []string{"--cpu", "max,romfile=/etc/shadow"}, []string{"cpu", "romfile"}},
	}
	for _, c := range cases {
		for _, verb := range []string{"create", "edit"} {
			if verb == "edit" && c.flags[0] == "--arch" {
				continue // edit cannot change the arch
			}
			t.Run(verb+" "+c.name, func(t *testing.T) {
				e.t = t
				name := "fresh"
				if verb == "edit" {
					name = "keeper"
				}
				args := append([]string{verb, name}, c.flags...)
				e.fail(c.wants, args...)
				if _, _, code := e.run(args...); code != 2 {
					t.Errorf("vlab %s: exit %d, want 2 (a bad flag value)", strings.Join(args, " "), code)
				}
			})
		}
	}
	e.t = t
	// A machine type of the right family that the installed QEMU lacks is
	// refused by what the probe found (exit 1: the flag's shape is fine).
	for _, verb := range []string{"create fresh", "edit keeper"} {
		e.fail([]string{"machine", `"pc-q35-99.9"`, "installed", "q35, pc, isapc"}, append(strings.Fields(verb), "--machine", "pc-q35-99.9")...)
	}
	if after := e.libraryListing(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("refused input changed the library:\nbefore %v\nafter  %v", before, after)
	}
	if after, _ := os.ReadFile(spec); string(after) != string(specBefore) {
		t.Fatalf("refused edit rewrote machine.toml:\n%s", after)
	}
	// The checks refuse only what is wrong (the positive control).
	e.ok("create", "fine", "--display", "none", "--boot", "dc", "--memory", "17M", "--nic", "user,model=rtl8139", "--machine", "pc")
	e.ok("edit", "fine", "--boot", "n", "--memory", "64M", "--cpu", "max,-sse4.2")
	e.ok("cmdline", "fine")
}

// TestValidateHandEditedSpec: a hand-edited or downloaded machine.toml that
// tries to smuggle QEMU options (or files) into the command line is refused
// by start, cmdline and show with one line; list still lists every other VM.
func TestValidateHandEditedSpec(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	e := newEnv(t)
	e.ok("create", "good", "--display", "none")
	e.ok("create", "victim", "--display", "none")
	spec := filepath.Join(e.show("victim").Dir, "machine.toml")
	orig, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(orig), `mode = "user"`) {
		t.Fatalf("machine.toml has no user nic to edit:\n%s", orig)
	}
	top := func(kv string) string { return kv + "\n" + string(orig) }
	nic := func(kv string) string { return strings.Replace(string(orig), `mode = "user"`, kv, 1) }
	cases := []struct {
		name  string
		toml  string
		wants []string
	}{
		{"nic model", nic(`mode = "user"` + "\nmodel = \"e1000,romfile=/etc/shadow\""), []string{"nic 0", "model", "romfile", "e1000"}},
		{"machine opts", top(`machine_opts = ["dumpdtb=/tmp/x"]`), []string{"machine option", "dumpdtb", "via"}},
		{"machine opts comma", top(`machine_opts = ["usb=on,dumpdtb=x"]`), []string{"machine option", "usb", "value"}},
		{"cpu", top(`cpu = "max,romfile=/etc/shadow"`), []string{"cpu", "romfile"}},
		{"vga", top(`vga = "std,romfile=/etc/shadow"`), []string{"vga", "romfile", "cirrus"}},
		{"sound", top(`sound = "hda,x=y"`), []string{"sound", "hda,x=y", "ac97"}},
		{"bridge", nic(`mode = "bridge"` + "\nbridge = \"br0,helper=/bin/sh\""), []string{"bridge", "helper", "br0"}},
		{"machine", regexp.MustCompile(`(?m)^machine = .*$`).ReplaceAllString(string(orig), `machine = "pc,dumpdtb=/tmp/x"`), []string{"machine", "dumpdtb", "q35"}},
		{"boot order", strings.Replace(string(orig), "[boot]", "[boot]\norder = \"dd\"", 1), []string{"boot order", `"dd"`}},
		{"multicast mac", regexp.MustCompile(`(?m)^(\s*)mac = .*$`).ReplaceAllString(string(orig), `${1}mac = "01:00:5e:00:00:01"`), []string{"nic 0", "mac", "multicast"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			if err := os.WriteFile(spec, []byte(c.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, verb := range []string{"start", "cmdline", "show"} {
				line := e.fail(append([]string{"victim", "machine.toml"}, c.wants...), verb, "victim")
				if strings.Contains(line, "qemu-system") && verb == "cmdline" {
					t.Errorf("cmdline printed a command line: %s", line)
				}
			}
			out, errs, code := e.run("list")
			if code != 0 || !strings.Contains(out, "good") || !strings.Contains(errs, "victim") {
				t.Fatalf("list with one hostile vm: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			}
			if strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("list: want one error line for the hostile vm, got %q", errs)
			}
			e.ok("show", "good")
		})
	}
	e.t = t
	// The file is the user's: vlab never rewrote it, and once repaired the
	// VM works again (the positive control).
	if err := os.WriteFile(spec, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	e.ok("cmdline", "victim")
}
