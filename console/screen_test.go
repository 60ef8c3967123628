package console

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeScreen is a Screen whose protected socket accepts connections and
// whose password setter records what it is given.
func fakeScreen(t *testing.T) (Screen, func() []string) {
	t.Helper()
	dir := shortTempDir(t)
	protected := filepath.Join(dir, "vnc-ext.sock")
	ln, err := net.Listen("unix", protected)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var mu sync.Mutex
	var set []string
	return Screen{
			Title:        "vm1",
			Socket:       filepath.Join(dir, "vnc.sock"),
			Protected:    protected,
			PasswordFile: filepath.Join(dir, "vnc-ext.pass"),
			Dir:          dir,
			SetPassword: func(_ context.Context, pw string) error {
				mu.Lock()
				defer mu.Unlock()
				set = append(set, pw)
				return nil
			},
		}, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), set...)
		}
}

// shortTempDir is a temp dir whose paths fit a unix socket address.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("/tmp", "vc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestExternalSessionOnSocket(t *testing.T) {
	s, passwords := fakeScreen(t)
	bin := t.TempDir()
	args := filepath.Join(bin, "args")
	fakeProgram(t, bin, "myviewer", `echo "$@" > `+args)
	vw, err := FindViewer(filepath.Join(bin, "myviewer") + " --title {title} {socket}")
	if err != nil {
		t.Fatal(err)
	}
	x, err := vw.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if x.Endpoint != nil {
		t.Error("a viewer that takes the socket got an endpoint")
	}
	if err := x.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(args); strings.TrimSpace(string(got)) != "--title vm1 "+s.Socket {
		t.Errorf("viewer args %q", got)
	}
	if p := passwords(); len(p) != 0 {
		t.Errorf("a socket viewer set passwords %q", p)
	}
}

// A viewer without a socket gets a loopback endpoint and a password file;
// both are gone once it exits, and its failure carries its last output.
func TestExternalSessionOnEndpoint(t *testing.T) {
	s, passwords := fakeScreen(t)
	bin := t.TempDir()
	seen := filepath.Join(bin, "seen")
	fakeProgram(t, bin, "myviewer", `echo "$1 $2" > `+seen+`; test -s "$3" || exit 9; echo "cannot open display"; exit 3`)
	vw, err := FindViewer(filepath.Join(bin, "myviewer") + " {host} {port} {passwordfile}")
	if err != nil {
		t.Fatal(err)
	}
	x, err := vw.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	ep := x.Endpoint
	if ep == nil || ep.Host != "127.0.0.1" || ep.Port == 0 {
		t.Fatalf("endpoint %+v", ep)
	}
	err = x.Wait(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "configured: exit status 3: ") || !strings.Contains(err.Error(), "cannot open display") {
		t.Errorf("a failing viewer: %v", err)
	}
	if got, _ := os.ReadFile(seen); strings.TrimSpace(string(got)) != "127.0.0.1 "+strconv.Itoa(ep.Port) {
		t.Errorf("viewer saw %q, want the endpoint", got)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir, "vlab-vncpasswd-*")); len(left) != 0 {
		t.Errorf("viewer password files left: %q", left)
	}
	if p := passwords(); len(p) != 2 || p[0] != ep.Password || p[1] == p[0] {
		t.Errorf("passwords set %q: want the endpoint's, then a retired one", p)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), time.Second); err == nil {
		c.Close()
		t.Error("endpoint still accepts after the viewer exited")
	}
}

// Interrupting vlab interrupts the viewer, which is no error.
func TestExternalSessionInterrupted(t *testing.T) {
	s, _ := fakeScreen(t)
	bin := t.TempDir()
	fakeProgram(t, bin, "myviewer", "exec sleep 60")
	vw, err := FindViewer(filepath.Join(bin, "myviewer") + " {socket}")
	if err != nil {
		t.Fatal(err)
	}
	x, err := vw.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := x.Wait(ctx); err != nil {
		t.Errorf("an interrupted viewer: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Wait took %v", d)
	}
}

func TestExternalSessionStartFails(t *testing.T) {
	s, passwords := fakeScreen(t)
	vw := &ExternalViewer{Name: "gone", Path: filepath.Join(t.TempDir(), "no-such-viewer"), args: []string{"{host}::{port}"}}
	if _, err := vw.Start(context.Background(), s); err == nil || !strings.HasPrefix(err.Error(), "start gone: ") {
		t.Errorf("a viewer that cannot start: %v", err)
	}
	if p := passwords(); len(p) != 2 {
		t.Errorf("passwords set %q: the endpoint opened for it must be closed (and its password retired)", p)
	}
	s.Protected = filepath.Join(s.Dir, "missing.sock")
	if _, err := vw.Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), "no external vnc display") {
		t.Errorf("no protected display: %v", err)
	}
}

func TestGraphicalSession(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	if GraphicalSession() {
		t.Error("graphical session without DISPLAY or WAYLAND_DISPLAY")
	}
	t.Setenv("WAYLAND_DISPLAY", "wayland-0")
	if !GraphicalSession() {
		t.Error("no graphical session with WAYLAND_DISPLAY set")
	}
}

func TestScreenViewNeedsTheSocket(t *testing.T) {
	s := Screen{Title: "vm1", Socket: filepath.Join(t.TempDir(), "missing.sock")}
	if err := s.View(context.Background(), GraphicsBlocks, strings.NewReader(""), io.Discard); err == nil || !strings.HasPrefix(err.Error(), "vnc connect ") {
		t.Errorf("View on a missing socket: %v", err)
	}
}
