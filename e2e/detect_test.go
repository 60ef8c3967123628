package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// isoFixture returns the path of an ISO scripts/fixtures-iso.sh builds
// (under <fixtures>/iso/), failing in CI and skipping locally when missing.
func isoFixture(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(fixture.Dir(), "iso", rel)
	if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		fixture.Need(t, "ISO fixture "+p+" missing: run make fixtures")
	}
	return p
}

// requireOSInfo fails (CI) or skips (locally) without osinfo-db.
func requireOSInfo(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/share/osinfo/os"); err != nil && os.Getenv("OSINFO_SYSTEM_DIR") == "" {
		fixture.Need(t, "osinfo-db not installed: run make deps")
	}
}

type detected struct {
	Path       string   `json:"path"`
	VolumeID   string   `json:"volume_id"`
	SystemID   string   `json:"system_id"`
	OS         string   `json:"os"`
	OSName     string   `json:"os_name"`
	Arch       string   `json:"arch"`
	Profile    string   `json:"profile"`
	Source     string   `json:"source"`
	Candidates []string `json:"candidates"`
	Bootable   bool     `json:"bootable"`
	Platforms  []string `json:"platforms"`
}

func (e *env) detect(path string) detected {
	e.t.Helper()
	var d detected
	if err := json.Unmarshal([]byte(e.ok("detect", path, "--json")), &d); err != nil {
		e.t.Fatalf("detect --json: %v", err)
	}
	return d
}

// TestDetectNamesRealISOs runs `vlab detect` on ISOs built with the volume,
// system, publisher and application ids of real releases: each maps to its
// OS and profile, through osinfo-db or, for releases newer than the
// installed osinfo-db, the built-in rules. An unknown ISO and one osinfo-db
// cannot tell apart (Windows 10 and 11 share a volume id pattern) are
// reported as unknown rather than guessed.
func TestDetectNamesRealISOs(t *testing.T) {
	requireOSInfo(t)
	e := newEnv(t)
	cases := []struct {
		file, os, arch, profile, source string
	}{
		{"debian-12.7.0-amd64-netinst.iso", "debian12", "x86_64", "debian", "built-in"},
		{"debian-11.7.0-arm64-netinst.iso", "debian11", "aarch64", "debian-arm64", "osinfo-db"},
		{"ubuntu-22.04.4-live-server-amd64.iso", "ubuntu22.04", "x86_64", "ubuntu", "osinfo-db"},
		{"Fedora-Workstation-Live-x86_64-40-1.14.iso", "", "x86_64", "fedora", ""},
		{"alpine-virt-3.17.0-aarch64.iso", "alpinelinux3.17", "aarch64", "alpine-arm64", "osinfo-db"},
		{"archlinux-2022.11.01-x86_64.iso", "archlinux", "x86_64", "archlinux", "osinfo-db"},
		{"FreeBSD-13.1-RELEASE-amd64-disc1.iso", "freebsd13.1", "x86_64", "freebsd", "osinfo-db"},
		{"en_windows_xp_professional_sp3.iso", "winxp", "i386", "winxp", "osinfo-db"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			d := e.detect(isoFixture(t, "detect/"+c.file))
			if (c.os != "" && d.OS != c.os) || d.Arch != c.arch || d.Profile != c.profile || (c.source != "" && d.Source != c.source) {
				t.Errorf("detect %s = os %q arch %q profile %q source %q; want %q %q %q %q",
					c.file, d.OS, d.Arch, d.Profile, d.Source, c.os, c.arch, c.profile, c.source)
			}
		})
	}

	unknown := e.detect(isoFixture(t, "detect/mystery.iso"))
	if unknown.Profile != "unknown" || unknown.OS != "unknown" || unknown.VolumeID != "VLAB_MYSTERY_DISC" {
		t.Errorf("mystery ISO: %+v, want os and profile unknown", unknown)
	}
	win := e.detect(isoFixture(t, "detect/Win11_23H2_English_x64.iso"))
	if win.Profile != "unknown" || !slices.Equal(win.Candidates, []string{"win10", "win11"}) {
		t.Errorf("Windows 10/11 volume id: %+v, want profile unknown with candidates win10, win11", win)
	}

	// The text form names the match and the profile.
	out := e.ok("detect", isoFixture(t, "detect/debian-12.7.0-amd64-netinst.iso"))
	for _, want := range []string{`volume id:`, `"Debian 12.7.0 amd64 n"`, "Debian 12 (debian12, built-in)", "profile:", "debian"} {
		if !strings.Contains(out, want) {
			t.Errorf("detect output lacks %q:\n%s", want, out)
		}
	}
	out = e.ok("detect", isoFixture(t, "detect/mystery.iso"))
	if !strings.Contains(out, "profile:") || !strings.Contains(out, "unknown: pick one with --profile") {
		t.Errorf("unknown ISO output:\n%s", out)
	}

	// Bad input: one clear line, non-zero exit.
	e.fail([]string{"does not exist"}, "detect", filepath.Join(e.home, "nope.iso"))
	txt := filepath.Join(e.home, "notes.txt")
	os.WriteFile(txt, []byte("not an iso"), 0o644)
	e.fail([]string{"not an ISO 9660 image"}, "detect", txt)
	e.fail([]string{"is a directory"}, "detect", e.home)
}

// TestDetectElTorito reads the boot catalogs of the boot fixtures.
func TestDetectElTorito(t *testing.T) {
	e := newEnv(t)
	bios := e.detect(isoFixture(t, "installer-x86_64.iso"))
	if !bios.Bootable || !slices.Equal(bios.Platforms, []string{"bios"}) || bios.VolumeID != "VLAB_INSTALLER" {
		t.Errorf("installer ISO: %+v, want bootable bios", bios)
	}
	efi := e.detect(isoFixture(t, "boot-aarch64.iso"))
	if !efi.Bootable || !slices.Contains(efi.Platforms, "efi") {
		t.Errorf("aarch64 ISO: %+v, want an EFI boot entry", efi)
	}
}

// TestCreateDetectsProfile: `vlab create --iso` without --profile takes the
// detected profile's hardware; --profile overrides it; an --arch that does
// not suit the profile is refused.
func TestCreateDetectsProfile(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	fixture.Program(t, "qemu-img")
	e := newEnv(t)
	deb := isoFixture(t, "detect/debian-12.7.0-amd64-netinst.iso")
	out := e.ok("create", "deb", "--iso", deb)
	if !strings.Contains(out, "profile debian (detected Debian 12 from the ISO)") {
		t.Errorf("create did not report the detected profile:\n%s", out)
	}
	var v struct {
		Profile, Machine, Memory, Arch string
		Disks                          []struct{ Size string }
	}
	json.Unmarshal([]byte(e.ok("show", "deb", "--json")), &v)
	if v.Profile != "debian" || v.Machine != "q35" || v.Memory != "2G" || len(v.Disks) != 1 || v.Disks[0].Size != "20G" {
		t.Errorf("deb: %+v, want the debian profile's q35, 2G, 20G disk", v)
	}

	e.ok("create", "retro", "--iso", deb, "--profile", "win98", "--memory", "128M")
	json.Unmarshal([]byte(e.ok("show", "retro", "--json")), &v)
	if v.Profile != "win98" || v.Arch != "i386" || v.Machine != "pc" || v.Memory != "128M" || v.Disks[0].Size != "4G" {
		t.Errorf("retro: %+v, want win98's i386 pc with the user's 128M and the profile's 4G disk", v)
	}
	argv := e.ok("cmdline", "retro")
	for _, want := range []string{"qemu-system-i386", "pentium2", "cirrus", "sb16", "ne2k_pci", "base=localtime"} {
		if !strings.Contains(argv, want) {
			t.Errorf("win98 command line lacks %q:\n%s", want, argv)
		}
	}

	e.fail([]string{"--arch aarch64 does not suit profile win98"}, "create", "bad", "--profile", "win98", "--arch", "aarch64")
	e.fail([]string{"unknown profile", "vlab profiles"}, "create", "bad", "--profile", "os2warp")
	out = e.ok("profiles")
	for _, want := range []string{"win98", "macos9", "debian-ppc64el", "mac99,via=pmu-adb"} {
		if !strings.Contains(out, want) {
			t.Errorf("vlab profiles lacks %q", want)
		}
	}
}
