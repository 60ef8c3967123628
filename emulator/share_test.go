package emulator

import (
	"slices"
	"strings"
	"testing"
)

// TestCmdlineShares: a virtiofs share makes guest RAM a shared memfd and
// connects to the daemon's socket; a 9p share is served by QEMU with the
// owners kept in xattrs and readonly=on where asked; commas in paths are
// escaped, never taken as options.
func TestCmdlineShares(t *testing.T) {
	cfg := baseConfig(goldenRoot, "sh", ArchX86_64)
	cfg.Shares = []Share{
		{Kind: ShareVirtiofs, Tag: "code", Socket: "/run/vlab/sh/vfs-0.sock"},
		{Kind: Share9P, Tag: "docs", Dir: "/home/u/my,docs", ReadOnly: true},
	}
	argv, err := Cmdline(cfg, goldenHost(t))
	if err != nil {
		t.Fatal(err)
	}
	mem := "memory-backend-memfd,id=" + SharedRAMID + ",size=" + "512M,share=on"
	if got := values(argv, "-object"); !slices.Contains(got, mem) {
		t.Errorf("-object %q, want %q", got, mem)
	}
	if got := values(argv, "-machine"); len(got) != 1 || !strings.HasSuffix(got[0], ",memory-backend="+SharedRAMID) {
		t.Errorf("-machine %q, want RAM from %s", got, SharedRAMID)
	}
	if got := values(argv, "-chardev"); !slices.Contains(got, "socket,id=vlab-vfs0,path=/run/vlab/sh/vfs-0.sock") {
		t.Errorf("-chardev %q lacks the virtiofsd socket", got)
	}
	if got := values(argv, "-fsdev"); !slices.Equal(got, []string{"local,id=vlab-fs1,path=/home/u/my,,docs,security_model=mapped-xattr,readonly=on"}) {
		t.Errorf("-fsdev %q", got)
	}
	wantFw := "name=" + SharesFwCfg + ",string=code virtiofs rw /mnt/code\ndocs 9p ro /mnt/docs\n"
	if got := values(argv, "-fw_cfg"); !slices.Equal(got, []string{wantFw}) {
		t.Errorf("-fw_cfg %q, want %q", got, wantFw)
	}
	devs := values(argv, "-device")
	for _, want := range []string{"vhost-user-fs-pci,id=vlab-share0,chardev=vlab-vfs0,tag=code", "virtio-9p-pci,id=vlab-share1,fsdev=vlab-fs1,mount_tag=docs"} {
		if !slices.Contains(devs, want) {
			t.Errorf("-device %q lacks %q", devs, want)
		}
	}

	// 9p alone needs no shared RAM.
	cfg.Shares = cfg.Shares[1:]
	argv, err = Cmdline(cfg, goldenHost(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := values(argv, "-object"); slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, "memfd") }) {
		t.Errorf("a 9p share made RAM a memfd: %q", got)
	}

	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"tag twice", func(c *Config) { c.Shares = append(c.Shares, c.Shares[0]) }, "used twice"},
		{"bad tag", func(c *Config) { c.Shares[0].Tag = "a,b" }, "share tag"},
		{"relative 9p folder", func(c *Config) { c.Shares[0].Dir = "docs" }, "absolute"},
		{"virtiofs without socket", func(c *Config) { c.Shares[0] = Share{Kind: ShareVirtiofs, Tag: "x"} }, "socket"},
		{"unknown kind", func(c *Config) { c.Shares[0].Kind = "nfs" }, "use virtiofs or 9p"},
		{"no PCI", func(c *Config) { c.Machine = "isapc" }, "PCI"},
		{"replay", func(c *Config) {
			c.Instrument.Replay = Replay{Mode: ReplayRecord, File: "/r/replay.bin"}
		}, "recorded or replayed"},
	} {
		bad := cfg
		bad.Shares = slices.Clone(cfg.Shares)
		c.change(&bad)
		if _, err := Cmdline(bad, goldenHost(t)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
}
