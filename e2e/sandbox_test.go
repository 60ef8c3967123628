package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// hostServer is a web server on the host that counts who reaches it.
type hostServer struct {
	addr  string
	conns atomic.Int64
}

// serveHost listens on addr (port 0: any) and answers every request with
// body; it stops with the test.
func serveHost(t *testing.T, addr, body string) *hostServer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h := &hostServer{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.conns.Add(1)
			go func() {
				defer c.Close()
				bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body)+1, body+"\n")
			}()
		}
	}()
	return h
}

// guestGet fetches url from inside VM name (busybox 1.35 wget -T segfaults:
// timeout bounds it) and returns its exit status and output.
func (e *env) guestGet(name, url string) (int, string) {
	e.t.Helper()
	return e.guestRun(name, "timeout 5 wget -q -O - "+url)
}

// TestNetSandbox (issue 12, item 3): a --net sandbox guest reaches a web
// server in an "outside" network namespace through the host's default
// route, but none of the host's own services: not on its loopback (what
// slirp shows as 10.0.2.2 and passt, without --no-map-gw, as the gateway),
// not on the address of another host interface (a bridge, like docker0),
// and not on the host's LAN address even when the guest changes its own
// address to aim at it. A forward from the host still reaches the guest. A
// --net user guest on the same host does reach the loopback, bridge and LAN
// servers: every probe can see a connection when there is one.
func TestNetSandbox(t *testing.T) {
	t.Parallel()
	if !privateNet(t) {
		return
	}
	fixture.Program(t, "passt")
	busybox := fixture.Program(t, "busybox")
	e := newEnv(t)

	// The "outside": a namespace behind a veth, the host's default route
	// pointing at it, serving a page on an address only routing reaches.
	out := os.Getenv(netnsEnv) + "-out"
	ipCmd(t, "netns", "add", out)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", out).Run() })
	ipCmd(t, "link", "add", "vsb0", "type", "veth", "peer", "name", "vsb1")
	ipCmd(t, "link", "set", "vsb1", "netns", out)
	ipCmd(t, "addr", "add", "10.77.0.2/24", "dev", "vsb0")
	ipCmd(t, "link", "set", "vsb0", "up")
	ipCmd(t, "route", "add", "default", "via", "10.77.0.1")
	ipCmd(t, "-n", out, "link", "set", "lo", "up")
	ipCmd(t, "-n", out, "addr", "add", "10.77.0.1/24", "dev", "vsb1")
	ipCmd(t, "-n", out, "link", "set", "vsb1", "up")
	ipCmd(t, "-n", out, "addr", "add", "203.0.113.80/32", "dev", "lo")
	www := filepath.Join(t.TempDir(), "www")
	os.MkdirAll(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte("OUTSIDE-OK\n"), 0o644)
	httpd := exec.Command("ip", "netns", "exec", out, busybox, "httpd", "-f", "-p", "203.0.113.80:8088", "-h", www)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { httpd.Process.Kill(); httpd.Wait() })
	if body := waitHTTP(t, "203.0.113.80:8088"); !strings.Contains(body, "OUTSIDE-OK") {
		t.Fatalf("the outside server, from the host: %q", body)
	}
	// Another interface of the host, like a docker or libvirt bridge.
	ipCmd(t, "link", "add", "vsbbr", "type", "bridge")
	ipCmd(t, "addr", "add", "10.99.0.1/24", "dev", "vsbbr")
	ipCmd(t, "link", "set", "vsbbr", "up")

	loop := serveHost(t, "127.0.0.1:0", "HOST-LOOPBACK")
	bridge := serveHost(t, "10.99.0.1:0", "HOST-BRIDGE")
	lan := serveHost(t, "10.77.0.2:0", "HOST-LAN")
	port := func(h *hostServer) string { _, p, _ := net.SplitHostPort(h.addr); return p }

	e.createGuest("sb", guests["x86_64"], []string{"vlab.net=1", "vlab.httpd=8080"},
		"--display", "none", "--net", "sandbox", "--forward", "tcp:auto:8080")
	e.createGuest("open", guests["x86_64"], []string{"vlab.net=1"}, "--display", "none")
	e.ok("start", "sb")
	e.ok("start", "open")
	if n := e.netShow("sb"); n.NICs[0].Mode != "sandbox" {
		t.Errorf("net show: mode %q, want sandbox", n.NICs[0].Mode)
	}
	if out := e.ok("show", "sb"); !strings.Contains(out, "sandbox") {
		t.Errorf("vlab show does not tell the sandbox mode:\n%s", out)
	}
	ip := e.markerArg("sb", "VLAB-NET-UP")
	t.Logf("sandbox guest address (passt's DHCP): %s", ip)

	// Internet yes.
	if code, got := e.guestGet("sb", "http://203.0.113.80:8088/"); code != 0 || !strings.Contains(got, "OUTSIDE-OK") {
		t.Fatalf("sandbox guest cannot reach the outside server: status %d, %q", code, got)
	}
	// Host no: the gateway (slirp's 10.0.2.2, passt's default mapping) ...
	if code, got := e.guestGet("sb", "http://10.77.0.1:"+port(loop)+"/"); code == 0 || strings.Contains(got, "HOST-") {
		t.Errorf("sandbox guest reached the host's loopback through the gateway: status %d, %q", code, got)
	}
	// ... the address of another host interface ...
	if code, got := e.guestGet("sb", "http://10.99.0.1:"+port(bridge)+"/"); code == 0 || strings.Contains(got, "HOST-") {
		t.Errorf("sandbox guest reached a server on the host's bridge address: status %d, %q", code, got)
	}

	// A forward from the host reaches the guest.
	e.waitSerial("sb", "VLAB-HTTPD 8080")
	fw := e.netShow("sb").forward(t, "tcp", 8080)
	if !fw.Active || fw.HostPort == 0 {
		t.Fatalf("sandbox forward not bound: %+v", fw)
	}
	if body := waitHTTP(t, fw.Address); !strings.Contains(body, fixture.MarkerHTTPOK) {
		t.Errorf("forward into the sandbox guest served %q", body)
	}
	if out := e.ok("net", "forward", "add", "sb", "tcp:auto:22"); !strings.Contains(out, "next start") {
		t.Errorf("forward added to a running sandbox: %q", out)
	}

	// ... and the host's LAN address, which passt hands the guest as its
	// own: a guest that takes another address aims at the host's.
	// The outside page fetched from the new address shows the guest is
	// still online, so a failed probe means blocked, not broken.
	code, got := e.guestRun("sb", "ip addr flush dev eth0 && ip addr add 10.77.0.99/24 dev eth0 && ip route replace default via 10.77.0.1 && timeout 5 wget -q -O - http://203.0.113.80:8088/")
	if code != 0 || !strings.Contains(got, "OUTSIDE-OK") {
		t.Errorf("sandbox guest with another address cannot reach the outside: status %d, %q", code, got)
	}
	code, got = e.guestGet("sb", "http://10.77.0.2:"+port(lan)+"/")
	if code == 0 || strings.Contains(got, "HOST-") {
		t.Errorf("sandbox guest reached a server on the host's LAN address: status %d, %q", code, got)
	}
	if n := loop.conns.Load() + bridge.conns.Load() + lan.conns.Load(); n != 0 {
		t.Errorf("the host's servers saw %d connections from the sandbox guest (loopback %d, bridge %d, lan %d)",
			n, loop.conns.Load(), bridge.conns.Load(), lan.conns.Load())
	}

	// Control: a user-mode guest reaches all three host servers.
	e.waitSerial("open", "VLAB-NET-UP")
	for _, c := range []struct {
		url, want string
		srv       *hostServer
	}{
		{"http://10.0.2.2:" + port(loop) + "/", "HOST-LOOPBACK", loop},
		{"http://10.99.0.1:" + port(bridge) + "/", "HOST-BRIDGE", bridge},
		{"http://10.77.0.2:" + port(lan) + "/", "HOST-LAN", lan},
	} {
		if code, got := e.guestGet("open", c.url); code != 0 || !strings.Contains(got, c.want) || c.srv.conns.Load() != 1 {
			t.Errorf("control: a user-mode guest's wget %s gave %d, %q; server saw %d connections", c.url, code, got, c.srv.conns.Load())
		}
	}

	// passt goes with its guest.
	e.ok("stop", "sb")
	if pids := passtsUnder(e.home); len(pids) != 0 {
		t.Errorf("passt %v still runs after vlab stop", pids)
	}
}

// passtsUnder lists live passt processes whose command line names a path
// under dir.
func passtsUnder(dir string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	deadline := time.Now().Add(5 * time.Second)
	for _, ent := range ents {
		cmd, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "passt") || !strings.Contains(string(cmd), dir) {
			continue
		}
		for time.Now().Before(deadline) { // a one-off passt quits right after QEMU
			stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
			if err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat")); err == nil && !strings.Contains(string(stat), ") Z ") {
			pids = append(pids, ent.Name())
		}
	}
	return pids
}

// TestSandboxDefaultForLegacyProfiles: old, untrusted systems get the
// sandbox network by default; --net and --isolated still choose, and modern
// profiles keep user mode.
func TestSandboxDefaultForLegacyProfiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mode := func(name string) string {
		var s struct {
			NICs []struct {
				Mode     string `json:"mode"`
				Isolated bool   `json:"isolated"`
			} `json:"nics"`
		}
		if err := json.Unmarshal([]byte(e.ok("show", name, "--json")), &s); err != nil || len(s.NICs) != 1 {
			t.Fatalf("show %s: %v %+v", name, err, s)
		}
		if s.NICs[0].Isolated {
			return "isolated"
		}
		return s.NICs[0].Mode
	}
	for _, c := range []struct {
		name, profile string
		flags         []string
		want          string
	}{
		{"w98", "win98", nil, "sandbox"},
		{"xp", "winxp", nil, "sandbox"},
		{"dos", "msdos622", nil, "sandbox"},
		{"mac9", "macos9", nil, "sandbox"},
		{"w98user", "win98", []string{"--net", "user"}, "user"},
		{"w98iso", "win98", []string{"--isolated"}, "isolated"},
		{"w98fwd", "win98", []string{"--forward", "tcp:auto:21"}, "sandbox"},
		{"deb", "debian", nil, "user"},
	} {
		e.ok(append([]string{"create", c.name, "--profile", c.profile}, c.flags...)...)
		if got := mode(c.name); got != c.want {
			t.Errorf("%s (profile %s %v): nic mode %s, want %s", c.name, c.profile, c.flags, got, c.want)
		}
	}
	if out := e.ok("profiles", "win98"); !strings.Contains(out, "sandbox network") {
		t.Errorf("vlab profiles win98 does not tell the sandbox network:\n%s", out)
	}
}

// TestDoctorListsPasst: vlab doctor tells whether passt, which --net
// sandbox needs, is installed, and how to install it when it is not.
func TestDoctorListsPasst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	passt := fixture.Program(t, "passt")
	if out := e.doctor(); !strings.Contains(out, "passt (--net sandbox)") || !strings.Contains(out, passt) {
		t.Errorf("vlab doctor does not list passt at %s:\n%s", passt, out)
	}
	// Without passt on PATH: the fix names the package.
	e.vars = append(e.vars, "PATH=/nonexistent-vlab-path")
	bin := vlabBin
	cmd := exec.Command(bin, "doctor")
	cmd.Env = e.vars
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "apt-get install passt") {
		t.Errorf("vlab doctor without passt does not say how to install it:\n%s", out)
	}
}
