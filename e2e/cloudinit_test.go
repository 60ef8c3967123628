package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// TestCloudInitSeed: `vlab create --cloud-init user-data` writes a NoCloud
// seed that xorriso and isoinfo read (volume id cidata, the user's
// user-data, generated meta-data), attaches it read-only, and a real guest
// finds it by its label, mounts it and reads the user-data.
func TestCloudInitSeed(t *testing.T) {
	isoinfo := fixture.Program(t, "isoinfo")
	xorriso := fixture.Program(t, "xorriso")
	e := newEnv(t)
	token := fmt.Sprintf("seed-%d", time.Now().UnixNano())
	userData := "#cloud-config\n# vlab-marker: " + token + "\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q me@laptop\n"
	ud := filepath.Join(e.home, "user data.yaml")
	if err := os.WriteFile(ud, []byte(userData), 0o644); err != nil {
		t.Fatal(err)
	}
	e.createGuest("ci", guests["x86_64"], []string{"vlab.cidata=1", "vlab.poweroff=1"},
		"--cloud-init", ud, "--disk", "64M", "--display", "none", "--net", "none")

	v := e.show("ci")
	if len(v.Disks) != 2 || v.Disks[1].File != "cidata.iso" || v.Disks[1].Format != "raw" {
		t.Fatalf("disks = %+v, want disk0 and the raw cidata.iso", v.Disks)
	}
	seed := v.Disks[1].Path
	out, err := exec.Command(isoinfo, "-d", "-i", seed).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Volume id: cidata\n") {
		t.Errorf("isoinfo -d %s: %v\n%s", seed, err, out)
	}
	got, err := exec.Command(isoinfo, "-R", "-x", "/user-data", "-i", seed).Output()
	if err != nil || string(got) != userData {
		t.Errorf("isoinfo user-data = %q (%v), want the user's file", got, err)
	}
	meta, _ := exec.Command(isoinfo, "-R", "-x", "/meta-data", "-i", seed).Output()
	if !strings.Contains(string(meta), "local-hostname: ci\n") || !strings.Contains(string(meta), "instance-id: vlab-ci-") {
		t.Errorf("meta-data = %q", meta)
	}
	ls, err := exec.Command(xorriso, "-indev", seed, "-ls", "/").CombinedOutput()
	if err != nil || !strings.Contains(string(ls), "'user-data'") || !strings.Contains(string(ls), "'meta-data'") {
		t.Errorf("xorriso -ls: %v\n%s", err, ls)
	}
	argv := e.ok("cmdline", "ci")
	if !strings.Contains(argv, "cidata.iso") || !strings.Contains(argv, "read-only=on") {
		t.Errorf("the seed is not attached read-only:\n%s", argv)
	}

	e.ok("start", "ci")
	log := e.waitSerial("ci", "VLAB-CIDATA-META")
	for _, want := range []string{
		"VLAB-CIDATA /dev/vdb meta-data user-data",
		"VLAB-CIDATA-USER # vlab-marker: " + token,
		"VLAB-CIDATA-META local-hostname: ci",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("serial console lacks %q:\n%s", want, tail(log, 2000))
		}
	}
	waitFor(t, "ci to power off", 2*time.Minute, func() bool { return e.state("ci") == "stopped" })

	// Bad user-data is refused before anything is created.
	bad := filepath.Join(e.home, "keys.txt")
	os.WriteFile(bad, []byte("ssh-ed25519 AAAA me@laptop\n"), 0o644)
	e.fail([]string{"#cloud-config"}, "create", "nope", "--cloud-init", bad, "--display", "none")
	e.fail([]string{"--cloud-init"}, "create", "nope", "--cloud-init", filepath.Join(e.home, "missing.yaml"))
	var vms []struct{ Name string }
	json.Unmarshal([]byte(e.ok("list", "--json")), &vms)
	if len(vms) != 1 {
		t.Errorf("refused creates left vms behind: %+v", vms)
	}
}
