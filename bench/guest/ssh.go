package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vlab/internal/fixture"
)

// cloudAppend is the kernel command line the e2e test boots the cloud
// fixture with (e2e/cloudimage_test.go).
const cloudAppend = "root=/dev/vda rw console=ttyS0 no_timer_check"

// sshRound is one path's times in one round.
type sshRound struct {
	prep   time.Duration // vlab create / qemu-img create + cloud-localds
	start  time.Duration // vlab start (to QMP ready) / exec of qemu
	login  time.Duration // from there to the first ssh that works
	total  time.Duration
	tries  int     // ssh attempts, the successful one included
	uptime float64 // the guest's /proc/uptime when ssh first worked
	sshCfg float64 // cloud-init's config-ssh module (s), from `cloud-init analyze blame`
}

func benchSSH(w world, n int, poll time.Duration) (string, error) {
	if err := need("qemu-img", "cloud-localds", "ssh", "ssh-keygen", "qemu-system-x86_64"); err != nil {
		return "", err
	}
	dir := filepath.Join(fixture.Dir(), "cloud-x86_64")
	image, kernel, initrd := filepath.Join(dir, "rootfs.qcow2"), filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	for _, p := range []string{image, kernel, initrd} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("cloud fixture missing (build it: scripts/fixtures-cloud.sh): %w", err)
		}
	}
	create := []string{"--image", image, "--kernel", kernel, "--initrd", initrd, "--append", cloudAppend,
		"--display", "none", "--isolated"}

	// Once, untimed: vlab makes its own client key at its first create (a
	// user's first VM); both paths then find the image in the page cache.
	// vlab's argv gives the hardware the hand run copies.
	if _, err := w.cmd(append([]string{"create", "warm"}, create...)...); err != nil {
		return "", err
	}
	data, err := w.cmd("cmdline", "warm", "--json")
	if err != nil {
		return "", err
	}
	var vlabArgv []string
	if err := json.Unmarshal(data, &vlabArgv); err != nil {
		return "", fmt.Errorf("vlab cmdline --json: %v: %s", err, data)
	}
	if _, err := w.cmd("delete", "warm", "--yes"); err != nil {
		return "", err
	}
	hw := hardware(vlabArgv)
	for _, k := range []string{"-machine", "-cpu", "-smp", "-m", "-accel"} {
		if hw[k] == "" {
			return "", fmt.Errorf("vlab cmdline has no %s: %q", k, vlabArgv)
		}
	}

	// The hand run's user: a key of its own and a user-data file written
	// once, as a user has them before starting.
	hand := filepath.Join(w.home, "hand")
	if err := os.MkdirAll(hand, 0o700); err != nil {
		return "", err
	}
	key := filepath.Join(hand, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", key).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return "", err
	}
	userData := filepath.Join(hand, "user-data")
	ud := "#cloud-config\nhostname: byhand\nssh_pwauth: false\nusers:\n  - name: vlab\n    shell: /bin/bash\n    lock_passwd: true\n" +
		"    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys:\n      - " + strings.TrimSpace(string(pub)) + "\n"
	if err := os.WriteFile(userData, []byte(ud), 0o600); err != nil {
		return "", err
	}

	var vr, hr []sshRound
	var copies []time.Duration
	var handArgv []string
	for i := range n {
		viaVlab := func() error {
			r, err := vlabRound(w, fmt.Sprintf("bench%d", i), create, poll)
			vr = append(vr, r)
			return err
		}
		byHand := func() error {
			r, argv, err := handRound(filepath.Join(hand, fmt.Sprint(i)), image, userData, key, kernel, initrd, vlabArgv[0], hw, poll)
			hr, handArgv = append(hr, r), argv
			return err
		}
		order := []func() error{viaVlab, byHand}
		if i%2 == 1 {
			order = []func() error{byHand, viaVlab}
		}
		for _, f := range order {
			if err := f(); err != nil {
				return "", err
			}
		}
		// What vlab create spends on its copy of the image (DiskImport:
		// qemu-img convert to qcow2, then fsync), timed alone.
		c, err := timedCopy(image, filepath.Join(hand, "copy.qcow2"))
		if err != nil {
			return "", err
		}
		copies = append(copies, c)
		fmt.Fprintf(os.Stderr, "round %d: vlab %v (create %v, start %v, to ssh %v); by hand %v (prepare %v, to ssh %v); image copy alone %v\n", i+1,
			vr[i].total.Round(time.Millisecond), vr[i].prep.Round(time.Millisecond), vr[i].start.Round(time.Millisecond), vr[i].login.Round(time.Millisecond),
			hr[i].total.Round(time.Millisecond), hr[i].prep.Round(time.Millisecond), hr[i].login.Round(time.Millisecond), c.Round(time.Millisecond))
	}
	return sshReport(n, poll, vr, hr, copies, vlabArgv, handArgv), nil
}

// hardware picks the values of vlab's argv that the hand run copies.
func hardware(argv []string) map[string]string {
	hw := map[string]string{}
	for i := 0; i+1 < len(argv); i++ {
		switch argv[i] {
		case "-machine", "-cpu", "-smp", "-m", "-accel":
			hw[argv[i]] = argv[i+1]
		}
	}
	return hw
}

// vlabRound: create, start, then `vlab ssh NAME -- true` until it works;
// then the VM is stopped and deleted.
func vlabRound(w world, name string, create []string, poll time.Duration) (sshRound, error) {
	var r sshRound
	t0 := time.Now()
	if _, err := w.cmd(append([]string{"create", name}, create...)...); err != nil {
		return r, err
	}
	t1 := time.Now()
	if _, err := w.cmd("start", name); err != nil {
		return r, err
	}
	t2 := time.Now()
	defer func() {
		w.cmd("stop", "--force", name)
		w.cmd("delete", name, "--yes")
	}()
	try := func() error {
		_, err := w.cmd("ssh", name, "--", "true")
		return err
	}
	tries, err := pollUntil(try, poll, nil)
	if err != nil {
		return r, fmt.Errorf("vlab ssh %s never worked: %w", name, err)
	}
	t3 := time.Now()
	r = sshRound{prep: t1.Sub(t0), start: t2.Sub(t1), login: t3.Sub(t2), total: t3.Sub(t0), tries: tries}
	out, err := w.cmd("ssh", name, "--", "cat /proc/uptime; cloud-init analyze blame")
	if err != nil {
		return r, err
	}
	r.uptime, r.sshCfg = guestFacts(string(out))
	return r, nil
}

// handRound does the same steps by hand in dir and removes it afterwards.
func handRound(dir, image, userData, key, kernel, initrd, qemu string, hw map[string]string, poll time.Duration) (sshRound, []string, error) {
	var r sshRound
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, nil, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return r, nil, err
	}
	overlay, seed := filepath.Join(dir, "overlay.qcow2"), filepath.Join(dir, "seed.iso")
	argv := []string{qemu, "-nodefaults", "-display", "none",
		"-machine", hw["-machine"], "-accel", hw["-accel"], "-cpu", hw["-cpu"], "-smp", hw["-smp"], "-m", hw["-m"],
		"-serial", "file:" + filepath.Join(dir, "console.log"),
		"-drive", "file=" + overlay + ",format=qcow2,if=virtio",
		"-drive", "file=" + seed + ",format=raw,if=virtio,readonly=on",
		"-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:" + strconv.Itoa(port) + "-:22",
		"-device", "virtio-net-pci,netdev=n0",
		"-kernel", kernel, "-initrd", initrd, "-append", cloudAppend}
	ssh := func(cmd string) ([]byte, error) {
		c := exec.Command("ssh", "-p", strconv.Itoa(port), "-i", key, "-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "LogLevel=ERROR",
			"vlab@127.0.0.1", cmd)
		return c.CombinedOutput()
	}

	t0 := time.Now()
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", image, "-F", "qcow2", overlay).CombinedOutput(); err != nil {
		return r, nil, fmt.Errorf("qemu-img create: %v: %s", err, out)
	}
	if out, err := exec.Command("cloud-localds", seed, userData).CombinedOutput(); err != nil {
		return r, nil, fmt.Errorf("cloud-localds: %v: %s", err, out)
	}
	t1 := time.Now()
	c := exec.Command(argv[0], argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		return r, nil, err
	}
	t2 := time.Now()
	exited := make(chan struct{})
	go func() { c.Wait(); close(exited) }()
	defer func() {
		c.Process.Kill()
		<-exited
	}()
	try := func() error {
		out, err := ssh("true")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	tries, err := pollUntil(try, poll, exited)
	if err != nil {
		return r, nil, fmt.Errorf("ssh by hand never worked: %w (qemu: %s)", err, stderr.String())
	}
	t3 := time.Now()
	r = sshRound{prep: t1.Sub(t0), start: t2.Sub(t1), login: t3.Sub(t2), total: t3.Sub(t0), tries: tries}
	out, err := ssh("cat /proc/uptime; cloud-init analyze blame")
	if err != nil {
		return r, nil, fmt.Errorf("ssh by hand: %v: %s", err, out)
	}
	r.uptime, r.sshCfg = guestFacts(string(out))
	return r, argv, nil
}

// pollUntil runs try every interval (from the start of one try to the
// next) until it succeeds, for at most 15 minutes, and returns how many
// tries it took.
func pollUntil(try func() error, interval time.Duration, exited <-chan struct{}) (int, error) {
	deadline := time.Now().Add(15 * time.Minute)
	for n := 1; ; n++ {
		next := time.Now().Add(interval)
		err := try()
		if err == nil {
			return n, nil
		}
		select {
		case <-exited:
			return n, errors.New("qemu exited")
		default:
		}
		if time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(time.Until(next))
	}
}

var reBlameSSH = regexp.MustCompile(`([0-9.]+)s \(init-network/config-ssh\)`)

// guestFacts reads the guest's uptime and cloud-init's config-ssh time
// from `cat /proc/uptime; cloud-init analyze blame`.
func guestFacts(out string) (uptime, sshCfg float64) {
	if f := strings.Fields(out); len(f) > 0 {
		uptime, _ = strconv.ParseFloat(f[0], 64)
	}
	if m := reBlameSSH.FindStringSubmatch(out); m != nil {
		sshCfg, _ = strconv.ParseFloat(m[1], 64)
	}
	return uptime, sshCfg
}

// timedCopy times the copy vlab create makes of the image: qemu-img
// convert to qcow2 and an fsync of the result (machine.convertImage).
func timedCopy(image, dst string) (time.Duration, error) {
	os.Remove(dst)
	defer os.Remove(dst)
	t0 := time.Now()
	if out, err := exec.Command("qemu-img", "convert", "-p", "-O", "qcow2", "-f", "qcow2", image, dst).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("qemu-img convert: %v: %s", err, out)
	}
	f, err := os.Open(dst)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func sshReport(n int, poll time.Duration, vr, hr []sshRound, copies []time.Duration, vlabArgv, handArgv []string) string {
	col := func(rs []sshRound, f func(sshRound) time.Duration) time.Duration {
		var ds []time.Duration
		for _, r := range rs {
			ds = append(ds, f(r))
		}
		return median(ds)
	}
	colF := func(rs []sshRound, f func(sshRound) float64) float64 {
		var fs []float64
		for _, r := range rs {
			fs = append(fs, f(r))
		}
		return medianF(fs)
	}
	prep := func(r sshRound) time.Duration { return r.prep }
	start := func(r sshRound) time.Duration { return r.start }
	login := func(r sshRound) time.Duration { return r.login }
	total := func(r sshRound) time.Duration { return r.total }
	uptime := func(r sshRound) float64 { return r.uptime }
	sshCfg := func(r sshRound) float64 { return r.sshCfg }
	tries := func(r sshRound) float64 { return float64(r.tries) }
	var all []string
	for i := range vr {
		all = append(all, fmt.Sprintf("%s / %s", secs(vr[i].total), secs(hr[i].total)))
	}
	vt, ht := col(vr, total), col(hr, total)
	ratio := float64(vt) / float64(ht)
	verdict := "**Goal met**: vlab is no slower than the steps by hand."
	if ratio > 1 {
		verdict = fmt.Sprintf("**Goal missed**: vlab takes %s (%.0f %%) longer than the steps by hand.", signedSecs(vt-ht), (ratio-1)*100)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Time from `vlab create NAME --image FILE` (the fixture qcow2 as a local file, nothing downloaded;\n"+
		"with `--kernel/--initrd/--append` as the e2e test gives them, `--display none --isolated`) and\n"+
		"`vlab start NAME` to the first `vlab ssh NAME -- true` that succeeds, against the same steps by hand:\n"+
		"`qemu-img create -f qcow2 -b IMAGE -F qcow2 overlay.qcow2`, `cloud-localds seed.iso user-data` (a\n"+
		"user-data with user vlab, the key and a hostname, written beforehand), QEMU with vlab's hardware\n"+
		"(`vlab cmdline`: same machine, accel, CPU model and count, memory, kernel, initrd and append), the disks\n"+
		"on virtio, a `hostfwd` to port 22 with `restrict=on`, then plain `ssh -p PORT -i KEY -o\n"+
		"StrictHostKeyChecking=no vlab@127.0.0.1 true` until it logs in. Guest: the Debian 12 cloud userland fixture\n"+
		"(scripts/fixtures-cloud.sh: cloud-init 22.4, openssh-server, the cloud-amd64 kernel). Both paths\n"+
		"try ssh every %v; medians of %d rounds, alternating which path goes first; the image is warm in the\n"+
		"page cache (one untimed `vlab create` before the rounds, which also made vlab's own client key).\n\n",
		poll, n)
	b.WriteString("| step | vlab | by hand | difference |\n|---|---|---|---|\n")
	row := func(what string, v, h time.Duration) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", what, secs(v), secs(h), signedSecs(v-h))
	}
	row("prepare: `vlab create` / `qemu-img create` + `cloud-localds`", col(vr, prep), col(hr, prep))
	row("start: `vlab start` (returns at QMP ready) / exec of qemu", col(vr, start), col(hr, start))
	row("from there to the first ssh that works", col(vr, login), col(hr, login))
	fmt.Fprintf(&b, "| **total: create to working ssh** | **%s** | **%s** | **%s** (ratio vlab/hand **%.2f**) |\n", secs(vt), secs(ht), signedSecs(vt-ht), ratio)
	fmt.Fprintf(&b, "| ssh tries until one worked | %.0f | %.0f | |\n", colF(vr, tries), colF(hr, tries))
	fmt.Fprintf(&b, "| guest uptime when ssh first worked (its /proc/uptime) | %.1f s | %.1f s | |\n", colF(vr, uptime), colF(hr, uptime))
	fmt.Fprintf(&b, "| cloud-init's config-ssh module (`cloud-init analyze blame`) | %.2f s | %.2f s | |\n", colF(vr, sshCfg), colF(hr, sshCfg))
	fmt.Fprintf(&b, "| the image copy `vlab create` makes (qemu-img convert to qcow2 + fsync), timed alone | %s | | |\n", secs(median(copies)))
	fmt.Fprintf(&b, "\nEach round's totals, vlab / by hand: %s.\n\n%s\n\n", strings.Join(all, "; "), verdict)
	fmt.Fprintf(&b, "vlab's argv: `%s`\n\nBy hand: `%s`\n\nMachine: %s, TCG (no usable KVM), %s.\n",
		shellJoin(vlabArgv), shellJoin(handArgv), machineFacts(), qemuVersion())
	return b.String()
}

func shellJoin(argv []string) string {
	var q []string
	for _, a := range argv {
		if a == "" || strings.ContainsAny(a, " '\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q = append(q, a)
	}
	return strings.Join(q, " ")
}
