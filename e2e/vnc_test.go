package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/console"
	"vlab/emulator"
	"vlab/internal/fixture"
)

// listenersOf returns the `ss` lines of the sockets process pid listens on:
// TCP ones, or those ssFlags asks for (e.g. "-ltunp" for TCP and UDP).
func listenersOf(t *testing.T, pid int, ssFlags ...string) []string {
	t.Helper()
	flags := "-ltnp"
	if len(ssFlags) > 0 {
		flags = ssFlags[0]
	}
	out, err := exec.Command(fixture.Program(t, "ss"), "-H", flags).CombinedOutput()
	if err != nil {
		t.Fatalf("ss %s: %v: %s", flags, err, out)
	}
	var mine []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, "pid="+strconv.Itoa(pid)+",") {
			mine = append(mine, l)
		}
	}
	return mine
}

// serialLineAfter waits until the VM's serial log has marker at the end of a
// line after byte offset from and returns the offset just past it.
func (e *env) serialLineAfter(name string, from int, marker string) int {
	e.t.Helper()
	end, ok := e.trySerialLine(name, from, marker, 2*time.Minute)
	if !ok {
		data, _ := os.ReadFile(e.show(name).SerialLog)
		e.t.Fatalf("%s: %q never appeared on the serial console after byte %d\nserial tail:\n%s", name, marker, from, tail(string(data), 1500))
	}
	return end
}

// trySerialLine is serialLineAfter that gives up after timeout.
func (e *env) trySerialLine(name string, from int, marker string, timeout time.Duration) (int, bool) {
	e.t.Helper()
	logPath := e.show(name).SerialLog
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(logPath)
		for at := from; at <= len(data); {
			i := strings.Index(string(data[at:]), marker)
			if i < 0 {
				break
			}
			end := at + i + len(marker)
			if end < len(data) && (data[end] == '\r' || data[end] == '\n') {
				return end, true
			}
			at = end
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serialLen is how many bytes the serial log at path holds now.
func serialLen(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

func decodeImage(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var img image.Image
	if strings.HasSuffix(path, ".png") {
		img, err = png.Decode(f)
	} else {
		img, err = jpeg.Decode(f)
	}
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

// TestVNCExternalEndpoint: with default settings no VM listens on TCP; the
// endpoint of `vlab vnc --external --json` listens on 127.0.0.1 only,
// refuses a wrong password, serves a real third-party client (vncsnapshot)
// the guest's screen, which matches `vlab screenshot` of the same moment;
// once vlab is interrupted the port is closed and the password retired.
func TestVNCExternalEndpoint(t *testing.T) {
	snap := fixture.Program(t, "vncsnapshot")
	e := newEnv(t)
	// No graphical session: `vlab vnc` without a terminal must not open
	// an external viewer here.
	e.vars = append(e.vars, "DISPLAY=", "WAYLAND_DISPLAY=")
	name := "vnc-ext"
	e.createGuest(name, guests["x86_64"], []string{"vlab.vtshell=1"}, "--net", "none")
	e.ok("start", name)
	e.waitSerial(name, "VLAB-VTSHELL")
	s := e.show(name)

	if l := listenersOf(t, s.PID); len(l) > 0 {
		t.Fatalf("qemu (pid %d) listens on TCP with default settings:\n%s", s.PID, strings.Join(l, "\n"))
	}

	// The endpoint.
	cmd := exec.Command(vlabBin, "vnc", name, "--external", "--json")
	cmd.Env = e.vars
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var ep struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&ep); err != nil {
		t.Fatalf("vnc --external --json: %v (stderr %s)", err, stderr.String())
	}
	if ep.Host != "127.0.0.1" || ep.Port <= 5900 || len(ep.Password) != 8 {
		t.Fatalf("endpoint %+v", ep)
	}
	mine := listenersOf(t, cmd.Process.Pid)
	if len(mine) != 1 || !strings.Contains(mine[0], " 127.0.0.1:"+strconv.Itoa(ep.Port)+" ") {
		t.Fatalf("vlab's listening sockets: %q, want only 127.0.0.1:%d", mine, ep.Port)
	}
	if l := listenersOf(t, s.PID); len(l) > 0 {
		t.Fatalf("qemu listens on TCP:\n%s", strings.Join(l, "\n"))
	}

	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.passwd"), filepath.Join(dir, "bad.passwd")
	os.WriteFile(good, console.ObfuscatePassword(ep.Password), 0o600)
	os.WriteFile(bad, console.ObfuscatePassword("wrong123"), 0o600)
	display := "127.0.0.1:" + strconv.Itoa(ep.Port-5900)

	badJPG := filepath.Join(dir, "bad.jpg")
	out, err := exec.Command(snap, "-passwd", bad, display, badJPG).CombinedOutput()
	if err == nil {
		t.Fatalf("vncsnapshot with a wrong password succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "authentication failed") && !strings.Contains(string(out), "Authentication failed") {
		t.Errorf("wrong password: vncsnapshot said %s", out)
	}
	if _, err := os.Stat(badJPG); err == nil {
		t.Error("vncsnapshot wrote an image with a wrong password")
	}
	// vlab's own client is refused too.
	if c, err := net.Dial("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if v, err := console.NewVNC(ctx, c, console.VNCOptions{Password: "wrong123"}); err == nil {
			v.Close()
			t.Error("vlab's VNC client got in with a wrong password")
		}
		cancel()
	}

	// Freeze the guest so both pictures show the same moment (the text
	// cursor stops blinking too).
	e.ok("pause", name)
	snapJPG, shotPNG := filepath.Join(dir, "snap.jpg"), filepath.Join(dir, "shot.png")
	out, err = exec.Command(snap, "-passwd", good, "-nojpeg", "-quality", "100", display, snapJPG).CombinedOutput()
	if err != nil {
		t.Fatalf("vncsnapshot: %v\n%s", err, out)
	}
	e.ok("screenshot", name, shotPNG)
	sn := console.FrameOf(decodeImage(t, snapJPG))
	sh := console.FrameOf(decodeImage(t, shotPNG))
	if sn.W != sh.W || sn.H != sh.H {
		t.Fatalf("vncsnapshot %dx%d, screenshot %dx%d", sn.W, sn.H, sh.W, sh.H)
	}
	if sh.W != 720 || sh.H != 400 {
		t.Errorf("screen %dx%d, want the 720x400 VGA text console", sh.W, sh.H)
	}
	// Not blank: the console shows text (light pixels on black).
	bright, differ := 0, 0
	var sum int
	for i := range sh.Pix {
		a, b := luma(sn.Pix[i]), luma(sh.Pix[i])
		if b > 128 {
			bright++
		}
		if (a > 128) != (b > 128) {
			differ++
		}
		sum += absDiff(a - b)
	}
	if bright < 1000 {
		t.Errorf("screenshot has only %d light pixels: blank screen", bright)
	}
	if float64(differ) > 0.005*float64(len(sh.Pix)) {
		t.Errorf("%d of %d pixels differ between vncsnapshot and vlab screenshot", differ, len(sh.Pix))
	}
	if mean := float64(sum) / float64(len(sh.Pix)); mean > 3 {
		t.Errorf("mean brightness difference %.2f between vncsnapshot (JPEG q100) and screenshot", mean)
	}

	// Interrupting vlab closes the port and retires the password.
	interrupt(t, cmd, &stderr)
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), 2*time.Second); err == nil {
		c.Close()
		t.Error("endpoint still accepts connections after vlab ended")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if v, err := console.DialVNC(ctx, emulator.ExternalVNCSocket(s.VNCSocket), console.VNCOptions{Password: ep.Password}); err == nil {
		v.Close()
		t.Error("the one-time password still works after the endpoint closed")
	}
	e.ok("resume", name)

	// Bad input gets one-line errors.
	e.fail([]string{"--external"}, "vnc", name, "--json")
	e.fail([]string{"terminal", "--external"}, "vnc", name)
	e.fail([]string{"does not exist"}, "screenshot", name, filepath.Join(dir, "no such dir", "x.png"))
	e.ok("stop", "--force", name)
	e.fail([]string{"not running", "vlab start"}, "screenshot", name, shotPNG)
	e.fail([]string{"not running"}, "vnc", name, "--external", "--json")
}

// interrupt sends SIGINT to the vlab process cmd runs and waits for it to
// end, successfully.
func interrupt(t *testing.T, cmd *exec.Cmd, stderr *strings.Builder) {
	t.Helper()
	what := "vlab " + strings.Join(cmd.Args[1:], " ")
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s after SIGINT: %v (stderr %s)", what, err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not end on SIGINT", what)
	}
}

func luma(p uint32) int {
	return (299*int(p>>16&0xff) + 587*int(p>>8&0xff) + 114*int(p&0xff)) / 1000
}

func absDiff(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestVNCPointerTracking: absolute pointer events sent through vlab's VNC
// client reach the guest's tablet as the same positions, scaled the way
// QEMU scales them (x·32767/width), at the centre and the four corners;
// buttons and the wheel arrive too, and QMP query-mice shows the tablet as
// the current, absolute mouse.
func TestVNCPointerTracking(t *testing.T) {
	e := newEnv(t)
	name := "vnc-ptr"
	e.createGuest(name, guests["x86_64"], []string{"vlab.evtest=1"}, "--net", "none")
	e.ok("start", name)
	e.waitSerial(name, "VLAB-EVTEST /dev/input/event")
	s := e.show(name)

	// The guest's HID driver polls the tablet now: QEMU makes it current.
	var mice []struct {
		Name     string `json:"name"`
		Current  bool   `json:"current"`
		Absolute bool   `json:"absolute"`
	}
	waitFor(t, "query-mice to show the tablet as current", time.Minute, func() bool {
		var reply struct {
			Return json.RawMessage `json:"return"`
		}
		if json.Unmarshal([]byte(e.ok("qmp", name, `{"execute":"query-mice"}`)), &reply) != nil || json.Unmarshal(reply.Return, &mice) != nil {
			return false
		}
		for _, m := range mice {
			if m.Current {
				return m.Absolute && strings.Contains(strings.ToLower(m.Name), "tablet")
			}
		}
		return false
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := console.DialVNC(ctx, s.VNCSocket, console.VNCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, "QEMU to report an absolute pointer", 30*time.Second, func() bool { return v.PointerMode() == console.PointerAbsolute })
	w, h := v.Size()
	if w < 100 || h < 100 {
		t.Fatalf("screen %dx%d", w, h)
	}
	scale := func(v, size int) int { return v * 0x7fff / size }
	// The tablet starts at 0,0, which reports nothing: start in the centre.
	points := [][2]int{{w / 2, h / 2}, {0, 0}, {w - 1, 0}, {w - 1, h - 1}, {0, h - 1}, {w / 2, h / 2}}
	off := serialLen(s.SerialLog)
	for _, p := range points {
		if err := v.Pointer(p[0], p[1], 0); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("VLAB-ABS %d %d", scale(p[0], w), scale(p[1], h))
		off = e.serialLineAfter(name, off, want)
	}
	// Left button down and up, wheel up and down, at a corner.
	steps := []struct {
		b    console.Buttons
		want string
	}{
		{console.ButtonLeft, "VLAB-BTN 272 1"},
		{0, "VLAB-BTN 272 0"},
		{console.ButtonRight, "VLAB-BTN 273 1"},
		{0, "VLAB-BTN 273 0"},
		{console.ButtonWheelUp, "VLAB-WHEEL 1"},
		{console.ButtonWheelDown, "VLAB-WHEEL -1"},
	}
	for _, st := range steps {
		if err := v.Pointer(w-1, h-1, st.b); err != nil {
			t.Fatal(err)
		}
		if st.b&(console.ButtonWheelUp|console.ButtonWheelDown) != 0 {
			v.Pointer(w-1, h-1, 0)
		}
		off = e.serialLineAfter(name, off, st.want)
	}
	log, _ := os.ReadFile(s.SerialLog)
	if m := regexp.MustCompile(`VLAB-ERROR[^\r\n]*`).FindString(tail(string(log), 4000)); m != "" {
		t.Errorf("guest reported %s", m)
	}
}

// tmuxServer runs tmux on the test's own server socket.
type tmuxServer struct {
	t    *testing.T
	bin  string
	sock string
}

func newTmuxServer(t *testing.T) *tmuxServer {
	tm := &tmuxServer{t: t, bin: fixture.Program(t, "tmux"), sock: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { exec.Command(tm.bin, "-S", tm.sock, "kill-server").Run() })
	return tm
}

func (tm *tmuxServer) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command(tm.bin, append([]string{"-S", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// typeSlowly sends text to the pane four characters at a time.
func (tm *tmuxServer) typeSlowly(text string) {
	for len(text) > 0 {
		n := min(4, len(text))
		tm.run("send-keys", "-t", "vnc", "-l", text[:n])
		text = text[n:]
		time.Sleep(100 * time.Millisecond)
	}
}

// capture returns the pane with its colours (escape sequences).
func (tm *tmuxServer) capture() string { return tm.run("capture-pane", "-p", "-e", "-t", "vnc") }

// TestVNCBuiltinViewerInTmux: `vlab vnc NAME` in a 160x50 tmux pane shows
// the guest's screen (the pane is drawn in colour half blocks and changes
// when the guest's screen changes), typed keys reach a shell on the guest's
// screen (its output shows up on the serial log), and Ctrl-] leaves the
// viewer with the VM still running.
func TestVNCBuiltinViewerInTmux(t *testing.T) {
	e := newEnv(t)
	name := "vnc-view"
	e.createGuest(name, guests["x86_64"], []string{"vlab.vtshell=1"}, "--net", "none")
	e.ok("start", name)
	e.waitSerial(name, "VLAB-VTSHELL")
	tm := newTmuxServer(t)
	script := filepath.Join(t.TempDir(), "viewer.sh")
	var env strings.Builder
	for _, kv := range e.vars {
		if strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&env, "export %s=%s\n", k, strconv.Quote(v))
		}
	}
	os.WriteFile(script, []byte("#!/bin/sh\n"+env.String()+"export TERM=xterm-256color COLORTERM=truecolor\n"+
		strconv.Quote(vlabBin)+" vnc "+name+"\necho VIEWER-EXIT $?\nsleep 600\n"), 0o755)
	tm.run("new-session", "-d", "-s", "vnc", "-x", "160", "-y", "50", script)

	halfBlocks := func(p string) int { return strings.Count(p, "▀") }
	var first string
	waitFor(t, "the viewer to draw the guest's screen", time.Minute, func() bool {
		first = tm.capture()
		return halfBlocks(first) > 200 && strings.Contains(first, "Ctrl-]")
	})
	if !strings.Contains(first, "38;2;") {
		t.Errorf("pane has no 24-bit colours:\n%s", tail(first, 2000))
	}

	// Type into the guest's VGA shell through the viewer: the command's
	// output goes to the serial console. Keys are typed a few at a time,
	// like a person: QEMU's PS/2 keyboard buffer is small, and a guest
	// starved of CPU (2 host cores, TCG, other tests) drops what overflows
	// it. Busybox ash also discards keys typed while it waits for the
	// answer to its cursor-position query (ESC[6n) after a prompt: an Enter
	// first gives it a fresh, settled prompt, and a garbled line is
	// finished with Enter (a harmless "not found") and typed again.
	off := serialLen(e.show(name).SerialLog)
	typed := false
	for attempt := 0; attempt < 3 && !typed; attempt++ {
		tm.run("send-keys", "-t", "vnc", "Enter")
		time.Sleep(2 * time.Second)
		tm.typeSlowly("echo VLAB-TYPED $((6*7)) >/dev/console")
		tm.run("send-keys", "-t", "vnc", "Enter")
		_, typed = e.trySerialLine(name, off, "VLAB-TYPED 42", 30*time.Second)
		if !typed {
			t.Logf("attempt %d: marker not on the serial console; pane:\n%s", attempt+1, tm.run("capture-pane", "-p", "-t", "vnc"))
		}
	}
	if !typed {
		t.Fatal("keys typed in the viewer never ran in the guest's shell")
	}
	// Fill the guest's screen with a listing: the pane changes.
	tm.typeSlowly("ls -la /bin")
	tm.run("send-keys", "-t", "vnc", "Enter")
	var second string
	waitFor(t, "the pane to show the changed screen", time.Minute, func() bool {
		second = tm.capture()
		return second != first && halfBlocks(second) > halfBlocks(first)+200
	})

	// Ctrl-] leaves; the VM keeps running.
	tm.run("send-keys", "-t", "vnc", "C-]")
	waitFor(t, "the viewer to exit", 30*time.Second, func() bool {
		return strings.Contains(tm.run("capture-pane", "-p", "-t", "vnc"), "VIEWER-EXIT 0")
	})
	if st := e.state(name); st != "running" {
		t.Errorf("after leaving the viewer the vm is %s", st)
	}
}

// TestVNCExternalViewer: `vlab vnc NAME --external` opens TigerVNC's
// vncviewer (on an X server of the test's own) on the VM's unix socket, in a
// shared session: vlab's own VNC session stays connected; no TCP port is
// opened for it; interrupting vlab closes the viewer.
func TestVNCExternalViewer(t *testing.T) {
	xvfb := fixture.Program(t, "Xvfb")
	fixture.Program(t, "vncviewer")
	e := newEnv(t)
	name := "vnc-tiger"
	e.createGuest(name, guests["x86_64"], nil, "--net", "none")
	e.ok("start", name)
	s := e.show(name)

	n := 100 + os.Getpid()%500
	for ; ; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); os.IsNotExist(err) {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); os.IsNotExist(err) {
				break
			}
		}
	}
	disp := fmt.Sprintf(":%d", n)
	x := exec.Command(xvfb, disp, "-nolisten", "tcp", "-screen", "0", "1024x768x24")
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Process.Kill(); x.Wait() })
	waitFor(t, "Xvfb", 30*time.Second, func() bool {
		_, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n))
		return err == nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	own, err := console.DialVNC(ctx, s.VNCSocket, console.VNCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	clients := func() int {
		var reply struct {
			Return []struct {
				ID      string            `json:"id"`
				Clients []json.RawMessage `json:"clients"`
			} `json:"return"`
		}
		if err := json.Unmarshal([]byte(e.ok("qmp", name, `{"execute":"query-vnc-servers"}`)), &reply); err != nil {
			t.Fatal(err)
		}
		for _, d := range reply.Return {
			if d.ID == "default" {
				return len(d.Clients)
			}
		}
		return -1
	}
	if c := clients(); c != 1 {
		t.Fatalf("%d clients on the vm's vnc display before the viewer, want vlab's own", c)
	}

	cmd := exec.Command(vlabBin, "vnc", name, "--external")
	cmd.Env = append(append([]string(nil), e.vars...), "DISPLAY="+disp)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "vncviewer to connect", time.Minute, func() bool { return clients() == 2 })
	if !strings.Contains(stderr.String(), "opened vncviewer") {
		t.Errorf("vlab said %q", stderr.String())
	}
	if l := listenersOf(t, cmd.Process.Pid); len(l) > 0 {
		t.Errorf("vlab opened TCP ports for a viewer that takes the unix socket:\n%s", strings.Join(l, "\n"))
	}
	time.Sleep(time.Second) // the viewer's session is under way
	if own.Err() != nil {
		t.Fatalf("the viewer's session dropped vlab's own: %v", own.Err())
	}
	interrupt(t, cmd, &stderr)
	waitFor(t, "the viewer to disconnect", 30*time.Second, func() bool { return clients() == 1 })
}
