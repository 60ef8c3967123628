package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestObfuscatePasswordMatchesVncpasswd(t *testing.T) {
	// "password" as vncpasswd stores it: a well-known value, independent of
	// this implementation (and vncsnapshot -passwd reads vlab's files in the
	// e2e test).
	if got := hex.EncodeToString(ObfuscatePassword("password")); got != "dbd83cfd727a1458" {
		t.Fatalf("ObfuscatePassword(password) = %s, want dbd83cfd727a1458", got)
	}
	if !bytes.Equal(ObfuscatePassword("12345678"), ObfuscatePassword("123456789")) {
		t.Error("VNC uses only the first 8 characters")
	}
}

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		p, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 8 || strings.Trim(p, "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") != "" {
			t.Fatalf("password %q", p)
		}
		if seen[p] {
			t.Fatalf("password %q repeated", p)
		}
		seen[p] = true
	}
}

// fakeProgram writes an executable shell script named name into dir.
func fakeProgram(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindViewer(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	if _, err := FindViewer(""); err == nil || !strings.Contains(err.Error(), "tigervnc-viewer") {
		t.Fatalf("no viewer installed: err %v", err)
	}

	fakeProgram(t, dir, "gvncviewer", "exit 0")
	v, err := FindViewer("")
	if err != nil || v.Name != "gvncviewer" || v.UsesSocket() {
		t.Fatalf("gvncviewer: %+v %v", v, err)
	}
	cmd, cleanup, err := v.Command(Target{Host: "127.0.0.1", Port: 40001, Password: "pw"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if !slices.Equal(cmd.Args[1:], []string{"127.0.0.1:34101"}) {
		t.Errorf("gvncviewer args %q", cmd.Args)
	}

	// TigerVNC takes the unix socket and is asked for a shared session.
	fakeProgram(t, dir, "vncviewer", `echo "usage: vncviewer [parameters] [unix socket]"`)
	v, err = FindViewer("")
	if err != nil || v.Name != "vncviewer" || !v.UsesSocket() {
		t.Fatalf("tigervnc: %+v %v", v, err)
	}
	cmd, _, _ = v.Command(Target{Socket: "/run/vm/vnc.sock"}, dir)
	if !slices.Equal(cmd.Args[1:], []string{"-Shared=1", "/run/vm/vnc.sock"}) {
		t.Errorf("tigervnc args %q", cmd.Args)
	}

	// Another vncviewer gets the endpoint and a vncpasswd file.
	fakeProgram(t, dir, "vncviewer", `echo "usage: vncviewer host:display"`)
	v, err = FindViewer("")
	if err != nil || v.UsesSocket() {
		t.Fatalf("other vncviewer: %+v %v", v, err)
	}
	cmd, cleanup, err = v.Command(Target{Host: "127.0.0.1", Port: 5999, Password: "secret12"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	pwFile := cmd.Args[3]
	data, err := os.ReadFile(pwFile)
	if err != nil || !bytes.Equal(data, ObfuscatePassword("secret12")) {
		t.Errorf("password file %s: % x %v", pwFile, data, err)
	}
	if fi, _ := os.Stat(pwFile); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v", fi.Mode())
	}
	if !slices.Equal(cmd.Args[1:3], []string{"-shared", "-passwd"}) || cmd.Args[4] != "127.0.0.1::5999" {
		t.Errorf("args %q", cmd.Args)
	}
	cleanup()
	if _, err := os.Stat(pwFile); !os.IsNotExist(err) {
		t.Error("cleanup left the password file")
	}

	// A configured command wins; {socket} makes it a unix-socket viewer.
	fakeProgram(t, dir, "myviewer", "exit 0")
	v, err = FindViewer("myviewer --title {title} {host} {port}")
	if err != nil || v.Name != "configured" || v.UsesSocket() {
		t.Fatalf("configured: %+v %v", v, err)
	}
	cmd, _, _ = v.Command(Target{Host: "127.0.0.1", Port: 7000, Password: "pw", Title: "vm1"}, dir)
	if !slices.Equal(cmd.Args[1:], []string{"--title", "vm1", "127.0.0.1", "7000"}) {
		t.Errorf("configured args %q", cmd.Args)
	}
	// The password never goes on a command line (ps shows it to everyone).
	if _, err := FindViewer("myviewer {host}::{port} -password {password}"); err == nil || !strings.Contains(err.Error(), "{passwordfile}") {
		t.Errorf("a viewer command with {password}: err %v", err)
	}
	v = &ExternalViewer{Name: "configured", Path: "/bin/true", args: []string{"--pw={password}"}}
	if _, _, err := v.Command(Target{Host: "127.0.0.1", Port: 7000, Password: "secret12"}, dir); err == nil {
		t.Error("Command put {password} in argv")
	}
	if v, _ := FindViewer("myviewer {socket}"); v == nil || !v.UsesSocket() {
		t.Error("configured {socket} viewer does not use the socket")
	}
	if _, err := FindViewer("no-such-viewer {socket}"); err == nil {
		t.Error("a configured viewer that is not installed was accepted")
	}
}

func TestEndpointRelaysOnLoopbackAndRetiresPassword(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vnc-ext.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // an echo server standing in for QEMU
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	var mu sync.Mutex
	var set []string
	setPw := func(_ context.Context, pw string) error {
		mu.Lock()
		defer mu.Unlock()
		set = append(set, pw)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ep, err := OpenEndpoint(ctx, sock, filepath.Join(t.TempDir(), "vnc-ext.pass"), setPw)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Host != "127.0.0.1" || ep.Port == 0 || len(set) != 1 || set[0] != ep.Password {
		t.Fatalf("endpoint %+v, passwords set %q", ep, set)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve(ctx) }()

	c, err := net.Dial("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "RFB?")
	buf := make([]byte, 4)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "RFB?" {
		t.Fatalf("relay echoed %q, %v", buf, err)
	}
	// Nothing listens on the machine's other addresses.
	if addrs, _ := net.InterfaceAddrs(); len(addrs) > 0 {
		for _, a := range addrs {
			ip, _, _ := net.ParseCIDR(a.String())
			if ip == nil || ip.IsLoopback() || ip.To4() == nil {
				continue
			}
			if c2, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(ep.Port)), time.Second); err == nil {
				c2.Close()
				t.Errorf("endpoint reachable on %s", ip)
			}
		}
	}
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if _, err := c.Read(buf); err == nil {
		t.Error("relayed connection survived Close")
	}
	mu.Lock()
	if len(set) != 2 || set[1] == set[0] {
		t.Errorf("Close did not retire the password: set %q", set)
	}
	mu.Unlock()
	if c3, err := net.DialTimeout("tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), time.Second); err == nil {
		c3.Close()
		t.Error("endpoint still accepts after Close")
	}
}

func TestOpenEndpointNeedsTheSocket(t *testing.T) {
	called := false
	_, err := OpenEndpoint(context.Background(), filepath.Join(t.TempDir(), "missing.sock"), filepath.Join(t.TempDir(), "pw"), func(context.Context, string) error {
		called = true
		return nil
	})
	if err == nil || called {
		t.Fatalf("err %v, password set %v", err, called)
	}
}

// TestEndpointsSharePassword: a second endpoint of the same VM reuses the
// live one-time password instead of replacing it (which locked the first
// one's viewer out); only the last to close retires it; the password file
// is 0600; once all are closed the next endpoint gets a fresh password.
func TestEndpointsSharePassword(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnc-ext.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pwFile := filepath.Join(dir, "vnc-ext.pass")
	var mu sync.Mutex
	var set []string
	current := func() string {
		mu.Lock()
		defer mu.Unlock()
		return set[len(set)-1]
	}
	setPw := func(_ context.Context, pw string) error {
		mu.Lock()
		defer mu.Unlock()
		set = append(set, pw)
		return nil
	}
	ctx := context.Background()
	a, err := OpenEndpoint(ctx, sock, pwFile, setPw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenEndpoint(ctx, sock, pwFile, setPw)
	if err != nil {
		t.Fatal(err)
	}
	if b.Password != a.Password || current() != a.Password || len(set) != 1 {
		t.Fatalf("second endpoint: password %q, first %q, passwords set %q", b.Password, a.Password, set)
	}
	if fi, err := os.Stat(pwFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v %v, want mode 0600", fi, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if current() != a.Password {
		t.Errorf("closing the second endpoint retired the first one's password (set %q)", set)
	}
	c, err := OpenEndpoint(ctx, sock, pwFile, setPw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Password != a.Password {
		t.Errorf("third endpoint while the first is open: %q, want %q", c.Password, a.Password)
	}
	a.Close()
	if current() != a.Password {
		t.Error("the password was retired while an endpoint is still open")
	}
	c.Close()
	if current() == a.Password {
		t.Errorf("the last endpoint to close did not retire the password (set %q)", set)
	}
	d, err := OpenEndpoint(ctx, sock, pwFile, setPw)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Password == a.Password || current() != d.Password {
		t.Errorf("an endpoint after all closed reused the old password %q (set %q)", d.Password, set)
	}
}

// TestEndpointOfAnEarlierRunDoesNotRetire: when the VM restarts (vlab
// removes the password file), an endpoint left over from the earlier run
// does not retire the new run's password when it closes.
func TestEndpointOfAnEarlierRunDoesNotRetire(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnc-ext.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pwFile := filepath.Join(dir, "vnc-ext.pass")
	var set []string
	setPw := func(_ context.Context, pw string) error { set = append(set, pw); return nil }
	old, err := OpenEndpoint(context.Background(), sock, pwFile, setPw)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pwFile); err != nil { // what a start does
		t.Fatal(err)
	}
	cur, err := OpenEndpoint(context.Background(), sock, pwFile, setPw)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if cur.Password == old.Password || len(set) != 2 {
		t.Fatalf("endpoint of the new run reused the old run's password (set %q)", set)
	}
	old.Close()
	if set[len(set)-1] != cur.Password {
		t.Errorf("closing the old run's endpoint retired the new run's password (set %q)", set)
	}
}
