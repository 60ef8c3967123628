package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"vlab/internal/fixture"
)

// The mounts vlab's cloud-init seed runs for a read-write share
// (machine/guestseed.go shareMountScript): virtiofs as it is, 9p with
// msize=262144.
const (
	mountVFS = "mount -t virtiofs vfs /mnt/vfs"
	mountP9  = "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 p9 /mnt/p9"
)

// rate is one dd's throughput in MB/s (10^6 bytes per second).
type rate = float64

func benchShares(w world, n, mb int) (string, error) {
	if err := need("qemu-system-x86_64", "dd"); err != nil {
		return "", err
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("the shares bench needs root: vlab serves virtiofs through QEMU's virtiofsd only as root")
	}
	dir := filepath.Join(fixture.Dir(), "x86_64")
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	for _, p := range []string{kernel, initrd} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("busybox fixture missing (build it: scripts/fixtures.sh): %w", err)
		}
	}
	size := int64(mb) << 20
	// Two folders side by side on one host file system, each with the same
	// file of pseudo-random bytes to read.
	root := filepath.Join(w.home, "shares")
	dirs := map[string]string{"vfs": filepath.Join(root, "vfs"), "p9": filepath.Join(root, "p9")}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
		if err := writeRandom(filepath.Join(d, "big"), size); err != nil {
			return "", err
		}
	}
	if _, err := w.cmd("create", "shr", "--kernel", kernel, "--initrd", initrd, "--append", fixture.Append("x86_64"),
		"--memory", "512M", "--net", "none", "--display", "none",
		"--share", dirs["vfs"]+",tag=vfs", "--share", dirs["p9"]+",tag=p9,9p"); err != nil {
		return "", err
	}
	data, err := w.cmd("share", "list", "shr", "--json")
	if err != nil {
		return "", err
	}
	var views []struct {
		Tag  string `json:"tag"`
		Uses string `json:"uses"`
	}
	if err := json.Unmarshal(data, &views); err != nil {
		return "", fmt.Errorf("share list --json: %v: %s", err, data)
	}
	if len(views) != 2 || views[0].Tag != "vfs" || views[0].Uses != "virtiofs" || views[1].Tag != "p9" || views[1].Uses != "9p" {
		return "", fmt.Errorf("vlab share list: %s, want vfs on virtiofs and p9 on 9p", data)
	}
	data, err = w.cmd("cmdline", "shr", "--json")
	if err != nil {
		return "", err
	}
	var argv []string
	if err := json.Unmarshal(data, &argv); err != nil {
		return "", err
	}
	var shareArgs []string
	for i, a := range argv {
		if i > 0 && (strings.Contains(a, "vhost-user-fs") || strings.Contains(a, "virtio-9p") || strings.HasPrefix(a, "local,") ||
			strings.HasPrefix(a, "memory-backend-memfd") || strings.HasPrefix(a, "node,memdev")) {
			shareArgs = append(shareArgs, argv[i-1]+" "+a)
		}
	}
	if _, err := w.cmd("start", "shr"); err != nil {
		return "", err
	}
	defer w.cmd("stop", "--force", "shr")
	var show struct {
		SerialSocket string `json:"serial_socket"`
		SerialLog    string `json:"serial_log"`
	}
	if data, err = w.cmd("show", "shr", "--json"); err != nil {
		return "", err
	}
	if err := json.Unmarshal(data, &show); err != nil {
		return "", err
	}
	con := console{sock: show.SerialSocket, log: show.SerialLog}
	daemon := virtiofsdArgv(filepath.Join(w.home, "run"))

	// The busybox shell on the serial line answers once the test script
	// (no vlab.* parameters: it does nothing) has run.
	if _, err := con.typeUntil(`echo "VLAB-T:""ready"`, regexp.MustCompile(`VLAB-T:ready`), time.Second, 5*time.Minute); err != nil {
		return "", err
	}
	m, err := con.run("mkdir -p /mnt/vfs /mnt/p9 && "+mountVFS+" && "+mountP9+` && echo "VLAB-""MOUNTED" || echo "VLAB-""MOUNT-FAILED"`,
		regexp.MustCompile(`VLAB-MOUNT(ED|-FAILED)`), time.Minute)
	if err != nil {
		return "", err
	}
	if m[1] != "ED" {
		return "", fmt.Errorf("the guest could not mount the shares (%s; %s): see %s", mountVFS, mountP9, show.SerialLog)
	}

	guest := func(tag, op string) (rate, error) {
		var line string
		if op == "read" {
			line = fmt.Sprintf(`sync; echo 3 >/proc/sys/vm/drop_caches; read a x </proc/uptime; dd if=/mnt/%s/big of=/dev/null bs=1M 2>/dev/null; r=$?; read b x </proc/uptime; echo "VLAB-""BW %s read $a $b $r"`, tag, tag)
		} else {
			line = fmt.Sprintf(`rm -f /mnt/%s/out; sync; echo 3 >/proc/sys/vm/drop_caches; read a x </proc/uptime; dd if=/dev/zero of=/mnt/%s/out bs=1M count=%d conv=fsync 2>/dev/null; r=$?; read b x </proc/uptime; echo "VLAB-""BW %s write $a $b $r"`, tag, tag, mb, tag)
		}
		m, err := con.run(line, regexp.MustCompile(`VLAB-BW `+tag+` `+op+` ([0-9.]+) ([0-9.]+) (\d+)`), 10*time.Minute)
		if err != nil {
			return 0, err
		}
		if m[3] != "0" {
			return 0, fmt.Errorf("guest dd %s on /mnt/%s exited %s", op, tag, m[3])
		}
		if op == "write" {
			if fi, err := os.Stat(filepath.Join(dirs[tag], "out")); err != nil || fi.Size() != size {
				return 0, fmt.Errorf("guest wrote /mnt/%s/out, the host sees %v (%v), want %d bytes", tag, fi, err, size)
			}
		}
		a, _ := strconv.ParseFloat(m[1], 64)
		b, _ := strconv.ParseFloat(m[2], 64)
		if b <= a {
			return 0, fmt.Errorf("guest dd %s on /mnt/%s took under the 10 ms of /proc/uptime: raise -mb", op, tag)
		}
		return float64(size) / 1e6 / (b - a), nil
	}
	host := func(op string) (rate, error) {
		args := []string{"if=" + filepath.Join(dirs["vfs"], "big"), "of=/dev/null", "bs=1M"}
		if op == "write" {
			os.Remove(filepath.Join(dirs["vfs"], "host-out"))
			args = []string{"if=/dev/zero", "of=" + filepath.Join(dirs["vfs"], "host-out"), "bs=1M", "count=" + strconv.Itoa(mb), "conv=fsync"}
		}
		t0 := time.Now()
		if out, err := exec.Command("dd", args...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("host dd: %v: %s", err, out)
		}
		return float64(size) / 1e6 / time.Since(t0).Seconds(), nil
	}

	// One untimed pass of each: the guest's first touch of each share.
	for _, tag := range []string{"vfs", "p9"} {
		for _, op := range []string{"read", "write"} {
			if _, err := guest(tag, op); err != nil {
				return "", err
			}
		}
	}
	res := map[string][]rate{}
	for i := range n {
		tags := []string{"vfs", "p9"}
		if i%2 == 1 {
			tags = []string{"p9", "vfs"}
		}
		for _, op := range []string{"read", "write"} {
			for _, tag := range tags {
				r, err := guest(tag, op)
				if err != nil {
					return "", err
				}
				res[tag+" "+op] = append(res[tag+" "+op], r)
			}
			r, err := host(op)
			if err != nil {
				return "", err
			}
			res["host "+op] = append(res["host "+op], r)
		}
		fmt.Fprintf(os.Stderr, "round %d: read virtiofs %.0f 9p %.0f host %.0f MB/s; write virtiofs %.0f 9p %.0f host %.0f MB/s\n", i+1,
			res["vfs read"][i], res["p9 read"][i], res["host read"][i], res["vfs write"][i], res["p9 write"][i], res["host write"][i])
	}
	return shareReport(n, mb, res, shareArgs, daemon), nil
}

// virtiofsdArgv returns the command line of the virtiofsd serving a share
// whose socket is under run.
func virtiofsdArgv(run string) string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(data), "virtiofsd") || !strings.Contains(string(data), run) {
			continue
		}
		return shellJoin(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"))
	}
	return "(not found)"
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'v', 'l', 'a', 'b'})
	if _, err := io.CopyN(f, rng, size); err != nil {
		return err
	}
	return f.Close()
}

func shareReport(n, mb int, res map[string][]rate, shareArgs []string, daemon string) string {
	med := func(k string) rate { return medianF(res[k]) }
	list := func(k string) string {
		var s []string
		for _, r := range res[k] {
			s = append(s, fmt.Sprintf("%.0f", r))
		}
		return strings.Join(s, ", ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "One VM, two shares of two folders side by side on the host's file system: `--share DIR1,tag=vfs`\n"+
		"(virtiofs: vlab runs as root, so QEMU's /usr/lib/qemu/virtiofsd serves it) and `--share DIR2,tag=p9,9p`.\n"+
		"Guest: the busybox fixture on Debian's generic kernel (scripts/fixtures.sh; the cloud kernel has no 9p),\n"+
		"512 MiB, 1 vCPU, q35, TCG, driven through its serial console; it mounts the shares with the commands\n"+
		"vlab's cloud-init seed runs (`%s`, `%s`). In the guest, busybox dd reads a %d MiB file of\n"+
		"pseudo-random bytes (`dd if=/mnt/TAG/big of=/dev/null bs=1M`, the guest's page cache dropped first; the\n"+
		"host's page cache holds the file) and writes one (`dd if=/dev/zero of=/mnt/TAG/out bs=1M count=%d\n"+
		"conv=fsync`), timed by the guest's /proc/uptime (10 ms steps); the host checks each written file's size.\n"+
		"The host's own dd of the same file and of the same write (GNU dd, wall clock around the process) is the\n"+
		"reference. MB/s = 10^6 bytes per second; medians of %d rounds after one untimed pass, alternating which\n"+
		"share goes first.\n\n", mountVFS, mountP9, mb, mb, n)
	b.WriteString("| path | read MB/s | write MB/s (fsync) |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| virtiofs (guest) | %.0f | %.0f |\n", med("vfs read"), med("vfs write"))
	fmt.Fprintf(&b, "| 9p (guest) | %.0f | %.0f |\n", med("p9 read"), med("p9 write"))
	fmt.Fprintf(&b, "| **ratio virtiofs / 9p** | **%.2f** | **%.2f** |\n", med("vfs read")/med("p9 read"), med("vfs write")/med("p9 write"))
	fmt.Fprintf(&b, "| host dd, same file and folder (reference) | %.0f | %.0f |\n", med("host read"), med("host write"))
	fmt.Fprintf(&b, "\nEach round (MB/s): virtiofs read %s; 9p read %s; virtiofs write %s; 9p write %s; host read %s; host write %s.\n\n",
		list("vfs read"), list("p9 read"), list("vfs write"), list("p9 write"), list("host read"), list("host write"))
	fmt.Fprintf(&b, "vlab's share devices: `%s`; the daemon: `%s`.\n\n", strings.Join(shareArgs, " "), daemon)
	fmt.Fprintf(&b, "Machine: %s, TCG (no usable KVM), %s.\n", machineFacts(), qemuVersion())
	return b.String()
}

// console types into a VM's serial console (a unix socket) and reads what
// the guest answers from the console's log file, as the e2e helpers do
// (e2e/helpers_test.go shell, typeUntil).
type console struct{ sock, log string }

// run types one command line for the shell once and waits for re.
func (c console) run(line string, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	return c.typeUntil(line, re, timeout, timeout)
}

// typeUntil types text, again every resend, until re matches the log after
// where it ended before the first try. It stays connected while it waits:
// QEMU drops typed bytes the UART has not taken when the client leaves.
// The leading ^U clears a half-typed try.
func (c console) typeUntil(text string, re *regexp.Regexp, resend, timeout time.Duration) ([]string, error) {
	data, _ := os.ReadFile(c.log)
	from := len(data)
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("unix", c.sock, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("serial console %s: %w", c.sock, err)
		}
		go io.Copy(io.Discard, conn)
		fmt.Fprint(conn, "\x15"+text+"\n")
		next := time.Now().Add(resend)
		for time.Now().Before(next) {
			data, _ = os.ReadFile(c.log)
			if from <= len(data) {
				if m := re.FindStringSubmatch(string(data[from:])); m != nil {
					conn.Close()
					return m, nil
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		conn.Close()
		if time.Now().After(deadline) {
			tail := string(data)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return nil, fmt.Errorf("typed %q into the serial console, %q never came back:\n%s", text, re, tail)
		}
	}
}
