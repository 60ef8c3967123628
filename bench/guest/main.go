// Command guest measures two guest workflows of issue 14 on real guests,
// side by side in one run, and records them in bench/RESULTS.md under
// "## Guest workflows":
//
//  1. Cloud image to a working ssh (ssh.go): `vlab create NAME --image
//     FILE` (the image is a local file, so nothing is downloaded) + `vlab
//     start NAME` until the first `vlab ssh NAME -- true` that succeeds,
//     against the same steps by hand: `qemu-img create -b` an overlay,
//     `cloud-localds` a seed, qemu-system-x86_64 with the hardware vlab
//     gives the VM (`vlab cmdline`) and a hostfwd, then plain `ssh` until
//     it logs in. Both are polled at the same interval, alternating which
//     goes first each round.
//  2. Shared folder throughput (shares.go): one VM with a virtiofs share
//     and a 9p share of two folders on the same host file system, each
//     mounted as vlab's cloud-init seed mounts it; the guest's own dd
//     reads a file of the share and writes one into it (conv=fsync), both
//     shares alternating, with the host's dd of the same files beside.
//
// The guests are the fixtures: the Debian cloud userland
// (scripts/fixtures-cloud.sh) for 1, the busybox initramfs on Debian's
// generic kernel (scripts/fixtures.sh; it has the 9p and virtiofs modules,
// the cloud kernel has no 9p) for 2, driven through its serial console.
// Everything runs in a private XDG world under a temporary folder: the
// user's VMs, keys and caches are never touched.
//
// Usage (bench/guest/run.sh builds vlab and installs cloud-localds first):
//
//	go build -o bin/vlab ./cmd/vlab
//	go run ./bench/guest [-n 3] [-only ssh|share] [-mb 256] [-vlab bin/vlab] [-out bench/RESULTS.md]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"vlab/bench/results"
)

const heading = "Guest workflows"

func main() {
	n := flag.Int("n", 3, "rounds (each does both paths, alternating which goes first)")
	vlab := flag.String("vlab", "bin/vlab", "vlab binary")
	out := flag.String("out", "bench/RESULTS.md", "results file")
	only := flag.String("only", "", "run one benchmark: ssh or share (the other's subsection in -out is kept)")
	mb := flag.Int("mb", 256, "MiB each dd reads or writes on the shares")
	poll := flag.Duration("poll", 500*time.Millisecond, "interval between ssh tries (both paths)")
	flag.Parse()
	if err := run(*n, *vlab, *out, *only, *mb, *poll); err != nil {
		fmt.Fprintln(os.Stderr, "bench guest:", err)
		os.Exit(1)
	}
}

const (
	subSSH   = "### Cloud image to a working ssh"
	subShare = "### Shared folder throughput: virtiofs and 9p"
)

func run(n int, vlab, out, only string, mb int, poll time.Duration) error {
	if only != "" && only != "ssh" && only != "share" {
		return fmt.Errorf("-only %q: give ssh or share", only)
	}
	if n < 1 {
		return fmt.Errorf("-n %d: give at least 1 round", n)
	}
	w, done, err := newWorld(vlab)
	if err != nil {
		return err
	}
	defer done()
	sshPart, sharePart := keptSub(out, subSSH), keptSub(out, subShare)
	if only == "" || only == "ssh" {
		if sshPart, err = benchSSH(w, n, poll); err != nil {
			return err
		}
		sshPart = subSSH + "\n\n" + strings.TrimSpace(sshPart)
		fmt.Println(sshPart)
	}
	if only == "" || only == "share" {
		if sharePart, err = benchShares(w, n, mb); err != nil {
			return err
		}
		sharePart = subShare + "\n\n" + strings.TrimSpace(sharePart)
		fmt.Println(sharePart)
	}
	body := "Issue 14's \"Must show\" bench items, on real guests under TCG, measured with `bash bench/guest/run.sh`\n" +
		"(`go run ./bench/guest`; header comment of bench/guest/main.go).\n"
	for _, p := range []string{sshPart, sharePart} {
		if p != "" {
			body += "\n" + p + "\n"
		}
	}
	return results.Write(out, heading, body)
}

// keptSub returns subsection sub of the Guest workflows section of the
// results file, as it stands, so -only leaves the other one in place.
func keptSub(path, sub string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	text := string(data)
	i := strings.Index(text, "## "+heading+"\n")
	if i < 0 {
		return ""
	}
	text = text[i+len(heading)+4:]
	if j := strings.Index(text, "\n## "); j >= 0 {
		text = text[:j+1]
	}
	i = strings.Index(text, sub+"\n")
	if i < 0 {
		return ""
	}
	text = text[i:]
	if j := strings.Index(text[len(sub):], "\n### "); j >= 0 {
		text = text[:len(sub)+j+1]
	}
	return strings.TrimSpace(text)
}

type world struct {
	vlab string
	home string
	env  []string
}

// cmd runs vlab in the bench's world and returns its combined output.
func (w world) cmd(args ...string) ([]byte, error) {
	c := exec.Command(w.vlab, args...)
	c.Env = w.env
	out, err := c.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("vlab %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// newWorld makes a library of its own (every XDG folder under one
// temporary folder) for the vlab binary at path.
func newWorld(path string) (world, func(), error) {
	vlab, err := filepath.Abs(path)
	if err != nil {
		return world{}, nil, err
	}
	if _, err := os.Stat(vlab); err != nil {
		return world{}, nil, fmt.Errorf("%w: build it first: go build -o bin/vlab ./cmd/vlab", err)
	}
	home, err := os.MkdirTemp("", "vlab-bench-guest")
	if err != nil {
		return world{}, nil, err
	}
	w := world{vlab: vlab, home: home, env: append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_STATE_HOME="+filepath.Join(home, "state"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_RUNTIME_DIR="+filepath.Join(home, "run"))}
	done := func() {
		// No QEMU or virtiofsd outlives the bench.
		out, _ := w.cmd("list", "--json")
		var vms []struct{ Name, State string }
		_ = json.Unmarshal(out, &vms)
		for _, v := range vms {
			if v.State != "stopped" && v.State != "crashed" {
				w.cmd("stop", "--force", v.Name)
			}
		}
		os.RemoveAll(home)
	}
	if err := os.MkdirAll(filepath.Join(home, "run"), 0o700); err != nil {
		done()
		return world{}, nil, err
	}
	return w, done, nil
}

// need fails unless every program is on PATH.
func need(progs ...string) error {
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: bench/guest/run.sh installs what is missing (scripts/deps.sh)", p)
		}
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	return slices.Sorted(slices.Values(ds))[len(ds)/2]
}

func medianF(fs []float64) float64 {
	return slices.Sorted(slices.Values(fs))[len(fs)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func signedSecs(d time.Duration) string {
	if d < 0 {
		return "−" + secs(-d)
	}
	return "+" + secs(d)
}

// machineFacts is results.Machine with the load average before the run:
// the build machine's 2 cores are shared with other jobs.
func machineFacts() string {
	m := results.Machine()
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 3 {
			m += ", load average " + strings.Join(f[:3], " ") + " at the end of the run"
		}
	}
	return m
}

// qemuVersion is the first line of `qemu-system-x86_64 --version`.
func qemuVersion() string {
	out, err := exec.Command("qemu-system-x86_64", "--version").Output()
	if err != nil {
		return "QEMU version unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
