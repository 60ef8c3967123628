package portable

import (
	"strings"
	"testing"
)

func TestParseUnits(t *testing.T) {
	for in, want := range map[string]int64{
		"byte * 2^20": 1 << 20, "byte*2^30": 1 << 30, "MegaBytes": 1 << 20, "GigaBytes": 1 << 30,
		"MB": 1 << 20, "KiloBytes": 1 << 10, "byte": 1, "bytes": 1, "byte * 1024": 1024,
		"byte * 10^6": 1000000, "": 7,
	} {
		got, err := ParseUnits(in, 7)
		if err != nil || got != want {
			t.Errorf("ParseUnits(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"hertz * 10^6", "byte * 2^99", "parsecs", "byte * x"} {
		if _, err := ParseUnits(bad, 1); err == nil {
			t.Errorf("ParseUnits(%q) accepted", bad)
		}
	}
}

const vApp = `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2">
  <References/>
  <VirtualSystemCollection ovf:id="lab">
    <Info>A vApp</Info>
    <VirtualSystem ovf:id="web"><Info>x</Info><Name>web</Name><VirtualHardwareSection><Info>h</Info></VirtualHardwareSection></VirtualSystem>
    <VirtualSystemCollection ovf:id="inner">
      <VirtualSystem ovf:id="db"><Info>x</Info><VirtualHardwareSection><Info>h</Info></VirtualHardwareSection></VirtualSystem>
    </VirtualSystemCollection>
  </VirtualSystemCollection>
</Envelope>`

// TestVAppSystems: an OVF 2 vApp lists its systems, nested collections
// included; importing one needs --vsys.
func TestVAppSystems(t *testing.T) {
	env, err := ParseEnvelope([]byte(vApp))
	if err != nil {
		t.Fatal(err)
	}
	all := env.AllSystems()
	if got := strings.Join(titles(all), ","); got != "web,db" {
		t.Fatalf("systems %s, want web,db", got)
	}
	if _, err := pick(all, ""); err == nil || !strings.Contains(err.Error(), "--vsys") || !strings.Contains(err.Error(), "web, db") {
		t.Errorf("no --vsys: %v", err)
	}
	if got, err := pick(all, "db"); err != nil || len(got) != 1 || got[0].ID != "db" {
		t.Errorf("--vsys db: %v %v", got, err)
	}
	if got, _ := pick(all, "all"); len(got) != 2 {
		t.Errorf("--vsys all: %d systems", len(got))
	}
	if _, err := pick(all, "nope"); err == nil {
		t.Error("--vsys nope accepted")
	}
}

func TestProfileFor(t *testing.T) {
	for _, c := range []struct {
		os   OSSection
		want string
	}{
		{OSSection{ID: 96, OSType: "debian10_64Guest"}, "debian"},
		{OSSection{VBoxOSType: "Windows98"}, "win98"},
		{OSSection{OSType: "windows9_64Guest"}, "win10"},
		{OSSection{OSType: "winXPProGuest"}, "winxp"},
		{OSSection{ID: 17}, "win98"},
		{OSSection{OSType: "dosGuest"}, "msdos622"},
		{OSSection{ID: 1}, "linux-bios"},
	} {
		if got := profileFor(&c.os, false); got != c.want {
			t.Errorf("profileFor(%+v) = %s, want %s", c.os, got, c.want)
		}
	}
}
