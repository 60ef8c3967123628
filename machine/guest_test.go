package machine

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseShareAndBadInput(t *testing.T) {
	dir := t.TempDir()
	sh, err := ParseShare(dir + ",tag=src,ro")
	if err != nil || sh.Tag != "src" || !sh.ReadOnly || sh.GuestPath() != "/mnt/src" || sh.Kind != "" {
		t.Fatalf("ParseShare = %+v, %v", sh, err)
	}
	if d, err := ParseShare(dir); err != nil || d.Tag != filepath.Base(dir) {
		t.Errorf("default tag: %+v, %v", d, err)
	}
	for in, want := range map[string]string{
		filepath.Join(dir, "missing"): "does not exist",
		dir + ",tag=a b":              "tag",
		dir + ",bogus":                "unknown option",
		dir + ",mount=relative":       "absolute",
	} {
		if _, err := ParseShare(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseShare(%q) = %v, want an error naming %q", in, err, want)
		}
	}
	other := t.TempDir()
	a, _ := ParseShare(dir + ",tag=x")
	b, _ := ParseShare(other + ",tag=x")
	if err := CheckShares([]Share{a, b}); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("tag twice: %v", err)
	}
}

// TestShareMountScript runs the seed's mount command with a fake mount(8)
// that knows no virtiofs: from the fw_cfg list when the guest has it (its
// kinds as given), else from the list of create time (virtiofs, then 9p);
// read-only where asked; a mount point in use is left alone.
func TestShareMountScript(t *testing.T) {
	bin, root := t.TempDir(), t.TempDir()
	logf := filepath.Join(bin, "log")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	busy := filepath.Join(root, "busy")
	write("mountpoint", `[ "$2" = `+strconv.Quote(busy)+` ]`+"\n")
	write("modprobe", "exit 1\n")
	write("mount", `echo "$*" >>`+strconv.Quote(logf)+`; [ "$2" = 9p ]`+"\n")
	code, docs := filepath.Join(root, "code dir"), filepath.Join(root, "docs")
	static := "code auto rw " + code + "\ndocs auto ro " + docs + "\n"
	fwcfg := filepath.Join(root, "fwcfg")
	if err := os.WriteFile(fwcfg, []byte("code virtiofs rw "+code+"\nnew 9p ro "+docs+"\nold 9p rw "+busy+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p9 := "-t 9p -o trans=virtio,version=9p2000.L,msize=262144,"
	for _, c := range []struct {
		fw   string
		want string
	}{
		{filepath.Join(root, "none"), "-t virtiofs -o rw code " + code + "\n" + p9 + "rw code " + code + "\n-t virtiofs -o ro docs " + docs + "\n" + p9 + "ro docs " + docs + "\n"},
		{fwcfg, "-t virtiofs -o rw code " + code + "\n" + p9 + "ro new " + docs + "\n"},
	} {
		os.Remove(logf)
		cmd := exec.Command("/bin/sh", "-c", shareMountScript, "vlab-shares", static, c.fw)
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("fw_cfg %s: %v: %s", c.fw, err, out)
		}
		log, _ := os.ReadFile(logf)
		if string(log) != c.want {
			t.Errorf("fw_cfg %s: mount calls\n%s\nwant\n%s", c.fw, log, c.want)
		}
	}
	if fi, err := os.Stat(code); err != nil || !fi.IsDir() {
		t.Errorf("mount point not made: %v", err)
	}
}

func TestSeedUserData(t *testing.T) {
	dir := t.TempDir()
	sh, _ := ParseShare(dir + ",tag=code,ro")
	o := SeedOptions{User: "dev", Keys: []string{"ssh-ed25519 AAAA k"}, HostKey: "-----BEGIN-----\nx\n-----END-----\n", HostPub: "ssh-ed25519 BBBB", Shares: []Share{sh}}
	ud, err := o.userData()
	if err != nil {
		t.Fatal(err)
	}
	s := string(ud)
	for _, want := range []string{"#cloud-config", `name: "dev"`, `"ssh-ed25519 AAAA k"`, "ed25519_private:", `vlab-shares, "code auto ro /mnt/code\n"`, "ssh_pwauth: false"} {
		if !strings.Contains(s, want) {
			t.Errorf("user-data lacks %q:\n%s", want, s)
		}
	}
	o.UserData = []byte("#cloud-config\nruncmd: [[touch, /x]]\n")
	ud, err = o.userData()
	if err != nil {
		t.Fatal(err)
	}
	if err := (CloudInit{UserData: ud}).Validate(); err != nil || !strings.Contains(string(ud), "multipart/mixed") || !strings.Contains(string(ud), "runcmd") {
		t.Errorf("merged user-data: %v\n%s", err, ud)
	}
}

func TestSSHArgsNeverPromptAndPinTheHostKey(t *testing.T) {
	tg := SSHTarget{Name: "dev", User: "vlab", Host: "127.0.0.1", Port: 40022, KnownHosts: "/k/known_hosts", Alias: "vlab-dev", Key: "/c/id", Seeded: true}
	args := tg.SSHArgs(false, "uname -a")
	for _, want := range []string{"BatchMode=yes", "StrictHostKeyChecking=yes", "HostKeyAlias=vlab-dev", "40022"} {
		if !slices.Contains(args, want) && !slices.Contains(args, "-o") || !strings.Contains(strings.Join(args, " "), want) {
			t.Errorf("ssh args %q lack %q", args, want)
		}
	}
	if args[len(args)-1] != "uname -a" || args[len(args)-2] != "--" {
		t.Errorf("command not last after --: %q", args)
	}
	if !slices.Contains(args, `UserKnownHostsFile="/k/known_hosts"`) || !slices.Contains(args, `IdentityFile="/c/id"`) {
		t.Errorf("ssh args %q: paths not quoted for ssh", args)
	}
	if q := ShellQuote([]string{"cat", "/tmp/a file", "it's"}); q != `cat '/tmp/a file' 'it'\''s'` {
		t.Errorf("ShellQuote = %s", q)
	}
}

// TestSSHArgsPathsWithSpaces: ssh itself reads the key and known_hosts
// paths back whole (vlab's XDG folders may have spaces, quotes, '%').
func TestSSHArgsPathsWithSpaces(t *testing.T) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("ssh not installed (openssh-client)")
	}
	dir := filepath.Join(t.TempDir(), `my "config" dir 100%`)
	tg := SSHTarget{Name: "dev", User: "vlab", Host: "127.0.0.1", Port: 40022, KnownHosts: filepath.Join(dir, "known_hosts"),
		Alias: "vlab-dev", Key: filepath.Join(dir, `id\key`), Seeded: true}
	args := tg.SSHArgs(false, "")
	out, err := exec.Command(ssh, append([]string{"-G"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G %q: %v\n%s", args, err, out)
	}
	// -G prints the known_hosts path expanded and the key path before its
	// %-expansion (which happens when the key is loaded).
	for _, want := range []string{"userknownhostsfile " + tg.KnownHosts + "\n", "identityfile " + strings.ReplaceAll(tg.Key, "%", "%%") + "\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ssh -G lacks %q:\n%s", want, out)
		}
	}
}
