package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// waitSSH waits until `vlab exec name -- true` succeeds (cloud-init has
// created the user and sshd answers), printing the serial console on a
// timeout.
func (e *env) waitSSH(name string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, errs, code := e.run("exec", "--via", "ssh", name, "--", "true")
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(e.show(name).SerialLog)
			e.t.Fatalf("%s: ssh never answered (last: exit %d, %s)\nserial:\n%s", name, code, strings.TrimSpace(errs), tail(string(log), 4000))
		}
		time.Sleep(2 * time.Second)
	}
}

// TestCloudImageWorkflow: a real Debian userland (cloud-init, sshd) from a
// gallery entry served over HTTP: `vlab create --image ID` downloads it
// once (checksum-verified), seeds user vlab, vlab's key and hostname = NAME;
// the guest boots with its own kernel and initrd (the image has no boot
// loader); `vlab ssh`, `vlab exec` (exit status kept) and `vlab cp` both
// ways (a file and a folder whose name has a space) work without a prompt,
// through SSH and through the QEMU guest agent; a live snapshot freezes the
// guest's filesystems through the agent, and stop asks the agent first.
func TestCloudImageWorkflow(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	fixture.Program(t, "qemu-img")
	for _, p := range []string{"ssh", "scp", "ssh-keygen"} {
		fixture.Program(t, p)
	}
	c := fixture.Cloud(t)
	e := newEnv(t)
	srv := e.serveGallery(map[string]http.HandlerFunc{"/images/debian-12-fixture.qcow2": serveFile(c.Image)}, `
[[image]]
id = "debian-fixture"
title = "Debian 12 fixture userland"
arch = "x86_64"
kind = "cloud"
url = "@URL@/images/debian-12-fixture.qcow2"
sha256 = "`+c.SHA256+`"
profile = "linux-bios"
`)
	hits := srv.hits["/images/debian-12-fixture.qcow2"]
	boot := []string{"--kernel", c.Kernel, "--initrd", c.Initrd,
		"--append", "root=/dev/vda rw console=ttyS0 no_timer_check",
		"--display", "none", "--isolated", "--memory", "1G", "--disk", "2G"}

	out := e.ok(append([]string{"create", "dev", "--image", "debian-fixture"}, boot...)...)
	if !strings.Contains(out, "created dev") {
		t.Errorf("create --image said %q", out)
	}
	if hits.Load() == 0 {
		t.Fatal("create --image never asked the gallery's server for the image")
	}
	first := hits.Load()
	// The same id again comes from the cache: no request reaches the server.
	e.ok(append([]string{"create", "again", "--image", "debian-fixture"}, boot...)...)
	if n := hits.Load(); n != first {
		t.Errorf("second create --image of the same id asked the server again (%d requests, then %d)", first, n)
	}
	e.ok("delete", "again", "--yes")

	e.ok("start", "dev")
	e.waitSSH("dev", 8*time.Minute)

	out = e.ok("ssh", "dev", "--", "uname", "-a")
	if !strings.HasPrefix(out, "Linux ") {
		t.Errorf("vlab ssh dev -- uname -a = %q, want Linux ...", out)
	}
	if got := strings.TrimSpace(e.ok("exec", "dev", "--", "hostname")); got != "dev" {
		t.Errorf("hostname = %q, want dev (the VM's name)", got)
	}
	if got := strings.TrimSpace(e.ok("ssh", "dev", "--", "id", "-un")); got != "vlab" {
		t.Errorf("ssh logs in as %q, want vlab", got)
	}
	// exec and cp work through SSH and through the guest agent alike.
	e.waitAgent("dev", 3*time.Minute)
	vias := []string{"ssh", "agent"}
	for _, via := range vias {
		if _, errs, code := e.run("exec", "--via", via, "dev", "--", "sh", "-c", "exit 3"); code != 3 {
			t.Errorf("vlab exec --via %s dev -- sh -c 'exit 3' exited %d (%s), want 3", via, code, errs)
		}
		// The guest command's output is passed through as it is, vlab adds nothing.
		if out, errs, code := e.run("exec", "--via", via, "dev", "--", "sh", "-c", "echo out; echo err >&2; exit 7"); out != "out\n" || errs != "err\n" || code != 7 {
			t.Errorf("exec --via %s with output and status 7: stdout %q, stderr %q, exit %d", via, out, errs, code)
		}
		// One argument stays one argument, spaces and quotes included.
		if got := e.ok("exec", "--via", via, "dev", "--", "printf", "[%s]", "a b", "it's"); got != "[a b][it's]" {
			t.Errorf("exec --via %s printf = %q", via, got)
		}
		// The login user, in its home, with stdin passed on.
		if out, errs, code := e.runIn("piped\n", "exec", "--via", via, "dev", "--", "sh", "-c", "id -un; pwd; cat"); out != "vlab\n/home/vlab\npiped\n" || code != 0 {
			t.Errorf("exec --via %s as whom, where, stdin: stdout %q, stderr %q, exit %d", via, out, errs, code)
		}
	}
	// The seed's user has passwordless sudo, and the hostname resolves.
	if out, errs, code := e.run("exec", "dev", "--", "sudo", "-n", "id", "-u"); out != "0\n" || errs != "" || code != 0 {
		t.Errorf("sudo -n id -u: stdout %q, stderr %q, exit %d", out, errs, code)
	}
	// The root file system grew to --disk (cloud-init's resizefs).
	if out := strings.TrimSpace(e.ok("exec", "dev", "--", "df", "--output=size", "-BM", "/")); !strings.HasSuffix(out, "M") || len(out) < 5 {
		t.Errorf("df / = %q", out)
	} else if mb, _ := strconv.Atoi(strings.TrimSuffix(out[strings.LastIndexAny(out, " \n")+1:], "M")); mb < 1800 {
		t.Errorf("root file system is %d MiB, want it grown to the 2G --disk", mb)
	}

	// cp, host → guest: a file and a folder whose name has a space.
	host := filepath.Join(e.home, "work")
	project := filepath.Join(host, "my project")
	os.MkdirAll(filepath.Join(project, "sub dir"), 0o755)
	stamp := fmt.Sprint(time.Now().UnixNano())
	file := filepath.Join(host, "notes.txt")
	files := map[string]string{
		"notes.txt":                        "notes " + stamp + "\n",
		"my project/main.go":               "package main // " + stamp + "\n",
		"my project/sub dir/data file.bin": string(bytes.Repeat([]byte{0, 1, 2, 255}, 40000)),
	}
	for rel, data := range files {
		if err := os.WriteFile(filepath.Join(host, rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, via := range vias {
		box := "/tmp/in box " + via
		e.ok("exec", "dev", "--", "mkdir", "-p", box)
		e.ok("cp", "--via", via, file, "dev:"+box+"/")
		e.ok("cp", "--via", via, project, "dev:"+box+"/")
		for rel, data := range files {
			got := e.ok("exec", "dev", "--", "cat", box+"/"+rel)
			if got != data {
				t.Errorf("--via %s: guest %s/%s: %d bytes, want the host's %d", via, box, rel, len(got), len(data))
			}
		}
		if via == "agent" {
			// The copy belongs to the login user, as over scp.
			if got := e.ok("exec", "dev", "--", "stat", "-c", "%U", box+"/my project/sub dir/data file.bin"); got != "vlab\n" {
				t.Errorf("cp --via agent: the copy belongs to %q, want vlab", got)
			}
		}

		// cp, guest → host: the same file and folder back into another folder.
		back := filepath.Join(e.home, "back here "+via)
		os.MkdirAll(back, 0o755)
		e.ok("cp", "--via", via, "dev:"+box+"/notes.txt", back+"/")
		e.ok("cp", "--via", via, "dev:"+box+"/my project", back+"/")
		for rel, data := range files {
			got, err := os.ReadFile(filepath.Join(back, rel))
			if err != nil || string(got) != data {
				t.Errorf("--via %s: host %s after cp back: %d bytes (%v), want %d", via, rel, len(got), err, len(data))
			}
		}
	}

	// A live snapshot freezes the guest's filesystems through the agent
	// for the save, and thaws them after.
	out = e.ok("snapshot", "create", "dev", "frozen")
	if !strings.Contains(out, "filesystems frozen: ") || strings.Contains(out, "filesystems frozen: 0") {
		t.Errorf("snapshot create said %q, want the frozen filesystems counted", out)
	}
	if j := e.ok("exec", "--via", "agent", "--user", "root", "dev", "--", "journalctl", "--no-pager", "-o", "cat", "-t", "qemu-ga"); !strings.Contains(j, "guest-fsfreeze called") {
		t.Errorf("the guest agent's log shows no freeze:\n%s", tail(j, 2000))
	}
	if got := e.ok("exec", "--via", "agent", "dev", "--", "sh", "-c", "echo thawed > after-snapshot && sync && cat after-snapshot"); got != "thawed\n" {
		t.Errorf("a write after the snapshot: %q", got)
	}

	// stop asks the guest agent first.
	if out := e.ok("stop", "dev"); !strings.Contains(out, "(agent)") {
		t.Errorf("vlab stop dev said %q, want it stopped through the agent", out)
	}

	waitFor(t, "dev to stop", 3*time.Minute, func() bool { return e.state("dev") == "stopped" })

	// Shared folders added to the stopped VM mount at its next boot (the
	// seed's boot command reads them from fw_cfg): read-write and
	// read-only, a host path with a space in it.
	code, docs := filepath.Join(t.TempDir(), "my code"), filepath.Join(t.TempDir(), "docs")
	for _, d := range []string{code, docs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "hello.txt"), []byte("from "+filepath.Base(d)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.ok("edit", "dev", "--share", code+",tag=code", "--share", docs+",tag=docs,ro")
	e.ok("start", "dev")
	e.waitSSH("dev", 8*time.Minute)
	if got := e.ok("exec", "dev", "--", "cat", "/mnt/code/hello.txt", "/mnt/docs/hello.txt"); got != "from my code\nfrom docs\n" {
		t.Errorf("the guest reads %q from its shares", got)
	}
	e.ok("exec", "dev", "--", "sudo", "-n", "sh", "-c", "echo from the guest > /mnt/code/back.txt")
	if b, err := os.ReadFile(filepath.Join(code, "back.txt")); err != nil || string(b) != "from the guest\n" {
		t.Errorf("the guest's write to the read-write share: host has %q, %v", b, err)
	}
	if _, errs, code := e.run("exec", "dev", "--", "sudo", "-n", "sh", "-c", "echo x > /mnt/docs/x.txt"); code == 0 || !strings.Contains(errs, "Read-only") {
		t.Errorf("a write to the read-only share: exit %d, %q; want a read-only file system error", code, errs)
	}
	if _, err := os.Stat(filepath.Join(docs, "x.txt")); err == nil {
		t.Error("the guest wrote into the read-only share on the host")
	}
	// Even root in the guest cannot make the read-only share writable: the
	// host serves it read-only.
	e.run("exec", "dev", "--", "sudo", "-n", "mount", "-o", "remount,rw", "/mnt/docs")
	e.run("exec", "dev", "--", "sudo", "-n", "sh", "-c", "echo x > /mnt/docs/x.txt")
	if _, err := os.Stat(filepath.Join(docs, "x.txt")); err == nil {
		t.Error("after a remount rw in the guest, its write reached the read-only share on the host")
	}
	e.fail([]string{"shared folders", "vlab stop dev"}, "snapshot", "create", "dev", "with-shares")
	e.ok("stop", "dev")
}

// waitAgent waits until the guest agent of name answers `vlab exec --via
// agent`.
func (e *env) waitAgent(name string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, errs, code := e.run("exec", "--via", "agent", name, "--", "true")
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: the guest agent never answered (last: exit %d, %s)", name, code, strings.TrimSpace(errs))
		}
		time.Sleep(2 * time.Second)
	}
}
