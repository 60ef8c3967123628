package tui

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	tea "charm.land/bubbletea/v2"

	"vlab/emulator"
	"vlab/machine"
	"vlab/tui/tuifake"
)

// wizardCloudImage walks the wizard to the source page (profile debian-12,
// x86_64) and chooses the cloud image source.
func wizardCloudImage(t *testing.T, h *harness) *wizard {
	t.Helper()
	w := wizardAt(t, h, stepSource)
	h.press("right") // boot from: cloud image
	if got := w.source.fields[srcFieldKind].Value(); got != srcCloud {
		t.Fatalf("boot from %q, want %q", got, srcCloud)
	}
	return w
}

// TestWizardGalleryPicker: ctrl+g lists the gallery's cloud images for the
// machine's arch (not its ISOs, not other arches); enter puts the id in the
// Image field, and the page says what it stands for.
func TestWizardGalleryPicker(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			w := wizardCloudImage(t, h)
			h.contains("Image", "User", "vlab")
			h.press("ctrl+g")
			if w.galPick == nil {
				t.Fatal("ctrl+g opened no gallery list")
			}
			h.contains("The gallery's x86_64 cloud images", "debian-12", "ubuntu-24.04", "Fedora 41 Cloud Base")
			h.lacks("debian-12-netinst", "alpine-3.20") // ISOs
			h.requireScreen()
			h.press("down", "enter")
			if w.galPick != nil {
				t.Fatal("enter did not close the gallery list")
			}
			if got := w.source.fields[srcFieldImage].Value(); got != "ubuntu-24.04" {
				t.Fatalf("Image = %q, want ubuntu-24.04", got)
			}
			h.contains("✓ gallery: Ubuntu 24.04 LTS cloud image")
			// esc closes the list and keeps the choice.
			h.press("ctrl+g", "esc")
			if w.galPick != nil || w.source.fields[srcFieldImage].Value() != "ubuntu-24.04" {
				t.Fatal("esc did not just close the gallery list")
			}
		})
	}
}

// TestWizardCloudImageCreates picks a gallery cloud image, sets the login
// user, and creates: Create gets the image's id, the user and the disk
// size; the download's progress shows in the footer while it runs; the
// new machine has an SSH forward.
func TestWizardCloudImageCreates(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := demoService()
			h := newHarness(t, f, sz.w, sz.h)
			w := wizardCloudImage(t, h)
			h.press("ctrl+g", "enter") // debian-12
			h.press("tab", "tab")      // Image, User
			h.press("ctrl+u")
			h.typeText("dev")
			h.press("enter") // → hardware
			if w.step != stepHardware {
				t.Fatalf("the source page did not move on: %s", h.screen())
			}
			h.contains("The disk is the cloud image's copy")
			h.press("enter", "enter") // → network → review
			h.contains("cloud image debian-12 from the gallery, downloaded when created", "user dev with your SSH key", "the image's disk, grown to 20 GiB")
			h.requireScreen()

			// Hold the download halfway to see its progress.
			held, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			f.OnProgress = func(p Progress) {
				if strings.HasPrefix(p.Step, "downloading") && p.Done*2 == p.Total {
					once.Do(func() { close(held); <-release })
				}
			}
			h.press("enter")
			<-held
			h.await("the download's progress", func() bool { return strings.Contains(h.screen(), "50%") })
			h.contains("creating newvm: downloading debian-12")
			close(release)
			h.await("the end of the create", func() bool { return len(h.m.jobs) == 0 })

			got := f.Created()
			if len(got) != 1 {
				t.Fatalf("Create called %d times", len(got))
			}
			n := got[0]
			if n.Image != "debian-12" || n.User != "dev" || n.OS != "" || n.ISO != "" || n.Arch != emulator.ArchX86_64 || n.DiskBytes != 20<<30 {
				t.Fatalf("Create got %+v", n)
			}
			vm, ok := f.VM("newvm")
			if !ok {
				t.Fatal("no machine created")
			}
			if fw := vm.NICs[0].Forwards; len(fw) != 1 || fw[0].Rule.GuestPort != 22 || !fw[0].Auto() {
				t.Fatalf("forwards of the new machine: %+v", fw)
			}
			h.contains("created newvm")
		})
	}
}

// TestWizardCloudImageSources: a URL is taken as it is, a file is made
// absolute and must exist, an installer ISO's id is refused with the fix,
// and the shares typed are checked like --share and reach Create.
func TestWizardCloudImageSources(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	w := wizardCloudImage(t, h)
	h.press("enter")
	h.contains("choose a cloud image: ctrl+g picks one from the gallery")
	h.press("tab")
	h.typeText("debian-12-netinst")
	h.press("enter")
	h.contains("debian-12-netinst is an installer ISO, not a cloud image")
	h.press("ctrl+u")
	h.typeText("/nonexistent/disk.qcow2")
	h.press("enter")
	h.contains("image /nonexistent/disk.qcow2: no such file or directory")
	if w.step != stepSource {
		t.Fatal("a missing image moved the wizard on")
	}

	// A share whose folder does not exist, then two good ones with a tag
	// used twice, then good ones.
	dir := t.TempDir()
	ro := filepath.Join(dir, "docs")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	h.press("ctrl+u")
	h.typeText("https://images.example.org/my.qcow2")
	h.press("tab", "tab") // User, Shares
	h.typeText(filepath.Join(dir, "nope"))
	h.press("enter")
	h.contains("folder does not exist")
	h.press("ctrl+u")
	h.typeText(dir + ",tag=x; " + ro + ",tag=x")
	h.press("enter")
	h.contains(`tag "x" is already used`)
	h.press("ctrl+u")
	h.typeText(dir + "; " + ro + ",ro")
	h.press("enter")
	if w.step != stepHardware {
		t.Fatalf("good sources did not move on: %s", h.screen())
	}
	h.press("enter", "enter")
	h.contains("cloud image https://images.example.org/my.qcow2, downloaded when created", "Shares", ro+" → docs (/mnt/docs) (read-only)")
	h.press("enter")
	got := f.Created()
	if len(got) != 1 {
		t.Fatalf("Create called %d times", len(got))
	}
	n := got[0]
	want := []Share{{HostDir: dir, Tag: filepath.Base(dir)}, {HostDir: ro, Tag: "docs", ReadOnly: true}}
	if n.Image != "https://images.example.org/my.qcow2" || n.User != machine.DefaultUser || !slices.Equal(n.Shares, want) {
		t.Fatalf("Create got %+v", n)
	}
	if vm, _ := f.VM("newvm"); len(vm.Shares) != 2 {
		t.Fatalf("the new machine's shares: %+v", vm.Shares)
	}
	h.contains("created newvm")
}

// TestWizardGalleryISO: the ISO source offers the gallery's installer ISOs;
// the one picked reaches Create as OS (downloaded into the ISO library by
// the service), not as a path.
func TestWizardGalleryISO(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	w := wizardAt(t, h, stepSource)
	h.press("ctrl+g")
	h.contains("The gallery's x86_64 installer ISOs", "debian-12-netinst", "alpine-3.20")
	h.lacks("ubuntu-24.04")
	h.press("enter")
	if got := w.source.fields[srcFieldISO].Value(); got != "debian-12-netinst" {
		t.Fatalf("ISO field = %q", got)
	}
	h.contains("✓ gallery: Debian 12 network installer — downloaded into the ISO library when created")
	h.press("enter", "enter", "enter")
	h.contains("ISO debian-12-netinst from the gallery, downloaded into the ISO library when created (Debian 12")
	h.press("enter")
	got := f.Created()
	if len(got) != 1 || got[0].OS != "debian-12-netinst" || got[0].ISO != "" || got[0].Image != "" {
		t.Fatalf("Create got %+v", got)
	}
	if vm, _ := f.VM("newvm"); vm.ISO == "" || vm.BootOrder != "cd" {
		t.Fatalf("the new machine boots from %q (order %q)", vm.ISO, vm.BootOrder)
	}
	// Another source has no gallery.
	h.press("n")
	w = h.m.view.(*wizard)
	h.typeText("other")
	h.press("enter", "enter")
	h.press("right", "right") // kernel + initrd
	h.press("ctrl+g")
	if w.galPick != nil {
		t.Fatal("the gallery opened for a kernel boot")
	}
	h.contains("the gallery has installer ISOs and cloud images")
}

// TestDownloadProgress: the real service reports a download as a job step
// with its sizes, an unknown size as 0 (a spinner).
func TestDownloadProgress(t *testing.T) {
	var got []Progress
	p := downloadProgress("debian-12", func(pr Progress) { got = append(got, pr) })
	p(machine.Progress{Done: 100 << 20, Total: 400 << 20, Resumed: 50 << 20})
	p(machine.Progress{Done: 3 << 20, Total: -1})
	want := []Progress{
		{Step: "downloading debian-12 (100 MiB of 400 MiB, resumed at 50 MiB)", Done: 100 << 20, Total: 400 << 20},
		{Step: "downloading debian-12 (3 MiB)", Done: 3 << 20},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("progress %+v, want %+v", got, want)
	}
	if downloadProgress("x", nil) != nil {
		t.Fatal("no job, but a progress func")
	}
}

// captureExec replaces the TUI's exec of a command in the terminal: the
// command is kept, not run, and ends as err says.
func captureExec(h *harness, err error) *[]*exec.Cmd {
	var ran []*exec.Cmd
	h.m.execProcess = func(c *exec.Cmd, fn tea.ExecCallback) tea.Cmd {
		ran = append(ran, c)
		return func() tea.Msg { return fn(err) }
	}
	return &ran
}

// TestSSHAction: S on a running machine runs the service's ssh argv in the
// terminal — vlab ssh's: the bound forward's port, the login user, a tty,
// vlab's key and the machine's own known_hosts; a stopped machine and one
// without an SSH forward get the fix instead.
func TestSSHAction(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 120, 40)
	ran := captureExec(h, nil)
	selectVM(t, h, "web")
	h.press("S")
	if len(*ran) != 1 {
		t.Fatalf("ssh ran %d times", len(*ran))
	}
	argv := (*ran)[0].Args
	if rec := f.SSHArgvs(); len(rec) != 1 || !slices.Equal(rec[0], argv) {
		t.Fatalf("ran %q, the service answered %q", argv, rec)
	}
	want := machine.SSHTarget{Name: "web", User: "vlab", Host: "127.0.0.1", Port: 2222, KnownHosts: "/var/lib/vlab/web/known_hosts",
		Alias: "vlab-web", Key: "/home/tester/.config/vlab/id_ed25519"}.SSHArgs(true, "")
	if argv[0] != "ssh" || !slices.Equal(argv[1:], want) {
		t.Fatalf("argv %q, want ssh %q", argv, want)
	}
	for _, w := range []string{"-p 2222", "-t -l vlab 127.0.0.1", "IdentityFile=", "UserKnownHostsFile=", "BatchMode=yes"} {
		if !strings.Contains(strings.Join(argv, " "), w) {
			t.Errorf("argv %q lacks %q", argv, w)
		}
	}
	h.contains("ssh session to web ended")

	// ssh's own failure (255) says what to check.
	ran = captureExec(h, exec.Command("sh", "-c", "exit 255").Run())
	h.press("S")
	if h.m.status.err == nil || !strings.Contains(h.m.status.err.Error(), "status 255") || fixOf(h.m.status.err) == "" {
		t.Fatalf("status after ssh failed: %+v", h.m.status)
	}

	// Stopped: nothing asked, the fix shown.
	ran = captureExec(h, nil)
	selectVM(t, h, "arm-build")
	h.press("S")
	if len(*ran) != 0 || h.m.status.err == nil || fixOf(h.m.status.err) != "start it first (s)" {
		t.Fatalf("S on a stopped machine: ran %d, status %+v", len(*ran), h.m.status)
	}
	// Paused, without an SSH forward: the service says how to add one.
	selectVM(t, h, "dos622")
	h.press("S")
	if len(*ran) != 0 || h.m.status.err == nil || !strings.Contains(h.m.status.err.Error(), "no ssh forward") || !strings.Contains(fixOf(h.m.status.err), "tcp:auto:22") {
		t.Fatalf("S without a forward: ran %d, status %+v", len(*ran), h.m.status)
	}
	h.contains("no ssh forward", "fix: add tcp:auto:22")
}

// TestCopyDialog: C asks for the direction and both paths; empty paths keep
// the dialog open, an upload of a missing host path is refused, and a good
// copy runs scp as vlab cp does (both ways, ~ expanded).
func TestCopyDialog(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, demoService(), sz.w, sz.h)
			selectVM(t, h, "web")
			h.press("C")
			if h.m.dialog == nil {
				t.Fatal("C opened no dialog")
			}
			h.contains("Copy files with web", "Direction", "host → VM", "Host path", "Guest path")
			h.requireScreen()
		})
	}

	f := demoService()
	h := newHomeHarness(t, f)
	selectVM(t, h, "web")
	h.press("C", "enter")
	if h.m.dialog == nil {
		t.Fatal("empty paths closed the dialog")
	}
	h.contains("give the host path")
	h.typeText("/nonexistent/file")
	h.press("tab")
	h.typeText("/tmp/")
	h.press("enter")
	if h.m.dialog != nil {
		t.Fatal("the dialog stayed open")
	}
	h.contains("/nonexistent/file does not exist on the host", "fix: check the path")
	if len(f.Copies()) != 0 {
		t.Fatalf("copied %+v", f.Copies())
	}

	src := filepath.Join(t.TempDir(), "my file.txt")
	if err := os.WriteFile(src, []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.press("C")
	h.typeText(src)
	h.press("tab")
	h.typeText("/tmp/")
	h.press("enter")
	h.contains("copied " + src + " web:/tmp/")

	h.press("C", "shift+tab", "right", "tab") // direction: VM → host
	h.typeText("~/logs")
	h.press("tab")
	h.typeText("/var/log/syslog")
	h.press("enter")
	h.contains("copied web:/var/log/syslog /home/tester/logs")

	cs := f.Copies()
	if len(cs) != 2 {
		t.Fatalf("copies %+v", cs)
	}
	for i, want := range [][]string{{src, "vlab@127.0.0.1:/tmp/"}, {"vlab@127.0.0.1:/var/log/syslog", "/home/tester/logs"}} {
		argv := cs[i].Argv
		j := slices.Index(argv, "--")
		if argv[0] != "scp" || j < 0 || !slices.Equal(argv[j+1:], want) || !slices.Contains(argv, "-r") || !strings.Contains(strings.Join(argv, " "), "-P 2222") {
			t.Errorf("copy %d: argv %q, want scp -P 2222 -r … -- %q", i, argv, want)
		}
	}
	if !cs[0].Req.ToVM || cs[1].Req.ToVM {
		t.Fatalf("directions %+v", cs)
	}

	// A stopped machine: the fix, no dialog.
	selectVM(t, h, "arm-build")
	h.press("C")
	if h.m.dialog != nil || fixOf(h.m.status.err) != "start it first (s)" {
		t.Fatalf("C on a stopped machine: dialog %v status %+v", h.m.dialog != nil, h.m.status)
	}
}

// sharesService is demoService with shares on arm-build (stopped) and web
// (running), at fixed paths the fake does not check.
func sharesService() *tuifake.Service {
	f := demoService()
	arm, _ := f.VM("arm-build")
	arm.Shares = []Share{{HostDir: "/srv/project", Tag: "project"}, {HostDir: "/srv/docs", Tag: "docs", ReadOnly: true, Kind: machine.ShareVirtiofs}}
	f.Add(arm)
	web, _ := f.VM("web")
	web.Shares = []Share{{HostDir: "/srv/www", Tag: "www"}}
	f.Add(web)
	return f
}

// TestSharesView lists a stopped machine's shares with their mount
// commands, and the detail pane shows them too.
func TestSharesView(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := newHarness(t, sharesService(), sz.w, sz.h)
			selectVM(t, h, "arm-build")
			h.contains("Shares", "project /srv/project")
			h.press("F")
			if _, ok := h.m.view.(*sharesView); !ok {
				t.Fatalf("F opened %T", h.m.view)
			}
			h.contains("Shared folders of arm-build", "project", "/srv/docs", "ro", "virtiofs", "sudo mount -t 9p", "sudo mount -t virtiofs -o ro docs /mnt/docs")
			h.requireScreen()
		})
	}
}

// TestSharesAddRemove adds a share to a stopped machine (checked: the
// folder exists, the tag is free), removes one, and refuses both on a
// running machine with the fix.
func TestSharesAddRemove(t *testing.T) {
	f := sharesService()
	h := newHarness(t, f, 120, 40)
	selectVM(t, h, "arm-build")
	h.press("F", "a")
	if h.m.dialog == nil {
		t.Fatal("a opened no dialog")
	}
	h.contains("Share a folder with arm-build", "Host folder", "Tag", "read-only")
	h.press("enter")
	h.contains("give the folder to share")
	dir := t.TempDir()
	h.typeText(filepath.Join(dir, "nope"))
	h.press("enter")
	h.contains("folder does not exist")
	h.press("a")
	h.typeText(dir)
	h.press("tab")
	h.typeText("project") // taken
	h.press("enter")
	h.contains(`tag "project" is already used`)
	h.press("a")
	h.typeText(dir)
	h.press("tab")
	h.typeText("data")
	h.press("tab", "right") // read-only
	h.press("enter")
	vm, _ := f.VM("arm-build")
	if len(vm.Shares) != 3 || vm.Shares[2] != (Share{HostDir: dir, Tag: "data", ReadOnly: true}) {
		t.Fatalf("shares after add: %+v", vm.Shares)
	}
	h.contains("shared "+dir+" with arm-build as data (read-only): applied at its next start", "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro data /mnt/data")

	h.press("d") // the first: project
	vm, _ = f.VM("arm-build")
	if len(vm.Shares) != 2 || vm.Shares[0].Tag != "docs" {
		t.Fatalf("shares after remove: %+v", vm.Shares)
	}
	h.contains("stopped sharing /srv/project (project) with arm-build")
	if v := h.m.view.(*sharesView); len(v.shares) != 2 || v.shares[0].Tag != "docs" {
		t.Fatalf("the view shows %+v after remove", v.shares)
	}

	// Running: the view says so; a and d refuse with the fix.
	h.press("esc")
	selectVM(t, h, "web")
	h.press("F")
	h.contains("It is running: stop it (x) to add or remove shares.", "www")
	h.press("a")
	if h.m.dialog != nil || fixOf(h.m.status.err) != "stop it first (x)" {
		t.Fatalf("a on a running machine: dialog %v status %+v", h.m.dialog != nil, h.m.status)
	}
	h.press("d")
	if fixOf(h.m.status.err) != "stop it first (x)" {
		t.Fatalf("d on a running machine: status %+v", h.m.status)
	}
	if vm, _ := f.VM("web"); len(vm.Shares) != 1 {
		t.Fatalf("web's shares changed: %+v", vm.Shares)
	}
	for _, c := range f.Calls() {
		if strings.HasSuffix(c, " web") && strings.Contains(c, "Share") && c != "Shares web" {
			t.Errorf("called %s on a running machine", c)
		}
	}
	// Stopped elsewhere: the view follows, and d works.
	f.SetState("web", StateStopped)
	h.send(changed("web"))
	h.contains("Changes are saved and apply at the next start.")
	h.press("d")
	if vm, _ := f.VM("web"); len(vm.Shares) != 0 {
		t.Fatalf("web's shares after d: %+v", vm.Shares)
	}
	h.contains("No shared folders: press a to share one.")
}
