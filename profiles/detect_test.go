package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"testing"

	"vlab/emulator"
	"vlab/internal/fixture"
)

func TestLoadOSInfoTestdata(t *testing.T) {
	db, err := LoadOSInfo("testdata/osinfo")
	if err != nil {
		t.Fatal(err)
	}
	// alpha: 3 usable media + 1 look-ahead pattern skipped; twin: 2; the
	// broken file and the OS without media add nothing.
	if db.Len() != 5 || db.Skipped != 1 {
		t.Errorf("loaded %d media, skipped %d; want 5 and 1", db.Len(), db.Skipped)
	}
	if _, err := LoadOSInfo(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty dir: err = %v, want fs.ErrNotExist", err)
	}
}

func TestOSInfoMatch(t *testing.T) {
	db, err := LoadOSInfo("testdata/osinfo")
	if err != nil {
		t.Fatal(err)
	}
	d := &Detector{OSInfo: db}
	cases := []struct {
		name       string
		m          Media
		os, osName string
		arch       emulator.Arch
		profile    string
		candidates []string
	}{
		// Unanchored search, like libosinfo; the generic Linux profile
		// serves a Linux no profile names.
		{"volume only", Media{VolumeID: "ALPHA 1.4 amd64"}, "alpha1", "Alpha 1", emulator.ArchX86_64, "linux-bios", nil},
		{"substring", Media{VolumeID: "XALPHA 1.4 amd64 DVD"}, "alpha1", "Alpha 1", emulator.ArchX86_64, "linux-bios", nil},
		// The system id the entry names must match too.
		{"system id", Media{VolumeID: "ALPHA 1.2 arm64", SystemID: "LINUX"}, "alpha1", "Alpha 1", emulator.ArchAArch64, "", nil},
		{"system id missing", Media{VolumeID: "ALPHA 1.2 arm64"}, "", "", emulator.ArchUnknown, "", nil},
		// Equally good matches from two OSes: ambiguous, no guess.
		{"ambiguous", Media{VolumeID: "TWIN_X64FRE", PublisherID: "TWIN CORP"}, "", "", emulator.ArchUnknown, "", []string{"twina", "twinb"}},
		{"publisher missing", Media{VolumeID: "TWIN_X64FRE"}, "", "", emulator.ArchUnknown, "", nil},
		{"anchored", Media{VolumeID: "A_TWIN_X64", PublisherID: "TWIN CORP"}, "", "", emulator.ArchUnknown, "", nil},
		// A Debian 12 volume id the test db does not know: built-in rules.
		{"fallback", Media{VolumeID: "Debian 12.7.0 amd64 n"}, "debian12", "Debian 12", emulator.ArchX86_64, "debian", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := d.Identify(c.m)
			if got.OS != c.os || got.OSName != c.osName || got.Arch != c.arch || got.Profile != c.profile || !slices.Equal(got.Candidates, c.candidates) {
				t.Errorf("Identify(%+v) = os %q %q arch %s profile %q candidates %v; want %q %q %s %q %v",
					c.m, got.OS, got.OSName, got.Arch, got.Profile, got.Candidates, c.os, c.osName, c.arch, c.profile, c.candidates)
			}
		})
	}
}

func TestOSInfoPrefersMoreFields(t *testing.T) {
	db, err := LoadOSInfo("testdata/osinfo")
	if err != nil {
		t.Fatal(err)
	}
	ms := db.Match(Media{VolumeID: "ALPHA 1.1 amd64", PublisherID: "ALPHA PROJECT"})
	if len(ms) != 1 || ms[0].ShortID != "alpha1" {
		t.Errorf("Match = %+v, want one alpha1", ms)
	}
}

// TestBuiltinRules checks every rule against the real volume ids of the
// releases it names (from the distributions' ISOs and osinfo-db).
func TestBuiltinRules(t *testing.T) {
	d := &Detector{} // no osinfo-db: rules only
	cases := []struct {
		volume, system, os, profile string
		arch                        emulator.Arch
	}{
		{"Debian 12.7.0 amd64 n", "", "debian12", "debian", emulator.ArchX86_64},
		{"Debian 12.7.0 amd64 1", "", "debian12", "debian", emulator.ArchX86_64},
		{"Debian 12.5.0 arm64 n", "", "debian12", "debian-arm64", emulator.ArchAArch64},
		{"Debian 12.5.0 p64el n", "", "debian12", "debian-ppc64el", emulator.ArchPPC64},
		{"Ubuntu 24.04.1 LTS amd64", "", "ubuntu24.04", "ubuntu", emulator.ArchX86_64},
		{"Ubuntu-Server 22.04.3 LTS amd64", "", "ubuntu22.04", "ubuntu", emulator.ArchX86_64},
		{"Fedora-WS-Live-40-1-14", "", "fedora40", "fedora", emulator.ArchX86_64},
		{"Fedora-S-dvd-x86_64-40", "", "fedora40", "fedora", emulator.ArchX86_64},
		{"alpine-virt 3.20.3 x86_64", "", "alpinelinux3.20", "alpine", emulator.ArchX86_64},
		{"alpine-std 3.19.1 aarch64", "", "alpinelinux3.19", "alpine-arm64", emulator.ArchAArch64},
		{"ARCH_202410", "", "archlinux", "archlinux", emulator.ArchX86_64},
		{"14_1_RELEASE_AMD64_CD", "", "freebsd14.1", "freebsd", emulator.ArchX86_64},
		{"OpenBSD/amd64   7.5 Install CD", "", "openbsd7.5", "openbsd", emulator.ArchX86_64},
		{"haiku-r1~beta4-x86_64", "", "haikur1~beta4", "haiku", emulator.ArchX86_64},
		{"ReactOS", "", "reactos", "reactos", emulator.ArchI386},
		{"FD-SETUP", "", "freedos", "freedos", emulator.ArchI386},
		{"WIN98 SE", "", "win98", "win98", emulator.ArchI386},
	}
	for _, c := range cases {
		got := d.Identify(Media{VolumeID: c.volume, SystemID: c.system})
		if got.OS != c.os || got.Profile != c.profile || got.Arch != c.arch || got.Source != SourceBuiltin {
			t.Errorf("%q: got os %q profile %q arch %s source %q; want %q %q %s built-in",
				c.volume, got.OS, got.Profile, got.Arch, got.Source, c.os, c.profile, c.arch)
		}
	}
	// Near misses are unknown, not guesses.
	for _, v := range []string{
		"", "Debian 12.7.0 s390x n", "Debian", "Ubuntu 22.04 LTS riscv64", "CCCOMA_X64FRE_EN-US_DV9",
		"alpine-virt 3.20.3 x86_64 extra", "ARCH_2024", "my backup disc", "cidata", "CDROM",
	} {
		got := d.Identify(Media{VolumeID: v})
		if got.Known() || got.OS != "" || got.ProfileName() != Unknown || got.OSLabel() != Unknown {
			t.Errorf("%q: identified as %+v, want unknown", v, got)
		}
	}
}

func TestRulesData(t *testing.T) {
	rules, err := readRules(dataFS, "data/"+rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) < 10 {
		t.Errorf("only %d rules", len(rules))
	}
	for i, r := range rules {
		p, err := Get(r.Profile)
		if err != nil {
			t.Errorf("rule %d names %v", i+1, err)
			continue
		}
		if p.Arch != r.Arch && !(r.Arch == emulator.ArchI386 && p.Arch == emulator.ArchX86_64) {
			t.Errorf("rule %d: arch %s but profile %s is %s", i+1, r.Arch, p.Name, p.Arch)
		}
	}
}

// TestSystemOSInfo runs detection against the installed osinfo-db with the
// volume ids real releases carry.
func TestSystemOSInfo(t *testing.T) {
	dir := OSInfoDir()
	if _, err := os.Stat(dir); err != nil {
		fixture.Need(t, fmt.Sprintf("osinfo-db not installed at %s: run make deps", dir))
	}
	d := NewDetector(dir)
	if d.OSInfo == nil {
		t.Fatalf("osinfo-db at %s did not load", dir)
	}
	cases := []struct {
		m       Media
		os      string
		profile string
	}{
		{Media{VolumeID: "Debian 11.7.0 amd64 n"}, "debian11", "debian"},
		{Media{VolumeID: "Debian 11.7.0 arm64 n"}, "debian11", "debian-arm64"},
		{Media{VolumeID: "Ubuntu 22.04.4 LTS amd64"}, "ubuntu22.04", "ubuntu"},
		{Media{VolumeID: "alpine-virt 3.17.0 aarch64"}, "alpinelinux3.17", "alpine-arm64"},
		{Media{VolumeID: "ARCH_202211", PublisherID: "ARCH LINUX <HTTPS://ARCHLINUX.ORG>", ApplicationID: "ARCH LINUX LIVE/RESCUE CD"}, "archlinux", "archlinux"},
		{Media{VolumeID: "WXPFPP_EN", PublisherID: "MICROSOFT CORPORATION"}, "winxp", "winxp"},
		{Media{VolumeID: "13_1_RELEASE_AMD64_CD", SystemID: "FreeBSD"}, "freebsd13.1", "freebsd"},
	}
	for _, c := range cases {
		got := d.Identify(c.m)
		if got.OS != c.os || got.Profile != c.profile {
			t.Errorf("%+v: got os %q profile %q (source %s); want %q %q", c.m, got.OS, got.Profile, got.Source, c.os, c.profile)
		}
	}
	if got := d.Identify(Media{VolumeID: "VLAB_MYSTERY_DISC"}); got.Known() {
		t.Errorf("mystery disc identified as %+v", got)
	}
}
