package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/console"
	"vlab/emulator"
	"vlab/internal/fixture"
)

// Owner-only endpoints (issue 12): every socket and file in a running VM's
// runtime dir is out of reach of another local user, the gdb stub is one of
// those sockets (no TCP), and a guest cannot reach it.

// otherUID is the "another local user" of these tests (nobody).
const otherUID = "65534"

// dialEnv makes the test binary, started as another user, try each path it
// lists (one per line) instead of running tests: it connects to sockets,
// opens other files for reading, and prints "path<TAB>ok" or
// "path<TAB>errno-text" per line.
const dialEnv = "VLAB_E2E_DIAL"

func init() {
	// init runs before TestMain: the dialer never builds vlab or runs tests.
	list, ok := os.LookupEnv(dialEnv)
	if !ok {
		return
	}
	for _, p := range strings.Split(list, "\n") {
		fmt.Printf("%s\t%s\n", p, tryOpen(p))
	}
	os.Exit(0)
}

// tryOpen connects to the socket p, or opens the file p, and says how that went.
func tryOpen(p string) string {
	var err error
	if fi, serr := os.Lstat(p); serr == nil && fi.Mode()&fs.ModeSocket != 0 {
		var c net.Conn
		if c, err = net.DialTimeout("unix", p, 5*time.Second); err == nil {
			c.Close()
		}
	} else {
		var f *os.File
		if f, err = os.Open(p); err == nil {
			f.Close()
		}
	}
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.EACCES):
		return "EACCES"
	default:
		return err.Error()
	}
}

// asOtherUser runs tryOpen on every path as uid 65534 (setpriv) and returns
// path → result.
func asOtherUser(t *testing.T, e *env, paths []string) map[string]string {
	t.Helper()
	setpriv := fixture.Program(t, "setpriv")
	if os.Geteuid() != 0 {
		fixture.Need(t, "running as another uid (setpriv) needs root (CI runs as root)")
	}
	// A copy of this test binary that uid 65534 may run (go test's build
	// dir is private).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(e.home), "dialer")
	if _, err := os.Stat(bin); err != nil {
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(setpriv, "--reuid="+otherUID, "--regid="+otherUID, "--clear-groups", bin)
	cmd.Env = append(os.Environ(), dialEnv+"="+strings.Join(paths, "\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dialer as uid %s: %v\n%s", otherUID, err, out)
	}
	res := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if p, r, ok := strings.Cut(l, "\t"); ok {
			res[p] = r
		}
	}
	return res
}

// openAncestors makes every folder above e's XDG runtime dir (up to the
// system temp dir) and the runtime dir itself traversable by anyone, so
// that only vlab's own folder stands between another user and the sockets.
func openAncestors(t *testing.T, e *env) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Join(e.home, "run"); d != tmp && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// gdbMonitor sends gdb's `monitor CMD` (a qRcmd packet of the remote
// protocol) to the stub at sock and returns the console output it answers.
func gdbMonitor(t *testing.T, sock, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatalf("gdb stub %s: %v", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	pkt := "qRcmd," + hex.EncodeToString([]byte(cmd))
	var sum byte
	for i := 0; i < len(pkt); i++ {
		sum += pkt[i]
	}
	if _, err := fmt.Fprintf(c, "$%s#%02x", pkt, sum); err != nil {
		t.Fatal(err)
	}
	var buf, text []byte
	chunk := make([]byte, 4096)
	for {
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			start := bytes.IndexByte(buf, '$')
			end := bytes.IndexByte(buf, '#')
			if start < 0 || end < start || len(buf) < end+3 {
				break
			}
			body := string(buf[start+1 : end])
			buf = buf[end+3:]
			c.Write([]byte("+"))
			switch {
			case body == "OK":
				return string(text)
			case strings.HasPrefix(body, "T") || strings.HasPrefix(body, "S"):
				// A stop reply: QEMU pauses the guest when gdb connects.
			case strings.HasPrefix(body, "O"):
				b, herr := hex.DecodeString(body[1:])
				if herr != nil {
					t.Fatalf("gdb stub sent %q", body)
				}
				text = append(text, b...)
			default:
				t.Fatalf("gdb stub answered monitor %q with %q", cmd, body)
			}
		}
		if err != nil {
			t.Fatalf("gdb stub %s: %v (got %q)", sock, err, text)
		}
	}
}

// TestEndpointsOwnerOnly (issue 12 item 2): a VM started with --gdb, a VNC
// display and a serial console. As uid 65534, connecting to every socket in
// its runtime dir, and opening every file there, is refused (EACCES), while
// the same user reaches a world-open socket beside that dir and the owner
// reaches every socket; the gdb socket is QEMU's real stub (`monitor info
// version` answers, raw and through gdb-multiarch, the README's way). QEMU
// listens on no TCP or UDP port, and the user-mode guest, which does reach
// the host's loopback, cannot reach a stub on the old TCP port. --gdb 1234
// is refused with advice, and the VM gets its stub from an old machine.toml
// that says gdb_port = 1234.
func TestEndpointsOwnerOnly(t *testing.T) {
	t.Parallel()
	if !privateNet(t) {
		return
	}
	// This re-run is a process of its own (privateNet): with umask 0, QEMU's
	// sockets and files come out open to all, so only the runtime dir's
	// mode can keep another user out.
	defer syscall.Umask(syscall.Umask(0))
	e := newEnv(t)
	openAncestors(t, e)
	name := "dbg"
	// The TCP form is gone, with advice; an old machine.toml's gdb_port
	// loads as the socket form (this VM is started from such a file).
	for _, bad := range [][]string{{"--gdb", "1234"}, {"--gdb=1234"}} {
		e.fail([]string{"--gdb takes no port", "target remote"}, append([]string{"create", "x"}, bad...)...)
	}
	e.createGuest(name, guests["x86_64"], []string{"vlab.net=1"}, "--agent", "on") // the guest agent's socket too
	toml := filepath.Join(e.show(name).Dir, "machine.toml")
	data, err := os.ReadFile(toml)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(data), "\n[boot]", "\ngdb_port = 1234\n\n[boot]", 1)
	if old == string(data) {
		t.Fatalf("no [boot] table in %s:\n%s", toml, data)
	}
	if err := os.WriteFile(toml, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	var shownGDB struct {
		GDBSocket string `json:"gdb_socket"`
	}
	if err := json.Unmarshal([]byte(e.ok("show", name, "--json")), &shownGDB); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.ok("show", name), "gdb:") {
		t.Error("vlab show does not print the gdb socket")
	}
	e.ok("start", name)
	s := e.show(name)
	run := filepath.Dir(s.QMPSocket)
	if shownGDB.GDBSocket != filepath.Join(run, "gdb.sock") {
		t.Fatalf("gdb_socket %q, want gdb.sock in the runtime dir %s", shownGDB.GDBSocket, run)
	}
	if fi, err := os.Stat(run); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("runtime dir %s: %v (%v), want mode 0700", run, fi.Mode(), err)
	}

	// No network endpoint at all.
	if l := listenersOf(t, s.PID, "-ltunp"); len(l) > 0 {
		t.Fatalf("qemu (pid %d) with --gdb listens on the network:\n%s", s.PID, strings.Join(l, "\n"))
	}

	// The guest reaches the host's loopback (control), but no stub there.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nHOST-UP\n")
			c.Close()
		}
	}()
	e.waitSerial(name, "VLAB-NET-UP")
	// The same nc sends a gdb `monitor info version` to the old port.
	ctl := l.Addr().(*net.TCPAddr).Port
	if code, out := e.guestRun(name, fmt.Sprintf("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc 10.0.2.2 %d", ctl)); code != 0 || !strings.Contains(out, "HOST-UP") {
		t.Fatalf("control: the guest's nc to the host's loopback port %d gave %d, %q", ctl, code, out)
	}
	const oldPort = 1234 // what README examples used with --gdb PORT
	if code, out := e.guestRun(name, fmt.Sprintf("printf '$qRcmd,696e666f2076657273696f6e#e8' | timeout 5 nc 10.0.2.2 %d", oldPort)); code == 0 || strings.Contains(out, "$O") {
		t.Errorf("the guest reached a gdb stub on 10.0.2.2:%d: status %d, %q", oldPort, code, out)
	}

	// Everything in the runtime dir, as another user.
	ents, err := os.ReadDir(run)
	if err != nil {
		t.Fatal(err)
	}
	var paths, socks []string
	for _, en := range ents {
		p := filepath.Join(run, en.Name())
		paths = append(paths, p)
		if en.Type()&fs.ModeSocket != 0 {
			socks = append(socks, p)
		}
	}
	want := append(append([]string(nil), s.QMPSockets...), s.VNCSocket, filepath.Join(run, "vnc-ext.sock"), s.SerialSocket, shownGDB.GDBSocket, filepath.Join(run, "qga.sock"))
	for _, w := range want {
		if !containsStr(socks, w) {
			t.Errorf("socket %s missing from the runtime dir (has %q)", w, socks)
		}
	}
	if len(s.QMPSockets) != 4 {
		t.Errorf("%d qmp sockets, want 4", len(s.QMPSockets))
	}
	// Positive control: a world-open socket beside the runtime dir.
	ctlSock := filepath.Join(e.home, "run", "open.sock")
	ctlL, err := net.Listen("unix", ctlSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ctlL.Close()
	os.Chmod(ctlSock, 0o777)
	res := asOtherUser(t, e, append(paths, ctlSock))
	if r := res[ctlSock]; r != "ok" {
		t.Fatalf("control: uid %s could not connect to the world-open %s: %s", otherUID, ctlSock, r)
	}
	for _, p := range paths {
		if r := res[p]; r != "EACCES" {
			t.Errorf("uid %s opening %s: %s, want EACCES", otherUID, p, r)
		}
	}

	// The owner reaches every socket, and the gdb one is QEMU's stub.
	for _, p := range socks {
		if p == shownGDB.GDBSocket {
			continue
		}
		if r := tryOpen(p); r != "ok" {
			t.Errorf("owner connecting to %s: %s", p, r)
		}
	}
	ver, err := exec.Command(fixture.Program(t, "qemu-system-x86_64"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Fields(string(ver))[3] // "QEMU emulator version 7.2.x (Debian ...)"
	if got := gdbMonitor(t, shownGDB.GDBSocket, "info version"); !strings.Contains(got, v) {
		t.Errorf("monitor info version over the gdb socket: %q, want %s", got, v)
	}
	gdb := fixture.Program(t, "gdb-multiarch")
	out, err := exec.Command(gdb, "-batch", "-nx", "-ex", "target remote "+shownGDB.GDBSocket, "-ex", "monitor info version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), v) {
		t.Errorf("gdb-multiarch -ex 'target remote %s' -ex 'monitor info version': %v\n%s", shownGDB.GDBSocket, err, out)
	}
	e.ok("stop", "--force", name)
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// extEndpoint is one running `vlab vnc NAME --external --json`.
type extEndpoint struct {
	cmd      *exec.Cmd
	stderr   *strings.Builder
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Password string `json:"password"`
}

// openExtEndpoint starts `vlab vnc name --external --json` and reads the
// endpoint it prints.
func (e *env) openExtEndpoint(name string) *extEndpoint {
	e.t.Helper()
	ep := &extEndpoint{stderr: &strings.Builder{}}
	ep.cmd = exec.Command(vlabBin, "vnc", name, "--external", "--json")
	ep.cmd.Env = e.vars
	ep.cmd.Stderr = ep.stderr
	stdout, err := ep.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ep.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ep.cmd.Process.Kill(); ep.cmd.Wait() })
	if err := json.NewDecoder(stdout).Decode(ep); err != nil {
		e.t.Fatalf("vnc --external --json: %v (stderr %s)", err, ep.stderr)
	}
	return ep
}

// vncAuth says whether an RFB session on host:port accepts password.
func vncAuth(t *testing.T, host string, port int, password string) error {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := console.NewVNC(ctx, c, console.VNCOptions{Password: password})
	if err != nil {
		c.Close()
		return err
	}
	v.Close()
	return nil
}

// extClients counts the clients of VM name's password-protected display.
func (e *env) extClients(name string) int {
	e.t.Helper()
	var reply struct {
		Return []struct {
			ID      string            `json:"id"`
			Clients []json.RawMessage `json:"clients"`
		} `json:"return"`
	}
	if err := json.Unmarshal([]byte(e.ok("qmp", name, `{"execute":"query-vnc-servers"}`)), &reply); err != nil {
		e.t.Fatal(err)
	}
	for _, d := range reply.Return {
		if d.ID == emulator.VNCExternalID {
			return len(d.Clients)
		}
	}
	return -1
}

// cmdlinesWith lists the processes whose argv contains s.
func cmdlinesWith(s string) []string {
	var hits []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err == nil && bytes.Contains(data, []byte(s)) {
			hits = append(hits, f+": "+strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	return hits
}

// childrenOf returns the argv of each child process of pid.
func childrenOf(pid int) [][]string {
	var kids [][]string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces.
		rest := string(data[bytes.LastIndexByte(data, ')')+1:])
		if fs := strings.Fields(rest); len(fs) > 1 && fs[1] == strconv.Itoa(pid) {
			argv, err := os.ReadFile(filepath.Join(filepath.Dir(f), "cmdline"))
			if err == nil {
				kids = append(kids, strings.Split(strings.TrimRight(string(argv), "\x00"), "\x00"))
			}
		}
	}
	return kids
}

// startXvfb starts an X server of the test's own and returns its DISPLAY.
func startXvfb(t *testing.T) string {
	t.Helper()
	return startXvfbScreen(t, "1024x768x24")
}

// startXvfbScreen starts an X server of the test's own with one screen of
// the given WxHxDEPTH and returns its DISPLAY. Xvfb picks a free display
// number itself (-displayfd) and writes it once it accepts clients.
func startXvfbScreen(t *testing.T, screen string) string {
	t.Helper()
	xvfb := fixture.Program(t, "Xvfb")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stderr syncBuf
	x := exec.Command(xvfb, "-displayfd", "3", "-nolisten", "tcp", "-screen", "0", screen)
	x.ExtraFiles = []*os.File{w} // fd 3
	x.Stderr = &stderr
	err = x.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Process.Kill(); x.Wait() })
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	select {
	case n := <-got:
		if _, err := strconv.Atoi(n); err != nil {
			t.Fatalf("Xvfb -displayfd wrote %q\n%s", n, stderr.Bytes())
		}
		return ":" + n
	case <-time.After(30 * time.Second):
		t.Fatalf("Xvfb did not report its display in 30s\n%s", stderr.Bytes())
	}
	return ""
}

// TestVNCExternalSessionsShare (issue 12): a second `vlab vnc --external`
// does not break the first one's password (both sessions share the one-time
// password while either is open); a TCP viewer gets that password through a
// 0600 vncpasswd file, never in any process's argv; a viewer command with
// {password} is refused; the password is retired when the last session ends.
func TestVNCExternalSessionsShare(t *testing.T) {
	t.Parallel()
	fixture.Program(t, "vncviewer")
	e := newEnv(t)
	name := "vnc2"
	e.createGuest(name, guests["x86_64"], nil, "--net", "none")
	e.ok("start", name)
	s := e.show(name)

	a := e.openExtEndpoint(name)
	if err := vncAuth(t, a.Host, a.Port, a.Password); err != nil {
		t.Fatalf("control: the first endpoint refuses its own password: %v", err)
	}
	if err := vncAuth(t, a.Host, a.Port, "wrong123"); err == nil {
		t.Fatal("control: the endpoint accepts a wrong password")
	}
	b := e.openExtEndpoint(name)
	if err := vncAuth(t, a.Host, a.Port, a.Password); err != nil {
		t.Errorf("the first session's password stopped working when a second --external opened: %v", err)
	}
	if err := vncAuth(t, b.Host, b.Port, b.Password); err != nil {
		t.Errorf("the second session's own password does not work: %v", err)
	}

	// A TCP viewer (TigerVNC told to use the loopback endpoint) on an X
	// server of the test's own: it connects with a password file.
	disp := startXvfb(t)
	viewer := exec.Command(vlabBin, "vnc", name, "--external", "--viewer", "vncviewer -Shared=1 -passwd {passwordfile} {host}::{port}")
	viewer.Env = append(append([]string(nil), e.vars...), "DISPLAY="+disp)
	var vstderr strings.Builder
	viewer.Stderr = &vstderr
	if err := viewer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viewer.Process.Kill(); viewer.Wait() })
	waitFor(t, "the viewer to connect", time.Minute, func() bool { return e.extClients(name) == 1 })
	time.Sleep(2 * time.Second) // a viewer refused by QEMU would be gone by now
	if c := e.extClients(name); c != 1 {
		t.Fatalf("%d clients on the password-protected display after the viewer connected, want 1 (vlab said %q)", c, vstderr.String())
	}
	for _, pw := range []string{a.Password, b.Password} {
		if hits := cmdlinesWith(pw); len(hits) > 0 {
			t.Errorf("the one-time password %s is in a process's argv:\n%s", pw, strings.Join(hits, "\n"))
		}
	}
	// The viewer (vlab's child) got the password as a 0600 vncpasswd file.
	kids := childrenOf(viewer.Process.Pid)
	if len(kids) != 1 || len(kids[0]) != 5 || kids[0][1] != "-Shared=1" || kids[0][2] != "-passwd" {
		t.Fatalf("vlab's children: %q, want one vncviewer -Shared=1 -passwd FILE HOST::PORT", kids)
	}
	if fi, err := os.Stat(kids[0][3]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("viewer password file %s: %v %v, want mode 0600", kids[0][3], fi, err)
	}
	if data, _ := os.ReadFile(kids[0][3]); !bytes.Equal(data, console.ObfuscatePassword(a.Password)) {
		t.Errorf("viewer password file holds % x, want the shared password %s in vncpasswd form", data, a.Password)
	}
	interrupt(t, viewer, &vstderr)
	interrupt(t, b.cmd, b.stderr)
	if err := vncAuth(t, a.Host, a.Port, a.Password); err != nil {
		t.Errorf("the first session's password stopped working when the others ended: %v", err)
	}
	interrupt(t, a.cmd, a.stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if v, err := console.DialVNC(ctx, emulator.ExternalVNCSocket(s.VNCSocket), console.VNCOptions{Password: a.Password}); err == nil {
		v.Close()
		t.Error("the one-time password still works after the last session ended")
	}

	e.fail([]string{"{password}", "{passwordfile}"}, "vnc", name, "--external", "--viewer", "vncviewer {host}::{port} {password}")
}

// TestRuntimeDirOfAnotherUser (issue 12): when socket paths are too long for
// XDG_RUNTIME_DIR, sockets go under $TMPDIR/vlab-UID, a name any local user
// can create first. A folder there owned by uid 65534 (or open to others)
// is refused with a one-line error and no QEMU starts; a fresh one is made
// 0700 and the VM starts (control).
func TestRuntimeDirOfAnotherUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tmp := filepath.Join(filepath.Dir(e.home), "tmp")
	deep := filepath.Join(e.home, "run", strings.Repeat("deep/", 20))
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tmp, 0o1777)
	e.vars = append(e.vars, "TMPDIR="+tmp, "XDG_RUNTIME_DIR="+deep)
	name := "rt"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none")
	root := filepath.Join(tmp, "vlab-"+strconv.Itoa(os.Getuid()))
	// create made vlab's own root there (the VM lock lives in the runtime
	// dir); plant another user's in its place, as if they had been first.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(root, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	e.fail([]string{root, "uid 65534", "remove it"}, "start", name)
	if st := e.state(name); st != "stopped" {
		t.Fatalf("after the refused start the vm is %s", st)
	}
	os.Chown(root, os.Getuid(), os.Getgid())
	os.Chmod(root, 0o777)
	e.fail([]string{root, "open to other users"}, "start", name)

	// Control: without the planted folder the same start works.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	e.ok("start", name)
	s := e.show(name)
	if !strings.HasPrefix(s.QMPSocket, root+"/") {
		t.Fatalf("qmp socket %s is not under %s: the fallback was not used", s.QMPSocket, root)
	}
	for _, d := range []string{root, filepath.Dir(s.QMPSocket)} {
		if fi, err := os.Lstat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want a 0700 folder", d, fi.Mode(), err)
		}
	}
	e.ok("stop", "--force", name)
}
