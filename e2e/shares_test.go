package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// TestSharedFolders: four host folders shared with a real guest — an auto
// share (virtiofs through QEMU's virtiofsd where vlab runs as root, as in
// CI; 9p otherwise), a read-only auto share, a 9p share and a read-only 9p
// share. The guest mounts each, reads the host's file and tries to write:
// writes land on the host for read-write shares and fail for read-only
// ones. A live snapshot is refused with the reason, and stopping the VM
// ends its virtiofsd processes.
func TestSharedFolders(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	auto := "9p"
	if os.Geteuid() == 0 {
		auto = "virtiofs"
	}
	type share struct{ tag, opts, kind, write string }
	shares := []share{
		{"rw", "", auto, "ok"},
		{"ro", ",ro", auto, "denied"},
		{"p9", ",9p", "9p", "ok"},
		{"p9ro", ",9p,ro", "9p", "denied"},
	}
	var flags, tags []string
	for _, s := range shares {
		dir := filepath.Join(root, "host "+s.tag) // a space in the host path
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("from the host "+s.tag+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		flags = append(flags, "--share", dir+",tag="+s.tag+s.opts)
		tags = append(tags, s.tag)
	}
	e.createGuest("shr", guests["x86_64"], []string{"vlab.share=" + strings.Join(tags, ":")},
		append([]string{"--display", "none", "--net", "none", "--disk", "32M"}, flags...)...)

	var views []struct {
		Tag  string `json:"tag"`
		Uses string `json:"uses"`
	}
	if err := json.Unmarshal([]byte(e.ok("share", "list", "shr", "--json")), &views); err != nil {
		t.Fatal(err)
	}
	for i, v := range views {
		if i >= len(shares) || v.Tag != shares[i].tag || v.Uses != shares[i].kind {
			t.Fatalf("share list: %+v, want tags and kinds %+v", views, shares)
		}
	}

	e.ok("start", "shr")
	console := e.waitSerial("shr", fixture.MarkerShareW+" "+shares[len(shares)-1].tag)
	got := map[string]string{}
	for _, a := range fixture.FindAll(console, fixture.MarkerShare) {
		tag, rest, _ := strings.Cut(a, " ")
		got[tag] = rest
	}
	wrote := map[string]string{}
	for _, a := range fixture.FindAll(console, fixture.MarkerShareW) {
		tag, res, _ := strings.Cut(a, " ")
		wrote[tag] = res
	}
	for _, s := range shares {
		if want := s.kind + " from the host " + s.tag; got[s.tag] != want {
			t.Errorf("share %s: the guest saw %q, want %q\n%s", s.tag, got[s.tag], want, tail(console, 2000))
		}
		if wrote[s.tag] != s.write {
			t.Errorf("share %s: guest write %q, want %q", s.tag, wrote[s.tag], s.write)
		}
		data, err := os.ReadFile(filepath.Join(root, "host "+s.tag, "from-guest.txt"))
		switch {
		case s.write == "ok" && string(data) != "written by the guest\n":
			t.Errorf("share %s: the host holds %q (%v), want the guest's file", s.tag, data, err)
		case s.write == "denied" && err == nil:
			t.Errorf("share %s is read-only, yet the guest wrote %q to the host", s.tag, data)
		}
	}
	if errs := fixture.FindAll(console, fixture.MarkerError); len(errs) > 0 {
		t.Errorf("guest errors: %v", errs)
	}

	e.fail([]string{"shared folders", "vlab stop shr", "--unshare"}, "snapshot", "create", "shr", "live")
	e.fail([]string{"stopped vm", "vlab stop shr"}, "edit", "shr", "--unshare", "rw")

	run := filepath.Dir(e.show("shr").QMPSocket)
	if auto == "virtiofs" && len(daemonsUsing(run)) == 0 {
		t.Fatalf("no virtiofsd runs with a socket in %s", run)
	}
	e.ok("stop", "shr")
	waitFor(t, "the virtiofsd processes to end with the VM", time.Minute, func() bool { return len(daemonsUsing(run)) == 0 })

	// Bad input: one line, the fix, nothing changed.
	e.fail([]string{"does not exist", "fix the path"}, "edit", "shr", "--share", filepath.Join(root, "missing"))
	e.fail([]string{`tag "rw" is already used`, "tag=NAME"}, "edit", "shr", "--share", filepath.Join(root, "host p9")+",tag=rw")
	e.fail([]string{"--unshare nope", "rw, ro, p9, p9ro"}, "edit", "shr", "--unshare", "nope")
	e.fail([]string{"unknown option", "tag=TAG"}, "edit", "shr", "--share", root+",rw=1")
	e.ok("edit", "shr", "--unshare", "p9ro")
	if err := json.Unmarshal([]byte(e.ok("share", "list", "shr", "--json")), &views); err != nil || len(views) != 3 {
		t.Fatalf("after --unshare p9ro: %+v, %v", views, err)
	}
	// A shared folder that went away: start names it and the way out.
	if err := os.RemoveAll(filepath.Join(root, "host p9")); err != nil {
		t.Fatal(err)
	}
	e.fail([]string{"host p9", "does not exist", "--unshare p9"}, "start", "shr")
}

// daemonsUsing lists the processes whose command line names a file in dir
// (the virtiofsd processes of a VM's runtime dir).
func daemonsUsing(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), dir+"/vfs-") {
			continue
		}
		out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}
