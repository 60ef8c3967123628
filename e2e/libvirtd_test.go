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
	for _, bin := range []string{"virsh", "libvirtd", "virtlogd", "virt-xml-validate"} {
		fixture.Program(t, bin) // scripts/deps.sh installs libvirt
	}
	if os.Geteuid() != 0 {
		if os.Getenv(fixture.RequireEnv) != "" {
			t.Fatal("the libvirt test starts a privileged libvirtd: run it as root")
		}
		t.Skip("the libvirt test starts a privileged libvirtd: run it as root")
	}
	if c, err := net.Dial("unix", "/run/libvirt/libvirt-sock"); err == nil {
		c.Close()
		t.Log("using the libvirtd that already runs (qemu:///system)")
		return "qemu:///system"
	}
	libvirtAccounts(t)
	root, err := os.MkdirTemp("", "vlab-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
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
	cmd.Env = append(os.Environ(), libvirtdHelperEnv+"="+root)
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
	return nil
}
