package e2e

import (
	"bytes"
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

// TestExportLibvirtBoots: a direct-kernel guest that wrote its disk under
// vlab is exported with --format libvirt; the domain XML passes libvirt's
// schema, `virsh define` and `virsh start` run it on a real libvirtd (TCG:
// type qemu), the guest boots with the data vlab's run left on its disk,
// writes the disk under libvirt, and the write lands in the exported qcow2.
func TestExportLibvirtBoots(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "qemu-img")
	e := newEnv(t)
	const name = "lv"
	g := guests["x86_64"]
	e.createGuest(name, g, []string{"vlab.write=from-vlab"}, "--disk", "32M")
	e.ok("start", name)
	e.waitSerial(name, "VLAB-DISK-WROTE from-vlab")
	out := filepath.Join(e.home, "to libvirt")
	e.fail([]string{"running", "stop it first"}, "export", name, out, "--format", "libvirt")
	if _, err := os.Lstat(out); err == nil {
		t.Fatalf("a refused export left %s behind", out)
	}
	e.ok("stop", name)
	e.ok("edit", name, "--append", fixture.Append(g.fixtureArch, "vlab.marker=under-libvirt", "vlab.write=libvirt-wrote", "vlab.poweroff=1"))

	summary := e.ok("export", name, out, "--format", "libvirt")
	xmlPath := filepath.Join(out, name+".xml")
	if !strings.Contains(summary, xmlPath) || !strings.Contains(summary, "virsh define") {
		t.Errorf("export summary does not say where the domain is and how to run it:\n%s", summary)
	}
	if n := strings.Count(summary, "not carried:"); n > 1 {
		t.Errorf("what libvirt cannot carry takes %d lines, want one:\n%s", n, summary)
	}
	data, err := os.ReadFile(xmlPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`<domain type="qemu">`)) {
		t.Errorf("domain type is not qemu on a host where vlab runs TCG:\n%s", data)
	}
	disk := filepath.Join(out, name+"-disk1.qcow2")
	for _, w := range []string{disk, filepath.Join(out, name+"-kernel"), filepath.Join(out, name+"-initrd"), `<interface type="user">`, `<graphics type="vnc"`, `<input type="tablet" bus="usb">`} {
		if !bytes.Contains(data, []byte(w)) {
			t.Errorf("the domain lacks %s:\n%s", w, data)
		}
	}
	if o, err := exec.Command("qemu-img", "info", disk).CombinedOutput(); err != nil || !bytes.Contains(o, []byte("file format: qcow2")) {
		t.Errorf("exported disk is not qcow2: %v\n%s", err, o)
	}
	if o, err := exec.Command("virt-xml-validate", xmlPath, "domain").CombinedOutput(); err != nil {
		t.Fatalf("virt-xml-validate: %v\n%s", err, o)
	}

	uri := startLibvirt(t)
	virsh := func(args ...string) string {
		t.Helper()
		o, err := exec.Command("virsh", append([]string{"-c", uri}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, o)
		}
		return string(o)
	}
	virsh("define", xmlPath)
	t.Cleanup(func() {
		exec.Command("virsh", "-c", uri, "destroy", name).Run()
		exec.Command("virsh", "-c", uri, "undefine", name, "--nvram").Run()
	})
	virsh("start", name)
	serial := filepath.Join(out, name+"-serial.log")
	var log []byte
	waitFor(t, "the guest's markers in "+serial, 3*time.Minute, func() bool {
		log, _ = os.ReadFile(serial)
		return bytes.Contains(log, []byte("VLAB-DISK-WROTE libvirt-wrote")) || bytes.Contains(log, []byte(fixture.MarkerError))
	})
	for _, w := range []string{"VLAB-BOOT-OK x86_64", "VLAB-MARKER under-libvirt", "VLAB-DISK-READ from-vlab", "VLAB-DISK-WROTE libvirt-wrote"} {
		if !bytes.Contains(log, []byte(w)) {
			t.Errorf("serial log lacks %q:\n%s", w, tail(string(log), 3000))
		}
	}
	waitFor(t, "the guest to power off under libvirt", 2*time.Minute, func() bool {
		o, _ := exec.Command("virsh", "-c", uri, "domstate", name).CombinedOutput()
		return strings.Contains(string(o), "shut off")
	})
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if o, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", disk, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, o)
	}
	head := make([]byte, 32)
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(head); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(head, []byte("libvirt-wrote\n")) {
		t.Errorf("the exported disk starts %q, want the guest's write under libvirt", head)
	}

	// Port forwards: libvirt 9's <interface type='user'> has none, so the
	// isolated user NIC's -netdev, forward included, goes over as vlab
	// writes it (<qemu:commandline>, the interface pointed at it with
	// <qemu:override>); the guest's web server answers on the forwarded
	// host port under libvirt.
	virsh("undefine", name)
	port := freePort(t)
	e.ok("edit", name, "--isolated", "--forward", fmt.Sprintf("tcp:%d:8080", port),
		"--append", fixture.Append(g.fixtureArch, "vlab.net=1", "vlab.httpd=8080"))
	fwOut := filepath.Join(e.home, "forwarded")
	summary = e.ok("export", name, fwOut, "--format", "libvirt")
	for _, line := range strings.Split(summary, "\n") {
		if strings.Contains(line, "not carried") && (strings.Contains(line, "forward") || strings.Contains(line, "restrict")) {
			t.Errorf("the export calls the forward lost:\n%s", summary)
		}
	}
	fwXML := filepath.Join(fwOut, name+".xml")
	data, _ = os.ReadFile(fwXML)
	if want := fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:8080,restrict=on", port); !bytes.Contains(data, []byte(want)) {
		t.Errorf("the domain does not carry the forward %s:\n%s", want, data)
	}
	if o, err := exec.Command("virt-xml-validate", fwXML, "domain").CombinedOutput(); err != nil {
		t.Fatalf("virt-xml-validate: %v\n%s", err, o)
	}
	virsh("define", fwXML)
	virsh("start", name)
	if body := waitHTTP(t, fmt.Sprintf("127.0.0.1:%d", port)); !strings.Contains(body, fixture.MarkerHTTPOK) {
		t.Errorf("the forward under libvirt served %q", body)
	}
	virsh("destroy", name)

	// A UEFI VM: libvirt starts QEMU with the OVMF code and the exported
	// (raw) copy of the VM's variable store.
	const efi = "lvefi"
	e.ok("create", efi, "--arch", "x86_64", "--memory", "256M", "--disk", "16M", "--firmware", "uefi", "--display", "none", "--net", "none")
	efiOut := filepath.Join(e.home, "efi out")
	e.ok("export", efi, efiOut, "--format", "libvirt")
	efiXML, _ := os.ReadFile(filepath.Join(efiOut, efi+".xml"))
	nvram := filepath.Join(efiOut, efi+"-VARS.fd")
	if !bytes.Contains(efiXML, []byte(`type="pflash"`)) || !bytes.Contains(efiXML, []byte("<nvram>"+nvram+"</nvram>")) {
		t.Errorf("the UEFI domain lacks its loader or nvram:\n%s", efiXML)
	}
	virsh("define", filepath.Join(efiOut, efi+".xml"))
	t.Cleanup(func() {
		exec.Command("virsh", "-c", uri, "destroy", efi).Run()
		exec.Command("virsh", "-c", uri, "undefine", efi, "--nvram").Run()
	})
	virsh("start", efi)
	if st := virsh("domstate", efi); !strings.Contains(st, "running") {
		t.Errorf("the UEFI domain is %q after start, want running", strings.TrimSpace(st))
	}
	virsh("destroy", efi)
}

// TestExportLibvirtRefusals: a folder that is not empty, a file in the way
// and an unknown format are refused with one line, and nothing is written.
func TestExportLibvirtRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("create", "r", "--arch", "x86_64", "--memory", "256M", "--disk", "16M")
	full := filepath.Join(e.home, "full")
	if err := os.MkdirAll(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.fail([]string{full, "not empty"}, "export", "r", full, "--format", "libvirt")
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Errorf("a refused export changed %s: %v", full, ents)
	}
	file := filepath.Join(e.home, "a file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.fail([]string{file, "not a folder"}, "export", "r", file, "--format", "libvirt")
	e.fail([]string{"no such folder", "create it first"}, "export", "r", filepath.Join(e.home, "missing", "deep"), "--format", "libvirt")
	_, errs, code := e.run("export", "r", filepath.Join(e.home, "x"), "--format", "vbox")
	if code != 2 || !strings.Contains(errs, `"vbox"`) || !strings.Contains(errs, "ova, ovf, libvirt") {
		t.Errorf("unknown format: exit %d, stderr %q; want 2 and the formats listed", code, errs)
	}
	// An empty folder is fine: it receives the domain.
	empty := filepath.Join(e.home, "empty")
	if err := os.MkdirAll(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Format, Path string
		Disks        []struct{ File string }
		Notes        []string
	}
	if err := json.Unmarshal([]byte(e.ok("export", "r", empty, "--format", "libvirt", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.Format != "libvirt" || res.Path != filepath.Join(empty, "r.xml") || len(res.Disks) != 1 || res.Disks[0].File != "r-disk1.qcow2" {
		t.Errorf("export --json = %+v", res)
	}
	if _, err := os.Stat(filepath.Join(empty, "r.xml")); err != nil {
		t.Errorf("export into an empty folder: %v", err)
	}
	if fi, err := os.Stat(empty); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("export folder mode: %v %v, want 0700", fi.Mode(), err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(e.home, ".vlab-export-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary folders left behind: %v", leftovers)
	}
}

// TestExportLibvirtTo: `vlab export NAME --to qemu+ssh://root@127.0.0.1/system
// --start`, through a throwaway sshd, uploads the disks and boot files into
// a storage pool of a running libvirtd, defines the domain there and starts
// it; the guest boots and writes its disk.
// A missing pool, a domain that exists already and --start without --to
// are refused.
func TestExportLibvirtTo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "rt"
	g := guests["x86_64"]
	e.createGuest(name, g, []string{"vlab.marker=remote-hand-off", "vlab.write=remote-wrote", "vlab.poweroff=1"}, "--disk", "32M")
	_, errs, code := e.run("export", name, filepath.Join(e.home, "x"), "--start")
	if code != 2 || !strings.Contains(errs, "--to") {
		t.Errorf("--start without --to: exit %d, %q; want 2 naming --to", code, errs)
	}
	uri, sk := startLibvirtSSH(t)
	virsh := func(args ...string) string {
		t.Helper()
		o, err := exec.Command("virsh", append([]string{"-c", uri}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, o)
		}
		return string(o)
	}
	e.fail([]string{"no storage pool vlab-missing", "--pool"}, "export", name, "--to", sk.uri, "--pool", "vlab-missing")
	e.fail([]string{"cannot reach libvirt", "qemu:///system?socket=/nonexistent/sock"}, "export", name, "--to", "qemu:///system?socket=/nonexistent/sock")

	const pool = "vlab-e2e"
	poolDir := filepath.Join(e.home, "pool dir")
	if err := os.MkdirAll(poolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	virsh("pool-define-as", "--name", pool, "--type", "dir", "--target", poolDir)
	virsh("pool-start", pool)
	vols := []string{name + "-disk1.qcow2", name + "-kernel", name + "-initrd"}
	t.Cleanup(func() {
		exec.Command("virsh", "-c", uri, "destroy", name).Run()
		exec.Command("virsh", "-c", uri, "undefine", name, "--nvram").Run()
		for _, v := range vols {
			exec.Command("virsh", "-c", uri, "vol-delete", "--pool", pool, v).Run()
		}
		exec.Command("virsh", "-c", uri, "pool-destroy", pool).Run()
		exec.Command("virsh", "-c", uri, "pool-undefine", pool).Run()
	})

	out := e.ok("export", name, "--to", sk.uri, "--pool", pool, "--start")
	if !strings.Contains(out, "defined and started "+name) {
		t.Errorf("export --to said:\n%s", out)
	}
	if list := virsh("list", "--all", "--name"); !strings.Contains(list, name) {
		t.Errorf("virsh list --all does not show %s:\n%s", name, list)
	}
	list := virsh("vol-list", pool)
	for _, v := range vols {
		if !strings.Contains(list, v) {
			t.Errorf("pool %s lacks volume %s:\n%s", pool, v, list)
		}
	}
	serial := filepath.Join(poolDir, name+"-serial.log")
	var log []byte
	waitFor(t, "the guest's markers in "+serial, 3*time.Minute, func() bool {
		log, _ = os.ReadFile(serial)
		return bytes.Contains(log, []byte("VLAB-DISK-WROTE remote-wrote")) || bytes.Contains(log, []byte(fixture.MarkerError))
	})
	for _, w := range []string{"VLAB-MARKER remote-hand-off", "VLAB-DISK-READ EMPTY", "VLAB-DISK-WROTE remote-wrote"} {
		if !bytes.Contains(log, []byte(w)) {
			t.Errorf("serial log lacks %q:\n%s", w, tail(string(log), 3000))
		}
	}
	e.fail([]string{"already has a domain " + name}, "export", name, "--to", sk.uri, "--pool", pool)
}
