package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// classLabOut is `vlab lab up|down|reset --json`.
type classLabOut struct {
	Action   string
	Networks []string
	VMs      []struct {
		Name     string
		Action   string
		State    string
		Snapshot string
		Networks []string
		Forwards []struct {
			HostPort  int `json:"host_port"`
			GuestPort int `json:"guest_port"`
		}
	}
}

func (e *env) classLab(args ...string) classLabOut {
	e.t.Helper()
	var out classLabOut
	raw := e.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		e.t.Fatalf("vlab %s --json: %v\n%s", strings.Join(args, " "), err, raw)
	}
	return out
}

// TestClassLab: a teacher's lab file with two VMs on one lab network, a
// forward into one of them and a snapshot comes up with `vlab lab up`; the
// VMs reach each other on the lab network and the host reaches the
// server through the forward; `vlab lab reset` returns the server's disk
// to the snapshot and boots it again; `vlab lab down` stops both; a lab
// file with a typo gets an error naming its line.
func TestClassLab(t *testing.T) {
	t.Parallel()
	if !privateNet(t) {
		return
	}
	e := newEnv(t)
	kernel, initrd := fixture.Guest(t, "x86_64")
	dir := filepath.Join(e.home, "class room")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The server names its kernel relative to the lab file (a teacher ships
	// them side by side), the client by an absolute path.
	for _, f := range []string{kernel, initrd} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	labFile := filepath.Join(dir, "week3.toml")
	text := fmt.Sprintf(`# week 3: a web server and a client
[[network]]
name = "classnet"
subnet = "10.77.3.0/24"
dhcp = true

[[vm]]
name = "server"
kernel = %q
initrd = %q
append = %q
memory = "256M"
disk = "32M"
networks = ["classnet"]
forwards = ["tcp:auto:8080"]
snapshot = "clean"

[[vm]]
name = "client"
kernel = %q
initrd = %q
append = %q
memory = "256M"
networks = ["classnet"]
`, filepath.Base(kernel), filepath.Base(initrd), fixture.Append("x86_64", "vlab.net=1", "vlab.httpd=8080"),
		kernel, initrd, fixture.Append("x86_64", "vlab.net=1"))
	if err := os.WriteFile(labFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	up := e.classLab("lab", "up", labFile)
	if up.Action != "up" || strings.Join(up.Networks, ",") != "classnet" || len(up.VMs) != 2 {
		t.Fatalf("lab up: %+v", up)
	}
	srv := up.VMs[0]
	if srv.Name != "server" || srv.Action != "created" || srv.State != "running" || srv.Snapshot != "clean" ||
		len(srv.Forwards) != 1 || srv.Forwards[0].HostPort == 0 || srv.Forwards[0].GuestPort != 8080 {
		t.Errorf("lab up: server %+v", srv)
	}
	if c := up.VMs[1]; c.Name != "client" || c.Action != "created" || c.State != "running" {
		t.Errorf("lab up: client %+v", c)
	}
	// The snapshot was taken before the first start: the disk as built.
	if out := e.ok("snapshot", "list", "server"); !strings.Contains(out, "clean") {
		t.Errorf("snapshot list server: %s", out)
	}

	// The lab network: DHCP from the lab's switch, and the two VMs reach
	// each other (the client fetches the server's page).
	ipS, ipC := e.markerArg("server", fixture.MarkerNetUp), e.markerArg("client", fixture.MarkerNetUp)
	_, subnet, _ := net.ParseCIDR("10.77.3.0/24")
	if !subnet.Contains(net.ParseIP(ipS)) || !subnet.Contains(net.ParseIP(ipC)) || ipS == ipC {
		t.Fatalf("lab leases: server %s, client %s (want two 10.77.3.x)", ipS, ipC)
	}
	e.waitSerial("server", "VLAB-HTTPD 8080")
	if code, out := e.guestRun("client", fmt.Sprintf("timeout 10 wget -q -O - http://%s:8080/", ipS)); code != 0 || !strings.Contains(out, "VLAB-HTTP-OK") {
		t.Errorf("client fetching the server's page on the lab network: status %d, %q", code, tail(out, 500))
	}
	// The forward rides on the server's user-mode NIC, its second (the lab
	// comes first); the fixture configures only eth0 at boot.
	if code, out := e.guestRun("server", "udhcpc -i eth1 -s /etc/vlab/udhcpc.script -q -n -t 10 -T 1 >/dev/null 2>&1; ip -4 addr show eth1"); code != 0 || !strings.Contains(out, "10.0.2.") {
		t.Fatalf("server eth1 (user-mode): status %d, %q", code, tail(out, 500))
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", srv.Forwards[0].HostPort)
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); strings.Contains(body, "VLAB-HTTP-OK") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s through the lab file's forward: %q", url, body)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A student scribbles on the server's disk; reset brings back the
	// clean one and boots it again.
	e.writeMark("server", "student-was-here")
	reset := e.classLab("lab", "reset", labFile)
	if len(reset.VMs) != 2 || reset.VMs[0].Action != "restored" || reset.VMs[0].State != "running" ||
		reset.VMs[1].Action != "left alone" || reset.VMs[1].State != "running" {
		t.Errorf("lab reset: %+v", reset)
	}
	// A start begins a new serial log: the new boot's markers, not the
	// scribble's echo.
	if out := e.waitSerial("server", "VLAB-BOOT-OK"); strings.Contains(out, "student-was-here") {
		t.Errorf("server's serial log after lab reset still shows the last boot")
	}
	if got := e.diskMark("server"); got == "student-was-here" {
		t.Errorf("after lab reset the server's disk still reads %q", got)
	}

	down := e.classLab("lab", "down", labFile)
	if len(down.VMs) != 2 || down.VMs[0].Action != "stopped" || down.VMs[1].Action != "stopped" {
		t.Errorf("lab down: %+v", down)
	}
	for _, vm := range []string{"server", "client"} {
		if st := e.show(vm).State; st != "stopped" {
			t.Errorf("after lab down %s is %s", vm, st)
		}
	}

	// A typo names its line; nothing is created for it.
	typo := filepath.Join(dir, "typo.toml")
	os.WriteFile(typo, []byte("[[vm]]\nname = \"extra\"\nmemroy = \"1G\"\n"), 0o600)
	e.fail([]string{"typo.toml:3", `"vm.memroy"`, "spelling"}, "lab", "up", typo)
	if _, _, code := e.run("lab", "up", typo); code != 2 {
		t.Errorf("lab up with a typo: exit %d, want 2", code)
	}
	if _, _, code := e.run("show", "extra"); code == 0 {
		t.Errorf("lab up with a typo created vm extra")
	}
}
