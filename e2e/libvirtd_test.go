package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// libvirtdHelperEnv makes the test binary, re-executed in a mount namespace
// of its own, the launcher of a private libvirtd (see TestMain).
const libvirtdHelperEnv = "VLAB_E2E_LIBVIRTD_ROOT"

// libvirtDirs are the system folders libvirtd and virtlogd use as root. The
// private daemon sees a folder of the test's own over each, so the host's
// configuration and state are neither read nor changed.
// Each maps to its folder under the test's root.
var libvirtDirs = map[string]string{"/etc/libvirt": "etc", "/run/libvirt": "run", "/var/lib/libvirt": "lib", "/var/log/libvirt": "log", "/var/cache/libvirt": "cache"}

// qemuConf runs guests as root without a security driver or cgroups: the
// CI machine is a container without systemd (TESTING.md).
const qemuConf = `user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
swtpm_user = "root"
swtpm_group = "root"
`

// startLibvirt returns the URI of a libvirt that can run the test's
// guests. A libvirtd already serving qemu:///system is used as it is;
// otherwise a private virtlogd and libvirtd start, as TESTING.md says, in
// a mount namespace where the test's own folders stand over libvirt's
// (their -p pid files and sockets are in the test's folder too), and stop
// when the test ends. Needs root.
func startLibvirt(t *testing.T) string {
	t.Helper()
	return startLibvirtWith(t, nil)
}

// libvirtSSH is a throwaway sshd on loopback in front of the test's
// libvirtd, for qemu+ssh:// URIs.
type libvirtSSH struct {
	uri string // qemu+ssh://root@127.0.0.1:PORT/system?keyfile=...&command=...
}

// sshWrapperName is a link to the test binary that virsh runs as its ssh
// command (libvirt passes it no environment): it execs ssh with the
// known_hosts beside it (strict checking), so the host's ~/.ssh is neither
// used nor changed.
const sshWrapperName = "vlab-e2e-ssh"

// startLibvirtSSH is startLibvirt plus an sshd on a free loopback port
// that sees the same libvirt socket (it runs in the private libvirtd's
// mount namespace), a throwaway host key and a throwaway root key.
func startLibvirtSSH(t *testing.T) (string, libvirtSSH) {
	t.Helper()
	fixture.Program(t, "/usr/sbin/sshd") // Debian openssh-server
	fixture.Program(t, "ssh-keygen")
	fixture.Program(t, "ssh")
	var sk libvirtSSH
	uri := startLibvirtWith(t, &sk)
	return uri, sk
}

// sshdSetup writes the keys and the sshd configuration under dir and
// returns the configuration file and the URI that reaches libvirt through
// it.
func sshdSetup(t *testing.T, dir string, sk *libvirtSSH) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"host_key", "id"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vlab-e2e", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pub, err := os.ReadFile(filepath.Join(dir, "id.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, sshWrapperName)
	if err := os.Symlink(os.Args[0], wrapper); err != nil {
		t.Fatal(err)
	}
	writes := map[string]string{
		"authorized_keys": string(pub),
		"known_hosts":     fmt.Sprintf("[127.0.0.1]:%d %s", port, hostPub),
		"sshd_config": fmt.Sprintf("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPidFile %s\n"+
			"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
			port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid")),
	}
	for f, data := range writes {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { stopPidfile(filepath.Join(dir, "sshd.pid")) })
	sk.uri = fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?keyfile=%s&command=%s", port, filepath.Join(dir, "id"), wrapper)
	return filepath.Join(dir, "sshd_config")
}

// sshWrapper runs as virsh's ssh command: ssh checking the host key
// against the test's known_hosts only.
func sshWrapper() error {
	knownHosts := filepath.Join(filepath.Dir(os.Args[0]), "known_hosts")
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		return err
	}
	args := append([]string{"ssh", "-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-F", "/dev/null"}, os.Args[1:]...)
	return syscall.Exec(ssh, args, os.Environ())
}

// startSSHD starts sshd with config, in the current mount namespace.
func startSSHD(config string) error {
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // its privilege separation folder
		return err
	}
	if out, err := exec.Command("/usr/sbin/sshd", "-f", config).CombinedOutput(); err != nil {
		return fmt.Errorf("sshd: %v: %s", err, out)
	}
	return nil
}

// sshdConfigEnv tells libvirtdHelper to start sshd with this configuration
// in the private namespace too.
const sshdConfigEnv = "VLAB_E2E_SSHD_CONFIG"

func startLibvirtWith(t *testing.T, sk *libvirtSSH) string {
	t.Helper()
	for _, bin := range []string{"virsh", "libvirtd", "virtlogd", "virt-xml-validate"} {
		fixture.Program(t, bin) // scripts/deps.sh installs libvirt
	}
	if os.Geteuid() != 0 {
		if os.Getenv(fixture.RequireEnv) != "" {
			t.Fatal("the libvirt test starts a privileged libvirtd: run it as root")
		}
		t.Skip("the libvirt test starts a privileged libvirtd: run it as root")
	}
	root, err := os.MkdirTemp("", "vlab-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	sshdConfig := ""
	if sk != nil {
		sshdConfig = sshdSetup(t, filepath.Join(root, "ssh"), sk)
	}
	if c, err := net.Dial("unix", "/run/libvirt/libvirt-sock"); err == nil {
		c.Close()
		t.Log("using the libvirtd that already runs (qemu:///system)")
		if sshdConfig != "" {
			if err := startSSHD(sshdConfig); err != nil {
				t.Fatal(err)
			}
		}
		return "qemu:///system"
	}
	libvirtAccounts(t)
	for _, d := range libvirtDirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"log/qemu", "lib/qemu", "cache/qemu"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "qemu.conf"), []byte(qemuConf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), libvirtdHelperEnv+"="+root, sshdConfigEnv+"="+sshdConfig)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start a private libvirtd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		for _, pf := range []string{"libvirtd.pid", "virtlogd.pid"} {
			stopPidfile(filepath.Join(root, pf))
		}
	})
	uri := "qemu:///system?socket=" + filepath.Join(root, "run", "libvirt-sock")
	for deadline := time.Now().Add(time.Minute); exec.Command("virsh", "-c", uri, "version").Run() != nil; {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(root, "log", "libvirtd.log"))
			t.Fatalf("the private libvirtd does not answer on %s; libvirtd.log:\n%s", uri, tail(string(log), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return uri
}

// libvirtAccounts adds the kvm group and the libvirt-qemu group and user
// when missing: libvirtd 9's qemu driver resolves its built-in user and
// group names at start, even when qemu.conf runs guests as root.
func libvirtAccounts(t *testing.T) {
	t.Helper()
	for _, g := range []string{"kvm", "libvirt-qemu"} {
		if exec.Command("getent", "group", g).Run() != nil {
			if out, err := exec.Command("groupadd", "--system", g).CombinedOutput(); err != nil {
				t.Fatalf("groupadd %s: %v: %s", g, err, out)
			}
		}
	}
	if exec.Command("getent", "passwd", "libvirt-qemu").Run() != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/var/lib/libvirt",
			"--shell", "/usr/sbin/nologin", "--gid", "kvm", "libvirt-qemu").CombinedOutput()
		if err != nil {
			t.Fatalf("useradd libvirt-qemu: %v: %s", err, out)
		}
	}
}

// stopPidfile ends the daemon named by pidfile (one this test started) and
// waits for it to go.
func stopPidfile(pidfile string) {
	data, err := os.ReadFile(pidfile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// libvirtdHelper runs in the re-executed test binary, already in a new
// mount namespace: it puts root's folders over libvirt's and starts
// virtlogd and libvirtd, which daemonize and keep the namespace.
func libvirtdHelper(root string) error {
	for d, sub := range libvirtDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(filepath.Join(root, sub), d, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", d, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, argv := range [][]string{
		{"virtlogd", "-d", "-p", filepath.Join(root, "virtlogd.pid")},
		{"libvirtd", "-d", "-p", filepath.Join(root, "libvirtd.pid")},
	} {
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", argv[0], err, out)
		}
	}
	if config := os.Getenv(sshdConfigEnv); config != "" {
		return startSSHD(config)
	}
	return nil
}
