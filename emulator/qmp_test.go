package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"vlab/internal/fixture"
)

// shortDir returns a temporary directory whose paths fit a unix socket
// address (107 bytes) even for long test names.
func shortDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("/tmp", "vq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// step is one line of a transcript (see testdata/qmp/README.md).
type step struct {
	S       json.RawMessage `json:"s"`
	ReplyTo string          `json:"reply_to"`
	C       json.RawMessage `json:"c"`
	Tag     string          `json:"tag"`
	Raw     *string         `json:"raw"`
	Close   bool            `json:"close"`
}

func loadTranscript(t *testing.T, name string) []step {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "qmp", name))
	if err != nil {
		t.Fatal(err)
	}
	var steps []step
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var s step
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("%s:%d: %v", name, i+1, err)
		}
		steps = append(steps, s)
	}
	return steps
}

// fakeServer replays a transcript to the first client of a unix socket. It
// reports mismatches with t.Errorf and waits for the client to hang up after
// the last step (unless the transcript closes first).
type fakeServer struct {
	Path string
	done chan struct{}
}

func serveTranscript(t *testing.T, name string) *fakeServer {
	t.Helper()
	return serveTranscriptAt(t, filepath.Join(shortDir(t), "qmp.sock"), name)
}

func serveTranscriptAt(t *testing.T, path, name string) *fakeServer {
	t.Helper()
	steps := loadTranscript(t, name)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{Path: path, done: make(chan struct{})}
	go func() {
		defer close(fs.done)
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			t.Errorf("%s: accept: %v", name, err)
			return
		}
		defer c.Close()
		if err := replay(c, steps); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if steps[len(steps)-1].Close {
			return
		}
		// Wait for the client to hang up; anything more it sends is unexpected.
		rd := bufio.NewReader(c)
		if line, err := rd.ReadBytes('\n'); err == nil {
			t.Errorf("%s: unexpected message after the transcript: %s", name, line)
		}
	}()
	t.Cleanup(func() {
		select {
		case <-fs.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: fake server still running at the end of the test", name)
		}
	})
	return fs
}

func replay(c net.Conn, steps []step) error {
	rd := bufio.NewReader(c)
	ids := map[string]json.RawMessage{}
	for i := 0; i < len(steps); i++ {
		s := steps[i]
		switch {
		case s.S != nil:
			out := []byte(s.S)
			if s.ReplyTo != "" {
				id, ok := ids[s.ReplyTo]
				if !ok {
					return fmt.Errorf("step %d: no client message tagged %q yet", i+1, s.ReplyTo)
				}
				out = bytes.TrimSpace(out)
				out = append(append(out[:len(out)-1:len(out)-1], `, "id": `...), id...)
				out = append(out, '}')
			}
			if _, err := c.Write(append(out, '\r', '\n')); err != nil {
				return fmt.Errorf("step %d: write: %v", i+1, err)
			}
		case s.Raw != nil:
			if _, err := c.Write([]byte(*s.Raw)); err != nil {
				return fmt.Errorf("step %d: write: %v", i+1, err)
			}
		case s.Close:
			return nil
		case s.C != nil:
			// Consecutive client steps match as a set.
			j := i
			for j < len(steps) && steps[j].C != nil {
				j++
			}
			want := steps[i:j]
			matched := make([]bool, len(want))
			for range want {
				line, err := rd.ReadBytes('\n')
				if err != nil {
					return fmt.Errorf("step %d: read client message: %v", i+1, err)
				}
				var got map[string]json.RawMessage
				if err := json.Unmarshal(line, &got); err != nil {
					return fmt.Errorf("step %d: client sent invalid JSON %q", i+1, line)
				}
				k := matchStep(want, matched, got)
				if k < 0 {
					return fmt.Errorf("step %d: unexpected client message %s", i+1, bytes.TrimSpace(line))
				}
				matched[k] = true
				if id, ok := got["id"]; ok {
					ids[want[k].Tag] = id
				} else {
					return fmt.Errorf("step %d: client message without id: %s", i+1, bytes.TrimSpace(line))
				}
			}
			i = j - 1
		default:
			return fmt.Errorf("step %d: empty step", i+1)
		}
	}
	return nil
}

// matchStep returns the index of the first unmatched step whose members
// (except an unnamed id) all equal got's, or -1.
func matchStep(want []step, matched []bool, got map[string]json.RawMessage) int {
	gotv := decodeMembers(got)
	for k, w := range want {
		if matched[k] {
			continue
		}
		var wm map[string]json.RawMessage
		if json.Unmarshal(w.C, &wm) != nil {
			continue
		}
		wantv := decodeMembers(wm)
		g := map[string]any{}
		for key, v := range gotv {
			if _, named := wantv[key]; key != "id" || named {
				g[key] = v
			}
		}
		if reflect.DeepEqual(g, wantv) {
			return k
		}
	}
	return -1
}

func decodeMembers(m map[string]json.RawMessage) map[string]any {
	out := map[string]any{}
	for k, raw := range m {
		var v any
		_ = json.Unmarshal(raw, &v)
		out[k] = v
	}
	return out
}

func dialT(t *testing.T, path string) *Monitor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Dial(ctx, path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type statusInfo struct {
	Status  string `json:"status"`
	Running bool   `json:"running"`
}

type versionInfo struct {
	QEMU struct {
		Major, Minor, Micro int
	} `json:"qemu"`
	Package string `json:"package"`
}

func TestQMPBasicCommands(t *testing.T) {
	fs := serveTranscript(t, "basic.jsonl")
	m := dialT(t, fs.Path)
	ctx := testCtx(t)

	g := m.Greeting()
	if g.Version() != "7.2.22" || g.Package != "Debian 1:7.2+dfsg-7+deb12u18+b3" || !reflect.DeepEqual(g.Capabilities, []string{"oob"}) {
		t.Errorf("greeting = %+v (version %s)", g, g.Version())
	}
	var st statusInfo
	if err := m.Execute(ctx, "query-status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st != (statusInfo{Status: "running", Running: true}) {
		t.Errorf("query-status = %+v", st)
	}
	var v versionInfo
	if err := m.Execute(ctx, "query-version", nil, &v); err != nil {
		t.Fatal(err)
	}
	if v.QEMU.Major != 7 || v.QEMU.Minor != 2 || v.QEMU.Micro != 22 {
		t.Errorf("query-version = %+v", v)
	}
	var out string
	args := map[string]string{"command-line": "info version"}
	if err := m.Execute(ctx, "human-monitor-command", args, &out); err != nil {
		t.Fatal(err)
	}
	if out != "7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\r\n" {
		t.Errorf("human-monitor-command = %q", out)
	}
}

func TestQMPErrorReply(t *testing.T) {
	fs := serveTranscript(t, "error.jsonl")
	m := dialT(t, fs.Path)
	ctx := testCtx(t)

	err := m.Execute(ctx, "nosuch", nil, nil)
	var qe *QMPError
	if !errors.As(err, &qe) {
		t.Fatalf("Execute(nosuch) = %v, want a *QMPError", err)
	}
	if qe.Class != "CommandNotFound" || qe.Desc != "The command nosuch has not been found" {
		t.Errorf("QMPError = %+v", qe)
	}
	if got, want := qe.Error(), "qmp: The command nosuch has not been found (CommandNotFound)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Is(err, ErrMonitorClosed) {
		t.Errorf("an error reply must not look like a closed monitor: %v", err)
	}
	// The connection is still fine after an error reply.
	var st statusInfo
	if err := m.Execute(ctx, "query-status", nil, &st); err != nil || st.Status != "running" {
		t.Errorf("query-status after an error = %+v, %v", st, err)
	}
}

func nextEvent(t *testing.T, m *Monitor) Event {
	t.Helper()
	select {
	case ev, ok := <-m.Events():
		if !ok {
			t.Fatal("event stream closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func TestQMPEventsInterleavedWithReplies(t *testing.T) {
	fs := serveTranscript(t, "events.jsonl")
	m := dialT(t, fs.Path)
	ctx := testCtx(t)

	for _, cmd := range []string{"stop", "cont", "quit"} {
		if err := m.Execute(ctx, cmd, nil, nil); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	want := []struct {
		name string
		time time.Time
	}{
		{"STOP", time.Unix(1795297846, 517883000)},
		{"RESUME", time.Unix(1795297846, 815888000)},
		{"SHUTDOWN", time.Unix(1795297847, 416282000)},
	}
	for _, w := range want {
		ev := nextEvent(t, m)
		if ev.Name != w.name || !ev.Time.Equal(w.time) {
			t.Errorf("event = %s at %v, want %s at %v", ev.Name, ev.Time, w.name, w.time)
		}
		if w.name == "SHUTDOWN" {
			var d struct {
				Guest  bool   `json:"guest"`
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal(ev.Data, &d); err != nil || d.Guest || d.Reason != "host-qmp-quit" {
				t.Errorf("SHUTDOWN data = %s (%v)", ev.Data, err)
			}
		} else if ev.Data != nil {
			t.Errorf("%s has data %s, want none", ev.Name, ev.Data)
		}
	}
	// The server hung up after quit: the stream ends.
	select {
	case ev, ok := <-m.Events():
		if ok {
			t.Errorf("unexpected event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event stream not closed after the connection ended")
	}
	<-m.Done()
}

func TestQMPOutOfOrderReplies(t *testing.T) {
	fs := serveTranscript(t, "outoforder.jsonl")
	m := dialT(t, fs.Path)
	ctx := testCtx(t)

	var wg sync.WaitGroup
	var st statusInfo
	var v versionInfo
	var errSt, errV error
	wg.Add(2)
	go func() { defer wg.Done(); errSt = m.Execute(ctx, "query-status", nil, &st) }()
	go func() { defer wg.Done(); errV = m.Execute(ctx, "query-version", nil, &v) }()
	wg.Wait()
	if errSt != nil || errV != nil {
		t.Fatalf("errors: %v, %v", errSt, errV)
	}
	if st.Status != "running" || v.QEMU.Minor != 2 || v.QEMU.Micro != 22 {
		t.Errorf("replies crossed: status %+v, version %+v", st, v)
	}
}

func TestQMPGarbageOnSocket(t *testing.T) {
	fs := serveTranscript(t, "garbage.jsonl")
	m := dialT(t, fs.Path)
	ctx := testCtx(t)

	err := m.Execute(ctx, "query-status", nil, nil)
	if !errors.Is(err, ErrMonitorClosed) || !strings.Contains(err.Error(), "invalid message") {
		t.Fatalf("Execute = %v, want a closed monitor because of an invalid message", err)
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed")
	}
	if _, ok := <-m.Events(); ok {
		t.Error("event stream still open")
	}
	if err := m.Execute(ctx, "query-status", nil, nil); !errors.Is(err, ErrMonitorClosed) {
		t.Errorf("Execute after the end = %v", err)
	}
	if m.Err() == nil {
		t.Error("Err() = nil on a dead monitor")
	}
}

func TestQMPGarbageInsteadOfGreeting(t *testing.T) {
	fs := serveTranscript(t, "garbage-greeting.jsonl")
	ctx := testCtx(t)
	_, err := Dial(ctx, fs.Path)
	if err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Fatalf("Dial = %v, want an error about the greeting", err)
	}
}

func TestQMPCapabilitiesRefused(t *testing.T) {
	fs := serveTranscript(t, "capabilities-error.jsonl")
	_, err := Dial(testCtx(t), fs.Path)
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Desc != "Capability negotiation failed" {
		t.Fatalf("Dial = %v, want the QMP error", err)
	}
}

func TestQMPDroppedConnection(t *testing.T) {
	fs := serveTranscript(t, "drop.jsonl")
	m := dialT(t, fs.Path)
	err := m.Execute(testCtx(t), "query-status", nil, nil)
	if !errors.Is(err, ErrMonitorClosed) {
		t.Fatalf("pending Execute = %v, want ErrMonitorClosed", err)
	}
	if ev := nextEvent(t, m); ev.Name != "STOP" {
		t.Errorf("event before the drop = %+v", ev)
	}
	select {
	case _, ok := <-m.Events():
		if ok {
			t.Error("more events than sent")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event stream not closed")
	}
}

func TestQMPDialNeverGreets(t *testing.T) {
	path := filepath.Join(shortDir(t), "mute.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hungUp := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			hungUp <- err
			return
		}
		defer c.Close()
		_, err = c.Read(make([]byte, 1)) // the client never writes before the greeting
		hungUp <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, path)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-hungUp:
		if err == nil {
			t.Error("client wrote before the greeting")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Dial left the connection open")
	}
}

func TestQMPExecuteCancelKeepsConnection(t *testing.T) {
	fs := serveTranscript(t, "cancel.jsonl")
	m := dialT(t, fs.Path)
	ctx := testCtx(t)

	slowCtx, cancel := context.WithCancel(ctx)
	slowErr := make(chan error, 1)
	go func() { slowErr <- m.Execute(slowCtx, "query-status", nil, nil) }()
	if ev := nextEvent(t, m); ev.Name != "TEST_GOT_SLOW" {
		t.Fatalf("event = %+v", ev)
	}
	cancel()
	if err := <-slowErr; err != context.Canceled {
		t.Fatalf("cancelled Execute = %v, want context.Canceled", err)
	}
	// The late reply to the cancelled call arrives first; it must not be
	// taken for this one.
	var v versionInfo
	if err := m.Execute(ctx, "query-version", nil, &v); err != nil {
		t.Fatal(err)
	}
	if v.QEMU.Micro != 22 {
		t.Errorf("query-version got %+v", v)
	}
}

func TestQMPExecuteRaw(t *testing.T) {
	fs := serveTranscript(t, "raw.jsonl")
	m := dialT(t, fs.Path)
	ctx := testCtx(t)

	r1, err := m.ExecuteRaw(ctx, json.RawMessage(`{"execute": "query-status"}`))
	if err != nil {
		t.Fatal(err)
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(r1, &msg); err != nil || msg["id"] == nil || msg["return"] == nil {
		t.Errorf("reply without our id: %s (%v)", r1, err)
	}
	r2, err := m.ExecuteRaw(ctx, json.RawMessage(`{"execute":"query-status","id":"mine"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"return": {"status": "running", "singlestep": false, "running": true}, "id": "mine"}`; string(r2) != want {
		t.Errorf("reply = %s, want verbatim %s", r2, want)
	}
	r3, err := m.ExecuteRaw(ctx, json.RawMessage(`{"execute":"nosuch","id":7}`))
	if err != nil {
		t.Fatalf("an error reply is not a Go error here: %v", err)
	}
	if want := `{"id": 7, "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}`; string(r3) != want {
		t.Errorf("reply = %s, want %s", r3, want)
	}
	if _, err := m.ExecuteRaw(ctx, json.RawMessage(`["execute","quit"]`)); err == nil {
		t.Error("a non-object command was accepted")
	}
}

// TestQMPEventFloodNeverStallsReplies: nobody reads events, the server sends
// far more than the buffer holds before a reply; the reply still arrives and
// the oldest events are the ones dropped.
func TestQMPEventFloodNeverStallsReplies(t *testing.T) {
	const flood = 3 * eventBuffer
	path := filepath.Join(shortDir(t), "flood.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rd := bufio.NewReader(c)
		fmt.Fprint(c, `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}`+"\r\n")
		for i := 0; i < 2; i++ {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct{ ID json.RawMessage }
			_ = json.Unmarshal(line, &req)
			if i == 1 {
				var b strings.Builder
				for n := 0; n < flood; n++ {
					fmt.Fprintf(&b, `{"timestamp": {"seconds": %d, "microseconds": 0}, "event": "E"}`+"\r\n", n)
				}
				c.Write([]byte(b.String()))
			}
			fmt.Fprintf(c, `{"return": {}, "id": %s}`+"\r\n", req.ID)
		}
		rd.ReadBytes('\n') // until the client hangs up
	}()
	m := dialT(t, path)
	if err := m.Execute(testCtx(t), "query-status", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Dropped(), uint64(flood-eventBuffer); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	first := nextEvent(t, m)
	if first.Time.Unix() != flood-eventBuffer {
		t.Errorf("oldest kept event is #%d, want #%d", first.Time.Unix(), flood-eventBuffer)
	}
}

func TestQMPDialAnySkipsHeldSocket(t *testing.T) {
	dir := shortDir(t)
	a := serveTranscriptAt(t, filepath.Join(dir, "a.sock"), "handshake.jsonl")
	b := serveTranscriptAt(t, filepath.Join(dir, "b.sock"), "handshake.jsonl")
	paths := []string{a.Path, b.Path}
	ctx := testCtx(t)

	m1, err := DialAny(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	if m1.Path() != a.Path {
		t.Errorf("first DialAny took %s, want %s", m1.Path(), a.Path)
	}
	m2, err := DialAny(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.Path() != b.Path {
		t.Errorf("second DialAny took %s, want %s (the first is held)", m2.Path(), b.Path)
	}
	_, err = DialAny(ctx, paths)
	if !errors.Is(err, ErrMonitorsBusy) || !strings.Contains(err.Error(), a.Path) || !strings.Contains(err.Error(), b.Path) {
		t.Errorf("third DialAny = %v, want ErrMonitorsBusy naming both sockets", err)
	}

	// Another process holding the lock counts too (flock is per open file).
	held, err := os.OpenFile(a.Path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	m1.Close()
	if err := flockNB(held); err != nil {
		t.Fatalf("lock released by Close should be free: %v", err)
	}
	if _, err := DialAny(ctx, paths[:1]); !errors.Is(err, ErrMonitorsBusy) {
		t.Errorf("DialAny on a socket locked elsewhere = %v", err)
	}
}

// --- real QEMU ---

// startRealQEMU runs an empty machine with the given extra args and kills it
// at cleanup.
func startRealQEMU(t *testing.T, extra ...string) (exited <-chan struct{}) {
	t.Helper()
	args := append([]string{"-machine", "none", "-display", "none", "-nodefaults", "-no-user-config"}, extra...)
	cmd := exec.Command(fixture.Program(t, "qemu-system-x86_64"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("qemu stderr: %s", stderr.String())
		}
	})
	return done
}

// dialWhenUp dials path until QEMU has created it.
func dialWhenUp(t *testing.T, ctx context.Context, dial func(context.Context) (*Monitor, error)) *Monitor {
	t.Helper()
	for {
		m, err := dial(ctx)
		if err == nil {
			t.Cleanup(func() { m.Close() })
			return m
		}
		if ctx.Err() != nil {
			t.Fatalf("QMP never came up: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitEvent(t *testing.T, m *Monitor, name string) Event {
	t.Helper()
	for {
		ev := nextEvent(t, m)
		if ev.Name == name {
			return ev
		}
	}
}

func TestQMPRealQEMU(t *testing.T) {
	sock := filepath.Join(shortDir(t), "qmp.sock")
	exited := startRealQEMU(t, "-qmp", "unix:"+sock+",server=on,wait=off")
	ctx := testCtx(t)
	m := dialWhenUp(t, ctx, func(ctx context.Context) (*Monitor, error) { return Dial(ctx, sock) })

	g := m.Greeting()
	if g.Major < 6 || !strings.Contains(strings.Join(g.Capabilities, " "), "oob") {
		t.Errorf("greeting = %+v", g)
	}
	var v versionInfo
	if err := m.Execute(ctx, "query-version", nil, &v); err != nil {
		t.Fatal(err)
	}
	if v.QEMU.Major != g.Major || v.QEMU.Minor != g.Minor || v.QEMU.Micro != g.Micro || v.Package != g.Package {
		t.Errorf("query-version %+v disagrees with the greeting %+v", v, g)
	}
	var st statusInfo
	if err := m.Execute(ctx, "query-status", nil, &st); err != nil || st.Status != "running" {
		t.Fatalf("query-status = %+v, %v", st, err)
	}
	var qe *QMPError
	if err := m.Execute(ctx, "no-such-command", nil, nil); !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command = %v", err)
	}
	if err := m.Execute(ctx, "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, m, "STOP")
	if err := m.Execute(ctx, "query-status", nil, &st); err != nil || st.Status != "paused" {
		t.Errorf("query-status after stop = %+v, %v", st, err)
	}
	if err := m.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, m, "RESUME")
	raw, err := m.ExecuteRaw(ctx, json.RawMessage(`{"execute":"query-status","id":{"who":"me"}}`))
	if err != nil || !strings.Contains(string(raw), `"running": true`) || !strings.Contains(string(raw), `"who"`) {
		t.Errorf("ExecuteRaw = %s, %v", raw, err)
	}
	if err := m.Execute(ctx, "quit", nil, nil); err != nil && !errors.Is(err, ErrMonitorClosed) {
		t.Fatal(err)
	}
	ev := waitEvent(t, m, "SHUTDOWN")
	if !strings.Contains(string(ev.Data), "host-qmp-quit") {
		t.Errorf("SHUTDOWN data = %s", ev.Data)
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("monitor not closed after quit")
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("qemu still running after quit")
	}
}

func TestQMPRealQEMUTwoMonitors(t *testing.T) {
	dir := shortDir(t)
	s1, s2 := filepath.Join(dir, "qmp1.sock"), filepath.Join(dir, "qmp2.sock")
	startRealQEMU(t,
		"-chardev", "socket,id=qmp1,path="+s1+",server=on,wait=off", "-mon", "chardev=qmp1,mode=control",
		"-chardev", "socket,id=qmp2,path="+s2+",server=on,wait=off", "-mon", "chardev=qmp2,mode=control")
	ctx := testCtx(t)
	paths := []string{s1, s2}
	m1 := dialWhenUp(t, ctx, func(ctx context.Context) (*Monitor, error) { return DialAny(ctx, paths) })
	m2 := dialWhenUp(t, ctx, func(ctx context.Context) (*Monitor, error) { return DialAny(ctx, paths) })
	if m1.Path() == m2.Path() {
		t.Fatalf("both monitors on %s", m1.Path())
	}
	if _, err := DialAny(ctx, paths); !errors.Is(err, ErrMonitorsBusy) {
		t.Errorf("third DialAny = %v, want ErrMonitorsBusy", err)
	}

	// Both monitors work at the same time.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for _, m := range []*Monitor{m1, m2} {
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var st statusInfo
				if err := m.Execute(ctx, "query-status", nil, &st); err != nil {
					errs <- err
				} else if st.Status != "running" {
					errs <- fmt.Errorf("status %q", st.Status)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// An event caused through one monitor reaches both.
	if err := m1.Execute(ctx, "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, m1, "STOP")
	waitEvent(t, m2, "STOP")
	if err := m2.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, m1, "RESUME")
	waitEvent(t, m2, "RESUME")
}
