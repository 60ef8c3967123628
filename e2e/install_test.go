package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// TestISOInstallX86 is an end-to-end ISO install under TCG: the fixture
// installer ISO (isolinux, built from Debian packages) boots with an empty
// disk, writes a bootable system onto it and powers off; the next start
// boots that system from the disk, with the ISO still in the drive and the
// boot order untouched.
func TestISOInstallX86(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	iso := isoFixture(t, "installer-x86_64.iso")
	e := newEnv(t)
	e.ok("create", "inst", "--iso", iso, "--profile", "linux-bios", "--disk", "256M", "--memory", "512M",
		"--display", "none", "--net", "none")

	e.ok("start", "inst")
	log := e.waitSerial("inst", "VLAB-INSTALL-DONE")
	if !strings.Contains(log, "VLAB-INSTALLER-START") || strings.Contains(log, "VLAB-ERROR") {
		t.Fatalf("installer run:\n%s", tail(log, 2000))
	}
	waitFor(t, "the installer to power off", 2*time.Minute, func() bool { return e.state("inst") == "stopped" })

	// Nothing was edited between the runs: the ISO is still inserted.
	var v struct {
		Boot struct{ ISO, Order string }
	}
	json.Unmarshal([]byte(e.ok("show", "inst", "--json")), &v)
	if v.Boot.ISO != iso || v.Boot.Order != "" {
		t.Fatalf("boot = %+v, want the ISO still inserted and the default order", v.Boot)
	}

	e.ok("start", "inst")
	log = e.waitSerial("inst", "VLAB-MARKER installed-system")
	if strings.Contains(log, "VLAB-INSTALLER-START") {
		t.Errorf("second start ran the installer again instead of the installed system:\n%s", tail(log, 2000))
	}
	waitFor(t, "the installed system to power off", 2*time.Minute, func() bool { return e.state("inst") == "stopped" })
}

// bootISOFixture creates VM vm from the ISO fixture iso with profile and
// memory, starts it, waits for marker on its serial console and for the
// guest to power off, and returns the VM's QEMU command line.
func bootISOFixture(t *testing.T, qemu, iso, vm, profile, memory, marker string) string {
	t.Helper()
	fixture.Program(t, qemu)
	path := isoFixture(t, iso)
	e := newEnv(t)
	e.ok("create", vm, "--iso", path, "--profile", profile, "--memory", memory, "--disk", "64M",
		"--display", "none", "--net", "none")
	e.ok("start", vm)
	e.waitSerial(vm, marker)
	waitFor(t, vm+" to power off", 3*time.Minute, func() bool { return e.state(vm) == "stopped" })
	return e.ok("cmdline", vm)
}

// TestISOBootAArch64UEFI boots a grub-mkrescue ISO on aarch64 virt with
// AAVMF (the debian-arm64 profile) to its serial marker.
func TestISOBootAArch64UEFI(t *testing.T) {
	argv := bootISOFixture(t, "qemu-system-aarch64", "boot-aarch64.iso", "arm", "debian-arm64", "512M", "VLAB-MARKER iso-aarch64")
	if !strings.Contains(argv, "AAVMF") || !strings.Contains(argv, "virt") {
		t.Errorf("aarch64 command line lacks AAVMF or virt:\n%s", argv)
	}
}

// TestISOBootPPC64Pseries boots a grub-mkrescue ISO on ppc64 pseries with
// SLOF (the debian-ppc64el profile) to its serial marker.
func TestISOBootPPC64Pseries(t *testing.T) {
	bootISOFixture(t, "qemu-system-ppc64", "boot-ppc64le.iso", "ppc", "debian-ppc64el", "1G", "VLAB-MARKER iso-ppc64le")
}

// queryCD returns the file in the running VM's CD drive ("" when empty),
// asked of QEMU itself.
func (e *env) queryCD(name string) string {
	e.t.Helper()
	var reply struct {
		Return []struct {
			Device    string `json:"device"`
			QDev      string `json:"qdev"`
			Removable bool   `json:"removable"`
			Inserted  *struct {
				File string `json:"file"`
			} `json:"inserted"`
		} `json:"return"`
	}
	out := e.ok("qmp", name, `{"execute":"query-block"}`)
	if err := json.Unmarshal([]byte(out), &reply); err != nil {
		e.t.Fatalf("query-block: %v\n%s", err, out)
	}
	for _, b := range reply.Return {
		if b.Removable {
			if b.Inserted == nil {
				return ""
			}
			return b.Inserted.File
		}
	}
	e.t.Fatalf("no removable drive in query-block:\n%s", out)
	return ""
}

// TestCDROMChange inserts, changes and ejects the CD of a running VM (QMP)
// and of a stopped one (its definition), with library names and paths.
func TestCDROMChange(t *testing.T) {
	e := newEnv(t)
	e.createGuest("cd", guests["x86_64"], []string{"vlab.counter=1"}, "--display", "none", "--net", "none")
	deb := isoFixture(t, "detect/debian-12.7.0-amd64-netinst.iso")
	mystery := isoFixture(t, "detect/mystery.iso")
	e.ok("iso", "add", mystery)

	// Stopped: the definition changes.
	e.ok("cdrom", "insert", "cd", deb)
	var v struct{ Boot struct{ ISO string } }
	json.Unmarshal([]byte(e.ok("show", "cd", "--json")), &v)
	if v.Boot.ISO != deb {
		t.Fatalf("stopped insert: boot.iso = %q", v.Boot.ISO)
	}

	e.ok("start", "cd")
	e.waitSerial("cd", "VLAB-COUNT 1")
	if got := e.queryCD("cd"); got != deb {
		t.Errorf("at start the drive holds %q, want %q", got, deb)
	}
	// Running: QEMU's drive changes now, by library name.
	out := e.ok("cdrom", "insert", "cd", "mystery.iso")
	if !strings.Contains(out, "running") {
		t.Errorf("insert on a running vm: %q", out)
	}
	lib := e.queryCD("cd")
	if !strings.HasSuffix(lib, "/isos/mystery.iso") {
		t.Errorf("after a live insert the drive holds %q, want the library's mystery.iso", lib)
	}
	e.ok("cdrom", "eject", "cd")
	if got := e.queryCD("cd"); got != "" {
		t.Errorf("after eject the drive holds %q", got)
	}
	v.Boot.ISO = "" // show --json omits an empty iso: decode into a cleared value
	json.Unmarshal([]byte(e.ok("show", "cd", "--json")), &v)
	if v.Boot.ISO != "" {
		t.Errorf("eject not kept in the definition: %q", v.Boot.ISO)
	}
	e.ok("cdrom", "insert", "cd", deb)
	if got := e.queryCD("cd"); got != deb {
		t.Errorf("re-insert: drive holds %q", got)
	}
	// The library refuses to delete an ISO a drive holds.
	e.ok("cdrom", "insert", "cd", "mystery.iso")
	e.fail([]string{"cd", "eject it"}, "iso", "rm", "mystery.iso")
	e.fail([]string{"does not exist"}, "cdrom", "insert", "cd", "/nonexistent.iso")
	e.ok("stop", "--force", "cd")
}

// TestISOGetResumes drives `vlab iso get` against a local HTTP server that
// drops the first transfer: the first run fails saying how to resume, the
// second resumes with a Range request, reports progress and verifies the
// checksum; a wrong checksum is refused and leaves nothing behind.
func TestISOGetResumes(t *testing.T) {
	e := newEnv(t)
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7 % 251)
	}
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	var mu sync.Mutex
	var ranges []string
	served := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		served++
		first := served == 1
		mu.Unlock()
		if first { // drop the connection after 1 MiB
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:1<<20])
			w.(http.Flusher).Flush()
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		http.ServeContent(w, r, "x.iso", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	url := srv.URL + "/pub/tiny-installer.iso"

	// Progress lines go to stderr before the one error line.
	_, errs, code := e.run("iso", "get", url, "--sha256", good)
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	last := lines[len(lines)-1]
	if code == 0 || !strings.HasPrefix(last, "vlab: ") || !strings.Contains(last, "interrupted after 1048576") ||
		!strings.Contains(last, "run the same command again to resume") {
		t.Fatalf("interrupted get: exit %d, stderr:\n%s", code, errs)
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.Contains(l, "%") || strings.HasPrefix(l, "vlab: ") {
			t.Errorf("stderr line before the error is not progress: %q", l)
		}
	}
	out, errs, code := e.run("iso", "get", url, "--sha256", good)
	if code != 0 {
		t.Fatalf("resumed get: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "resuming at 1M") || !strings.Contains(errs, "100%") {
		t.Errorf("progress on stderr lacks the resume and 100%%:\n%s", errs)
	}
	if !strings.Contains(out, "downloaded tiny-installer.iso (3M, sha256 verified)") {
		t.Errorf("stdout: %q", out)
	}
	mu.Lock()
	if len(ranges) != 2 || ranges[1] != "bytes=1048576-" {
		t.Errorf("Range headers %q, want the second request to resume at 1048576", ranges)
	}
	mu.Unlock()
	var list []struct{ Name, SHA256, Source string }
	json.Unmarshal([]byte(e.ok("iso", "list", "--json")), &list)
	if len(list) != 1 || list[0].SHA256 != good || list[0].Source != url {
		t.Errorf("iso list = %+v", list)
	}

	_, errs, code = e.run("iso", "get", url, "--name", "other.iso", "--sha256", strings.Repeat("0", 64))
	if lines := strings.Split(strings.TrimRight(errs, "\n"), "\n"); code == 0 || !strings.Contains(lines[len(lines)-1], "checksum mismatch: sha256 is "+good) ||
		!strings.Contains(errs, "the download was deleted") {
		t.Errorf("wrong checksum: exit %d, stderr:\n%s", code, errs)
	}
	json.Unmarshal([]byte(e.ok("iso", "list", "--json")), &list)
	if len(list) != 1 {
		t.Errorf("a rejected download is listed: %+v", list)
	}
	e.fail([]string{"--sha256 is required"}, "iso", "get", url)
	e.ok("iso", "rm", "tiny-installer.iso")
	if out := e.ok("iso", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("after rm: %s", out)
	}
}
